package store_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/zbca/zbca/store"
)

// openPGPair opens two stores on one PostgreSQL schema: two nodes.
func openPGPair(t *testing.T) (a, b *store.SQL) {
	t.Helper()
	ctx := context.Background()
	st, raw := openPG(t)
	var schema string
	if err := raw.QueryRowContext(ctx, `SELECT current_schema()`).Scan(&schema); err != nil {
		t.Fatal(err)
	}
	other, err := store.Open(ctx, store.Options{Driver: "postgres", DSN: withSearchPath(pgDSN(), schema)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { other.Close() })
	return st.(*store.SQL), other
}

// TestPostgresNotifications: an issuance, a revocation and a CRL stored
// by one node reach the other node's listener, and only at commit: a
// revocation that fails (already revoked) announces nothing. The feed's
// notifications of other schemas (other tests, other deployments on the
// database) are not delivered.
func TestPostgresNotifications(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	a, b := openPGPair(t)
	const serial = "7a6263610001"
	changes := make(chan store.Change, 100)
	go b.Listen(ctx, func(c store.Change) { changes <- c })
	next := func() store.Change {
		t.Helper()
		for {
			select {
			case c := <-changes:
				// The channels are database-wide: other tests' schemas
				// notify too.
				if c.Kind == store.ChangeCRL && c.Key != "issuing-x" {
					continue
				}
				return c
			case <-time.After(5 * time.Second):
				t.Fatal("no notification within 5 s")
				return store.Change{}
			}
		}
	}
	if c := next(); c.Kind != store.ChangeResync {
		t.Fatalf("first change %+v, want the resync of the connection", c)
	}
	ev := func(action, subject string) store.AuditEvent {
		return store.AuditEvent{Actor: "t", Action: action, Subject: subject}
	}
	e := &store.Enterprise{Username: "n1", Name: "N", PasswordHash: "h"}
	if err := a.AddEnterprise(ctx, e, ev("enterprise.add", "n1")); err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC().Truncate(time.Second)
	if err := a.JournalSerial(ctx, store.JournalEntry{Serial: serial, EnterpriseID: e.ID, Profile: store.ProfileClient, Issuer: "aa", Node: "n", Boot: "b", SPKISHA256: "s"}, ev("cert.signing", serial)); err != nil {
		t.Fatal(err)
	}
	if err := a.StoreCertificate(ctx, &store.Certificate{Serial: serial, EnterpriseID: e.ID, Profile: store.ProfileClient, Issuer: "aa", Subject: "CN=x",
		NotBefore: now, NotAfter: now.AddDate(3, 0, 0), DER: []byte{0x30, 0}, SPKISHA256: "s", FingerprintSHA256: "f"}, ev("cert.signed", serial)); err != nil {
		t.Fatal(err)
	}
	if c := next(); c.Kind != store.ChangeFeed {
		t.Fatalf("after the issuance: %+v", c)
	}
	start := time.Now()
	if _, err := a.Revoke(ctx, store.RevokeRequest{Serial: serial, Reason: 1, Actor: "t"}); err != nil {
		t.Fatal(err)
	}
	if c := next(); c.Kind != store.ChangeFeed {
		t.Fatalf("after the revocation: %+v", c)
	}
	t.Logf("revocation reached the other node in %v", time.Since(start))
	if _, err := a.Revoke(ctx, store.RevokeRequest{Serial: serial, Reason: 1, Actor: "t"}); err == nil {
		t.Fatal("second revocation accepted")
	}
	n, err := a.NextCRLNumber(ctx, "issuing-x")
	if err != nil {
		t.Fatal(err)
	}
	// Reserved, not yet stored: the head is still "none".
	if _, _, err := b.CRLHead(ctx, "issuing-x"); err == nil {
		t.Fatal("CRLHead before the first CRL was stored")
	}
	if err := a.SaveCRL(ctx, &store.CRL{Name: "issuing-x", Number: n, ThisUpdate: now, NextUpdate: now.Add(time.Hour), DER: []byte{0x30, 0}}); err != nil {
		t.Fatal(err)
	}
	// Only the CRL: the failed second revocation announced nothing.
	if c := next(); c.Kind != store.ChangeCRL {
		t.Fatalf("after the CRL: %+v", c)
	}
	if hn, ba, err := b.CRLHead(ctx, "issuing-x"); err != nil || hn != n || !ba.Equal(now) {
		t.Fatalf("CRLHead = %d %v %v, want %d %v", hn, ba, err, n, now)
	}
	// A number reserved for a CRL still being built does not change what
	// the other node reads.
	if _, err := a.NextCRLNumber(ctx, "issuing-x"); err != nil {
		t.Fatal(err)
	}
	if c, err := b.LatestCRL(ctx, "issuing-x"); err != nil || c.Number != n {
		t.Fatalf("LatestCRL during a build: %+v %v, want number %d", c, err, n)
	}
}

// TestPostgresCRLPublisherLock: while one node holds the publisher lock,
// the other waits; its wait ends with its context.
func TestPostgresCRLPublisherLock(t *testing.T) {
	ctx := context.Background()
	a, b := openPGPair(t)
	unlock, err := a.LockCRLPublisher(ctx)
	if err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	_, err = b.LockCRLPublisher(short)
	cancel()
	if err == nil {
		t.Fatal("second node took the lock while the first held it")
	}
	got := make(chan time.Time, 1)
	go func() {
		u, err := b.LockCRLPublisher(ctx)
		if err != nil {
			t.Error(err)
		} else {
			u()
		}
		got <- time.Now()
	}()
	time.Sleep(200 * time.Millisecond)
	released := time.Now()
	unlock()
	select {
	case at := <-got:
		if at.Before(released) {
			t.Fatal("second node got the lock before it was released")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("second node never got the lock")
	}
}

// TestPostgresClaimNode: a node name is held by one live process at a
// time; released (or its connection gone), it can be claimed again.
func TestPostgresClaimNode(t *testing.T) {
	ctx := context.Background()
	a, b := openPGPair(t)
	release, err := a.ClaimNode(ctx, "node-1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.ClaimNode(ctx, "node-1"); err == nil {
		t.Fatal("a second node claimed node-1 while the first held it")
	}
	r2, err := b.ClaimNode(ctx, "node-2")
	if err != nil {
		t.Fatal(err)
	}
	r2()
	release()
	r3, err := b.ClaimNode(ctx, "node-1")
	if err != nil {
		t.Fatalf("after release: %v", err)
	}
	r3()
}

// TestPostgresNoDeadlockBetweenNodes: two nodes' writers, each grouping a
// row update (a login bucket) and audited writes in one transaction, must
// not deadlock on the row lock against the audit chain's lock (they did:
// "deadlock detected" every second under two nodes' login load).
func TestPostgresNoDeadlockBetweenNodes(t *testing.T) {
	ctx := context.Background()
	a, b := openPGPair(t)
	// The writer retries a batch that failed, so a deadlock shows as a
	// stall of deadlock_timeout (1 s), not as an error: count them.
	admin := pgAdmin(t)
	deadlocks := func() int64 {
		var n int64
		if _, err := admin.ExecContext(ctx, `SELECT pg_stat_clear_snapshot()`); err != nil {
			t.Fatal(err)
		}
		if err := admin.QueryRowContext(ctx, `SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	before := deadlocks()
	var wg sync.WaitGroup
	var mu sync.Mutex
	var errs []error
	stop := time.Now().Add(4 * time.Second)
	for _, s := range []*store.SQL{a, b} {
		for i := range 48 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for time.Now().Before(stop) {
					var err error
					if i%3 == 0 {
						_, _, err = s.TakeToken(ctx, "ip:192.0.2.7", time.Now(), 1e6, 1000)
					} else {
						err = s.AppendAudit(ctx, store.AuditEvent{Actor: "t", Action: "x"})
					}
					if err != nil {
						mu.Lock()
						errs = append(errs, err)
						mu.Unlock()
						return
					}
				}
			}()
		}
	}
	wg.Wait()
	if len(errs) > 0 {
		t.Fatalf("%d writers failed, first: %v", len(errs), errs[0])
	}
	if _, _, err := a.VerifyAudit(ctx); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1500 * time.Millisecond) // backends report their statistics within a second
	if n := deadlocks() - before; n > 0 {
		t.Fatalf("%d deadlocks between the two nodes' writers", n)
	}
}
