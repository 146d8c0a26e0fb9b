package revocation

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/crypto/ocsp"

	"github.com/zbca/zbca/ca"
	"github.com/zbca/zbca/store"
)

// waitFor polls cond every millisecond for up to d.
func waitFor(d time.Duration, cond func() bool) bool {
	for start := time.Now(); time.Since(start) < d; time.Sleep(time.Millisecond) {
		if cond() {
			return true
		}
	}
	return cond()
}

// TestFeedStatusFromMemory: verification's view (Feed.Status) answers from
// the table; a revocation acknowledged by this node counts at once; one
// committed by another process on the same SQLite file (as `zbca cert
// revoke --offline` does), which announces nothing, counts within the
// feed's poll, with the store's exact time and reason.
func TestFeedStatusFromMemory(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, nil)
	c := f.issue(t)
	serial := ca.SerialHex(c.SerialNumber)
	st, ok := f.feed.Status(ctx, serial)
	if !ok || st.Revoked {
		t.Fatalf("just issued: %+v ok=%v", st, ok)
	}
	if _, ok := f.feed.Status(ctx, "123456789abcdef"); ok {
		t.Error("an unknown serial was answered from memory")
	}
	mine := ca.SerialHex(f.issue(t).SerialNumber)
	if _, err := f.svc.Revoke(ctx, mine, AffiliationChanged, "test", ByOperator); err != nil {
		t.Fatal(err)
	}
	if st, ok := f.feed.Status(ctx, mine); !ok || !st.Revoked || st.Reason != int(AffiliationChanged) {
		t.Fatalf("right after this node's revocation: %+v ok=%v", st, ok)
	}

	other, err := store.Open(ctx, store.Options{Path: filepath.Join(f.dir, "zbca.db")})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	start := time.Now()
	if _, err := other.Revoke(ctx, store.RevokeRequest{Serial: serial, Reason: int(KeyCompromise), At: time.Now(), Actor: "elsewhere"}); err != nil {
		t.Fatal(err)
	}
	if !waitFor(time.Second, func() bool { st, ok := f.feed.Status(ctx, serial); return ok && st.Revoked }) {
		t.Fatal("a revocation by another process not seen within 1 s")
	}
	t.Logf("another process's revocation seen after %v (poll 20 ms)", time.Since(start).Round(time.Millisecond))
	st, _ = f.feed.Status(ctx, serial)
	want, found, err := f.st.CertRevocation(ctx, serial)
	if err != nil || !found || st != want || st.Reason != int(KeyCompromise) {
		t.Fatalf("memory %+v, the store %+v (%v)", st, want, err)
	}
	rec := post(t, f.resp, ocspRequest(t, c, f.a.Issuing(), crypto.SHA1))
	if r, err := ocsp.ParseResponseForCert(rec.Body.Bytes(), c, f.a.Issuing()); err != nil || r.Status != ocsp.Revoked {
		t.Fatalf("OCSP after the other process's revocation: %v %+v", err, r)
	}
}

// lostSource is a store whose notification connection is lost, then
// (when told) comes back.
type lostSource struct {
	*store.SQL
	back chan struct{}
}

func (s *lostSource) Listen(ctx context.Context, fn func(store.Change)) {
	fn(store.Change{Kind: store.ChangeLost})
	select {
	case <-s.back:
		fn(store.Change{Kind: store.ChangeResync})
	case <-ctx.Done():
	}
}

// TestFeedNotTrusted: while notifications are lost, or when the feed has
// not been read within its trust window, verification's view declines
// (the caller reads the store); it answers again once both are back.
func TestFeedNotTrusted(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	f := newFixture(t, nil)
	serial := ca.SerialHex(f.issue(t).SerialNumber)
	f.tasks.Stop(5 * time.Second) // the fixture's own feed
	src := &lostSource{SQL: f.st, back: make(chan struct{})}
	feed, err := NewFeed(FeedOptions{Source: src, OCSP: f.resp, Notified: true, Poll: 20 * time.Millisecond, TrustWindow: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if err := feed.Load(ctx); err != nil {
		t.Fatal(err)
	}
	if _, ok := feed.Status(ctx, serial); ok {
		t.Fatal("answered before the notifications ever connected")
	}
	go feed.Run(ctx)
	time.Sleep(100 * time.Millisecond)
	if _, ok := feed.Status(ctx, serial); ok {
		t.Fatal("answered from memory with notifications lost")
	}
	close(src.back)
	if !waitFor(time.Second, func() bool { _, ok := feed.Status(ctx, serial); return ok }) {
		t.Fatal("not trusted again after the notifications came back")
	}
	cancel() // the feed stops being read
	if !waitFor(time.Second, func() bool { _, ok := feed.Status(ctx, serial); return !ok }) {
		t.Fatal("still trusted a second after the feed stopped being read (window 200 ms)")
	}
}

// TestFeedReloadsAfterGap: a reader further behind than the store keeps
// changes reloads every status instead of skipping the pruned ones; one
// whose head went back (a restored database) reloads too.
func TestFeedReloadsAfterGap(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, nil)
	keep := f.issue(t)
	f.tasks.Stop(5 * time.Second) // apply by hand from here
	applied := f.feed.Applied()
	other, err := store.Open(ctx, store.Options{Path: filepath.Join(f.dir, "zbca.db")})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	serial := ca.SerialHex(keep.SerialNumber)
	if _, err := other.Revoke(ctx, store.RevokeRequest{Serial: serial, Reason: int(KeyCompromise), Actor: "elsewhere"}); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		der, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, k)
		csr, _ := x509.ParseCertificateRequest(der)
		if _, err := f.a.Issue(ctx, ca.IssueRequest{CSR: csr, Username: "acme", Actor: "test"}); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := other.PruneFeed(ctx, 2); err != nil || n == 0 {
		t.Fatalf("pruned %d, %v", n, err)
	}
	if err := f.feed.catchUp(ctx, false); err != nil {
		t.Fatal(err)
	}
	head, _ := f.st.FeedHead(ctx)
	if f.feed.Reloads.Load() != 1 || f.feed.Applied() != head || head <= applied {
		t.Fatalf("after a gap: %d reloads, applied %d, head %d", f.feed.Reloads.Load(), f.feed.Applied(), head)
	}
	if st, ok := f.feed.o.OCSP.status(serial); !ok || !st.Revoked {
		t.Fatalf("the revocation in the pruned changes is not in the table: %+v ok=%v", st, ok)
	}
	// The head goes back (here: the reader is told it applied more than
	// there is).
	f.feed.advance(head + 100)
	if err := f.feed.catchUp(ctx, true); err != nil {
		t.Fatal(err)
	}
	if f.feed.Reloads.Load() != 2 || f.feed.Applied() != head {
		t.Fatalf("after the head went back: %d reloads, applied %d, head %d", f.feed.Reloads.Load(), f.feed.Applied(), head)
	}
}
