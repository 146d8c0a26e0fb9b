package enroll

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/zbca/zbca/config"
	"github.com/zbca/zbca/internal/password"
	"github.com/zbca/zbca/internal/zerr"
	"github.com/zbca/zbca/store"
)

// cheap argon2id parameters for unit tests; config.Validate refuses them,
// NewLocal too unless LocalOptions.weakParams is set.
var cheap = password.Params{MemoryKiB: 64, Time: 1, Threads: 1}

func openStore(t *testing.T) *store.SQL {
	t.Helper()
	s, err := store.Open(context.Background(), store.Options{Path: filepath.Join(t.TempDir(), "zbca.db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func mustHash(t *testing.T, pw string, p password.Params) string {
	t.Helper()
	h, err := password.Hash(pw, p)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func addEnterprise(t *testing.T, s *store.SQL, username, hash, status string) {
	t.Helper()
	ctx := context.Background()
	if err := s.AddEnterprise(ctx, &store.Enterprise{Username: username, Name: "某某有限公司 " + username, PasswordHash: hash},
		store.AuditEvent{Actor: "test", Action: "enterprise.add", Subject: username}); err != nil {
		t.Fatal(err)
	}
	if status != store.StatusActive {
		if err := s.SetEnterpriseStatus(ctx, username, status, store.AuditEvent{Actor: "test", Action: "enterprise.disable", Subject: username}); err != nil {
			t.Fatal(err)
		}
	}
}

func newTestLocal(t *testing.T, s *store.SQL, maxHashes int, log *slog.Logger) *LocalAuthenticator {
	t.Helper()
	l, err := NewLocal(LocalOptions{Store: s, Params: cheap, MaxConcurrentHashes: maxHashes, Logger: log, weakParams: true})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *fakeClock { return &fakeClock{t: time.Date(2027, 3, 1, 8, 0, 0, 0, time.UTC)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// logBuffer collects everything logged at any level.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func newLog() (*slog.Logger, *logBuffer) {
	b := &logBuffer{}
	return slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug})), b
}

func auditEvents(t *testing.T, s *store.SQL) []store.AuditEvent {
	t.Helper()
	evs, err := s.ListAudit(context.Background(), 0, 100000)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.VerifyAudit(context.Background()); err != nil {
		t.Fatal(err)
	}
	return evs
}

func actions(evs []store.AuditEvent, prefix string) []string {
	var out []string
	for _, e := range evs {
		if strings.HasPrefix(e.Action, prefix) {
			out = append(out, e.Action)
		}
	}
	return out
}

// wantRefusal checks that err is the one generic refusal.
func wantRefusal(t *testing.T, what string, e *store.Enterprise, err error) {
	t.Helper()
	if e != nil || !errors.Is(err, zerr.Unauthorized) || err.Error() != GenericLoginError {
		t.Fatalf("%s: got %v, %v; want the generic refusal %q", what, e, err, GenericLoginError)
	}
}

func TestAttemptNeverPrintsPasswordOrUsername(t *testing.T) {
	a := Attempt{Username: "acme-typo", Password: "s3cret-pw-123", IP: "192.0.2.1"}
	log, buf := newLog()
	log.Info("attempt", "a", a)
	for _, s := range []string{a.String(), a.GoString(), buf.String(), fmt.Sprint(a.LogValue().Resolve().Group()), fmt.Sprintf("%v %+v %#v", a, a, a)} {
		if strings.Contains(s, a.Password) {
			t.Errorf("password printed: %s", s)
		}
		if strings.Contains(s, "acme") || !strings.Contains(s, "192.0.2.1") {
			t.Errorf("username printed or address not: %s", s)
		}
	}
}

func TestNewAuthenticatorFromConfig(t *testing.T) {
	ctx := context.Background()
	s := openStore(t)
	c := config.Default().Enroll // real parameters: 19 MiB, t=2
	addEnterprise(t, s, "acme", mustHash(t, "right-password", password.Default), store.StatusActive)
	a, err := NewAuthenticator(AuthOptions{Config: c, Store: s})
	if err != nil {
		t.Fatal(err)
	}
	g, ok := a.(*Guard)
	if !ok {
		t.Fatalf("%T is not a *Guard", a)
	}
	if _, ok := g.inner.(*LocalAuthenticator); !ok || g.lockout.Threshold != 5 || g.lockout.Base != time.Minute || g.lockout.Max != time.Hour {
		t.Fatalf("guard %+v", g)
	}
	if e, err := a.Authenticate(ctx, Attempt{Username: "acme", Password: "right-password", IP: "192.0.2.1"}); err != nil || e.Username != "acme" {
		t.Fatalf("login: %v %v", e, err)
	}
	e, err := a.Authenticate(ctx, Attempt{Username: "acme", Password: "wrong-password", IP: "192.0.2.1"})
	wantRefusal(t, "wrong password", e, err)

	c.Authenticator = "http"
	c.HTTP.URL = "https://report.example.cn/login"
	a, err = NewAuthenticator(AuthOptions{Config: c, Store: s})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := a.(*Guard).inner.(*HTTPAuthenticator); !ok {
		t.Fatalf("inner %T", a.(*Guard).inner)
	}
	c.Authenticator = "ldap"
	if _, err := NewAuthenticator(AuthOptions{Config: c, Store: s}); err == nil {
		t.Error("unknown authenticator accepted")
	}
	c = config.Default().Enroll
	c.Argon2.MemoryKiB = 1024
	if _, err := NewAuthenticator(AuthOptions{Config: c, Store: s}); err == nil || !strings.Contains(err.Error(), "below the minimum") {
		t.Errorf("weak argon2 parameters: %v", err)
	}
}
