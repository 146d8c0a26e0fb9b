package zbcert

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/zbca/zbca/zbcert/acmetest"
)

const (
	testUser     = "acme"
	testPassword = "correct horse battery staple"
)

// newIssuerT is an Issuer on a fresh config directory against srv.
func newIssuerT(t *testing.T, srv *acmetest.Server) *Issuer {
	t.Helper()
	cl := NewClient(srv.URL, srv.Certificate())
	return &Issuer{Home: Home{Dir: t.TempDir()}, Client: cl, StepTimeout: 5 * time.Second, TotalTimeout: 20 * time.Second}
}

func enrollT(t *testing.T, is *Issuer) {
	t.Helper()
	key := newKeyT(t)
	chain, err := is.Enroll(context.Background(), testUser, testPassword, key)
	if err != nil {
		t.Fatalf("enroll: %v", err)
	}
	if _, err := is.Home.SaveCert(key, chain); err != nil {
		t.Fatal(err)
	}
}

// snapshot is every file of a config directory with its content.
func snapshot(t *testing.T, dir string) map[string]string {
	t.Helper()
	m := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		m[p] = string(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestEnrollProvesPasswordEveryTime: with an account remembered from an
// earlier enrollment, a wrong password gets nothing, and writes nothing;
// a right one logs in again and registers a new account, which replaces
// the remembered one in a file as private as before.
func TestEnrollProvesPasswordEveryTime(t *testing.T) {
	srv := acmetest.New(testUser, testPassword)
	defer srv.Close()
	is := newIssuerT(t, srv)
	enrollT(t, is)
	acct := filepath.Join(is.Home.Dir, "accounts", testUser+".pem")
	first, err := os.ReadFile(acct)
	if err != nil || srv.Logins() != 1 || srv.Issued() != 1 {
		t.Fatalf("after enroll: %v, %d logins, %d issued", err, srv.Logins(), srv.Issued())
	}

	before := snapshot(t, is.Home.Dir)
	for _, pw := range []string{"wrong", testPassword + " ", strings.ToUpper(testPassword)} {
		_, err := is.Enroll(context.Background(), testUser, pw, newKeyT(t))
		var api *APIError
		if !errors.As(err, &api) || api.Status != http.StatusUnauthorized {
			t.Fatalf("wrong password %q: %v", pw, err)
		}
		if msg := Explain(En, err); !strings.Contains(msg, "wrong username or password") {
			t.Errorf("wrong password explained as %q", msg)
		}
	}
	if _, err := is.Enroll(context.Background(), testUser, "", newKeyT(t)); !errors.Is(err, ErrNeedPassword) {
		t.Errorf("empty password: %v", err)
	}
	if srv.Issued() != 1 || srv.Accounts() != 1 || srv.Refused() != 3 {
		t.Fatalf("wrong passwords: %d issued, %d accounts, %d refused logins", srv.Issued(), srv.Accounts(), srv.Refused())
	}
	if after := snapshot(t, is.Home.Dir); len(after) != len(before) {
		t.Errorf("a refused enroll changed the config directory: %d files, then %d", len(before), len(after))
	} else {
		for p, b := range before {
			if after[p] != b {
				t.Errorf("a refused enroll changed %s", p)
			}
		}
	}

	enrollT(t, is)
	second, _ := os.ReadFile(acct)
	if srv.Logins() != 2 || srv.Accounts() != 2 || srv.Issued() != 2 || bytes.Equal(first, second) {
		t.Errorf("second enroll: %d logins, %d accounts, %d issued, account key replaced: %v", srv.Logins(), srv.Accounts(), srv.Issued(), !bytes.Equal(first, second))
	}
	if !strings.Contains(string(second), "ENCRYPTED PRIVATE KEY") {
		t.Error("the remembered account key is not encrypted")
	}
	for p, want := range map[string]os.FileMode{acct: 0o600, filepath.Dir(acct): 0o700} {
		if fi, err := os.Stat(p); err != nil || fi.Mode().Perm() != want {
			t.Errorf("%s: %v %v, want %v", p, fi.Mode().Perm(), err, want)
		}
	}
}

// TestRenewWithoutPassword: renew uses the remembered account, no login;
// once the server refuses that account (the password changed), renew says
// to enroll again with the password, in both languages.
func TestRenewWithoutPassword(t *testing.T) {
	srv := acmetest.New(testUser, testPassword)
	defer srv.Close()
	is := newIssuerT(t, srv)
	if _, err := is.Renew(context.Background(), testUser, newKeyT(t)); !errors.Is(err, ErrNoAccount) {
		t.Fatalf("renew before enroll: %v", err)
	} else if msg := Explain(En, err); !strings.Contains(msg, "zbcert enroll --user acme") {
		t.Errorf("no account explained as %q", msg)
	}
	enrollT(t, is)
	if _, err := is.Renew(context.Background(), testUser, newKeyT(t)); err != nil || srv.Logins() != 1 || srv.Issued() != 2 {
		t.Fatalf("renew: %v, %d logins, %d issued", err, srv.Logins(), srv.Issued())
	}

	srv.EndAccess()
	start := time.Now()
	_, err := is.Renew(context.Background(), testUser, newKeyT(t))
	if !errors.Is(err, ErrAccountRefused) || time.Since(start) > 3*time.Second || srv.Issued() != 2 {
		t.Fatalf("renew on an ended account: %v after %v, %d issued", err, time.Since(start), srv.Issued())
	}
	en, zh := Explain(En, err), Explain(Zh, err)
	if !strings.Contains(en, "zbcert enroll --user acme") || !strings.Contains(en, "password changed since this account was made") {
		t.Errorf("en: %s", en)
	}
	if !strings.Contains(zh, "zbcert enroll --user acme") || !strings.Contains(zh, "口令") {
		t.Errorf("zh: %s", zh)
	}

	// enroll with the password makes renew work again.
	enrollT(t, is)
	if _, err := is.Renew(context.Background(), testUser, newKeyT(t)); err != nil {
		t.Fatalf("renew after enroll again: %v", err)
	}
}

// TestProblemsExplained: each ACME problem document, on whichever step,
// ends the command at once with its own message in zh and en; a 429 is not
// retried even with Retry-After, a 5xx only twice.
func TestProblemsExplained(t *testing.T) {
	const ns = "urn:ietf:params:acme:error:"
	for _, tc := range []struct {
		name, path string
		p          acmetest.Problem
		hits       int
		en, zh     string
	}{
		{"daily limit", "/acme/finalize/2", acmetest.Problem{Status: 429, Type: ns + "rateLimited", RetryAfter: "10",
			Detail: "the enterprise has had 10 certificates in the last 24 hours, the daily limit"}, 1, "daily certificate limit", "每日证书数量上限"},
		{"rate limit on new-order", "/acme/new-order", acmetest.Problem{Status: 429, Type: ns + "rateLimited", Detail: "slow down"}, 1, "slow down", "申请过于频繁"},
		{"bad CSR", "/acme/finalize/2", acmetest.Problem{Status: 400, Type: ns + "badCSR", Detail: "key too small"}, 1, "--rsa", "证书请求"},
		{"unauthorized", "/acme/new-order", acmetest.Problem{Status: 403, Type: ns + "unauthorized", Detail: "no"}, 1, "zbcert enroll --user acme", "zbcert enroll"},
		{"server internal", "/acme/finalize/2", acmetest.Problem{Status: 500, Type: ns + "serverInternal", Detail: "boom"}, 3, "the server failed", "服务器内部错误"},
		{"rejected identifier", "/acme/new-order", acmetest.Problem{Status: 400, Type: ns + "rejectedIdentifier", Detail: "no such"}, 1, "Check --user", "--user"},
		{"plain 503", "/acme/new-order", acmetest.Problem{Status: 503, Detail: "maintenance"}, 3, "maintenance", "稍后再试"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := acmetest.New(testUser, testPassword)
			defer srv.Close()
			is := newIssuerT(t, srv)
			enrollT(t, is)
			srv.Refuse = func(path string) *acmetest.Problem {
				if path == tc.path {
					return &tc.p
				}
				return nil
			}
			start := time.Now()
			_, err := is.Renew(context.Background(), testUser, newKeyT(t))
			took := time.Since(start)
			// enroll made one new-order before Refuse was set.
			if err == nil || took > 5*time.Second || srv.Hits(tc.path) != tc.hits+boolInt(tc.path == "/acme/new-order") {
				t.Fatalf("%v after %v, %d requests to %s", err, took, srv.Hits(tc.path), tc.path)
			}
			if en := Explain(En, err); !strings.Contains(en, tc.en) || !strings.Contains(en, tc.p.Detail) {
				t.Errorf("en: %s", en)
			}
			if zh := Explain(Zh, err); !strings.Contains(zh, tc.zh) {
				t.Errorf("zh: %s", zh)
			}
			if srv.Issued() != 1 {
				t.Errorf("%d issued", srv.Issued())
			}
		})
	}
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// TestLoginErrorsExplained: the password API's answers other than a wrong
// password.
func TestLoginErrorsExplained(t *testing.T) {
	for _, tc := range []struct {
		p      acmetest.Problem
		en, zh string
	}{
		{acmetest.Problem{Status: 429, Detail: "尝试次数过多 / too many attempts from your address"}, "too many requests", "申请过于频繁"},
		{acmetest.Problem{Status: 500, Detail: "internal error"}, "the server failed", "服务器内部错误"},
		{acmetest.Problem{Status: 403, Detail: "登录失败次数过多 / too many failed logins"}, "wrong username or password", "用户名或口令错误"},
	} {
		srv := acmetest.New(testUser, testPassword)
		srv.Refuse = func(path string) *acmetest.Problem {
			if path == "/api/v1/eab" {
				return &tc.p
			}
			return nil
		}
		is := newIssuerT(t, srv)
		_, err := is.Enroll(context.Background(), testUser, testPassword, newKeyT(t))
		if en := Explain(En, err); !strings.Contains(en, tc.en) || !strings.Contains(en, tc.p.Detail) {
			t.Errorf("%d en: %s", tc.p.Status, en)
		}
		if zh := Explain(Zh, err); !strings.Contains(zh, tc.zh) {
			t.Errorf("%d zh: %s", tc.p.Status, zh)
		}
		if _, err := os.Stat(filepath.Join(is.Home.Dir, "accounts")); err == nil {
			t.Errorf("%d: an account was remembered", tc.p.Status)
		}
		srv.Close()
	}
}

// TestStepTimeout: a server that accepts the connection and never answers
// ends the command after the step's bound, with a message saying so.
func TestStepTimeout(t *testing.T) {
	hang := hangingServer(t)
	is := &Issuer{Home: Home{Dir: t.TempDir()}, Client: NewClient(hang.URL, hang.Certificate()), StepTimeout: 500 * time.Millisecond}
	start := time.Now()
	_, err := is.Enroll(context.Background(), testUser, testPassword, newKeyT(t))
	if err == nil || time.Since(start) > 3*time.Second {
		t.Fatalf("%v after %v", err, time.Since(start))
	}
	if en := Explain(En, err); !strings.Contains(en, "did not answer within 500ms (password login)") {
		t.Errorf("en: %s", en)
	}
	if zh := Explain(Zh, err); !strings.Contains(zh, "没有应答") {
		t.Errorf("zh: %s", zh)
	}
}

// hangingServer accepts requests and never answers them.
func hangingServer(t *testing.T) *httptest.Server {
	done := make(chan struct{})
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body) // then a closed connection ends r.Context()
		select {
		case <-r.Context().Done():
		case <-done:
		}
	}))
	t.Cleanup(func() { close(done); srv.Close() })
	return srv
}

func TestRetryBackoff(t *testing.T) {
	for _, tc := range []struct {
		status, n int
		retry     bool
	}{
		{429, 1, false}, {500, 1, true}, {503, 2, true}, {500, 3, false}, {400, 1, true}, {400, 4, false},
	} {
		got := RetryBackoff(tc.n, nil, &http.Response{StatusCode: tc.status, Header: http.Header{"Retry-After": {"10"}}})
		if (got > 0) != tc.retry || got > 2*time.Second {
			t.Errorf("%d, try %d: %v", tc.status, tc.n, got)
		}
	}
}

// TestTimeoutWordsOnly: x/crypto/acme wraps some deadlines with %v, so only
// the words say it was one (the review's trickling server); the clerk
// still reads "did not answer within".
func TestTimeoutWordsOnly(t *testing.T) {
	err := &StepError{Step: StepAccount, Timeout: 5 * time.Second, Err: errors.New("acme: invalid account response: context deadline exceeded")}
	if en := Explain(En, err); !strings.Contains(en, "did not answer within 5s") {
		t.Errorf("en: %s", en)
	}
}
