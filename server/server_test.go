package server

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/zbca/zbca/ca"
	"github.com/zbca/zbca/config"
	"github.com/zbca/zbca/enroll"
	"github.com/zbca/zbca/revocation/revtest"
	"github.com/zbca/zbca/store"
)

const token = "0123456789abcdef0123456789abcdef"

func newTestServer(t *testing.T) (*Server, *store.SQL) {
	t.Helper()
	dir := t.TempDir()
	st, err := store.Open(context.Background(), store.Options{Path: filepath.Join(dir, "zbca.db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	c := config.Default()
	c.DataDir = dir
	c.Resolve()
	a, err := ca.Init(context.Background(), ca.Options{Dir: filepath.Join(dir, "ca"), Config: c.CA, PublicURL: c.PublicURL, TLSHosts: c.HTTPS.Hosts, Store: st})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	if err := st.AddEnterprise(context.Background(), &store.Enterprise{Username: "acme", Name: "ACME", PasswordHash: "x"}, store.AuditEvent{Actor: "t", Action: "enterprise.add"}); err != nil {
		t.Fatal(err)
	}
	stack := revtest.Start(t, st, a)
	svc, pub := stack.Service, stack.CRL
	es := &enroll.Service{CA: a, Store: st, Revoke: svc}
	s, err := New(Options{CA: a, Store: st, AdminToken: []byte(token), Revocation: svc, CRLs: pub, Enroll: es})
	if err != nil {
		t.Fatal(err)
	}
	return s, st
}

func csrPEM(t *testing.T) string {
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, k)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}))
}

func do(h http.Handler, method, path, auth, body string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	req.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func TestAdminIssue(t *testing.T) {
	s, st := newTestServer(t)
	body, _ := json.Marshal(map[string]string{"enterprise": "acme", "csr": csrPEM(t)})
	rec := do(s.admin, "POST", "/admin/v1/certificates", "Bearer "+token, string(body))
	if rec.Code != http.StatusCreated {
		t.Fatalf("issue: %d %s", rec.Code, rec.Body)
	}
	var got CertificateJSON
	if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	if got.Serial == "" || !strings.Contains(got.ChainPEM, "BEGIN CERTIFICATE") {
		t.Fatalf("response %+v", got)
	}
	if _, err := st.GetCertificate(context.Background(), got.Serial); err != nil {
		t.Fatalf("answered certificate is not stored: %v", err)
	}
	rec = do(s.admin, "GET", "/admin/v1/certificates/"+strings.ToUpper(got.Serial), "Bearer "+token, "")
	if rec.Code != 200 || !strings.Contains(rec.Body.String(), got.Serial) {
		t.Errorf("get: %d %s", rec.Code, rec.Body)
	}
}

func TestAdminRefusals(t *testing.T) {
	s, st := newTestServer(t)
	good, _ := json.Marshal(map[string]string{"enterprise": "acme", "csr": csrPEM(t)})
	cases := []struct {
		name, auth, body string
		code             int
	}{
		{"no token", "", string(good), 401},
		{"wrong token", "Bearer " + strings.Repeat("x", 32), string(good), 401},
		{"basic auth", "Basic " + token, string(good), 401},
		{"empty body", "Bearer " + token, "", 400},
		{"not json", "Bearer " + token, "{", 400},
		{"unknown field", "Bearer " + token, `{"enterprise":"acme","csr":"x","admin":true}`, 400},
		{"trailing", "Bearer " + token, string(good) + "{}", 400},
		{"bad csr", "Bearer " + token, `{"enterprise":"acme","csr":"-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n"}`, 400},
		{"unknown enterprise", "Bearer " + token, strings.Replace(string(good), `"acme"`, `"nobody"`, 1), 404},
		{"huge", "Bearer " + token, `{"enterprise":"acme","csr":"` + strings.Repeat("A", 200000) + `"}`, 413},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rec := do(s.admin, "POST", "/admin/v1/certificates", tc.auth, tc.body)
			if rec.Code != tc.code {
				t.Fatalf("got %d %s, want %d", rec.Code, rec.Body, tc.code)
			}
			if rec.Code != 401 && !strings.Contains(rec.Header().Get("Content-Type"), "json") {
				t.Errorf("error is not JSON: %q", rec.Header().Get("Content-Type"))
			}
		})
	}
	list, _ := st.ListCertificates(context.Background(), store.CertFilter{Profile: store.ProfileClient})
	if len(list) != 0 {
		t.Errorf("refused requests issued %d certificates", len(list))
	}
	if rec := do(s.admin, "GET", "/admin/v1/certificates/zz", "Bearer "+token, ""); rec.Code != 400 {
		t.Errorf("bad serial: %d", rec.Code)
	}
	if rec := do(s.admin, "GET", "/admin/v1/certificates/abcdef", "Bearer "+token, ""); rec.Code != 404 {
		t.Errorf("unknown serial: %d", rec.Code)
	}
}

func TestPKIFiles(t *testing.T) {
	s, _ := newTestServer(t)
	for path, ctype := range map[string]string{
		"/pki/root.crt": "application/pkix-cert", "/pki/issuing.crt": "application/pkix-cert", "/pki/issuing-1.crt": "application/pkix-cert",
		"/pki/root.pem": "application/x-pem-file", "/pki/chain.pem": "application/x-pem-file",
	} {
		rec := do(s.public, "GET", path, "", "")
		if rec.Code != 200 || rec.Header().Get("Content-Type") != ctype || rec.Header().Get("ETag") == "" || rec.Header().Get("Cache-Control") == "" {
			t.Errorf("%s: %d %q", path, rec.Code, rec.Header())
		}
	}
	rec := do(s.public, "GET", "/pki/root.crt", "", "")
	if _, err := x509.ParseCertificate(rec.Body.Bytes()); err != nil {
		t.Error(err)
	}
	req := httptest.NewRequest("GET", "/pki/root.crt", nil)
	req.Header.Set("If-None-Match", rec.Header().Get("ETag"))
	rec2 := httptest.NewRecorder()
	s.public.ServeHTTP(rec2, req)
	if rec2.Code != http.StatusNotModified {
		t.Errorf("conditional GET: %d", rec2.Code)
	}
	if rec := do(s.public, "GET", "/pki/../secrets/admin-token", "", ""); rec.Code != 404 {
		t.Errorf("traversal: %d", rec.Code)
	}
	if rec := do(s.admin, "GET", "/readyz", "", ""); rec.Code != 200 {
		t.Errorf("readyz %d", rec.Code)
	}
	if rec := do(s.portal, "GET", "/", "", ""); rec.Code != 200 || rec.Header().Get("X-Frame-Options") != "DENY" {
		t.Errorf("landing %d %v", rec.Code, rec.Header())
	}
}
