package acme

import (
	"context"
	"errors"
	"sync"
	"testing"

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

// TestAccountCache: the account is read on every request (a change made
// by another node counts at the next one); its parsed key is kept.
func TestAccountCache(t *testing.T) {
	ctx := context.Background()
	f := &fakeAccounts{status: "valid"}
	c := newAccountCache(f.load, 2)

	a, k, err := c.get(ctx, "a")
	if err != nil || a.Status != "valid" || k == nil || !k.Valid() {
		t.Fatalf("first get: %+v %v %v", a, k, err)
	}
	// A change made elsewhere is seen at the next request.
	f.set("deactivated")
	a2, k2, _ := c.get(ctx, "a")
	if a2.Status != "deactivated" || f.readCount() != 2 {
		t.Fatalf("second get: %+v after %d reads; want the deactivated account, read again", a2, f.readCount())
	}
	if k2 != k {
		t.Error("the key was parsed again")
	}
	// Missing accounts are the loader's NotFound.
	if _, _, err := c.get(ctx, "b"); !errors.Is(err, zerr.NotFound) {
		t.Fatalf("missing account: %v", err)
	}
	if len(c.keys) != 1 {
		t.Fatalf("%d cached keys, want 1", len(c.keys))
	}
}
