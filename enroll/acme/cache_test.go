package acme

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/zbca/zbca/internal/zerr"
	"github.com/zbca/zbca/store"
)

const testJWK = `{"kty":"EC","crv":"P-256","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}`

// fakeAccounts is the store's side of the account cache: one account whose
// status the test changes, and a count of reads.
type fakeAccounts struct {
	mu     sync.Mutex
	status string
	reads  int
	// gate, when set, holds a read after it has taken the status.
	gate chan struct{}
}

func (f *fakeAccounts) set(status string) { f.mu.Lock(); f.status = status; f.mu.Unlock() }

func (f *fakeAccounts) readCount() int { f.mu.Lock(); defer f.mu.Unlock(); return f.reads }

func (f *fakeAccounts) load(_ context.Context, id string) (*store.ACMEAccount, error) {
	if id != "a" {
		return nil, zerr.New(zerr.NotFound, "no account %s", id)
	}
	f.mu.Lock()
	f.reads++
	a := &store.ACMEAccount{ID: id, JWK: testJWK, Status: f.status, Username: "alpha", EnterpriseID: 1}
	f.mu.Unlock()
	if f.gate != nil {
		<-f.gate
	}
	return a, nil
}

func newTestCache(f *fakeAccounts, now *time.Time) *accountCache {
	return &accountCache{load: f.load, ttl: time.Minute, max: 2, now: func() time.Time { return *now }, m: map[string]cachedAccount{}}
}

func TestAccountCache(t *testing.T) {
	ctx := context.Background()
	now := time.Unix(1e9, 0)
	f := &fakeAccounts{status: "valid"}
	c := newTestCache(f, &now)

	a, k, err := c.get(ctx, "a")
	if err != nil || a.Status != "valid" || k == nil || !k.Valid() {
		t.Fatalf("first get: %+v %v %v", a, k, err)
	}
	// Callers change their copy, never the cached account.
	a.Status = "deactivated"
	if a2, _, _ := c.get(ctx, "a"); a2.Status != "valid" || f.readCount() != 1 {
		t.Fatalf("second get: %+v after %d reads; want the cached valid account", a2, f.readCount())
	}
	// A change made here is seen at once.
	f.set("deactivated")
	c.drop("a")
	if a3, _, _ := c.get(ctx, "a"); a3.Status != "deactivated" {
		t.Fatalf("after drop: %s", a3.Status)
	}
	// A change made elsewhere is seen after the TTL.
	f.set("revoked")
	now = now.Add(time.Minute + time.Second)
	if a4, _, _ := c.get(ctx, "a"); a4.Status != "revoked" {
		t.Fatalf("after the TTL: %s", a4.Status)
	}
	// Missing accounts are the loader's NotFound and not cached.
	if _, _, err := c.get(ctx, "b"); !errors.Is(err, zerr.NotFound) {
		t.Fatalf("missing account: %v", err)
	}
	if len(c.m) != 1 {
		t.Fatalf("%d cached entries, want 1", len(c.m))
	}
}

// TestAccountCacheRace: a read that took the account before a deactivation
// and finishes after it must not put the valid account back in the cache.
func TestAccountCacheRace(t *testing.T) {
	ctx := context.Background()
	now := time.Unix(1e9, 0)
	f := &fakeAccounts{status: "valid", gate: make(chan struct{})}
	c := newTestCache(f, &now)
	done := make(chan *store.ACMEAccount)
	go func() {
		a, _, _ := c.get(ctx, "a") // reads "valid", then waits at the gate
		done <- a
	}()
	// The deactivation commits and drops the account while that read is
	// held; then the read finishes.
	for f.readCount() == 0 {
		time.Sleep(time.Millisecond)
	}
	f.set("deactivated")
	c.drop("a")
	close(f.gate)
	if a := <-done; a.Status != "valid" {
		t.Fatalf("the raced read: %s", a.Status)
	}
	if a, _, _ := c.get(ctx, "a"); a.Status != "deactivated" {
		t.Fatalf("after the race the cache says %s, want deactivated", a.Status)
	}
}
