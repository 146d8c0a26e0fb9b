package main

import (
	"crypto/x509"
	"encoding/pem"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/zbca/zbca/zbcert"
	"github.com/zbca/zbca/zbcert/acmetest"
)

const (
	cliUser     = "acme"
	cliPassword = "the enterprise's password"
)

// setupHome is what `zbcert setup` leaves for the server at url with that
// root.
func setupHome(t *testing.T, dir, url string, root *x509.Certificate) {
	t.Helper()
	chain := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: root.Raw})
	if err := (zbcert.Home{Dir: dir}).SaveConfig(&zbcert.Config{Server: url, RootSHA256: zbcert.Fingerprint(root)}, root, chain); err != nil {
		t.Fatal(err)
	}
}

// runBounded runs zbcert and fails the test if it has not ended within d.
func runBounded(t *testing.T, d time.Duration, env map[string]string, stdin string, args ...string) (string, error, time.Duration) {
	t.Helper()
	type result struct {
		out string
		err error
	}
	ch := make(chan result, 1)
	start := time.Now()
	go func() {
		out, err := runCLI(t, env, stdin, args...)
		ch <- result{out, err}
	}()
	select {
	case r := <-ch:
		return r.out, r.err, time.Since(start)
	case <-time.After(d):
		t.Fatalf("zbcert %s still running after %v", strings.Join(args, " "), d)
	}
	return "", nil, 0
}

func localCerts(t *testing.T, dir string) []string {
	t.Helper()
	es, _ := os.ReadDir(filepath.Join(dir, "certs"))
	var out []string
	for _, e := range es {
		out = append(out, e.Name())
	}
	return out
}

// TestCopiedFolderWrongPassword is the attack of issue 15 point 3: the
// config directory of a computer that enrolled, copied elsewhere, with a
// wrong password on standard input. enroll and reissue must get no
// certificate, exit non-zero with the login error, and change nothing.
func TestCopiedFolderWrongPassword(t *testing.T) {
	srv := acmetest.New(cliUser, cliPassword)
	defer srv.Close()
	victim := t.TempDir()
	setupHome(t, victim, srv.URL, srv.Certificate())
	if out, err := runCLI(t, nil, cliPassword+"\n", "enroll", "--config-dir", victim, "--user", cliUser, "--password-stdin", "--lang", "en"); err != nil {
		t.Fatalf("enroll: %v\n%s", err, out)
	}
	if srv.Issued() != 1 {
		t.Fatalf("%d issued", srv.Issued())
	}

	copied := filepath.Join(t.TempDir(), "zbcert")
	if out, err := exec.Command("cp", "-a", victim, copied).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v %s", err, out)
	}
	acct := filepath.Join(copied, "accounts", cliUser+".pem")
	acctBefore, err := os.ReadFile(acct)
	if err != nil {
		t.Fatalf("no remembered account in the copy: %v", err)
	}
	certsBefore := localCerts(t, copied)
	for _, cmd := range []string{"enroll", "reissue"} {
		for _, lang := range []string{"en", "zh"} {
			out, err := runCLI(t, nil, "guessed-password\n", cmd, "--config-dir", copied, "--user", cliUser, "--password-stdin", "--lang", lang)
			want := map[string]string{"en": "wrong username or password", "zh": "用户名或口令错误"}[lang]
			if err == nil || !strings.Contains(out, want) {
				t.Errorf("%s (%s) with a wrong password: %v\n%s", cmd, lang, err, out)
			}
		}
	}
	if srv.Issued() != 1 || srv.Accounts() != 1 || srv.Refused() != 4 {
		t.Errorf("after the wrong passwords: %d issued, %d accounts, %d logins refused", srv.Issued(), srv.Accounts(), srv.Refused())
	}
	if got := localCerts(t, copied); strings.Join(got, ",") != strings.Join(certsBefore, ",") {
		t.Errorf("local certificates changed: %v, then %v", certsBefore, got)
	}
	if b, _ := os.ReadFile(acct); string(b) != string(acctBefore) {
		t.Error("the remembered account changed")
	}
	// Without a terminal and without --password-stdin there is no password:
	// enroll does not fall back to the remembered account.
	if out, err := runCLI(t, nil, "", "enroll", "--config-dir", copied, "--user", cliUser, "--lang", "en"); err == nil || !strings.Contains(out, "a password is needed") {
		t.Errorf("enroll with no password: %v\n%s", err, out)
	}
	if srv.Issued() != 1 {
		t.Errorf("%d issued", srv.Issued())
	}
}

// TestRenewAtDailyLimit is issue 15 point 4: the server answers every
// finalize with 429 rateLimited and Retry-After: 10; renew must exit
// non-zero within seconds with the rate-limit message, not retry.
func TestRenewAtDailyLimit(t *testing.T) {
	srv := acmetest.New(cliUser, cliPassword)
	defer srv.Close()
	dir := t.TempDir()
	setupHome(t, dir, srv.URL, srv.Certificate())
	if out, err := runCLI(t, nil, cliPassword+"\n", "enroll", "--config-dir", dir, "--user", cliUser, "--password-stdin"); err != nil {
		t.Fatalf("enroll: %v\n%s", err, out)
	}
	const detail = "the enterprise has had 10 certificates in the last 24 hours, the daily limit: try again tomorrow or ask the operator"
	srv.Refuse = func(path string) *acmetest.Problem {
		if strings.HasPrefix(path, "/acme/finalize/") {
			return &acmetest.Problem{Status: http.StatusTooManyRequests, Type: "urn:ietf:params:acme:error:rateLimited", Detail: detail, RetryAfter: "10"}
		}
		return nil
	}
	for _, tc := range []struct{ lang, want string }{
		{"en", "daily certificate limit"},
		{"zh", "已达到每日证书数量上限"},
	} {
		out, err, took := runBounded(t, 30*time.Second, nil, "", "renew", "--config-dir", dir, "--user", cliUser, "--lang", tc.lang)
		if err == nil || took > 5*time.Second || !strings.Contains(out, tc.want) || !strings.Contains(out, detail) {
			t.Errorf("renew at the daily limit (%s): %v after %v\n%s", tc.lang, err, took, out)
		}
	}
	if n := srv.Hits("/acme/finalize/2") + srv.Hits("/acme/finalize/3"); n != 2 {
		t.Errorf("%d finalize requests for 2 renewals: the 429 was retried", n)
	}
	if len(localCerts(t, dir)) != 1 {
		t.Errorf("local certificates: %v", localCerts(t, dir))
	}
}

// TestRenewAfterPasswordChange: the server refuses the remembered account
// (as it does after `zbca enterprise passwd`); renew says to enroll with
// the password, and asks for none.
func TestRenewAfterPasswordChange(t *testing.T) {
	srv := acmetest.New(cliUser, cliPassword)
	defer srv.Close()
	dir := t.TempDir()
	setupHome(t, dir, srv.URL, srv.Certificate())
	if out, err := runCLI(t, nil, cliPassword+"\n", "enroll", "--config-dir", dir, "--user", cliUser, "--password-stdin"); err != nil {
		t.Fatalf("enroll: %v\n%s", err, out)
	}
	if out, err := runCLI(t, nil, "", "renew", "--config-dir", dir, "--lang", "en"); err != nil || srv.Issued() != 2 || srv.Logins() != 1 {
		t.Fatalf("renew: %v, %d issued, %d logins\n%s", err, srv.Issued(), srv.Logins(), out)
	}
	srv.EndAccess()
	out, err, took := runBounded(t, 30*time.Second, nil, cliPassword+"\n", "renew", "--config-dir", dir, "--lang", "en")
	if err == nil || took > 5*time.Second || !strings.Contains(out, "zbcert enroll --user acme") || srv.Issued() != 2 || srv.Logins() != 1 {
		t.Errorf("renew on a refused account: %v after %v, %d issued, %d logins\n%s", err, took, srv.Issued(), srv.Logins(), out)
	}
}

// TestServerNeverAnswers: a server that accepts connections and never
// answers (at the TCP level, and at the HTTP level) ends enroll and renew
// within about --timeout, with the timeout message.
func TestServerNeverAnswers(t *testing.T) {
	srv := acmetest.New(cliUser, cliPassword)
	defer srv.Close()
	dir := t.TempDir()
	setupHome(t, dir, srv.URL, srv.Certificate())
	if out, err := runCLI(t, nil, cliPassword+"\n", "enroll", "--config-dir", dir, "--user", cliUser, "--password-stdin"); err != nil {
		t.Fatalf("enroll: %v\n%s", err, out)
	}

	// TCP: connections accepted, never a byte back (no TLS handshake).
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { _, _ = io.Copy(io.Discard, c); c.Close() }()
		}
	}()
	// HTTP: requests read, never answered. httptest's certificate is the
	// same for every server, so the root set up above still matches.
	done := make(chan struct{})
	hang := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		select {
		case <-r.Context().Done():
		case <-done:
		}
	}))
	defer hang.Close()
	defer close(done)

	for _, tc := range []struct {
		name, url string
		args      []string
		stdin     string
	}{
		{"enroll, TCP", "https://" + ln.Addr().String(), []string{"enroll", "--user", cliUser, "--password-stdin"}, cliPassword + "\n"},
		{"enroll, HTTP", hang.URL, []string{"enroll", "--user", cliUser, "--password-stdin"}, cliPassword + "\n"},
		{"renew, HTTP", hang.URL, []string{"renew", "--user", cliUser}, ""},
		{"revoke, HTTP", hang.URL, []string{"revoke", "--user", cliUser, "--all", "--password-stdin"}, cliPassword + "\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			setupHome(t, dir, tc.url, srv.Certificate())
			args := append(tc.args, "--config-dir", dir, "--timeout", "1s", "--lang", "en")
			out, err, took := runBounded(t, 30*time.Second, nil, tc.stdin, args...)
			if err == nil || took > 6*time.Second {
				t.Fatalf("%v after %v\n%s", err, took, out)
			}
			if !strings.Contains(out, "did not answer within 1s") {
				t.Errorf("message: %s", out)
			}
		})
	}
	if srv.Issued() != 1 {
		t.Errorf("%d issued", srv.Issued())
	}
}
