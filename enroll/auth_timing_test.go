package enroll

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/zbca/zbca/internal/password"
	"github.com/zbca/zbca/internal/web"
	"github.com/zbca/zbca/store"
)

// timingCost is the bcrypt cost of the imported account in the timing
// tests: slow enough (≈15 ms) to stand well out of the cheap argon2id
// hashes' noise, as cost 10 stands out of the production argon2id.
const timingCost = 8

func bcryptHash(t *testing.T, pw string, cost int) string {
	t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte(pw), cost)
	if err != nil {
		t.Fatal(err)
	}
	return string(h)
}

func median(d []time.Duration) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2]
}

// TestLoginTimingHidesAccounts is the attacker's measurement through the
// real login path (POST /api/v1/eab behind the Guard): wrong passwords for
// an unknown username, an argon2id account and an account still holding
// its imported bcrypt hash. Their median answer times must be the same
// within a tolerance; on a server that answers each in its own hash's time
// the bcrypt account stands out.
func TestLoginTimingHidesAccounts(t *testing.T) {
	if testing.Short() {
		t.Skip("timing measurement")
	}
	s := openStore(t)
	addEnterprise(t, s, "argon", mustHash(t, "right-password", cheap), store.StatusActive)
	addEnterprise(t, s, "imported", bcryptHash(t, "right-password", timingCost), store.StatusActive)
	l := newTestLocal(t, s, 0, nil)
	g, err := NewGuard(l, GuardOptions{Store: s, Name: "local",
		Lockout: store.LockoutPolicy{Threshold: 1000}, PerIPRate: 1e6, PerIPBurst: 1e6})
	if err != nil {
		t.Fatal(err)
	}
	e := web.New(slog.New(slog.DiscardHandler), "https")
	(&API{Auth: g, Store: s}).Register(e)

	try := func(user string) time.Duration {
		body := fmt.Sprintf(`{"username":%q,"password":"wrong-password"}`, user)
		req := httptest.NewRequest(http.MethodPost, "/api/v1/eab", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		start := time.Now()
		e.ServeHTTP(rec, req)
		d := time.Since(start)
		if rec.Code != http.StatusUnauthorized || !strings.Contains(rec.Body.String(), "wrong username or password") {
			t.Fatalf("%s: %d %s", user, rec.Code, rec.Body)
		}
		return d
	}
	kinds := []string{"nobody", "argon", "imported"}
	times := map[string][]time.Duration{}
	for _, u := range kinds {
		try(u) // warm up
	}
	// Interleaved, so that a noisy moment falls on every kind alike.
	for range 25 {
		for _, u := range kinds {
			times[u] = append(times[u], try(u))
		}
	}
	var lo, hi time.Duration = time.Hour, 0
	for _, u := range kinds {
		m := median(times[u])
		lo, hi = min(lo, m), max(hi, m)
		t.Logf("%-9s median %v (min %v, max %v)", u, m.Round(100*time.Microsecond),
			slices.Min(times[u]).Round(100*time.Microsecond), slices.Max(times[u]).Round(100*time.Microsecond))
	}
	// Within 2 ms or 15% of the slowest, whichever is more.
	if tol := max(2*time.Millisecond, hi*15/100); hi-lo > tol {
		t.Errorf("median answer times differ by %v (more than %v): the timing tells the accounts apart", hi-lo, tol)
	}
}

// TestLocalFloorCoversStoredSchemes: the floor covers the slowest hash in
// the store from the start, before any login on that account has shown
// its cost; a locked username is held as long.
func TestLocalFloorCoversStoredSchemes(t *testing.T) {
	s := openStore(t)
	h := bcryptHash(t, "right-password", 10)
	addEnterprise(t, s, "imported", h, store.StatusActive)
	start := time.Now()
	if err := bcrypt.CompareHashAndPassword([]byte(h), []byte("x")); err == nil {
		t.Fatal("wrong password matched")
	}
	cost := time.Since(start)
	l := newTestLocal(t, s, 0, nil)
	if f := l.FailureFloor(); f < cost*8/10 {
		t.Fatalf("floor %v right after start-up; a bcrypt cost-10 verification takes %v", f, cost)
	}

	// The locked answer is held to the floor too.
	clock := newClock()
	g, err := NewGuard(l, GuardOptions{Store: s, Name: "local", Now: clock.Now, Lockout: store.LockoutPolicy{Threshold: 1}})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := g.Authenticate(ctx, Attempt{Username: "nobody", Password: "wrong", IP: "192.0.2.1"}); err == nil {
		t.Fatal("wrong password accepted")
	}
	start = time.Now()
	_, err = g.Authenticate(ctx, Attempt{Username: "nobody", Password: "wrong", IP: "192.0.2.1"})
	if err == nil || err.Error() != LockedLoginError {
		t.Fatalf("second attempt: %v, want locked", err)
	}
	if d := time.Since(start); d < cost*8/10 {
		t.Errorf("locked answer after %v; a password check takes %v", d, cost)
	}
}

// TestLocalFloorLearnsImports: accounts imported (by another process)
// while the server runs are covered within rescanEvery, before anyone
// tries them: the review's one-shot oracle was the first wrong password
// on a new, slower scheme.
func TestLocalFloorLearnsImports(t *testing.T) {
	s := openStore(t)
	l := newTestLocal(t, s, 0, nil)
	if l.floor.covers(password.Scheme(bcryptHash(t, "x", 10))) {
		t.Fatal("bcrypt covered before any bcrypt account exists")
	}
	h := bcryptHash(t, "right-password", 10)
	addEnterprise(t, s, "imported-later", h, store.StatusActive)
	// Not due yet: nothing is read.
	l.maybeRescan(time.Now())
	l.scanMu.Lock()
	l.scanMu.Unlock()
	if l.floor.covers(password.Scheme(h)) {
		t.Fatal("rescanned before it was due")
	}
	// Due: a login (any username) starts the look, in the background.
	l.nextScan.Store(0)
	if _, err := l.Authenticate(context.Background(), Attempt{Username: "somebody-else", Password: "wrong", IP: "192.0.2.1"}); err == nil {
		t.Fatal("wrong password accepted")
	}
	deadline := time.Now().Add(10 * time.Second)
	for !l.floor.covers(password.Scheme(h)) {
		if time.Now().After(deadline) {
			t.Fatal("the imported account's scheme was not learned")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestTimingFloor(t *testing.T) {
	f := newTimingFloor()
	if f.floor() != 0 {
		t.Fatal("floor without a scheme")
	}
	f.calibrated("argon2id", 30*time.Millisecond)
	f.calibrated("bcrypt 10", 60*time.Millisecond)
	want := time.Duration(floorMargin * float64(60*time.Millisecond))
	if got := f.floor(); got != want {
		t.Fatalf("idle floor %v, want %v", got, want)
	}
	// A busy CPU: argon2id verifications take twice their idle time; the
	// floor follows, although no bcrypt verification ran.
	for range 100 {
		f.observe("argon2id", 60*time.Millisecond)
	}
	if got := f.floor(); got < 2*want*95/100 {
		t.Fatalf("busy floor %v, want about %v", got, 2*want)
	}
	for range 100 {
		f.observe("argon2id", 30*time.Millisecond)
	}
	if got := f.floor(); got > want*105/100 {
		t.Fatalf("floor %v after the load passed, want about %v", got, want)
	}
}
