//go:build integration

package integration

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/acme"
	"golang.org/x/crypto/ocsp"
)

type eabKey struct {
	KID     string `json:"kid"`
	HMACKey string `json:"hmac_key"`
}

func (in *instance) eab(t *testing.T, username, password string) (*acme.ExternalAccountBinding, int, string) {
	t.Helper()
	body, _ := json.Marshal(map[string]string{"username": username, "password": password})
	resp, err := in.httpsClient(t).Post(in.httpsURL()+"/api/v1/eab", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusCreated {
		return nil, resp.StatusCode, string(b)
	}
	var k eabKey
	if err := json.Unmarshal(b, &k); err != nil {
		t.Fatal(err)
	}
	key, err := base64.RawURLEncoding.DecodeString(k.HMACKey)
	if err != nil {
		t.Fatal(err)
	}
	return &acme.ExternalAccountBinding{KID: k.KID, Key: key}, resp.StatusCode, string(b)
}

func (in *instance) httpsURL() string {
	return "https://" + strings.Replace(in.https, "127.0.0.1", "localhost", 1)
}

func (in *instance) acmeClient(t *testing.T) (*acme.Client, *ecdsa.PrivateKey) {
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	return &acme.Client{Key: k, DirectoryURL: in.httpsURL() + "/acme/directory", HTTPClient: in.httpsClient(t), UserAgent: "zbca-integration"}, k
}

func acmeCSR(t *testing.T, key crypto.Signer) []byte {
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

// ocspStatusOf asks zbca's responder over HTTP.
func (in *instance) ocspStatusOf(t *testing.T, leaf, issuer *x509.Certificate) *ocsp.Response {
	t.Helper()
	req, _ := ocsp.CreateRequest(leaf, issuer, nil)
	resp, err := http.Post("http://"+in.http+"/ocsp", "application/ocsp-request", bytes.NewReader(req))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	r, err := ocsp.ParseResponseForCert(b, leaf, issuer)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestACME: golang.org/x/crypto/acme, unchanged, does the whole flow
// against zbca serve over HTTPS.
func TestACME(t *testing.T) {
	openssl := requireTool(t, "openssl")
	in := newInstance(t, "")
	in.start()
	in.mustRun(testPassword+"\n", "enterprise", "add", "acme", "--name", "ACME Ltd", "--password-stdin")
	in.mustRun(testPassword+"\n", "enterprise", "add", "beta", "--name", "Beta Ltd", "--password-stdin")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	eab, code, body := in.eab(t, "acme", testPassword)
	if eab == nil {
		t.Fatalf("EAB: %d %s", code, body)
	}
	cl, _ := in.acmeClient(t)
	dir, err := cl.Discover(ctx)
	if err != nil || !dir.ExternalAccountRequired {
		t.Fatalf("directory: %v %+v", err, dir)
	}
	if _, err := cl.Register(ctx, &acme.Account{ExternalAccountBinding: eab}, acme.AcceptTOS); err != nil {
		t.Fatalf("register: %v", err)
	}
	issue := func(cl *acme.Client, value string) (*x509.Certificate, *ecdsa.PrivateKey, [][]byte) {
		t.Helper()
		o, err := cl.AuthorizeOrder(ctx, []acme.AuthzID{{Type: "enterprise", Value: value}})
		if err != nil {
			t.Fatalf("order: %v", err)
		}
		if o.Status != acme.StatusReady {
			t.Fatalf("order status %q, want ready", o.Status)
		}
		for _, u := range o.AuthzURLs {
			z, err := cl.GetAuthorization(ctx, u)
			if err != nil || z.Status != acme.StatusValid {
				t.Fatalf("authorization %s: %v %+v", u, err, z)
			}
		}
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		ders, _, err := cl.CreateOrderCert(ctx, o.FinalizeURL, acmeCSR(t, key), true)
		if err != nil {
			t.Fatalf("finalize: %v", err)
		}
		leaf, err := x509.ParseCertificate(ders[0])
		if err != nil {
			t.Fatal(err)
		}
		return leaf, key, ders
	}
	first, firstKey, ders := issue(cl, "acme")
	if first.Subject.CommonName != "acme" || first.Subject.Organization[0] != "ACME Ltd" {
		t.Errorf("subject %v", first.Subject)
	}
	// openssl verifies the chain the client received.
	work := t.TempDir()
	var chain []byte
	for _, d := range ders {
		chain = append(chain, pemBlock(d)...)
	}
	os.WriteFile(filepath.Join(work, "chain.pem"), chain, 0o644)
	_, root := get(t, "http://"+in.http+"/pki/root.pem")
	os.WriteFile(filepath.Join(work, "root.pem"), root, 0o644)
	if o, err := tool(t, openssl, "verify", "-purpose", "sslclient", "-CAfile", filepath.Join(work, "root.pem"), "-untrusted", filepath.Join(work, "chain.pem"), filepath.Join(work, "chain.pem")); err != nil || !strings.Contains(o, "OK") {
		t.Fatalf("openssl verify: %v %s", err, o)
	}
	issuer, _ := x509.ParseCertificate(ders[1])

	// A second order supersedes the first: OCSP says revoked, superseded.
	second, _, _ := issue(cl, "acme")
	r := in.ocspStatusOf(t, first, issuer)
	if r.Status != ocsp.Revoked || r.RevocationReason != ocsp.Superseded {
		t.Errorf("first certificate after reissue: status %d reason %d", r.Status, r.RevocationReason)
	}
	if r := in.ocspStatusOf(t, second, issuer); r.Status != ocsp.Good {
		t.Errorf("second certificate: %d", r.Status)
	}

	// revokeCert with the account key...
	if err := cl.RevokeCert(ctx, nil, second.Raw, acme.CRLReasonKeyCompromise); err != nil {
		t.Fatalf("revoke with account key: %v", err)
	}
	if r := in.ocspStatusOf(t, second, issuer); r.Status != ocsp.Revoked || r.RevocationReason != ocsp.KeyCompromise {
		t.Errorf("after revokeCert: %+v", r)
	}
	// ... and with the certificate's own key, from a client without an account.
	third, _, _ := issue(cl, "acme")
	fourth, fourthKey, _ := issue(cl, "acme") // supersedes third
	anon := &acme.Client{Key: fourthKey, DirectoryURL: cl.DirectoryURL, HTTPClient: in.httpsClient(t)}
	if err := anon.RevokeCert(ctx, fourthKey, fourth.Raw, acme.CRLReasonCessationOfOperation); err != nil {
		t.Fatalf("revoke with certificate key: %v", err)
	}
	if r := in.ocspStatusOf(t, fourth, issuer); r.Status != ocsp.Revoked {
		t.Errorf("after revokeCert by certificate key: %+v", r)
	}
	// Already revoked: the server answers alreadyRevoked, which x/crypto's
	// client reports as success; the first revocation stands.
	var ae *acme.Error
	if err := cl.RevokeCert(ctx, nil, fourth.Raw, acme.CRLReasonUnspecified); err != nil {
		t.Errorf("second revocation: %v", err)
	}
	if r := in.ocspStatusOf(t, fourth, issuer); r.RevocationReason != ocsp.CessationOfOperation {
		t.Errorf("a second revocation changed the reason to %d", r.RevocationReason)
	}
	// A reason a subscriber may not use.
	fifth, _, _ := issue(cl, "acme")
	if err := cl.RevokeCert(ctx, nil, fifth.Raw, acme.CRLReasonCACompromise); !errors.As(err, &ae) || ae.ProblemType != "urn:ietf:params:acme:error:badRevocationReason" {
		t.Errorf("cACompromise by a subscriber: %v", err)
	}

	// An order for another enterprise, and another identifier type.
	if _, err := cl.AuthorizeOrder(ctx, []acme.AuthzID{{Type: "enterprise", Value: "beta"}}); !errors.As(err, &ae) || ae.ProblemType != "urn:ietf:params:acme:error:unauthorized" {
		t.Errorf("order for beta with acme's account: %v", err)
	}
	if _, err := cl.AuthorizeOrder(ctx, []acme.AuthzID{{Type: "dns", Value: "acme.example"}}); !errors.As(err, &ae) || ae.ProblemType != "urn:ietf:params:acme:error:rejectedIdentifier" {
		t.Errorf("dns identifier: %v", err)
	}

	// The EAB key is single use.
	cl2, _ := in.acmeClient(t)
	if _, err := cl2.Register(ctx, &acme.Account{ExternalAccountBinding: eab}, acme.AcceptTOS); err == nil {
		t.Error("an EAB key was used twice")
	}
	// No EAB at all.
	if _, err := cl2.Register(ctx, &acme.Account{}, acme.AcceptTOS); !errors.As(err, &ae) || ae.ProblemType != "urn:ietf:params:acme:error:externalAccountRequired" {
		t.Errorf("register without EAB: %v", err)
	}
	// Wrong password: the generic login error, no key.
	if k, code, body := in.eab(t, "acme", "wrong-password-123"); k != nil || code != http.StatusUnauthorized || !strings.Contains(body, "wrong username or password") {
		t.Errorf("EAB with a wrong password: %d %s", code, body)
	}
	if k, code, body := in.eab(t, "nobody", "wrong-password-123"); k != nil || code != http.StatusUnauthorized || !strings.Contains(body, "wrong username or password") {
		t.Errorf("EAB for an unknown user: %d %s", code, body)
	}

	// A CSR with a refused key, and a key certified for another enterprise.
	o, err := cl.AuthorizeOrder(ctx, []acme.AuthzID{{Type: "enterprise", Value: "acme"}})
	if err != nil {
		t.Fatal(err)
	}
	weak, _ := rsa.GenerateKey(rand.Reader, 1024)
	if _, _, err := cl.CreateOrderCert(ctx, o.FinalizeURL, acmeCSR(t, weak), true); !errors.As(err, &ae) || ae.ProblemType != "urn:ietf:params:acme:error:badCSR" {
		t.Errorf("RSA-1024 CSR: %v", err)
	}
	eabB, _, _ := in.eab(t, "beta", testPassword)
	clB, _ := in.acmeClient(t)
	if _, err := clB.Register(ctx, &acme.Account{ExternalAccountBinding: eabB}, acme.AcceptTOS); err != nil {
		t.Fatal(err)
	}
	oB, err := clB.AuthorizeOrder(ctx, []acme.AuthzID{{Type: "enterprise", Value: "beta"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := clB.CreateOrderCert(ctx, oB.FinalizeURL, acmeCSR(t, firstKey), true); !errors.As(err, &ae) || ae.ProblemType != "urn:ietf:params:acme:error:badCSR" {
		t.Errorf("a key certified for acme, asked by beta: %v", err)
	}

	// A deactivated account cannot order.
	if err := cl.DeactivateReg(ctx); err != nil {
		t.Fatalf("deactivate: %v", err)
	}
	if _, err := cl.AuthorizeOrder(ctx, []acme.AuthzID{{Type: "enterprise", Value: "acme"}}); !errors.As(err, &ae) || ae.ProblemType != "urn:ietf:params:acme:error:unauthorized" {
		t.Errorf("order by a deactivated account: %v", err)
	}
	in.mustRun("", "audit", "verify")
	_ = third
}

func pemBlock(der []byte) []byte {
	return []byte("-----BEGIN CERTIFICATE-----\n" + wrap(base64.StdEncoding.EncodeToString(der)) + "-----END CERTIFICATE-----\n")
}

func wrap(s string) string {
	var b strings.Builder
	for len(s) > 64 {
		b.WriteString(s[:64] + "\n")
		s = s[64:]
	}
	b.WriteString(s + "\n")
	return b.String()
}

func (in *instance) api(t *testing.T, path string, body any) (int, map[string]any) {
	t.Helper()
	b, _ := json.Marshal(body)
	resp, err := in.httpsClient(t).Post(in.httpsURL()+path, "application/json", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

// TestOwnerActions: the temporary-computer case: list and revoke with the
// username and password alone; lockout after repeated wrong passwords.
func TestOwnerActions(t *testing.T) {
	openssl := requireTool(t, "openssl")
	in := newInstance(t, "enroll:\n  policy:\n    max_active: 10\n")
	in.start()
	in.mustRun(testPassword+"\n", "enterprise", "add", "acme", "--name", "ACME Ltd", "--password-stdin")
	in.mustRun(testPassword+"\n", "enterprise", "add", "beta", "--name", "Beta Ltd", "--password-stdin")
	work := t.TempDir()
	var serials []string
	for i, user := range []string{"acme", "acme", "beta"} {
		key, csr, pemFile := filepath.Join(work, fmt.Sprint(i, ".key")), filepath.Join(work, fmt.Sprint(i, ".csr")), filepath.Join(work, fmt.Sprint(i, ".pem"))
		if o, err := tool(t, openssl, "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", key, "-subj", "/CN=x", "-out", csr); err != nil {
			t.Fatalf("%v %s", err, o)
		}
		in.mustRun("", "cert", "issue", "--enterprise", user, "--csr", csr, "--out", pemFile)
		o, _ := tool(t, openssl, "x509", "-in", pemFile, "-noout", "-serial")
		serials = append(serials, strings.TrimLeft(strings.ToLower(strings.TrimSpace(strings.TrimPrefix(o, "serial="))), "0"))
	}
	code, out := in.api(t, "/api/v1/certificates", map[string]string{"username": "acme", "password": testPassword})
	if code != 200 || len(out["certificates"].([]any)) != 2 {
		t.Fatalf("list: %d %v", code, out)
	}
	// Another enterprise's serial is "not found", and nothing changes.
	if code, _ := in.api(t, "/api/v1/revoke", map[string]string{"username": "acme", "password": testPassword, "serial": serials[2], "reason": "keyCompromise"}); code != 404 {
		t.Errorf("revoking beta's certificate as acme: %d", code)
	}
	if code, _ := in.api(t, "/api/v1/revoke", map[string]string{"username": "acme", "password": testPassword, "serial": serials[0], "reason": "cACompromise"}); code != 400 {
		t.Errorf("a reason an enterprise may not use: %d", code)
	}
	code, out = in.api(t, "/api/v1/revoke", map[string]string{"username": "acme", "password": testPassword, "serial": serials[0], "reason": "keyCompromise"})
	if code != 200 || len(out["revoked"].([]any)) != 1 {
		t.Fatalf("revoke one: %d %v", code, out)
	}
	code, out = in.api(t, "/api/v1/revoke", map[string]string{"username": "acme", "password": testPassword, "serial": "all"})
	if code != 200 || len(out["revoked"].([]any)) != 1 || out["revoked"].([]any)[0] != serials[1] {
		t.Fatalf("revoke all: %d %v", code, out)
	}
	_, out = in.api(t, "/api/v1/certificates", map[string]string{"username": "acme", "password": testPassword})
	for _, c := range out["certificates"].([]any) {
		if c.(map[string]any)["status"] != "revoked" {
			t.Errorf("after revoke all: %v", c)
		}
	}
	var show struct{ Status string }
	json.Unmarshal([]byte(in.mustRun("", "cert", "show", serials[2], "--json")), &show)
	if show.Status != "active" {
		t.Error("beta's certificate was touched")
	}
	// Five wrong passwords lock the account: even the right one is refused
	// for a while, with a text that does not say whether it exists.
	for range 5 {
		if code, out := in.api(t, "/api/v1/certificates", map[string]string{"username": "beta", "password": "not-the-password"}); code != 401 || !strings.Contains(fmt.Sprint(out), "wrong username or password") {
			t.Fatalf("wrong password: %d %v", code, out)
		}
	}
	code, out = in.api(t, "/api/v1/certificates", map[string]string{"username": "beta", "password": testPassword})
	if code != 401 || !strings.Contains(fmt.Sprint(out), "try again later") {
		t.Errorf("locked account with the right password: %d %v", code, out)
	}
	// An unknown username locks the same way.
	for range 5 {
		in.api(t, "/api/v1/certificates", map[string]string{"username": "ghost", "password": "not-the-password"})
	}
	if _, out := in.api(t, "/api/v1/certificates", map[string]string{"username": "ghost", "password": "x-password-1"}); !strings.Contains(fmt.Sprint(out), "try again later") {
		t.Errorf("unknown username not locked alike: %v", out)
	}
	checkOwnerMetrics(t, in)
	// No audit entry holds a password.
	audit := in.mustRun("", "audit", "list", "--limit", "1000")
	if strings.Contains(audit, testPassword) || strings.Contains(audit, "not-the-password") {
		t.Error("a password is in the audit log")
	}
	in.mustRun("", "audit", "verify")
}
