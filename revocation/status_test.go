package revocation

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/zbca/zbca/ca"
	"github.com/zbca/zbca/store"
)

// TestStatusFromMemory: with the store's change counter, Status answers
// from memory, and a revocation committed by another store handle (as by
// `zbca cert revoke --offline` in another process) counts at the very next
// call, without the background poll, with the store's exact time and
// reason. Without a counter it declines (the caller reads the store).
func TestStatusFromMemory(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, func(o *ResponderOptions) { o.Changes = o.Source.(*store.SQL).ChangeCounter() })
	c := f.issue(t)
	serial := ca.SerialHex(c.SerialNumber)
	st, ok := f.resp.Status(ctx, serial)
	if !ok || st.Revoked {
		t.Fatalf("just issued: %+v ok=%v", st, ok)
	}
	if _, ok := f.resp.Status(ctx, "123456789abcdef"); ok {
		t.Error("an unknown serial was answered from memory")
	}

	other, err := store.Open(ctx, store.Options{Path: filepath.Join(f.dir, "zbca.db")})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if _, err := other.Revoke(ctx, store.RevokeRequest{Serial: serial, Reason: int(KeyCompromise), At: time.Now(), Actor: "elsewhere"}); err != nil {
		t.Fatal(err)
	}
	syncs := f.resp.Stats.Syncs.Load()
	st, ok = f.resp.Status(ctx, serial)
	want, found, err := f.st.CertRevocation(ctx, serial)
	if err != nil || !found {
		t.Fatal(err)
	}
	if !ok || st != want || !st.Revoked || st.Reason != int(KeyCompromise) {
		t.Fatalf("after a revocation elsewhere: %+v ok=%v, the store says %+v", st, ok, want)
	}
	if f.resp.Stats.Syncs.Load() != syncs+1 {
		t.Errorf("synchronous polls %d → %d, want one", syncs, f.resp.Stats.Syncs.Load())
	}
	// Nothing committed since: no further poll.
	for range 100 {
		f.resp.Status(ctx, serial)
	}
	if n := f.resp.Stats.Syncs.Load(); n != syncs+1 {
		t.Errorf("%d polls without a commit", n-syncs-1)
	}

	plain := newFixture(t, nil)
	c = plain.issue(t)
	if _, ok := plain.resp.Status(ctx, ca.SerialHex(c.SerialNumber)); ok {
		t.Error("answered from memory without a change counter")
	}
}
