package store_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/zbca/zbca/internal/zerr"
	"github.com/zbca/zbca/store"
)

// TestACMEOrderMovesWithItsSerial: an order goes ready → processing in the
// journaling transaction, → valid in the certificate's, → invalid with a
// failed serial (FailSerial, RecoverJournal); a refused serial (order not
// ready, expired, or the policy) changes nothing.
func TestACMEOrderMovesWithItsSerial(t *testing.T) { eachBackend(t, testACMEOrderMoves) }

func testACMEOrderMoves(t *testing.T, s *store.SQL) {
	ctx := context.Background()
	now := time.Now()
	ev := func(a, sub string) store.AuditEvent { return store.AuditEvent{Actor: "test", Action: a, Subject: sub} }
	e := &store.Enterprise{Username: "alpha", Name: "Alpha", PasswordHash: "x"}
	if err := s.AddEnterprise(ctx, e, ev("enterprise.add", "alpha")); err != nil {
		t.Fatal(err)
	}
	if err := s.AddEABKey(ctx, &store.EABKey{KID: "k", HMACKey: []byte("h"), EnterpriseID: e.ID, CreatedAt: now, ExpiresAt: now.Add(time.Hour)}, ev("eab.issue", "k")); err != nil {
		t.Fatal(err)
	}
	acct := &store.ACMEAccount{ID: "acct", Thumbprint: "tp", JWK: "{}", EnterpriseID: e.ID, Contact: "[]", EABKID: "k"}
	if err := s.CreateAccountWithEAB(ctx, acct, now, ev("acme.account.new", "acct")); err != nil {
		t.Fatal(err)
	}
	order := func(id string, expires time.Time) string {
		t.Helper()
		if err := s.AddACMEOrder(ctx, &store.ACMEOrder{ID: id, AccountID: "acct", Status: "ready", Identifier: "alpha", ExpiresAt: expires}, 0); err != nil {
			t.Fatal(err)
		}
		return id
	}
	want := func(id, status, serial string) {
		t.Helper()
		o, err := s.GetACMEOrder(ctx, id)
		if err != nil || o.Status != status || o.Serial != serial {
			t.Fatalf("order %s: %+v, %v; want %s with serial %q", id, o, err, status, serial)
		}
	}
	journal := func(serial, orderID string, maxPerDay int) error {
		return s.JournalSerial(ctx, store.JournalEntry{Serial: serial, EnterpriseID: e.ID, Profile: store.ProfileClient, Issuer: "aa", Node: "n", Boot: "b",
			SPKISHA256: "spki-" + serial, Guards: []store.Guard{store.ACMEOrderGuard(orderID), store.KeyOwnerGuard(), store.DailyLimitGuard(maxPerDay)}}, ev("cert.signing", serial))
	}
	audits := func() int64 {
		n, _, err := s.VerifyAudit(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	later := now.Add(time.Hour)

	o1 := order("o1", later)
	if err := journal("a1", o1, 0); err != nil {
		t.Fatal(err)
	}
	want(o1, "processing", "a1")
	before := audits()
	if err := journal("a2", o1, 0); !errors.Is(err, store.ErrOrderNotReady) {
		t.Fatalf("second serial for one order: %v, want ErrOrderNotReady", err)
	}
	if _, err := s.GetJournal(ctx, "a2"); !errors.Is(err, zerr.NotFound) || audits() != before {
		t.Fatalf("a refused serial left a journal entry (%v) or an audit event", err)
	}
	c := &store.Certificate{Serial: "a1", EnterpriseID: e.ID, Profile: store.ProfileClient, Issuer: "aa", Subject: "CN=x",
		NotBefore: now, NotAfter: now.AddDate(3, 0, 0), DER: []byte{0x30, 0x00}, SPKISHA256: "spki-a1", FingerprintSHA256: "fp"}
	if err := s.StoreCertificate(ctx, c, ev("cert.signed", "a1"), store.ACMEOrderGuard(o1)); err != nil {
		t.Fatal(err)
	}
	want(o1, "valid", "a1")

	o2 := order("o2", later)
	if err := journal("b1", o2, 0); err != nil {
		t.Fatal(err)
	}
	if err := s.FailSerial(ctx, "b1", "signer down", ev("cert.failed", "b1"), store.ACMEOrderGuard(o2)); err != nil {
		t.Fatal(err)
	}
	want(o2, "invalid", "b1")

	if err := journal("c1", order("o3", now.Add(-time.Second)), 0); !errors.Is(err, store.ErrOrderNotReady) {
		t.Fatalf("expired order: %v, want ErrOrderNotReady", err)
	}
	want("o3", "ready", "")

	// The daily limit (one certificate today, a1) refuses the serial and
	// leaves the order ready for later.
	o4 := order("o4", later)
	if err := journal("d1", o4, 1); zerr.KindOf(err) != zerr.Policy {
		t.Fatalf("over the daily limit: %v, want Policy", err)
	}
	want(o4, "ready", "")

	// A process that ended after journaling: its order becomes invalid.
	if err := journal("e1", o4, 0); err != nil {
		t.Fatal(err)
	}
	if n, err := s.RecoverJournal(ctx, "", []string{"another-boot"}); err != nil || n != 1 {
		t.Fatalf("RecoverJournal = %d, %v", n, err)
	}
	want(o4, "invalid", "e1")
}

// TestACMEOrderConcurrentSerials: of many serials journaled at once for one
// order, exactly one is accepted.
func TestACMEOrderConcurrentSerials(t *testing.T) { eachBackend(t, testACMEOrderConcurrent) }

func testACMEOrderConcurrent(t *testing.T, s *store.SQL) {
	ctx := context.Background()
	now := time.Now()
	ev := store.AuditEvent{Actor: "test", Action: "test"}
	e := &store.Enterprise{Username: "alpha", Name: "Alpha", PasswordHash: "x"}
	if err := s.AddEnterprise(ctx, e, ev); err != nil {
		t.Fatal(err)
	}
	if err := s.AddEABKey(ctx, &store.EABKey{KID: "k", HMACKey: []byte("h"), EnterpriseID: e.ID, CreatedAt: now, ExpiresAt: now.Add(time.Hour)}, ev); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateAccountWithEAB(ctx, &store.ACMEAccount{ID: "acct", Thumbprint: "tp", JWK: "{}", EnterpriseID: e.ID, Contact: "[]", EABKID: "k"}, now, ev); err != nil {
		t.Fatal(err)
	}
	if err := s.AddACMEOrder(ctx, &store.ACMEOrder{ID: "o", AccountID: "acct", Status: "ready", Identifier: "alpha", ExpiresAt: now.Add(time.Hour)}, 0); err != nil {
		t.Fatal(err)
	}
	const n = 16
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sn := fmt.Sprintf("%x", 0x100+i)
			errs <- s.JournalSerial(ctx, store.JournalEntry{Serial: sn, EnterpriseID: e.ID, Profile: store.ProfileClient, Issuer: "aa", Guards: []store.Guard{store.ACMEOrderGuard("o")}}, ev)
		}()
	}
	wg.Wait()
	close(errs)
	ok := 0
	for err := range errs {
		switch {
		case err == nil:
			ok++
		case !errors.Is(err, store.ErrOrderNotReady):
			t.Errorf("unexpected error %v", err)
		}
	}
	counts, err := s.JournalCounts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if ok != 1 || counts[store.JournalPending] != 1 {
		t.Fatalf("%d serials accepted, %d journaled; want 1 and 1", ok, counts[store.JournalPending])
	}
}
