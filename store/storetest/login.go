package storetest

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/zbca/zbca/internal/zerr"
	"github.com/zbca/zbca/store"
)

// testLoginLockout: five counted failures lock for Base, each further one
// (after the lock ran out) for twice as long, capped at Max; a locked
// username is refused without counting; unknown usernames lock alike.
func testLoginLockout(t *testing.T, h Harness) {
	ctx := context.Background()
	s, _ := h.Open(t)
	if st, err := s.LoginState(ctx, "acme"); err != nil || st.Failures != 0 || !st.LockedUntil.IsZero() || !st.LastFailure.IsZero() {
		t.Fatalf("state of a fresh username: %+v %v", st, err)
	}
	now := time.Date(2027, 3, 1, 8, 0, 0, 0, time.UTC)
	for i := 1; i <= 4; i++ {
		a, err := s.BeginLogin(ctx, "acme", now, lockout)
		if err != nil {
			t.Fatal(err)
		}
		if !a.Allowed || a.After.Failures != i || !a.After.LockedUntil.IsZero() || !a.After.LastFailure.Equal(now) || a.Before.Failures != i-1 {
			t.Fatalf("attempt %d: %+v", i, a)
		}
		now = now.Add(time.Second)
	}
	// The fifth is allowed (it may be the right password) and locks.
	a, err := s.BeginLogin(ctx, "acme", now, lockout)
	if err != nil || !a.Allowed || a.After.Failures != 5 || !a.After.LockedUntil.Equal(now.Add(time.Minute)) {
		t.Fatalf("fifth attempt: %+v %v", a, err)
	}
	st, err := s.LoginState(ctx, "acme")
	if err != nil || st != a.After {
		t.Fatalf("LoginState %+v %v, want %+v", st, err, a.After)
	}
	if !st.Locked(now) || !st.Locked(now.Add(59*time.Second)) || st.Locked(now.Add(time.Minute)) {
		t.Errorf("Locked() wrong around %v", st.LockedUntil)
	}
	// Locked: refused, nothing counted.
	b, err := s.BeginLogin(ctx, "acme", now.Add(30*time.Second), lockout)
	if err != nil || b.Allowed || b.After != st || b.Before != st {
		t.Fatalf("attempt while locked: %+v %v", b, err)
	}
	if st2, _ := s.LoginState(ctx, "acme"); st2 != st {
		t.Errorf("an attempt while locked changed the state: %+v", st2)
	}
	// After the lock: each failure doubles it, up to an hour.
	want := []time.Duration{2 * time.Minute, 4 * time.Minute, 8 * time.Minute, 16 * time.Minute, 32 * time.Minute, time.Hour, time.Hour}
	now = st.LockedUntil
	for i, d := range want {
		a, err := s.BeginLogin(ctx, "acme", now, lockout)
		if err != nil || !a.Allowed {
			t.Fatalf("attempt %d after the lock: %+v %v", 6+i, a, err)
		}
		if got := a.After.LockedUntil.Sub(now); got != d || a.After.Failures != 6+i {
			t.Fatalf("failure %d: locked for %v, want %v (%+v)", 6+i, got, d, a.After)
		}
		if err := s.FinishLogin(ctx, a, store.LoginFailed, ev("login.failure", "acme")); err != nil {
			t.Fatal(err)
		}
		now = a.After.LockedUntil
	}
	// Unknown usernames are counted and locked the same way (nothing says
	// whether an account exists).
	for range 5 {
		if _, err := s.BeginLogin(ctx, "nobody-such", now, lockout); err != nil {
			t.Fatal(err)
		}
	}
	if st, _ := s.LoginState(ctx, "nobody-such"); !st.Locked(now) {
		t.Errorf("unknown username not locked after 5 failures: %+v", st)
	}
	if _, err := s.GetEnterprise(ctx, "nobody-such"); !errors.Is(err, zerr.NotFound) {
		t.Errorf("counting a login created an enterprise: %v", err)
	}
	if got := (store.LockoutPolicy{Threshold: 5, Base: time.Minute, Max: time.Hour}).LockFor(1000); got != time.Hour {
		t.Errorf("LockFor(1000) = %v", got)
	}
	if got := (store.LockoutPolicy{}).LockFor(1000); got != 0 {
		t.Errorf("zero policy locks for %v", got)
	}
}

// testLoginSettle: success clears, failure keeps, abort undoes; each with
// its audit event in the same transaction.
func testLoginSettle(t *testing.T, h Harness) {
	ctx := context.Background()
	s, _ := h.Open(t)
	now := time.Date(2027, 3, 1, 8, 0, 0, 0, time.UTC)
	begin := func(u string) store.LoginAttempt {
		t.Helper()
		a, err := s.BeginLogin(ctx, u, now, lockout)
		if err != nil || !a.Allowed {
			t.Fatalf("BeginLogin(%s): %+v %v", u, a, err)
		}
		now = now.Add(time.Second)
		return a
	}
	var a store.LoginAttempt
	for range 3 {
		a = begin("acme")
		if err := s.FinishLogin(ctx, a, store.LoginFailed, ev("login.failure", "acme")); err != nil {
			t.Fatal(err)
		}
	}
	if st, _ := s.LoginState(ctx, "acme"); st.Failures != 3 {
		t.Fatalf("%d failures after 3 failed logins", st.Failures)
	}
	// Aborted: the count goes back.
	a = begin("acme")
	if err := s.FinishLogin(ctx, a, store.LoginAborted, ev("login.error", "acme")); err != nil {
		t.Fatal(err)
	}
	if st, _ := s.LoginState(ctx, "acme"); st != a.Before {
		t.Errorf("after abort %+v, want %+v", st, a.Before)
	}
	// An abort does not undo a count made by another attempt since.
	a1 := begin("acme")
	a2 := begin("acme")
	if err := s.FinishLogin(ctx, a1, store.LoginAborted, ev("login.error", "acme")); err != nil {
		t.Fatal(err)
	}
	if st, _ := s.LoginState(ctx, "acme"); st != a2.After {
		t.Errorf("a stale abort changed the state: %+v, want %+v", st, a2.After)
	}
	// Aborting the first attempt of a fresh username leaves no record.
	f := begin("fresh")
	if err := s.FinishLogin(ctx, f, store.LoginAborted, ev("login.error", "fresh")); err != nil {
		t.Fatal(err)
	}
	if st, _ := s.LoginState(ctx, "fresh"); st != (store.LoginState{}) {
		t.Errorf("after aborting the first attempt: %+v", st)
	}
	// a2 was the fifth counted attempt: it locked, and it succeeds, which
	// clears everything.
	if a2.After.Failures != 5 || !a2.After.Locked(now) {
		t.Fatalf("fifth counted attempt did not lock: %+v", a2.After)
	}
	before := auditCount(t, s)
	if err := s.FinishLogin(ctx, a2, store.LoginSucceeded, ev("login.success", "acme")); err != nil {
		t.Fatal(err)
	}
	if st, _ := s.LoginState(ctx, "acme"); st != (store.LoginState{}) {
		t.Errorf("after success: %+v", st)
	}
	if got := auditCount(t, s); got != before+1 {
		t.Errorf("%d audit entries after a success, want %d", got, before+1)
	}
	// A settle whose audit event is refused changes nothing.
	a = begin("acme")
	if err := s.FinishLogin(ctx, a, store.LoginSucceeded, store.AuditEvent{}); err == nil {
		t.Error("FinishLogin accepted an audit event without actor and action")
	}
	if st, _ := s.LoginState(ctx, "acme"); st != a.After {
		t.Errorf("a failed FinishLogin changed the state: %+v", st)
	}
}

// testConcurrentLogins: of many simultaneous attempts on one username, at
// most the threshold are allowed to check a password.
func testConcurrentLogins(t *testing.T, h Harness) {
	ctx := context.Background()
	s, _ := h.Open(t)
	now := time.Date(2027, 3, 1, 8, 0, 0, 0, time.UTC)
	var wg sync.WaitGroup
	var mu sync.Mutex
	allowed, refused := 0, 0
	for range 40 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a, err := s.BeginLogin(ctx, "acme", now, lockout)
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			defer mu.Unlock()
			if a.Allowed {
				allowed++
			} else {
				refused++
			}
		}()
	}
	wg.Wait()
	if allowed != lockout.Threshold || refused != 40-lockout.Threshold {
		t.Errorf("%d allowed, %d refused; want %d, %d", allowed, refused, lockout.Threshold, 40-lockout.Threshold)
	}
	if st, _ := s.LoginState(ctx, "acme"); st.Failures != lockout.Threshold {
		t.Errorf("%d failures counted, want %d", st.Failures, lockout.Threshold)
	}
}

func testPruneLogins(t *testing.T, h Harness) {
	ctx := context.Background()
	s, _ := h.Open(t)
	t0 := time.Date(2027, 3, 1, 8, 0, 0, 0, time.UTC)
	for range 5 { // locked until t0+1m
		if _, err := s.BeginLogin(ctx, "locked", t0, lockout); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.BeginLogin(ctx, "old", t0, lockout); err != nil {
		t.Fatal(err)
	}
	if _, err := s.BeginLogin(ctx, "recent", t0.Add(time.Hour), lockout); err != nil {
		t.Fatal(err)
	}
	n, err := s.PruneLogins(ctx, t0.Add(30*time.Second))
	if err != nil || n != 1 {
		t.Fatalf("PruneLogins = %d, %v; want 1 (old)", n, err)
	}
	if st, _ := s.LoginState(ctx, "old"); st.Failures != 0 {
		t.Error("old record kept")
	}
	if st, _ := s.LoginState(ctx, "locked"); st.Failures != 5 {
		t.Error("a record still locked was pruned")
	}
	if st, _ := s.LoginState(ctx, "recent"); st.Failures != 1 {
		t.Error("a recent record was pruned")
	}
}

func testUpgradePasswordHash(t *testing.T, h Harness) {
	ctx := context.Background()
	s, _ := h.Open(t)
	addEnterprise(t, s, "acme") // hash "x"
	before := auditCount(t, s)
	ok, err := s.UpgradePasswordHash(ctx, "acme", "x", "$argon2id$new", ev("enterprise.password.upgrade", "acme"))
	if err != nil || !ok {
		t.Fatalf("UpgradePasswordHash = %v, %v", ok, err)
	}
	if e, _ := s.GetEnterprise(ctx, "acme"); e.PasswordHash != "$argon2id$new" {
		t.Errorf("hash %q after upgrade", e.PasswordHash)
	}
	// The hash changed since it was verified (an operator's passwd): the
	// upgrade must not undo it.
	ok, err = s.UpgradePasswordHash(ctx, "acme", "x", "$argon2id$stale", ev("enterprise.password.upgrade", "acme"))
	if err != nil || ok {
		t.Fatalf("stale UpgradePasswordHash = %v, %v; want false, nil", ok, err)
	}
	if e, _ := s.GetEnterprise(ctx, "acme"); e.PasswordHash != "$argon2id$new" {
		t.Errorf("a stale upgrade replaced the hash: %q", e.PasswordHash)
	}
	if ok, err := s.UpgradePasswordHash(ctx, "nobody", "x", "y", ev("enterprise.password.upgrade", "nobody")); err != nil || ok {
		t.Errorf("unknown username: %v, %v", ok, err)
	}
	if got := auditCount(t, s); got != before+1 {
		t.Errorf("%d audit entries, want %d (refused upgrades are not audited)", got, before+1)
	}
}
