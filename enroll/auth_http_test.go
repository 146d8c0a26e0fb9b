package enroll

import (
	"context"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	stdlog "log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/zbca/zbca/internal/zerr"
	"github.com/zbca/zbca/store"
)

const servicePassword = "the-reporting-systems-password"

// loginService is a stand-in for the reporting system's login endpoint:
// the right password gets 204, "boom" 500, "slow" an answer after release
// is closed, "moved" a redirect; anything else 401.
func loginService(t *testing.T, release <-chan struct{}, hits *atomic.Int64) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/elsewhere" {
			t.Error("the redirect was followed: the password went elsewhere")
			return
		}
		hits.Add(1)
		var req struct{ Username, Password string }
		if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/json" {
			t.Errorf("%s with %q", r.Method, r.Header.Get("Content-Type"))
		}
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			t.Errorf("request body: %v", err)
		}
		switch {
		case req.Password == "boom":
			w.WriteHeader(http.StatusInternalServerError)
		case req.Password == "slow":
			select {
			case <-release:
			case <-r.Context().Done():
			}
			w.WriteHeader(http.StatusOK)
		case req.Password == "moved":
			http.Redirect(w, r, "/elsewhere", http.StatusTemporaryRedirect)
		case req.Password == servicePassword:
			w.WriteHeader(http.StatusNoContent)
		default:
			w.WriteHeader(http.StatusUnauthorized)
			w.Write([]byte(`{"error":"bad credentials"}`))
		}
	})
}

func TestHTTPAuthenticator(t *testing.T) {
	ctx := context.Background()
	s := openStore(t)
	addEnterprise(t, s, "acme", "$2a$10$unused", store.StatusActive)
	addEnterprise(t, s, "gone", "$2a$10$unused", store.StatusDisabled)
	release := make(chan struct{})
	var hits atomic.Int64
	ts := httptest.NewServer(loginService(t, release, &hits))
	defer ts.Close()
	defer close(release)
	log, logs := newLog()
	h, err := NewHTTP(HTTPOptions{URL: ts.URL + "/api/login?client=zbca", Timeout: 300 * time.Millisecond, Store: s, Logger: log})
	if err != nil {
		t.Fatal(err)
	}

	e, err := h.Authenticate(ctx, Attempt{Username: "acme", Password: servicePassword})
	if err != nil || e.Username != "acme" {
		t.Fatalf("2xx: %+v %v", e, err)
	}
	e, err = h.Authenticate(ctx, Attempt{Username: "acme", Password: "wrong"})
	wantRefusal(t, "401", e, err)
	e, err = h.Authenticate(ctx, Attempt{Username: "acme", Password: "boom"})
	wantRefusal(t, "500", e, err)
	e, err = h.Authenticate(ctx, Attempt{Username: "acme", Password: "moved"})
	wantRefusal(t, "redirect", e, err)
	// Accepted by the service, but there is no active local record to
	// issue for.
	e, err = h.Authenticate(ctx, Attempt{Username: "nobody", Password: servicePassword})
	wantRefusal(t, "unknown locally", e, err)
	e, err = h.Authenticate(ctx, Attempt{Username: "gone", Password: servicePassword})
	wantRefusal(t, "disabled locally", e, err)

	// No answer within the timeout: undecided, not a refusal.
	t0 := time.Now()
	_, err = h.Authenticate(ctx, Attempt{Username: "acme", Password: "slow"})
	if !errors.Is(err, zerr.Internal) || err.Error() != "login service unavailable" || time.Since(t0) > 3*time.Second {
		t.Errorf("timeout: %v after %v", err, time.Since(t0))
	}
	// The caller gone: undecided as well.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := h.Authenticate(cctx, Attempt{Username: "acme", Password: servicePassword}); !errors.Is(err, zerr.Internal) {
		t.Errorf("cancelled: %v", err)
	}
	// Nothing listening.
	dead, err := NewHTTP(HTTPOptions{URL: "http://127.0.0.1:1/login", Store: s, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := dead.Authenticate(ctx, Attempt{Username: "acme", Password: servicePassword}); !errors.Is(err, zerr.Internal) {
		t.Errorf("connection refused: %v", err)
	}
	if !strings.Contains(logs.String(), "login service unavailable") {
		t.Errorf("network errors not logged:\n%s", logs)
	}
	for _, pw := range []string{servicePassword, "wrong", "slow"} {
		if strings.Contains(logs.String(), pw) {
			t.Errorf("the log holds a password (%q):\n%s", pw, logs)
		}
	}
	if strings.Contains(logs.String(), "client=zbca") {
		t.Errorf("the log holds the URL's query:\n%s", logs)
	}
}

func TestHTTPAuthenticatorTLS(t *testing.T) {
	ctx := context.Background()
	s := openStore(t)
	addEnterprise(t, s, "acme", "$2a$10$unused", store.StatusActive)
	var hits atomic.Int64
	ts := httptest.NewUnstartedServer(loginService(t, nil, &hits))
	ts.Config.ErrorLog = stdlog.New(io.Discard, "", 0) // the refused handshake
	ts.StartTLS()
	defer ts.Close()
	dir := t.TempDir()
	caFile := filepath.Join(dir, "login-ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ts.Certificate().Raw}), 0o644); err != nil {
		t.Fatal(err)
	}
	h, err := NewHTTP(HTTPOptions{URL: ts.URL, CAFile: caFile, Store: s})
	if err != nil {
		t.Fatal(err)
	}
	if e, err := h.Authenticate(ctx, Attempt{Username: "acme", Password: servicePassword}); err != nil || e.Username != "acme" {
		t.Fatalf("TLS with the CA file: %v %v", e, err)
	}
	// Without the CA file the service's certificate is not trusted, and
	// the password is not sent.
	before := hits.Load()
	h, err = NewHTTP(HTTPOptions{URL: ts.URL, Store: s})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.Authenticate(ctx, Attempt{Username: "acme", Password: servicePassword}); !errors.Is(err, zerr.Internal) {
		t.Errorf("untrusted certificate: %v", err)
	}
	if hits.Load() != before {
		t.Error("a request reached a service whose certificate is not trusted")
	}
	junk := filepath.Join(dir, "junk.pem")
	os.WriteFile(junk, []byte("not a certificate"), 0o644)
	if _, err := NewHTTP(HTTPOptions{URL: ts.URL, CAFile: junk, Store: s}); err == nil {
		t.Error("a CA file without certificates was accepted")
	}
	if _, err := NewHTTP(HTTPOptions{URL: ts.URL, CAFile: filepath.Join(dir, "missing.pem"), Store: s}); err == nil {
		t.Error("a missing CA file was accepted")
	}
}

func TestNewHTTPChecksURL(t *testing.T) {
	s := openStore(t)
	for _, u := range []string{"", "http://report.example.cn/login", "ftp://x/", "https://u:pw@report.example.cn/", "/login"} {
		if _, err := NewHTTP(HTTPOptions{URL: u, Store: s}); err == nil {
			t.Errorf("URL %q accepted", u)
		}
	}
	if _, err := NewHTTP(HTTPOptions{URL: "https://report.example.cn/login"}); err == nil {
		t.Error("no store accepted")
	}
	h, err := NewHTTP(HTTPOptions{URL: "https://report.example.cn/login?key=k", Store: s})
	if err != nil || h.timeout != 5*time.Second || h.service != "https://report.example.cn/login" {
		t.Errorf("defaults: %+v %v", h, err)
	}
}
