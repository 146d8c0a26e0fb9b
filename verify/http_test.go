package verify

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/labstack/echo/v4"

	"github.com/zbca/zbca/internal/web"
	"github.com/zbca/zbca/store"
)

func newEcho(f *fixture) *echo.Echo {
	e := web.New(slog.New(slog.DiscardHandler), "https")
	NewHandler(f.svc, HandlerOptions{}).Register(e)
	return e
}

// post sends a body (as is) with the given key header.
func post(e *echo.Echo, hdr, key string, body io.Reader) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodPost, "/api/v1/verify", body)
	req.Header.Set("Content-Type", "application/json")
	if key != "" {
		req.Header.Set(hdr, key)
	}
	rec := httptest.NewRecorder()
	e.ServeHTTP(rec, req)
	return rec
}

func jsonBody(cert []byte, username string) io.Reader {
	b, _ := json.Marshal(map[string]string{"certificate": string(cert), "username": username})
	return bytes.NewReader(b)
}

func answerOf(t *testing.T, rec *httptest.ResponseRecorder) *Answer {
	t.Helper()
	if rec.Code != 200 {
		t.Fatalf("status %d: %s", rec.Code, rec.Body)
	}
	if h := rec.Header(); h.Get("Content-Type") != "application/json" || h.Get("Cache-Control") != "no-store" {
		t.Errorf("answer headers %v", h)
	}
	var a Answer
	if err := json.Unmarshal(rec.Body.Bytes(), &a); err != nil {
		t.Fatalf("%v: %s", err, rec.Body)
	}
	return &a
}

// TestAPIKeys: a missing, malformed, unknown or revoked key is 401; a
// revoked key stops working within KeyCacheTTL.
func TestAPIKeys(t *testing.T) {
	f := newFixture(t)
	e := newEcho(f)
	cert := pemOf(f.issueAt(t, "acme", t0.AddDate(-1, 0, 0)).Certificate)
	for name, tc := range map[string]struct{ hdr, key string }{
		"no key":         {"", ""},
		"not bearer":     {"Authorization", "Basic " + f.key},
		"unknown key":    {"Authorization", "Bearer zbca_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"},
		"truncated key":  {"Authorization", "Bearer " + f.key[:20]},
		"unknown header": {"X-API-Key", "zbca_" + strings.Repeat("x", 43)},
	} {
		rec := post(e, tc.hdr, tc.key, jsonBody(cert, ""))
		if rec.Code != 401 || !strings.Contains(rec.Header().Get("WWW-Authenticate"), "Bearer") {
			t.Errorf("%s: %d %q %s", name, rec.Code, rec.Header().Get("WWW-Authenticate"), rec.Body)
		}
	}
	for _, hdr := range []string{"Authorization", "X-API-Key"} {
		key := f.key
		if hdr == "Authorization" {
			key = "Bearer " + key
		}
		if a := answerOf(t, post(e, hdr, key, jsonBody(cert, "acme"))); a.Result != Valid {
			t.Errorf("%s: %+v", hdr, a)
		}
	}
	if _, err := f.st.RevokeAPIKey(context.Background(), "site-a", store.AuditEvent{Actor: "test", Action: "apikey.revoke", Subject: "site-a"}); err != nil {
		t.Fatal(err)
	}
	// Within the cache time the key may still work; after it, never.
	f.clock.Set(t0.Add(KeyCacheTTL))
	if rec := post(e, "X-API-Key", f.key, jsonBody(cert, "")); rec.Code != 401 {
		t.Errorf("revoked key after %s: %d %s", KeyCacheTTL, rec.Code, rec.Body)
	}
}

// TestBadInput: nothing from outside crashes the API or gets past it.
func TestBadInput(t *testing.T) {
	f := newFixture(t)
	e := newEcho(f)
	good := f.issueAt(t, "acme", t0.AddDate(-1, 0, 0)).Certificate
	rsaKey, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	edPub, _, _ := ed25519.GenerateKey(rand.Reader)
	other := newForeignCA(t, pkixName("Other CA"), nil)
	rsa1024 := other.issue(t, "acme", rsaKey.Public())
	ed := other.issue(t, "acme", edPub)
	// Ed448 (OID 1.3.101.113), which Go does not know: the Ed25519 OID
	// (1.3.101.112) patched in the key only (the signature is ECDSA).
	ed448 := bytes.Replace(ed.Raw, []byte{0x06, 0x03, 0x2b, 0x65, 0x70}, []byte{0x06, 0x03, 0x2b, 0x65, 0x71}, 1)
	chain50 := bytes.Repeat(pemOf(good), 50)

	malformed := map[string]struct {
		cert   []byte
		detail string
	}{
		"garbage PEM":     {[]byte("-----BEGIN CERTIFICATE-----\nMIIB!!!garbage\n-----END CERTIFICATE-----"), "cannot be decoded"},
		"truncated DER":   {pemOf(good)[:300], "cannot be decoded"},
		"random base64":   {[]byte("MIIBCgKCAQEAu1SU"), "not DER"},
		"bad base64":      {[]byte("MIIBCgKCAQEAu1S*"), "neither PEM nor base64"},
		"DER not a cert":  {[]byte("MAMCAQE="), "not an X.509 certificate"},
		"50 certificates": {chain50, "more than 10 certificates"},
		"RSA-1024":        {pemOf(rsa1024), "unsupported key"},
		"Ed25519":         {pemOf(ed), "unsupported key"},
		"Ed448 (unknown)": {pemFromDER(ed448), "unsupported public key algorithm"},
		"NUL bytes":       {[]byte("\x00\x00\x00"), "neither PEM nor base64"},
		"only spaces":     {[]byte("   \n"), "no certificate"},
	}
	for name, tc := range malformed {
		t.Run(name, func(t *testing.T) {
			rec := post(e, "X-API-Key", f.key, jsonBody(tc.cert, "acme"))
			if tc.detail == "no certificate" {
				if rec.Code != 400 || !strings.Contains(rec.Body.String(), "certificate is required") {
					t.Fatalf("%d %s", rec.Code, rec.Body)
				}
				return
			}
			a := answerOf(t, rec)
			if a.Result != Malformed || a.Valid || !strings.Contains(a.Detail, tc.detail) {
				t.Errorf("%+v, want malformed with %q", a, tc.detail)
			}
		})
	}

	requests := map[string]struct {
		body   io.Reader
		status int
		text   string
	}{
		"5 MB body":              {bytes.NewReader(bytes.Repeat([]byte("a"), 5<<20)), 413, "larger than 64 KB"},
		"5 MB body, no length":   {io.MultiReader(bytes.NewReader(bytes.Repeat([]byte("a"), 5<<20))), 413, "larger than 64 KB"},
		"64 KB of certificate":   {jsonBody(bytes.Repeat([]byte("A"), 64<<10), ""), 413, "larger than 64 KB"},
		"not JSON":               {strings.NewReader("certificate=x"), 400, "malformed JSON"},
		"unknown field":          {strings.NewReader(`{"certificate":"x","user":"a"}`), 400, "malformed JSON"},
		"two objects":            {strings.NewReader(`{"certificate":"x"}{}`), 400, "trailing data"},
		"certificate not string": {strings.NewReader(`{"certificate":1}`), 400, "malformed JSON"},
		"empty body":             {strings.NewReader(""), 400, "malformed JSON"},
		"long username":          {jsonBody(pemOf(good), strings.Repeat("a", 300)), 400, "username"},
	}
	for name, tc := range requests {
		t.Run(name, func(t *testing.T) {
			rec := post(e, "X-API-Key", f.key, tc.body)
			if rec.Code != tc.status || !strings.Contains(rec.Body.String(), tc.text) {
				t.Errorf("%d %s, want %d %q", rec.Code, rec.Body, tc.status, tc.text)
			}
		})
	}
	// And the good certificate is still fine.
	if a := answerOf(t, post(e, "X-API-Key", f.key, jsonBody(pemOf(good), "acme"))); a.Result != Valid {
		t.Errorf("after the bad input: %+v", a)
	}
}

// TestNginx: the auth_request form, with nginx's URL-escaped PEM.
func TestNginx(t *testing.T) {
	f := newFixture(t)
	e := newEcho(f)
	valid := f.issueAt(t, "acme", t0.AddDate(-1, 0, 0))
	expiring := f.issueAt(t, "acme", t0.AddDate(-3, 0, 10))
	ask := func(cert []byte, user, key string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodGet, "/api/v1/verify/nginx", nil)
		if cert != nil {
			// $ssl_client_escaped_cert is ngx_escape_uri(…, NGX_ESCAPE_URI_COMPONENT).
			req.Header.Set("X-SSL-Client-Cert", ngxEscape(cert))
		}
		if user != "" {
			req.Header.Set("X-ZBCA-Username", user)
		}
		req.Header.Set("Authorization", "Bearer "+key)
		rec := httptest.NewRecorder()
		e.ServeHTTP(rec, req)
		return rec
	}
	for _, tc := range []struct {
		name       string
		cert       []byte
		user       string
		status     int
		result     string
		enterprise string
		body       string
	}{
		{"valid", pemOf(valid.Certificate), "acme", 200, "valid", "acme", "证书有效"},
		{"chain", valid.PEMChain(), "", 200, "valid", "acme", "证书有效"},
		{"expiring", pemOf(expiring.Certificate), "acme", 200, "expiring", "acme", "您的证书即将到期"},
		{"mismatch", pemOf(valid.Certificate), "beta", 403, "mismatch", "acme", "该证书与用户名不匹配"},
		{"no certificate", nil, "acme", 403, "malformed", "", "无法识别该证书"},
		{"bad escape", []byte("%zz"), "", 403, "malformed", "", "无法识别该证书"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := ask(tc.cert, tc.user, f.key)
			h := rec.Header()
			if rec.Code != tc.status || h.Get("X-ZBCA-Result") != tc.result || h.Get("X-ZBCA-Enterprise") != tc.enterprise || !strings.Contains(rec.Body.String(), tc.body) {
				t.Fatalf("%d %v %s", rec.Code, h, rec.Body)
			}
			if tc.enterprise != "" {
				if h.Get("X-ZBCA-Days-Left") == "" || h.Get("X-ZBCA-Enterprise-Name") != url.PathEscape("某某科技有限公司") || h.Get("X-ZBCA-Serial") == "" {
					t.Errorf("headers %v", h)
				}
			}
		})
	}
	if rec := ask(pemOf(valid.Certificate), "", "zbca_wrong"); rec.Code != 401 {
		t.Errorf("wrong key: %d", rec.Code)
	}
}

// ngxEscape is nginx's ngx_escape_uri(NGX_ESCAPE_URI_COMPONENT), which
// makes $ssl_client_escaped_cert: all but ALPHA DIGIT - . _ ~ as %XX.
func ngxEscape(b []byte) string {
	var out strings.Builder
	for _, c := range b {
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '-', c == '.', c == '_', c == '~':
			out.WriteByte(c)
		default:
			fmt.Fprintf(&out, "%%%02X", c)
		}
	}
	return out.String()
}

func mustJSON(cert []byte, username string) []byte {
	b, _ := io.ReadAll(jsonBody(cert, username))
	return b
}
