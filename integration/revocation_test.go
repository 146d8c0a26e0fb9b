//go:build integration

package integration

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestRevocationWithOpenSSL: openssl as the OCSP and CRL client against
// zbca serve: good, revoked and never-issued answers verified against our
// chain, with and without nonce, SHA-1 and SHA-256 CertIDs; curl's GET gets
// the same status; openssl crl -verify and verify -crl_check agree with
// the store.
func TestRevocationWithOpenSSL(t *testing.T) {
	openssl := requireTool(t, "openssl")
	curl := requireTool(t, "curl")
	in := newInstance(t, "crl:\n  delay: 2s\nenroll:\n  policy:\n    max_active: 100\n    max_per_day: 1000000\n")
	in.start()
	in.mustRun(testPassword+"\n", "enterprise", "add", "acme", "--name", "ACME", "--password-stdin")
	work := t.TempDir()
	p := func(n string) string { return filepath.Join(work, n) }
	issue := func(name string) string {
		if o, err := tool(t, openssl, "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
			"-keyout", p(name+".key"), "-subj", "/CN=x", "-out", p(name+".csr")); err != nil {
			t.Fatalf("%v %s", err, o)
		}
		in.mustRun("", "cert", "issue", "--enterprise", "acme", "--csr", p(name+".csr"), "--out", p(name+".pem"))
		o, _ := tool(t, openssl, "x509", "-in", p(name+".pem"), "-noout", "-serial")
		return strings.TrimLeft(strings.ToLower(strings.TrimSpace(strings.TrimPrefix(o, "serial="))), "0")
	}
	goodSerial := issue("good")
	badSerial := issue("bad")
	_, root := get(t, "http://"+in.http+"/pki/root.pem")
	_, iss := get(t, "http://"+in.http+"/pki/issuing.pem")
	os.WriteFile(p("root.pem"), root, 0o644)
	os.WriteFile(p("issuing.pem"), iss, 0o644)

	out := in.mustRun("", "cert", "revoke", badSerial, "--reason", "keyCompromise")
	if !strings.Contains(out, "answers revoked now") {
		t.Fatalf("revoke did not go through the server: %s", out)
	}
	url := "http://" + in.http + "/ocsp"
	ocspStatus := func(cert string, extra ...string) string {
		t.Helper()
		args := append([]string{"ocsp"}, extra...)
		args = append(args, "-issuer", p("issuing.pem"), "-CAfile", p("root.pem"), "-url", url)
		if strings.HasPrefix(cert, "0x") {
			args = append(args, "-serial", cert)
		} else {
			args = append(args, "-cert", p(cert+".pem"))
		}
		o, err := tool(t, openssl, args...)
		if err != nil || !strings.Contains(o, "Response verify OK") {
			t.Fatalf("openssl %v: %v\n%s", args, err, o)
		}
		return o
	}
	for _, variant := range [][]string{{}, {"-no_nonce"}, {"-sha256"}, {"-sha256", "-no_nonce"}} {
		if o := ocspStatus("good", variant...); !strings.Contains(o, ": good") {
			t.Errorf("good certificate, %v:\n%s", variant, o)
		}
		if o := ocspStatus("bad", variant...); !strings.Contains(o, ": revoked") || !strings.Contains(o, "Reason: keyCompromise") {
			t.Errorf("revoked certificate, %v:\n%s", variant, o)
		}
		if o := ocspStatus("0x123456789abcdef", variant...); !strings.Contains(o, ": revoked") || !strings.Contains(o, "certificateHold") {
			t.Errorf("never-issued serial, %v:\n%s", variant, o)
		}
	}
	// curl's GET gives the same answer as openssl's POST.
	for name, want := range map[string]string{"good": ": good", "bad": ": revoked"} {
		reqDER := p(name + ".req")
		if o, err := tool(t, openssl, "ocsp", "-issuer", p("issuing.pem"), "-cert", p(name+".pem"), "-no_nonce", "-reqout", reqDER); err != nil {
			t.Fatalf("%v %s", err, o)
		}
		b, _ := os.ReadFile(reqDER)
		resp := p(name + ".resp")
		o, err := tool(t, curl, "-sS", "-f", "-o", resp, "-D", "-", url+"/"+base64.StdEncoding.EncodeToString(b))
		if err != nil || !strings.Contains(o, "Content-Type: application/ocsp-response") || !strings.Contains(o, "Cache-Control: max-age=") {
			t.Fatalf("curl GET: %v\n%s", err, o)
		}
		o, _ = tool(t, openssl, "ocsp", "-respin", resp, "-issuer", p("issuing.pem"), "-CAfile", p("root.pem"), "-cert", p(name+".pem"))
		if !strings.Contains(o, "Response verify OK") || !strings.Contains(o, want) {
			t.Errorf("GET answer for %s:\n%s", name, o)
		}
	}

	// The CRL lists the revocation within the delay and verifies.
	var crlPEM []byte
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		_, crlPEM = get(t, "http://"+in.http+"/crl/issuing-1.pem")
		os.WriteFile(p("crl.pem"), crlPEM, 0o644)
		o, _ := tool(t, openssl, "crl", "-in", p("crl.pem"), "-noout", "-text")
		if strings.Contains(strings.ToLower(o), badSerial) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	o, err := tool(t, openssl, "crl", "-in", p("crl.pem"), "-CAfile", p("issuing.pem"), "-noout", "-text", "-verify")
	if err != nil || !strings.Contains(o, "verify OK") || !strings.Contains(strings.ToLower(o), badSerial) || strings.Contains(strings.ToLower(o), goodSerial) {
		t.Fatalf("CRL does not list exactly the revoked certificate: %v\n%s", err, o)
	}
	_, rootCRL := get(t, "http://"+in.http+"/crl/root.pem")
	os.WriteFile(p("crls.pem"), append(append([]byte{}, crlPEM...), rootCRL...), 0o644)
	os.WriteFile(p("chain.pem"), append(append([]byte{}, iss...), root...), 0o644)
	o, err = tool(t, openssl, "verify", "-crl_check_all", "-CAfile", p("chain.pem"), "-CRLfile", p("crls.pem"), p("good.pem"))
	if err != nil || !strings.Contains(o, ": OK") {
		t.Errorf("verify -crl_check_all, good certificate: %v\n%s", err, o)
	}
	o, err = tool(t, openssl, "verify", "-crl_check_all", "-CAfile", p("chain.pem"), "-CRLfile", p("crls.pem"), p("bad.pem"))
	if err == nil || !strings.Contains(o, "certificate revoked") {
		t.Errorf("verify -crl_check_all, revoked certificate: %v\n%s", err, o)
	}
	// The store agrees.
	var show struct{ Status string }
	json.Unmarshal([]byte(in.mustRun("", "cert", "show", badSerial, "--json")), &show)
	if show.Status != "revoked" {
		t.Errorf("store says %q", show.Status)
	}
	// A second revocation is a clear error, not a second revocation.
	_, errOut, err := in.run("", "cert", "revoke", badSerial, "--reason", "superseded")
	if err == nil || !strings.Contains(errOut, "already revoked") {
		t.Errorf("second revocation: %v %s", err, errOut)
	}
	// Admin API: unknown serial, bad reason, no token.
	tok := in.adminToken()
	for _, tc := range []struct {
		serial, body, auth string
		code               int
	}{
		{goodSerial, `{"reason":"certificateHold"}`, tok, 400},
		{goodSerial, `{"reason":"nonsense"}`, tok, 400},
		{"abcdef0123", `{"reason":"keyCompromise"}`, tok, 404},
		{goodSerial, `{"reason":"keyCompromise"}`, "wrong-token-wrong-token", 401},
	} {
		req, _ := http.NewRequest("POST", fmt.Sprintf("http://%s/admin/v1/certificates/%s/revoke", in.admin, tc.serial), strings.NewReader(tc.body))
		req.Header.Set("Authorization", "Bearer "+tc.auth)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.code {
			t.Errorf("revoke %s %s: %d, want %d", tc.serial, tc.body, resp.StatusCode, tc.code)
		}
	}
	if o := ocspStatus("good", "-no_nonce"); !strings.Contains(o, ": good") {
		t.Error("refused revocations changed the good certificate")
	}
	// A revocation made offline (server not asked) is picked up by the
	// running server within the feed's poll.
	third := issue("third")
	// The server runs: the message names --offline, not an absent server.
	if out := in.mustRun("", "cert", "revoke", third, "--reason", "superseded", "--offline"); !strings.Contains(out, "(--offline)") || strings.Contains(out, "no server answered") {
		t.Errorf("offline revoke said: %s", out)
	}
	deadline = time.Now().Add(10 * time.Second)
	for {
		if o := ocspStatus("third", "-no_nonce"); strings.Contains(o, ": revoked") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("offline revocation never reached the running responder")
		}
		time.Sleep(200 * time.Millisecond)
	}
	if !regexp.MustCompile(`status feed: applied revocations`).MatchString(in.stderr.String()) {
		t.Error("no log line for the applied revocation")
	}
}
