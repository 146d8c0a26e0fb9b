package enroll

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/zbca/zbca/config"
	"github.com/zbca/zbca/internal/password"
	"github.com/zbca/zbca/internal/zerr"
	"github.com/zbca/zbca/store"
)

// verifySpy records which hashes were verified.
type verifySpy struct {
	mu     sync.Mutex
	hashes []string
}

func (v *verifySpy) install(l *LocalAuthenticator) {
	l.verifyFn = func(pw, hash string) error {
		v.mu.Lock()
		v.hashes = append(v.hashes, hash)
		v.mu.Unlock()
		return password.Verify(pw, hash)
	}
}

func (v *verifySpy) take() []string {
	v.mu.Lock()
	defer v.mu.Unlock()
	h := v.hashes
	v.hashes = nil
	return h
}

func TestLocal(t *testing.T) {
	ctx := context.Background()
	s := openStore(t)
	l := newTestLocal(t, s, 0, nil)
	spy := &verifySpy{}
	spy.install(l)
	hash := mustHash(t, "right-password", cheap)
	addEnterprise(t, s, "acme", hash, store.StatusActive)
	addEnterprise(t, s, "gone", mustHash(t, "right-password", cheap), store.StatusDisabled)

	e, err := l.Authenticate(ctx, Attempt{Username: "acme", Password: "right-password"})
	if err != nil || e.Username != "acme" || e.Status != store.StatusActive {
		t.Fatalf("right password: %+v %v", e, err)
	}
	if got := spy.take(); len(got) != 1 || got[0] != hash {
		t.Errorf("verified %q, want the account's hash", got)
	}

	e, err = l.Authenticate(ctx, Attempt{Username: "acme", Password: "wrong-password"})
	wantRefusal(t, "wrong password", e, err)
	if refusalReason(err) != reasonPassword || len(spy.take()) != 1 {
		t.Errorf("wrong password: reason %q", refusalReason(err))
	}

	// Unknown username: the same text, and the same work, against the
	// dummy hash made with the configured parameters.
	e, err = l.Authenticate(ctx, Attempt{Username: "nobody", Password: "right-password"})
	wantRefusal(t, "unknown username", e, err)
	if got := spy.take(); len(got) != 1 || got[0] != l.dummy {
		t.Errorf("unknown username: verified %q, want the dummy hash once", got)
	}
	if password.NeedsRehash(l.dummy, cheap) {
		t.Errorf("the dummy hash %q is not made with the configured parameters", l.dummy)
	}
	if refusalReason(err) != reasonUnknown {
		t.Errorf("reason %q", refusalReason(err))
	}

	// Disabled: the same text even with the right password, after the
	// same work.
	e, err = l.Authenticate(ctx, Attempt{Username: "gone", Password: "right-password"})
	wantRefusal(t, "disabled", e, err)
	if refusalReason(err) != reasonDisabled || len(spy.take()) != 1 {
		t.Errorf("disabled: reason %q", refusalReason(err))
	}

	// Malformed attempts are refused alike, before any work.
	for _, a := range []Attempt{{Username: "acme"}, {Password: "x"}, {Username: "acme", Password: strings.Repeat("x", 1025)}} {
		e, err := l.Authenticate(ctx, a)
		wantRefusal(t, "malformed", e, err)
	}
	if got := spy.take(); len(got) != 0 {
		t.Errorf("malformed attempts did hashing work: %d", len(got))
	}

	// A corrupt stored hash: refused alike, logged for the operator.
	if err := s.SetPasswordHash(ctx, "acme", "$argon2id$v=19$m=1,t=1,p=1$xx$yy", store.AuditEvent{Actor: "test", Action: "x"}); err != nil {
		t.Fatal(err)
	}
	e, err = l.Authenticate(ctx, Attempt{Username: "acme", Password: "right-password"})
	wantRefusal(t, "corrupt hash", e, err)
	if refusalReason(err) != reasonBadHash {
		t.Errorf("corrupt hash: reason %q", refusalReason(err))
	}
}

func TestLocalUpgradesImportedHashes(t *testing.T) {
	ctx := context.Background()
	s := openStore(t)
	l := newTestLocal(t, s, 0, nil)
	b, err := bcrypt.GenerateFromPassword([]byte("bcrypt-password"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	other := password.Params{MemoryKiB: 128, Time: 3, Threads: 2}
	cases := []struct{ user, pw, hash, from string }{
		{"imported-bcrypt", "bcrypt-password", string(b), "bcrypt 2a cost 04"},
		{"imported-argon2", "argon2-password", mustHash(t, "argon2-password", other), "argon2id m=128,t=3,p=2"},
	}
	for _, tc := range cases {
		t.Run(tc.user, func(t *testing.T) {
			addEnterprise(t, s, tc.user, tc.hash, store.StatusActive)
			// A failed login upgrades nothing.
			if _, err := l.Authenticate(ctx, Attempt{Username: tc.user, Password: "not-" + tc.pw}); !errors.Is(err, zerr.Unauthorized) {
				t.Fatal(err)
			}
			if e, _ := s.GetEnterprise(ctx, tc.user); e.PasswordHash != tc.hash {
				t.Fatal("a failed login changed the hash")
			}
			e, err := l.Authenticate(ctx, Attempt{Username: tc.user, Password: tc.pw})
			if err != nil {
				t.Fatal(err)
			}
			stored, _ := s.GetEnterprise(ctx, tc.user)
			if stored.PasswordHash == tc.hash || !strings.HasPrefix(stored.PasswordHash, "$argon2id$") || password.NeedsRehash(stored.PasswordHash, cheap) {
				t.Fatalf("hash not upgraded to the configured argon2id parameters: %q", stored.PasswordHash)
			}
			if e.PasswordHash != stored.PasswordHash {
				t.Error("the returned record does not carry the new hash")
			}
			if err := password.Verify(tc.pw, stored.PasswordHash); err != nil {
				t.Errorf("the upgraded hash does not verify: %v", err)
			}
			var ev *store.AuditEvent
			for _, x := range auditEvents(t, s) {
				if x.Action == "enterprise.password.upgrade" && x.Subject == tc.user {
					ev = &x
				}
			}
			if ev == nil || ev.Details["from"] != tc.from || ev.Details["to"] != "argon2id m=64,t=1,p=1" {
				t.Fatalf("upgrade audit event %+v", ev)
			}
			// Upgraded once: the next login leaves it.
			if _, err := l.Authenticate(ctx, Attempt{Username: tc.user, Password: tc.pw}); err != nil {
				t.Fatal(err)
			}
			if again, _ := s.GetEnterprise(ctx, tc.user); again.PasswordHash != stored.PasswordHash {
				t.Error("an up-to-date hash was replaced")
			}
		})
	}
}

// TestLocalUpgradeDoesNotUndoPasswd: an operator's passwd between the
// verification and the upgrade wins.
func TestLocalUpgradeDoesNotUndoPasswd(t *testing.T) {
	ctx := context.Background()
	s := openStore(t)
	l := newTestLocal(t, s, 0, nil)
	b, _ := bcrypt.GenerateFromPassword([]byte("old-password"), bcrypt.MinCost)
	addEnterprise(t, s, "acme", string(b), store.StatusActive)
	operators := mustHash(t, "operators-new-password", cheap)
	l.verifyFn = func(pw, hash string) error {
		if err := s.SetPasswordHash(ctx, "acme", operators, store.AuditEvent{Actor: "operator", Action: "enterprise.passwd", Subject: "acme"}); err != nil {
			t.Error(err)
		}
		return password.Verify(pw, hash)
	}
	if _, err := l.Authenticate(ctx, Attempt{Username: "acme", Password: "old-password"}); err != nil {
		t.Fatal(err)
	}
	if e, _ := s.GetEnterprise(ctx, "acme"); e.PasswordHash != operators {
		t.Errorf("the login's upgrade replaced the operator's new hash")
	}
}

// TestLocalHashingIsBounded: with max_concurrent_hashes 1, concurrent
// logins never hash at the same time; with 3, never more than 3.
func TestLocalHashingIsBounded(t *testing.T) {
	for _, limit := range []int{1, 3} {
		ctx := context.Background()
		s := openStore(t)
		l := newTestLocal(t, s, limit, nil)
		b, _ := bcrypt.GenerateFromPassword([]byte("right-password"), bcrypt.MinCost)
		addEnterprise(t, s, "acme", string(b), store.StatusActive) // each login also re-hashes (upgrade)
		var inflight, peak, calls atomic.Int64
		track := func() func() {
			calls.Add(1)
			n := inflight.Add(1)
			for {
				p := peak.Load()
				if n <= p || peak.CompareAndSwap(p, n) {
					break
				}
			}
			time.Sleep(5 * time.Millisecond)
			return func() { inflight.Add(-1) }
		}
		l.verifyFn = func(pw, hash string) error { defer track()(); return password.Verify(pw, hash) }
		l.hashFn = func(pw string, p password.Params) (string, error) { defer track()(); return password.Hash(pw, p) }
		var wg sync.WaitGroup
		for i := range 12 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				u := "acme"
				if i%3 == 0 {
					u = "nobody"
				}
				_, _ = l.Authenticate(ctx, Attempt{Username: u, Password: "right-password"})
			}()
		}
		wg.Wait()
		if p := peak.Load(); p > int64(limit) || (limit > 1 && p < 2) {
			t.Errorf("limit %d: %d hashes ran at once", limit, p)
		}
		if calls.Load() < 12 {
			t.Errorf("limit %d: %d hashing calls for 12 logins", limit, calls.Load())
		}
	}
}

// TestLocalHashingWaitEndsWithContext: a login waiting for a hashing slot
// gives up when its context ends.
func TestLocalHashingWaitEndsWithContext(t *testing.T) {
	s := openStore(t)
	l := newTestLocal(t, s, 1, nil)
	addEnterprise(t, s, "acme", mustHash(t, "right-password", cheap), store.StatusActive)
	release := make(chan struct{})
	started := make(chan struct{})
	l.verifyFn = func(pw, hash string) error {
		close(started)
		<-release
		return password.Verify(pw, hash)
	}
	done := make(chan error)
	go func() {
		_, err := l.Authenticate(context.Background(), Attempt{Username: "acme", Password: "right-password"})
		done <- err
	}()
	<-started
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	t0 := time.Now()
	_, err := l.Authenticate(ctx, Attempt{Username: "acme", Password: "right-password"})
	if !errors.Is(err, zerr.Internal) || !errors.Is(err, context.DeadlineExceeded) || time.Since(t0) > 2*time.Second {
		t.Errorf("waiting login: %v after %v; want an internal error when its context ends", err, time.Since(t0))
	}
	close(release)
	if err := <-done; err != nil {
		t.Errorf("first login: %v", err)
	}
}

func TestNewLocalChecksParameters(t *testing.T) {
	s := openStore(t)
	for _, p := range []password.Params{cheap, {MemoryKiB: 19455, Time: 2, Threads: 1}, {MemoryKiB: 19456, Time: 1, Threads: 1}, {MemoryKiB: 19456, Time: 2}} {
		if _, err := NewLocal(LocalOptions{Store: s, Params: p}); err == nil {
			t.Errorf("parameters %+v accepted", p)
		}
	}
	if _, err := NewLocal(LocalOptions{Params: password.Default}); err == nil {
		t.Error("no store accepted")
	}
	if _, err := NewLocal(LocalOptions{Store: s, Params: password.Default, MaxConcurrentHashes: -1}); err == nil {
		t.Error("negative max_concurrent_hashes accepted")
	}
	l, err := NewLocal(LocalOptions{Store: s, Params: password.Params{MemoryKiB: config.MinArgon2MemoryKiB, Time: config.MinArgon2Time, Threads: 1}})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(l.dummy, "$argon2id$v=19$m=19456,t=2,p=1$") || cap(l.sem) < 2 {
		t.Errorf("dummy %q, %d slots", l.dummy, cap(l.sem))
	}
}
