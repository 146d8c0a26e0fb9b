package storetest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/zbca/zbca/internal/zerr"
	"github.com/zbca/zbca/store"
)

// SharedStore is a Store that also keeps the state nodes share (sessions,
// used nonces, cluster secrets, rate buckets).
type SharedStore interface {
	Store
	store.SessionStore
	store.NonceStore
	store.ClusterSecrets
	store.RateStore
}

// testShared runs the shared-state cases on one store.
func testShared(t *testing.T, h Harness) {
	open := func(t *testing.T) (SharedStore, func(q string) int64) {
		s, raw := h.Open(t)
		ss, ok := s.(SharedStore)
		if !ok {
			t.Fatalf("%T does not keep shared state", s)
		}
		count := func(q string) int64 {
			t.Helper()
			var n int64
			if err := raw.QueryRow(q).Scan(&n); err != nil {
				t.Fatal(err)
			}
			return n
		}
		return ss, count
	}
	t.Run("Sessions", func(t *testing.T) { s, c := open(t); testSessions(t, s, c) })
	t.Run("UsedNonces", func(t *testing.T) { s, _ := open(t); testUsedNonces(t, s) })
	t.Run("ClusterSecret", func(t *testing.T) { s, _ := open(t); testClusterSecret(t, s) })
	t.Run("RateBuckets", func(t *testing.T) { s, _ := open(t); testRateBuckets(t, s) })
	t.Run("ConcurrentRateBucket", func(t *testing.T) { s, _ := open(t); testConcurrentRateBucket(t, s) })
}

var t0 = time.Date(2027, 3, 1, 8, 0, 0, 0, time.UTC)

func testSessions(t *testing.T, s SharedStore, count func(q string) int64) {
	ctx := context.Background()
	addEnterprise(t, s, "acme")
	addEnterprise(t, s, "beta")
	if err := s.CreateSession(ctx, "token-a", "acme", 0, t0.Add(10*time.Minute)); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateSession(ctx, "token-b", "beta", 0, t0.Add(20*time.Minute)); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateSession(ctx, "token-a", "other", 0, t0.Add(time.Hour)); !errors.Is(err, zerr.Conflict) {
		t.Errorf("same token twice: %v, want Conflict", err)
	}
	// Only the SHA-256 of the token is stored.
	sum := sha256.Sum256([]byte("token-a"))
	if n := count(`SELECT COUNT(*) FROM portal_sessions WHERE token_hash = 'token-a'`); n != 0 {
		t.Error("the session token itself is stored")
	}
	if n := count(`SELECT COUNT(*) FROM portal_sessions WHERE token_hash = '` + hex.EncodeToString(sum[:]) + `' AND username = 'acme'`); n != 1 {
		t.Error("the session is not stored under the SHA-256 of its token")
	}
	for _, tc := range []struct {
		token string
		at    time.Time
		want  string
	}{
		{"token-a", t0, "acme"},
		{"token-a", t0.Add(10*time.Minute - time.Nanosecond), "acme"},
		{"token-a", t0.Add(10 * time.Minute), ""}, // expired: as if absent
		{"token-b", t0.Add(10 * time.Minute), "beta"},
		{"unknown", t0, ""},
		{"", t0, ""},
	} {
		u, _, found, err := s.Session(ctx, tc.token, tc.at)
		if err != nil || u != tc.want || found != (tc.want != "") {
			t.Errorf("Session(%q, %v) = %q, %v, %v; want %q", tc.token, tc.at, u, found, err, tc.want)
		}
	}
	// Logout.
	if err := s.DeleteSession(ctx, "token-b"); err != nil {
		t.Fatal(err)
	}
	if _, _, found, _ := s.Session(ctx, "token-b", t0); found {
		t.Error("a deleted session is still found")
	}
	if err := s.DeleteSession(ctx, "never-was"); err != nil {
		t.Errorf("deleting an unknown session: %v", err)
	}
	// Prune: expired rows only, at most limit at a time.
	for i := range 5 {
		if err := s.CreateSession(ctx, fmt.Sprint("old-", i), "acme", 0, t0.Add(time.Duration(i)*time.Second)); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := s.PruneSessions(ctx, t0.Add(time.Minute), 3); err != nil || n != 3 {
		t.Fatalf("PruneSessions(limit 3) = %d, %v", n, err)
	}
	if n, err := s.PruneSessions(ctx, t0.Add(time.Minute), 0); err != nil || n != 2 {
		t.Fatalf("PruneSessions(no limit) = %d, %v; want the 2 other expired ones", n, err)
	}
	if u, _, _, _ := s.Session(ctx, "token-a", t0); u != "acme" {
		t.Error("pruning removed a live session")
	}
	// A session of an older credential epoch, or of a disabled
	// enterprise, is as if absent; enabling again revives nothing.
	if err := s.CreateSession(ctx, "token-c", "beta", 0, t0.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := s.SetEnterpriseStatus(ctx, "beta", store.StatusDisabled, ev("enterprise.disable", "beta")); err != nil {
		t.Fatal(err)
	}
	if _, _, found, _ := s.Session(ctx, "token-c", t0); found {
		t.Error("a session of a disabled enterprise is found")
	}
	if err := s.SetEnterpriseStatus(ctx, "beta", store.StatusActive, ev("enterprise.enable", "beta")); err != nil {
		t.Fatal(err)
	}
	if _, _, found, _ := s.Session(ctx, "token-c", t0); found {
		t.Error("enable revived a session made before disable")
	}
	if err := s.CreateSession(ctx, "token-d", "acme", 0, t0.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.EndAccess(ctx, "acme", ev("enterprise.logout", "acme")); err != nil {
		t.Fatal(err)
	}
	for _, tok := range []string{"token-a", "token-d"} {
		if _, _, found, _ := s.Session(ctx, tok, t0); found {
			t.Errorf("session %s lives after EndAccess", tok)
		}
	}
	if err := s.CreateSession(ctx, "token-e", "acme", 1, t0.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if u, epoch, found, _ := s.Session(ctx, "token-e", t0); !found || u != "acme" || epoch != 1 {
		t.Error("a session of the current epoch is not found")
	}
}

func testUsedNonces(t *testing.T, s SharedStore) {
	ctx := context.Background()
	use := func(n string, exp time.Time) bool {
		t.Helper()
		fresh, err := s.UseNonce(ctx, n, exp)
		if err != nil {
			t.Fatal(err)
		}
		return fresh
	}
	if !use("n1", t0.Add(time.Minute)) {
		t.Fatal("a new nonce is not fresh")
	}
	if use("n1", t0.Add(time.Minute)) {
		t.Fatal("a nonce was fresh twice")
	}
	if !use("n2", t0.Add(time.Hour)) {
		t.Fatal("another nonce is not fresh")
	}
	// Of many uses at once, one is fresh.
	var wg sync.WaitGroup
	var mu sync.Mutex
	fresh := 0
	for range 20 {
		wg.Go(func() {
			ok, err := s.UseNonce(ctx, "n3", t0.Add(time.Minute))
			if err != nil {
				t.Error(err)
			}
			mu.Lock()
			defer mu.Unlock()
			if ok {
				fresh++
			}
		})
	}
	wg.Wait()
	if fresh != 1 {
		t.Fatalf("%d of 20 concurrent uses of one nonce were fresh", fresh)
	}
	// Prune forgets the expired ones only.
	if n, err := s.PruneNonces(ctx, t0.Add(30*time.Minute), 100); err != nil || n != 2 {
		t.Fatalf("PruneNonces = %d, %v; want 2 (n1, n3)", n, err)
	}
	if use("n2", t0.Add(time.Hour)) {
		t.Fatal("pruning forgot a nonce that has not expired")
	}
}

func testClusterSecret(t *testing.T, s SharedStore) {
	ctx := context.Background()
	const n = 8
	got := make([][]byte, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			v, err := s.ClusterSecret(ctx, "test-key")
			if err != nil {
				t.Error(err)
			}
			got[i] = v
		})
	}
	wg.Wait()
	if len(got[0]) != 32 || bytes.Equal(got[0], make([]byte, 32)) {
		t.Fatalf("secret %x", got[0])
	}
	for i := range got {
		if !bytes.Equal(got[i], got[0]) {
			t.Fatalf("ClusterSecret answered different secrets: %x, %x", got[0], got[i])
		}
	}
	if again, err := s.ClusterSecret(ctx, "test-key"); err != nil || !bytes.Equal(again, got[0]) {
		t.Fatalf("second read: %x %v", again, err)
	}
	if other, err := s.ClusterSecret(ctx, "other-key"); err != nil || bytes.Equal(other, got[0]) {
		t.Fatalf("another name: %x %v", other, err)
	}
	if _, err := s.ClusterSecret(ctx, ""); err == nil {
		t.Error("a secret without a name")
	}
}

// take is TakeToken at rate 1/s, burst 3.
func take(t *testing.T, s store.RateStore, bucket string, at time.Time) (ok, first bool) {
	t.Helper()
	ok, first, err := s.TakeToken(context.Background(), bucket, at, 1, 3)
	if err != nil {
		t.Fatal(err)
	}
	return ok, first
}

func testRateBuckets(t *testing.T, s SharedStore) {
	ctx := context.Background()
	// A new bucket is full: the burst, then refusals, the first marked.
	for i := range 3 {
		if ok, _ := take(t, s, "a", t0); !ok {
			t.Fatalf("take %d within the burst refused", i+1)
		}
	}
	for i, wantFirst := range []bool{true, false, false} {
		if ok, first := take(t, s, "a", t0); ok || first != wantFirst {
			t.Fatalf("refusal %d: ok %v first %v, want false %v", i+1, ok, first, wantFirst)
		}
	}
	// Another bucket is not touched.
	if ok, _ := take(t, s, "b", t0); !ok {
		t.Fatal("another bucket was refused")
	}
	// Refill: one token per second, not more than the burst.
	if ok, _ := take(t, s, "a", t0.Add(500*time.Millisecond)); ok {
		t.Fatal("a token before a second had passed")
	}
	if ok, _ := take(t, s, "a", t0.Add(time.Second)); !ok {
		t.Fatal("no token after a second")
	}
	// The next refusal starts a new run: first again.
	if ok, first := take(t, s, "a", t0.Add(time.Second)); ok || !first {
		t.Fatalf("refusal after an allowed take: ok %v first %v", ok, first)
	}
	// A clock that goes back refills nothing.
	if ok, _ := take(t, s, "a", t0.Add(-time.Hour)); ok {
		t.Fatal("a clock going back refilled the bucket")
	}
	// After a long pause the bucket holds the burst, no more.
	later := t0.Add(time.Hour)
	for i := range 3 {
		if ok, _ := take(t, s, "a", later); !ok {
			t.Fatalf("take %d after an hour refused", i+1)
		}
	}
	if ok, _ := take(t, s, "a", later); ok {
		t.Fatal("more than the burst after an hour")
	}
	// Prune: buckets idle since before go, busy ones stay.
	if n, err := s.PruneRateBuckets(ctx, t0.Add(time.Minute), 100); err != nil || n != 1 {
		t.Fatalf("PruneRateBuckets = %d, %v; want 1 (b)", n, err)
	}
	if ok, _ := take(t, s, "a", later); ok {
		t.Fatal("pruning reset a busy bucket")
	}
	if _, _, err := s.TakeToken(ctx, "c", t0, 0, 3); err == nil {
		t.Error("a zero rate was accepted")
	}
	if _, _, err := s.TakeToken(ctx, "c", t0, 1, 0); err == nil {
		t.Error("a zero burst was accepted")
	}
}

// testConcurrentRateBucket: of many takes at one instant, exactly the
// burst are allowed, and exactly one refusal is the first.
func testConcurrentRateBucket(t *testing.T, s SharedStore) {
	ConcurrentTakes(t, []store.RateStore{s})
}

// ConcurrentTakes runs 40 simultaneous takes (burst 10, no refill) spread
// over stores that share one database: exactly 10 are allowed and one
// refusal is marked first.
func ConcurrentTakes(t *testing.T, stores []store.RateStore) {
	t.Helper()
	const n, burst = 40, 10
	var wg sync.WaitGroup
	var mu sync.Mutex
	allowed, firsts := 0, 0
	for i := range n {
		s := stores[i%len(stores)]
		wg.Go(func() {
			ok, first, err := s.TakeToken(context.Background(), "hot", t0, 1e-9, burst)
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			defer mu.Unlock()
			if ok {
				allowed++
			}
			if first {
				firsts++
			}
		})
	}
	wg.Wait()
	if allowed != burst || firsts != 1 {
		t.Errorf("%d of %d takes allowed, %d first refusals; want %d and 1", allowed, n, firsts, burst)
	}
}
