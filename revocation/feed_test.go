package revocation

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"database/sql"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/crypto/ocsp"

	"github.com/zbca/zbca/ca"
	"github.com/zbca/zbca/internal/ocspder"
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
	if err := f.feed.catchUp(ctx); err != nil {
		t.Fatal(err)
	}
	head, _ := f.st.FeedHead(ctx)
	if f.feed.Reloads.Load() != 1 || f.feed.Applied() != head || head <= applied {
		t.Fatalf("after a gap: %d reloads, applied %d, head %d", f.feed.Reloads.Load(), f.feed.Applied(), head)
	}
	if st, ok := f.feed.o.OCSP.status(serial); !ok || !st.Revoked {
		t.Fatalf("the revocation in the pruned changes is not in the table: %+v ok=%v", st, ok)
	}
	// Nothing new: no reload.
	if err := f.feed.catchUp(ctx); err != nil || f.feed.Reloads.Load() != 1 {
		t.Fatalf("a quiet read: %v, %d reloads", err, f.feed.Reloads.Load())
	}
}

// TestFeedRestoredDatabase: the database goes back to a backup taken two
// changes ago while the node runs, and new commits hand the same numbers
// out again — a revocation among them — before the feed reads. The feed
// finds that the change it applied last is no longer the one under its
// number and reloads: the revocation is not missed. Also when the head
// simply went back (no new commits).
func TestFeedRestoredDatabase(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, nil)
	victim := f.issue(t)
	f.issue(t)
	f.issue(t)
	f.tasks.Stop(5 * time.Second) // apply by hand from here
	a := f.feed.Applied()
	raw, err := sql.Open("sqlite", filepath.Join(f.dir, "zbca.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	// The "restore": the last two changes are gone.
	if _, err := raw.ExecContext(ctx, `DELETE FROM status_changes WHERE seq > ?`, a-2); err != nil {
		t.Fatal(err)
	}
	serial := ca.SerialHex(victim.SerialNumber)
	if _, err := f.st.Revoke(ctx, store.RevokeRequest{Serial: serial, Reason: 1, Actor: "after-restore"}); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		f.issueBehind(t)
	}
	if head, _ := f.st.FeedHead(ctx); head != a+1 {
		t.Fatalf("head %d, want %d (numbers handed out again)", head, a+1)
	}
	if err := f.feed.catchUp(ctx); err != nil {
		t.Fatal(err)
	}
	if f.feed.Reloads.Load() != 1 {
		t.Fatalf("%d reloads after the numbers were handed out again", f.feed.Reloads.Load())
	}
	f.feed.lastRead.Store(int64(time.Since(f.feed.start))) // trusted: just read
	if st, ok := f.feed.Status(ctx, serial); !ok || !st.Revoked {
		t.Fatalf("the revocation made after the restore: %+v ok=%v", st, ok)
	}
	// The head goes back with no new commits.
	head, _ := f.st.FeedHead(ctx)
	if _, err := raw.ExecContext(ctx, `DELETE FROM status_changes WHERE seq > ?`, head-1); err != nil {
		t.Fatal(err)
	}
	if err := f.feed.catchUp(ctx); err != nil {
		t.Fatal(err)
	}
	if f.feed.Reloads.Load() != 2 || f.feed.Applied() != head-1 {
		t.Fatalf("after the head went back: %d reloads, applied %d, head %d", f.feed.Reloads.Load(), f.feed.Applied(), head-1)
	}
}

// issueBehind issues without waiting for the feed (it is stopped).
func (f *fixture) issueBehind(t testing.TB) {
	t.Helper()
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, k)
	csr, _ := x509.ParseCertificateRequest(der)
	if _, err := f.a.Issue(context.Background(), ca.IssueRequest{CSR: csr, Username: "acme", Actor: "test", KeepActive: 100}); err != nil {
		t.Fatal(err)
	}
}

// TestRevokeWhileFeedStopped: a revocation committed while the node's feed
// cannot apply it (a node shutting down, a database that stopped
// answering the feed's reads) is reported as done after the wait — it is
// stored — and verification does not answer from the stale table.
func TestRevokeWhileFeedStopped(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, nil)
	c := f.issue(t)
	f.tasks.Stop(5 * time.Second)
	serial := ca.SerialHex(c.SerialNumber)
	rec, err := f.svc.Revoke(ctx, serial, KeyCompromise, "test", ByOperator)
	if err != nil || rec == nil || rec.Status != store.CertRevoked {
		t.Fatalf("Revoke: %+v, %v", rec, err)
	}
	if _, ok := f.feed.Status(ctx, serial); ok {
		t.Error("verification answered from a table the feed no longer keeps")
	}
}

// TestCompactUnsignedEntries: a shard without any signature chunk holding
// a certificate past its grace beside a live one not signed yet (applied
// after the signing pass, or whose signing failed) compacts without
// panicking; the live one stays, unsigned.
func TestCompactUnsignedEntries(t *testing.T) {
	f := newFixture(t, func(o *ResponderOptions) { o.ExpiredGrace = time.Hour })
	f.tasks.Stop(5 * time.Second)
	last := -1
	for b := range shards {
		if sh := &f.resp.shards[b]; len(sh.ents) == 0 && len(sh.chunks) == 0 {
			last = b
			break
		}
	}
	if last < 0 {
		t.Skip("no empty shard")
	}
	now := time.Now()
	gone, _ := keyOf([]byte{0x5a, 1, 2, 3, 4, 5, 6, byte(last)})
	live, _ := keyOf([]byte{0x5b, 1, 2, 3, 4, 5, 6, byte(last)})
	f.resp.setStatus(gone, 0, ocspder.Revoked, 1, now.UnixNano(), unixSeconds(now.Add(-48*time.Hour)))
	f.resp.setStatus(live, 0, ocspder.Good, 0, 0, unixSeconds(now.AddDate(3, 0, 0)))
	f.resp.compact(now.Unix())
	if _, ok := f.resp.get(gone); ok {
		t.Error("the certificate past its grace stayed")
	}
	if e, ok := f.resp.get(live); !ok || e.sigLen != 0 {
		t.Errorf("the live certificate: %+v ok=%v", e, ok)
	}
}

// TestCompactKeepsSignedEntries: a shard of many signed certificates, a
// third of them past their grace, compacts to exactly the others, each
// with its own status and signature byte for byte (the rebuild reads the
// old entries while it fills the new ones).
func TestCompactKeepsSignedEntries(t *testing.T) {
	f := newFixture(t, func(o *ResponderOptions) { o.ExpiredGrace = time.Hour })
	f.tasks.Stop(5 * time.Second)
	now := time.Now()
	type kept struct {
		e   entry
		sig []byte
	}
	const shard = 0x42
	want := map[serialKey]kept{}
	var gone []serialKey
	for i := range 90 {
		k, _ := keyOf([]byte{0x33, byte(i), 7, shard})
		notAfter := now.AddDate(1, 0, 0)
		status := int8(ocspder.Good)
		if i%3 == 0 {
			notAfter = now.Add(-48 * time.Hour)
		}
		if i%5 == 0 {
			status = ocspder.Revoked
		}
		f.resp.setStatus(k, 0, status, 1, now.UnixNano(), unixSeconds(notAfter))
		e, _ := f.resp.get(k)
		if i%7 != 0 { // some stay unsigned
			if _, err := f.resp.signKeep(k, e); err != nil {
				t.Fatal(err)
			}
		}
		if i%3 == 0 {
			gone = append(gone, k)
		}
	}
	sh := &f.resp.shards[shard]
	snapshot := func() {
		sh.mu.RLock()
		defer sh.mu.RUnlock()
		for k, i := range sh.idx {
			e := sh.ents[i]
			if e.notAfter != 0 && int64(e.notAfter) < now.Unix()-3600 {
				continue
			}
			want[k] = kept{e, append([]byte(nil), sh.sig(&e)...)}
		}
	}
	snapshot()
	if n := sh.compact(now.Unix() - 3600); n != len(gone) {
		t.Fatalf("dropped %d, want %d", n, len(gone))
	}
	for _, k := range gone {
		if _, ok := f.resp.get(k); ok {
			t.Errorf("%x stayed", k.bytes())
		}
	}
	sh.mu.RLock()
	defer sh.mu.RUnlock()
	if len(sh.idx) != len(want) || len(sh.ents) != len(want) {
		t.Fatalf("%d entries after, want %d", len(sh.ents), len(want))
	}
	for k, w := range want {
		i, ok := sh.idx[k]
		if !ok {
			t.Fatalf("%x lost", k.bytes())
		}
		e := sh.ents[i]
		if e.status != w.e.status || e.notAfter != w.e.notAfter || e.sigLen != w.e.sigLen || e.thisUpdate != w.e.thisUpdate || !bytes.Equal(sh.sig(&e), w.sig) {
			t.Errorf("%x: %+v, was %+v", k.bytes(), e, w.e)
		}
	}
}
