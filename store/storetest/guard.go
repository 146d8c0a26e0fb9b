package storetest

import (
	"context"
	"errors"
	"testing"

	"github.com/zbca/zbca/internal/zerr"
	"github.com/zbca/zbca/store"
)

// probe is a caller-defined guard. In each step it reads, through the
// transaction it is given, what the step has written so far (so it shows
// that it runs inside that transaction, after the step's own change), and
// it may write and refuse.
type probe struct {
	seen []string // "claim 1a: no row", "issued 1a: issued", "failed 1a: failed"
	// refuseClaim, failIssued, failFailed make the step return this error.
	refuseClaim, failIssued, failFailed error
}

var errProbe = zerr.New(zerr.Policy, "refused by the probe")

func (p *probe) state(ctx context.Context, tx *store.Tx, serial string) string {
	var st string
	err := tx.QueryRow(ctx, `SELECT state FROM issuance_journal WHERE serial = ?`, serial).Scan(&st)
	if err != nil {
		return "no row"
	}
	return st
}

func (p *probe) Claim(ctx context.Context, tx *store.Tx, j *store.JournalEntry) error {
	p.seen = append(p.seen, "claim "+j.Serial+": "+p.state(ctx, tx, j.Serial))
	// A write of the guard's own, undone with a refusal.
	if _, err := tx.Exec(ctx, `UPDATE enterprises SET name = ? WHERE id = ?`, "claimed "+j.Serial, j.EnterpriseID); err != nil {
		return err
	}
	return p.refuseClaim
}

func (p *probe) Issued(ctx context.Context, tx *store.Tx, c *store.Certificate) error {
	var n int
	if err := tx.QueryRow(ctx, `SELECT COUNT(*) FROM certificates WHERE serial = ?`, c.Serial).Scan(&n); err != nil || n != 1 {
		return errors.New("the certificate is not stored in the guard's transaction")
	}
	p.seen = append(p.seen, "issued "+c.Serial+": "+p.state(ctx, tx, c.Serial))
	return p.failIssued
}

func (p *probe) Failed(ctx context.Context, tx *store.Tx, serial, reason string) error {
	p.seen = append(p.seen, "failed "+serial+": "+p.state(ctx, tx, serial))
	return p.failFailed
}

// testGuards: a caller-defined guard runs in each of the issuing
// transactions — journaling, storing, failing — and its error there undoes
// the whole step: a refused serial leaves no journal row, no audit entry
// and none of the guard's own writes.
func testGuards(t *testing.T, h Harness) {
	ctx := context.Background()
	s, _ := h.Open(t)
	e := addEnterprise(t, s, "acme")
	name := func() string {
		t.Helper()
		got, err := s.GetEnterprise(ctx, "acme")
		if err != nil {
			t.Fatal(err)
		}
		return got.Name
	}
	// saw checks that the guard ran (one or more times: the writer may run
	// a batch again) and saw only want.
	saw := func(p *probe, want string) {
		t.Helper()
		if len(p.seen) == 0 {
			t.Errorf("the guard did not run; want %q", want)
		}
		for _, s := range p.seen {
			if s != want {
				t.Errorf("the guard saw %q, want %q", s, want)
			}
		}
		p.seen = nil
	}
	journal := func(serial string, g store.Guard) error {
		return s.JournalSerial(ctx, store.JournalEntry{Serial: serial, EnterpriseID: e.ID, Profile: store.ProfileClient, Issuer: "aa", Node: "n", Boot: "b",
			Guards: []store.Guard{g}}, ev("cert.signing", serial))
	}

	// Journaling: refused, nothing written.
	p := &probe{refuseClaim: errProbe}
	before := auditCount(t, s)
	err := journal("a1", p)
	if !errors.Is(err, errProbe) || !store.Refused(err) || zerr.KindOf(err) != zerr.Policy {
		t.Fatalf("refused serial: %v (refusal %v), want the guard's error marked as a refusal", err, store.Refused(err))
	}
	saw(p, "claim a1: no row")
	if _, err := s.GetJournal(ctx, "a1"); !errors.Is(err, zerr.NotFound) {
		t.Errorf("a refused serial left a journal entry: %v", err)
	}
	if auditCount(t, s) != before {
		t.Error("a refused serial left an audit entry")
	}
	if n := name(); n != "acme" {
		t.Errorf("a refused serial kept the guard's write: name %q", n)
	}
	// A serial collision is no refusal.
	if err := journal("a2", &probe{}); err != nil {
		t.Fatal(err)
	}
	if err := journal("a2", &probe{}); !errors.Is(err, zerr.Conflict) || store.Refused(err) {
		t.Errorf("reused serial: %v (refusal %v), want Conflict, not a refusal", err, store.Refused(err))
	}

	// Journaling: passed, the guard's write commits with the entry.
	p = &probe{}
	if err := journal("b1", p); err != nil {
		t.Fatal(err)
	}
	saw(p, "claim b1: no row")
	if n := name(); n != "claimed b1" {
		t.Errorf("the guard's write in the journaling transaction is lost: name %q", n)
	}

	// Storing: the guard's error undoes the certificate.
	p.failIssued = errProbe
	before = auditCount(t, s)
	if err := s.StoreCertificate(ctx, cert("b1", e.ID), ev("cert.signed", "b1"), p); !errors.Is(err, errProbe) {
		t.Fatalf("StoreCertificate with a failing guard: %v", err)
	}
	saw(p, "issued b1: issued")
	if _, err := s.GetCertificate(ctx, "b1"); !errors.Is(err, zerr.NotFound) {
		t.Errorf("the certificate was stored although its guard failed: %v", err)
	}
	if j, _ := s.GetJournal(ctx, "b1"); j.State != store.JournalPending || auditCount(t, s) != before {
		t.Errorf("a failed store changed the journal (%q) or the audit log", j.State)
	}
	p.failIssued = nil
	if err := s.StoreCertificate(ctx, cert("b1", e.ID), ev("cert.signed", "b1"), p); err != nil {
		t.Fatal(err)
	}
	saw(p, "issued b1: issued")

	// Failing: the guard's error undoes it; it runs only for a pending
	// serial.
	p = &probe{}
	if err := journal("c1", p); err != nil {
		t.Fatal(err)
	}
	p.seen, p.failFailed = nil, errProbe
	if err := s.FailSerial(ctx, "c1", "signer down", ev("cert.failed", "c1"), p); !errors.Is(err, errProbe) {
		t.Fatalf("FailSerial with a failing guard: %v", err)
	}
	saw(p, "failed c1: failed")
	if j, _ := s.GetJournal(ctx, "c1"); j.State != store.JournalPending {
		t.Errorf("journal %q after a failed FailSerial, want pending", j.State)
	}
	p.failFailed = nil
	if err := s.FailSerial(ctx, "c1", "signer down", ev("cert.failed", "c1"), p); err != nil {
		t.Fatal(err)
	}
	saw(p, "failed c1: failed")
	if err := s.FailSerial(ctx, "c1", "again", ev("cert.failed", "c1"), p); err != nil {
		t.Fatal(err)
	}
	if err := s.FailSerial(ctx, "b1", "stored after all", ev("cert.failed", "b1"), p); err != nil {
		t.Fatal(err)
	}
	if len(p.seen) != 0 {
		t.Errorf("Failed ran for serials that were not pending: %q", p.seen)
	}
}
