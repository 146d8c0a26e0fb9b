package enroll

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/zbca/zbca/internal/zerr"
	"github.com/zbca/zbca/store"
)

// counting counts the attempts that reach the inner authenticator.
type counting struct {
	inner Authenticator
	n     atomic.Int64
	err   error // when set, returned instead of asking inner
}

func (c *counting) Authenticate(ctx context.Context, a Attempt) (*store.Enterprise, error) {
	c.n.Add(1)
	if c.err != nil {
		return nil, c.err
	}
	return c.inner.Authenticate(ctx, a)
}

type guardFixture struct {
	s     *store.SQL
	path  string // of the SQLite file
	clock *fakeClock
	inner *counting
	g     *Guard
	logs  *logBuffer
}

// state is the lockout record of username, read as the Guard keys it.
func (f *guardFixture) state(username string) store.LoginState {
	ctx := context.Background()
	k, err := f.g.names.lockKey(ctx, username)
	if err != nil {
		panic(err)
	}
	st, err := f.s.LoginState(ctx, k)
	if err != nil {
		panic(err)
	}
	return st
}

// TestLockoutTableHoldsNoNames: the logins table (kept for a day, and in
// backups) holds neither the names tried nor which of them exist.
func TestLockoutTableHoldsNoNames(t *testing.T) {
	f := newGuardFixture(t, GuardOptions{})
	f.login("acme", "wrong-password")
	f.login("MyPassw0rd2026", "x") // a password typed into the username field
	raw, err := sql.Open("sqlite", "file:"+f.path+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	rows, err := raw.Query(`SELECT username FROM logins`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	n := 0
	for rows.Next() {
		var u string
		if err := rows.Scan(&u); err != nil {
			t.Fatal(err)
		}
		n++
		if !strings.HasPrefix(u, "h:") || strings.Contains(u, "acme") || strings.Contains(u, "MyPassw0rd") {
			t.Errorf("logins row %q", u)
		}
	}
	if n == 0 {
		t.Error("no lockout count kept")
	}
}

func newGuardFixture(t *testing.T, o GuardOptions) *guardFixture {
	t.Helper()
	path := filepath.Join(t.TempDir(), "zbca.db")
	st, err := store.Open(context.Background(), store.Options{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	f := &guardFixture{s: st, path: path, clock: newClock()}
	log, logs := newLog()
	f.logs = logs
	f.inner = &counting{inner: newTestLocal(t, f.s, 0, log)}
	o.Store, o.Name, o.Now, o.Logger = f.s, "local", f.clock.Now, log
	g, err := NewGuard(f.inner, o)
	if err != nil {
		t.Fatal(err)
	}
	f.g = g
	addEnterprise(t, f.s, "acme", mustHash(t, "right-password", cheap), store.StatusActive)
	return f
}

func (f *guardFixture) login(u, pw string) (*store.Enterprise, error) {
	return f.g.Authenticate(context.Background(), Attempt{Username: u, Password: pw, IP: "192.0.2.7"})
}

func wantLocked(t *testing.T, what string, e *store.Enterprise, err error) {
	t.Helper()
	if e != nil || !errors.Is(err, zerr.Unauthorized) || err.Error() != LockedLoginError {
		t.Fatalf("%s: got %v, %v; want %q", what, e, err, LockedLoginError)
	}
}

func TestGuardLockout(t *testing.T) {
	var outcomes []string
	f := newGuardFixture(t, GuardOptions{Observe: func(o string) { outcomes = append(outcomes, o) }})
	for i := range 5 {
		e, err := f.login("acme", "wrong-password")
		wantRefusal(t, fmt.Sprintf("failure %d", i+1), e, err)
	}
	// Locked: even the right password is refused, without being checked.
	calls := f.inner.n.Load()
	e, err := f.login("acme", "right-password")
	wantLocked(t, "right password while locked", e, err)
	f.clock.Add(59 * time.Second)
	e, err = f.login("acme", "right-password")
	wantLocked(t, "after 59s", e, err)
	if f.inner.n.Load() != calls {
		t.Error("a password was checked while the account was locked")
	}
	// After the lock's minute the right password works and resets.
	f.clock.Add(time.Second)
	if e, err := f.login("acme", "right-password"); err != nil || e.Username != "acme" {
		t.Fatalf("after the lock: %v %v", e, err)
	}
	if st, _ := f.s.LoginState(context.Background(), "acme"); st != (store.LoginState{}) {
		t.Errorf("state after success: %+v", st)
	}
	// The metrics hear the same story: the fifth failure locked.
	if got, want := strings.Join(outcomes, " "), "failed failed failed failed failed lockout locked locked ok"; got != want {
		t.Errorf("observed outcomes\n got %s\nwant %s", got, want)
	}
	evs := auditEvents(t, f.s)
	got := strings.Join(actions(evs, "login."), " ")
	want := strings.TrimSpace(strings.Repeat("login.failure ", 5) + "login.locked login.locked login.success")
	if got != want {
		t.Errorf("audit actions\n got %s\nwant %s", got, want)
	}
	for _, ev := range evs {
		if !strings.HasPrefix(ev.Action, "login.") {
			continue
		}
		if ev.Subject != "acme" || ev.Actor != "login" || ev.Details["ip"] != "192.0.2.7" || ev.Details["authenticator"] != "local" {
			t.Errorf("audit event %+v", ev)
		}
	}
	if evs[len(evs)-3].Details["locked_until"] != "2027-03-01T08:01:00Z" || evs[len(evs)-4].Details["reason"] != reasonPassword {
		t.Errorf("lock details: %+v / %+v", evs[len(evs)-3].Details, evs[len(evs)-4].Details)
	}
}

func TestGuardLockoutDoubles(t *testing.T) {
	f := newGuardFixture(t, GuardOptions{})
	for range 5 {
		f.login("acme", "wrong-password")
	}
	for _, d := range []time.Duration{time.Minute, 2 * time.Minute, 4 * time.Minute, 8 * time.Minute, 16 * time.Minute, 32 * time.Minute, time.Hour, time.Hour} {
		f.clock.Add(d - time.Second)
		e, err := f.login("acme", "right-password")
		wantLocked(t, fmt.Sprintf("1s before the end of a %v lock", d), e, err)
		f.clock.Add(time.Second)
		e, err = f.login("acme", "wrong-password") // the next failure doubles
		wantRefusal(t, fmt.Sprintf("failure after a %v lock", d), e, err)
	}
	f.clock.Add(time.Hour)
	if _, err := f.login("acme", "right-password"); err != nil {
		t.Fatalf("after the longest lock: %v", err)
	}
}

func TestGuardSuccessResets(t *testing.T) {
	f := newGuardFixture(t, GuardOptions{})
	for range 4 {
		f.login("acme", "wrong-password")
	}
	if _, err := f.login("acme", "right-password"); err != nil {
		t.Fatal(err)
	}
	for i := range 4 {
		e, err := f.login("acme", "wrong-password")
		wantRefusal(t, fmt.Sprintf("failure %d after a success", i+1), e, err)
	}
	if _, err := f.login("acme", "right-password"); err != nil {
		t.Fatalf("4 failures after a success locked the account: %v", err)
	}
}

// TestGuardNothingTellsAccountsApart: unknown usernames, wrong passwords
// and disabled accounts get the same text and lock alike.
func TestGuardNothingTellsAccountsApart(t *testing.T) {
	f := newGuardFixture(t, GuardOptions{})
	addEnterprise(t, f.s, "gone", mustHash(t, "right-password", cheap), store.StatusDisabled)
	for _, u := range []struct{ user, pw string }{{"acme", "wrong-password"}, {"nobody", "right-password"}, {"gone", "right-password"}} {
		for i := range 5 {
			e, err := f.login(u.user, u.pw)
			wantRefusal(t, fmt.Sprintf("%s, attempt %d", u.user, i+1), e, err)
		}
		e, err := f.login(u.user, u.pw)
		wantLocked(t, u.user+" after 5 failures", e, err)
	}
	if _, err := f.s.GetEnterprise(context.Background(), "nobody"); !errors.Is(err, zerr.NotFound) {
		t.Error("locking an unknown username created an enterprise")
	}
	reasons := map[string]string{}
	for _, ev := range auditEvents(t, f.s) {
		if ev.Action == "login.failure" {
			reasons[ev.Subject], _ = ev.Details["reason"].(string)
		}
	}
	nobody := f.g.names.record(context.Background(), "nobody", known(false))
	if reasons["acme"] != reasonPassword || reasons[nobody] != reasonUnknown || reasons["gone"] != reasonDisabled {
		t.Errorf("audit reasons for operators: %v", reasons)
	}
}

// TestGuardConcurrentAttempts: 40 simultaneous wrong guesses on one
// account reach the password check at most 5 times.
func TestGuardConcurrentAttempts(t *testing.T) {
	f := newGuardFixture(t, GuardOptions{PerIPRate: 1000, PerIPBurst: 1000})
	var wg sync.WaitGroup
	var refused, locked atomic.Int64
	for i := range 40 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := f.login("acme", fmt.Sprintf("guess-%d", i))
			switch {
			case err == nil:
				t.Error("a guess succeeded")
			case err.Error() == GenericLoginError:
				refused.Add(1)
			case err.Error() == LockedLoginError:
				locked.Add(1)
			default:
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if n := f.inner.n.Load(); n > 5 || refused.Load() != n || locked.Load() != 40-n {
		t.Errorf("%d guesses checked (%d refused, %d locked); want at most 5", n, refused.Load(), locked.Load())
	}
}

// TestGuardUndecided: an attempt the authenticator cannot decide (login
// service down) does not count towards the lockout.
func TestGuardUndecided(t *testing.T) {
	f := newGuardFixture(t, GuardOptions{})
	f.inner.err = zerr.New(zerr.Internal, "login service unavailable")
	for range 10 {
		if _, err := f.login("acme", "right-password"); !errors.Is(err, zerr.Internal) {
			t.Fatalf("got %v", err)
		}
	}
	if st, _ := f.s.LoginState(context.Background(), "acme"); st != (store.LoginState{}) {
		t.Errorf("undecided attempts were counted: %+v", st)
	}
	f.inner.err = nil
	if _, err := f.login("acme", "right-password"); err != nil {
		t.Fatal(err)
	}
	if got := actions(auditEvents(t, f.s), "login."); len(got) != 11 || got[0] != "login.error" || got[10] != "login.success" {
		t.Errorf("audit %v", got)
	}
}

func TestGuardMalformed(t *testing.T) {
	f := newGuardFixture(t, GuardOptions{})
	long := strings.Repeat("长", 300)
	for _, u := range []string{"", "has space", "bad\x00nul", long, "\xff\xfe"} {
		e, err := f.login(u, "some-password")
		wantRefusal(t, fmt.Sprintf("username %q", u), e, err)
	}
	if f.inner.n.Load() != 0 {
		t.Error("malformed usernames reached the authenticator")
	}
	for _, ev := range auditEvents(t, f.s) {
		if ev.Action == "login.failure" && (len([]rune(ev.Subject)) > 65 || ev.Details["reason"] != reasonMalformed) {
			t.Errorf("audit %+v", ev)
		}
	}
}

func TestGuardRateLimit(t *testing.T) {
	f := newGuardFixture(t, GuardOptions{PerIPRate: 1, PerIPBurst: 3})
	ctx := context.Background()
	login := func(ip string) error {
		_, err := f.g.Authenticate(ctx, Attempt{Username: "acme", Password: "right-password", IP: ip})
		return err
	}
	for i := range 3 {
		if err := login("198.51.100.1"); err != nil {
			t.Fatalf("attempt %d within the burst: %v", i+1, err)
		}
	}
	for range 5 {
		err := login("198.51.100.1")
		if !errors.Is(err, zerr.Unauthorized) || err.Error() != RateLimitedError {
			t.Fatalf("beyond the burst: %v", err)
		}
	}
	if err := login("198.51.100.2"); err != nil {
		t.Errorf("another address: %v", err)
	}
	// IPv6: one /64 is one bucket.
	for i := range 3 {
		if err := login(fmt.Sprintf("2001:db8:1:2::%x", i+1)); err != nil {
			t.Fatal(err)
		}
	}
	if err := login("2001:db8:1:2:ffff::9"); err == nil || err.Error() != RateLimitedError {
		t.Errorf("same /64: %v", err)
	}
	if err := login("2001:db8:1:3::1"); err != nil {
		t.Errorf("another /64: %v", err)
	}
	// One token a second.
	f.clock.Add(time.Second)
	if err := login("198.51.100.1"); err != nil {
		t.Errorf("after a second: %v", err)
	}
	if err := login("198.51.100.1"); err == nil || err.Error() != RateLimitedError {
		t.Errorf("second attempt in that second: %v", err)
	}
	// One audit event per run of refusals, not one per refusal.
	var limited []string
	for _, ev := range auditEvents(t, f.s) {
		if ev.Action == "login.ratelimited" {
			limited = append(limited, ev.Details["ip"].(string))
		}
	}
	if strings.Join(limited, " ") != "198.51.100.1 2001:db8:1:2:ffff::9 198.51.100.1" {
		t.Errorf("rate-limit audit events for %v", limited)
	}
	if f.inner.n.Load() != 3+1+3+1+1 {
		t.Errorf("%d attempts reached the authenticator", f.inner.n.Load())
	}
}

// TestGuardRateLimitSharedByNodes: two nodes (two Guards, each on its own
// store.Open of one database) draw on one bucket per address, and a run of
// refusals is audited once, whichever node refuses first.
func TestGuardRateLimitSharedByNodes(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "zbca.db")
	clock := newClock()
	log, _ := newLog()
	var guards []*Guard
	var stores []*store.SQL
	for range 2 {
		s, err := store.Open(ctx, store.Options{Path: path})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		g, err := NewGuard(newTestLocal(t, s, 0, log), GuardOptions{Store: s, Name: "local", Now: clock.Now, Logger: log, PerIPRate: 1, PerIPBurst: 4})
		if err != nil {
			t.Fatal(err)
		}
		guards, stores = append(guards, g), append(stores, s)
	}
	addEnterprise(t, stores[0], "acme", mustHash(t, "right-password", cheap), store.StatusActive)
	login := func(node int) error {
		_, err := guards[node].Authenticate(ctx, Attempt{Username: "acme", Password: "right-password", IP: "198.51.100.9"})
		return err
	}
	for i := range 4 { // the burst, taken in turns on both nodes
		if err := login(i % 2); err != nil {
			t.Fatalf("attempt %d within the burst: %v", i+1, err)
		}
	}
	for _, node := range []int{0, 1, 1, 0} {
		if err := login(node); err == nil || err.Error() != RateLimitedError {
			t.Fatalf("node %d beyond the shared burst: %v", node, err)
		}
	}
	clock.Add(time.Second)
	if err := login(1); err != nil {
		t.Fatalf("after a second: %v", err)
	}
	if err := login(0); err == nil || err.Error() != RateLimitedError {
		t.Fatalf("the other node after that second's token was taken: %v", err)
	}
	if got := actions(auditEvents(t, stores[1]), "login.ratelimited"); len(got) != 2 {
		t.Errorf("%d login.ratelimited events for two runs of refusals, want 2", len(got))
	}
}

// TestIPLimiterPrunes: buckets that are full again are deleted from the
// store, at most once a minute; busy ones stay.
func TestIPLimiterPrunes(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "zbca.db")
	s, err := store.Open(ctx, store.Options{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	raw, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { raw.Close() })
	buckets := func() int {
		t.Helper()
		var n int
		if err := raw.QueryRow(`SELECT COUNT(*) FROM rate_buckets`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	log, _ := newLog()
	l := newIPLimiter(s, 10, 20, log) // full again after 2s
	now := newClock().Now()
	for i := range 50 {
		if ok, _, err := l.allow(ctx, fmt.Sprintf("10.0.0.%d", i), now); err != nil || !ok {
			t.Fatal(ok, err)
		}
	}
	if n := buckets(); n != 50 {
		t.Fatalf("%d buckets, want 50", n)
	}
	// Within the minute nothing is pruned, even if idle.
	l.allow(ctx, "192.0.2.1", now.Add(30*time.Second))
	if n := buckets(); n != 51 {
		t.Fatalf("%d buckets after 30s, want 51 (no prune yet)", n)
	}
	// A minute on: the idle ones go, the one just used stays.
	l.allow(ctx, "192.0.2.2", now.Add(time.Minute))
	if n := buckets(); n != 1 {
		t.Errorf("%d buckets after a minute, want 1", n)
	}
}

// TestNoPasswordInAuditOrLogs: every kind of attempt, then every audit
// row and every log line is searched for the passwords used.
func TestNoPasswordInAuditOrLogs(t *testing.T) {
	f := newGuardFixture(t, GuardOptions{PerIPBurst: 30})
	b, _ := bcrypt.GenerateFromPassword([]byte("Imported-Pw-7731"), bcrypt.MinCost)
	addEnterprise(t, f.s, "imported", string(b), store.StatusActive)
	addEnterprise(t, f.s, "gone", mustHash(t, "Disabled-Pw-5521", cheap), store.StatusDisabled)
	passwords := []string{"right-password", "Wrong-Pw-1234", "Unknown-Pw-8812", "Imported-Pw-7731", "Disabled-Pw-5521", "Malformed-Pw-9090"}
	f.login("acme", "right-password")
	f.login("imported", "Imported-Pw-7731") // upgrade
	f.login("nobody", "Unknown-Pw-8812")
	f.login("gone", "Disabled-Pw-5521")
	f.login("bad user", "Malformed-Pw-9090")
	for range 6 { // failures, then locked
		f.login("acme", "Wrong-Pw-1234")
	}
	for range 30 { // rate-limited
		f.login("acme", "Wrong-Pw-1234")
	}
	evs := auditEvents(t, f.s)
	seen := map[string]bool{}
	for _, ev := range evs {
		seen[ev.Action] = true
		raw, _ := json.Marshal(ev)
		for _, pw := range passwords {
			if strings.Contains(string(raw), pw) {
				t.Errorf("audit entry %d holds a password: %s", ev.Seq, raw)
			}
		}
	}
	for _, a := range []string{"login.success", "login.failure", "login.locked", "login.ratelimited", "enterprise.password.upgrade"} {
		if !seen[a] {
			t.Errorf("no %s event among %v", a, seen)
		}
	}
	for _, pw := range passwords {
		if strings.Contains(f.logs.String(), pw) {
			t.Errorf("the log holds a password:\n%s", f.logs)
		}
	}
}

func TestNewGuardChecks(t *testing.T) {
	s := openStore(t)
	inner := &counting{}
	for name, o := range map[string]GuardOptions{
		"no store":    {Name: "local"},
		"no name":     {Store: s},
		"negative":    {Store: s, Name: "local", PerIPRate: -1},
		"max < base":  {Store: s, Name: "local", Lockout: store.LockoutPolicy{Base: time.Hour, Max: time.Minute}},
		"neg lockout": {Store: s, Name: "local", Lockout: store.LockoutPolicy{Threshold: -1}},
	} {
		if _, err := NewGuard(inner, o); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := NewGuard(nil, GuardOptions{Store: s, Name: "local"}); err == nil {
		t.Error("no authenticator: accepted")
	}
	g, err := NewGuard(inner, GuardOptions{Store: s, Name: "local"})
	if err != nil {
		t.Fatal(err)
	}
	if g.lockout != (store.LockoutPolicy{Threshold: 5, Base: time.Minute, Max: time.Hour}) || g.ips.rate != 10 || g.ips.burst != 20 || g.ips.full != 2*time.Second {
		t.Errorf("defaults: %+v %+v", g.lockout, g.ips)
	}
}

// TestGuardForgetsOldFailures: login counts untouched for a day are
// deleted (a spray of random usernames must not grow the table for ever),
// recent ones are kept.
func TestGuardForgetsOldFailures(t *testing.T) {
	f := newGuardFixture(t, GuardOptions{})
	for range 4 {
		f.login("acme", "wrong-password")
		f.login("ghost-1", "wrong-password")
	}
	f.clock.Add(23 * time.Hour)
	f.login("ghost-2", "wrong-password") // recent: kept
	if st := f.state("acme"); st.Failures != 4 {
		t.Fatalf("acme after 23 h: %+v, want 4 failures kept", st)
	}
	f.clock.Add(2 * time.Hour)
	f.login("ghost-3", "wrong-password") // due: prunes what is older than a day
	for _, u := range []string{"acme", "ghost-1"} {
		if st := f.state(u); st != (store.LoginState{}) {
			t.Errorf("%s after 25 h: %+v, want forgotten", u, st)
		}
	}
	if st := f.state("ghost-2"); st.Failures != 1 {
		t.Errorf("ghost-2 (2 h old): %+v, want kept", st)
	}
	// Forgotten means counted from zero: four more failures do not lock.
	for range 4 {
		f.login("acme", "wrong-password")
	}
	if e, err := f.login("acme", "right-password"); err != nil || e == nil {
		t.Fatalf("after 4 new failures: %v", err)
	}
}
