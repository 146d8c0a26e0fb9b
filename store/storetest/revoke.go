package storetest

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

func issueN(t *testing.T, s Store, e *store.Enterprise, n int) []string {
	ctx := context.Background()
	var serials []string
	for i := range n {
		serial := fmt.Sprintf("%x", 0xabc000+i)
		j := store.JournalEntry{Serial: serial, EnterpriseID: e.ID, Profile: store.ProfileClient, Issuer: "aa", Node: "n", Boot: "b"}
		if err := s.JournalSerial(ctx, j, ev("cert.signing", serial)); err != nil {
			t.Fatal(err)
		}
		if err := s.StoreCertificate(ctx, cert(serial, e.ID), ev("cert.signed", serial)); err != nil {
			t.Fatal(err)
		}
		serials = append(serials, serial)
	}
	return serials
}

func testRevoke(t *testing.T, h Harness) {
	ctx := context.Background()
	s, _ := h.Open(t)
	e := addEnterprise(t, s, "acme")
	serials := issueN(t, s, e, 3)
	at := time.Date(2027, 1, 2, 3, 4, 5, 0, time.UTC)
	rec, err := s.Revoke(ctx, store.RevokeRequest{Serial: serials[1], Reason: 1, At: at, Actor: "operator"})
	if err != nil {
		t.Fatal(err)
	}
	if rec.Status != store.CertRevoked || !rec.RevokedAt.Equal(at) || rec.RevocationReason != 1 || rec.RevokedBy != "operator" {
		t.Errorf("revoked record %+v", rec)
	}
	before := auditCount(t, s)
	_, err = s.Revoke(ctx, store.RevokeRequest{Serial: serials[1], Reason: 4, Actor: "operator"})
	if !errors.Is(err, zerr.Conflict) {
		t.Errorf("second revocation: %v, want Conflict", err)
	}
	if got, _ := s.GetCertificate(ctx, serials[1]); got.RevocationReason != 1 || !got.RevokedAt.Equal(at) {
		t.Error("second revocation changed the first")
	}
	if _, err := s.Revoke(ctx, store.RevokeRequest{Serial: "fffffff", Reason: 1, Actor: "operator"}); !errors.Is(err, zerr.NotFound) {
		t.Errorf("unknown serial: %v", err)
	}
	if auditCount(t, s) != before {
		t.Error("refused revocations left audit entries")
	}
	var got []store.RevokedEntry
	if err := s.ForEachRevoked(ctx, "aa", func(e store.RevokedEntry) error { got = append(got, e); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Serial != serials[1] || got[0].Reason != 1 || !got[0].RevokedAt.Equal(at) {
		t.Errorf("revoked entries %+v", got)
	}
	if err := s.ForEachRevoked(ctx, "other-issuer", func(store.RevokedEntry) error { t.Error("entry of another issuer"); return nil }); err != nil {
		t.Fatal(err)
	}
}

func testConcurrentRevoke(t *testing.T, h Harness) {
	ctx := context.Background()
	s, _ := h.Open(t)
	e := addEnterprise(t, s, "acme")
	serial := issueN(t, s, e, 1)[0]
	var wg sync.WaitGroup
	var ok, conflict, other int
	var mu sync.Mutex
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := s.Revoke(ctx, store.RevokeRequest{Serial: serial, Reason: i % 5, Actor: fmt.Sprint("actor", i)})
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				ok++
			case errors.Is(err, zerr.Conflict):
				conflict++
			default:
				other++
			}
		}()
	}
	wg.Wait()
	if ok != 1 || conflict != 19 || other != 0 {
		t.Fatalf("%d succeeded, %d conflicts, %d other errors; want 1, 19, 0", ok, conflict, other)
	}
	evs := 0
	n, _, err := s.VerifyAudit(ctx)
	if err != nil {
		t.Fatal(err)
	}
	_ = n
	if l, ok := s.(interface {
		ListAudit(context.Context, int64, int) ([]store.AuditEvent, error)
	}); ok {
		all, _ := l.ListAudit(ctx, 0, 1000)
		for _, a := range all {
			if a.Action == "cert.revoke" {
				evs++
			}
		}
		if evs != 1 {
			t.Errorf("%d revocation audit events, want 1", evs)
		}
	}
}

func testCRLNumbers(t *testing.T, h Harness) {
	ctx := context.Background()
	s, _ := h.Open(t)
	if _, err := s.LatestCRL(ctx, "issuing-1"); !errors.Is(err, zerr.NotFound) {
		t.Errorf("LatestCRL before any: %v", err)
	}
	var last int64
	for i := range 5 {
		n, err := s.NextCRLNumber(ctx, "issuing-1")
		if err != nil {
			t.Fatal(err)
		}
		if n <= last {
			t.Fatalf("CRL number %d after %d", n, last)
		}
		last = n
		now := time.Now().Truncate(time.Second).UTC()
		if err := s.SaveCRL(ctx, &store.CRL{Name: "issuing-1", Number: n, ThisUpdate: now, NextUpdate: now.Add(time.Hour), DER: []byte{byte(i + 1)}, Entries: i}); err != nil {
			t.Fatal(err)
		}
	}
	if n, _ := s.NextCRLNumber(ctx, "root"); n != 1 {
		t.Errorf("first number of another CRL: %d", n)
	}
	c, err := s.LatestCRL(ctx, "issuing-1")
	if err != nil || c.Number != last || c.DER[0] != 5 || c.Entries != 4 {
		t.Fatalf("latest %+v %v", c, err)
	}
	// A stale save (an older number) does not replace the newer CRL.
	if err := s.SaveCRL(ctx, &store.CRL{Name: "issuing-1", Number: last - 1, DER: []byte{9}}); err != nil {
		t.Fatal(err)
	}
	if c, _ := s.LatestCRL(ctx, "issuing-1"); c.DER[0] != 5 {
		t.Error("older CRL replaced the newer")
	}
}

// feedChange is one change as ReadFeed delivered it.
type feedChange struct {
	seq int64
	c   store.CertStatus
}

func readFeed(t *testing.T, s Store, after int64) []feedChange {
	t.Helper()
	var out []feedChange
	if _, err := s.ReadFeed(context.Background(), after, 1000, func(seq int64, c store.CertStatus) error {
		out = append(out, feedChange{seq, c})
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

// testStatusScan: the responder's reads. Every issuance and revocation
// (superseding included) adds one change, numbered on from the last,
// delivered with the certificate's status; a refused revocation adds
// none; the full load returns the head it is consistent with and skips
// the certificates past a NotAfter; the count hint is at least the number
// of certificates; pruning keeps the newest changes.
func testStatusScan(t *testing.T, h Harness) {
	ctx := context.Background()
	s, _ := h.Open(t)
	if n, err := s.CertificateCountHint(ctx, time.Time{}); err != nil || n != 0 {
		t.Errorf("empty store: count hint %d, %v", n, err)
	}
	if head, err := s.FeedHead(ctx); err != nil || head != 0 {
		t.Errorf("empty store: head %d, %v", head, err)
	}
	sig := s.FeedSignal()
	select {
	case <-sig:
	default:
	}
	e := addEnterprise(t, s, "acme")
	select {
	case <-sig:
		t.Error("a commit without status changes signalled the feed")
	default:
	}
	serials := issueN(t, s, e, 5)
	select {
	case <-sig:
	default:
		t.Error("issuance did not signal the feed")
	}
	if n, err := s.CertificateCountHint(ctx, time.Time{}); err != nil || n < 5 {
		t.Errorf("count hint %d, %v; want at least 5", n, err)
	}
	if n, err := s.CertificateCountHint(ctx, time.Now().AddDate(2, 0, 0)); err != nil || n != 5 {
		t.Errorf("count of the certificates ending after 2 years: %d, %v; want 5", n, err)
	}
	if n, err := s.CertificateCountHint(ctx, time.Now().AddDate(4, 0, 0)); err != nil || n != 0 {
		t.Errorf("count of the certificates ending after 4 years: %d, %v; want 0", n, err)
	}
	got := readFeed(t, s, 0)
	if len(got) != 5 {
		t.Fatalf("feed after 5 issuances: %+v", got)
	}
	for i, ch := range got {
		if ch.seq != int64(i+1) || ch.c.Serial != serials[i] || ch.c.Status != store.CertActive || ch.c.Issuer != "aa" || ch.c.NotAfter.IsZero() {
			t.Errorf("change %d: %+v", i, ch)
		}
	}
	at := time.Now().UTC().Truncate(time.Second)
	rec, err := s.Revoke(ctx, store.RevokeRequest{Serial: serials[2], Reason: 4, At: at, Actor: "operator"})
	if err != nil {
		t.Fatal(err)
	}
	if rec.FeedSeq != 6 {
		t.Errorf("revocation's FeedSeq %d, want 6", rec.FeedSeq)
	}
	// Refused: nothing numbered.
	if _, err := s.Revoke(ctx, store.RevokeRequest{Serial: serials[2], Reason: 1, Actor: "operator"}); err == nil {
		t.Fatal("second revocation accepted")
	}
	if _, err := s.Revoke(ctx, store.RevokeRequest{Serial: "fffff", Reason: 1, Actor: "operator"}); err == nil {
		t.Fatal("unknown serial revoked")
	}
	got = readFeed(t, s, 5)
	if len(got) != 1 || got[0].seq != 6 || got[0].c.Serial != serials[2] || got[0].c.Status != store.CertRevoked || got[0].c.Reason != 4 || !got[0].c.RevokedAt.Equal(at) {
		t.Errorf("changes after 5: %+v", got)
	}
	// The full load: every certificate, at head 6; a NotAfter bound
	// leaves out the ones that end before it.
	all := map[string]store.CertStatus{}
	head, err := s.LoadStatuses(ctx, time.Time{}, func(c store.CertStatus) error { all[c.Serial] = c; return nil })
	if err != nil || head.Seq != 6 || head.Serial != serials[2] || head.At == 0 || len(all) != 5 || all[serials[2]].Status != store.CertRevoked {
		t.Fatalf("load: head %+v, %d statuses, %v", head, len(all), err)
	}
	if got := readFeed(t, s, 5); len(got) != 1 || got[0].c.Mark(6) != head {
		t.Errorf("the head's mark %+v, the change read %+v", head, got)
	}
	n := 0
	if _, err := s.LoadStatuses(ctx, time.Now().AddDate(4, 0, 0), func(store.CertStatus) error { n++; return nil }); err != nil || n != 0 {
		t.Errorf("load past every NotAfter: %d statuses, %v", n, err)
	}
	// Superseding: the new certificate and the revoked old ones, numbered
	// in the one transaction.
	sup, ok := s.(interface {
		StoreCertificateSuperseding(ctx context.Context, c *store.Certificate, ev store.AuditEvent, keep int, actor string, guards ...store.Guard) ([]*store.Certificate, error)
	})
	if !ok {
		t.Fatal("the store cannot supersede")
	}
	j := store.JournalEntry{Serial: "def0", EnterpriseID: e.ID, Profile: store.ProfileClient, Issuer: "aa", Node: "n", Boot: "b"}
	if err := s.JournalSerial(ctx, j, ev("cert.signing", j.Serial)); err != nil {
		t.Fatal(err)
	}
	c := cert("def0", e.ID)
	old, err := sup.StoreCertificateSuperseding(ctx, c, ev("cert.signed", "def0"), 2, "system")
	if err != nil || len(old) != 3 {
		t.Fatalf("superseding: %d superseded, %v", len(old), err)
	}
	got = readFeed(t, s, 6)
	if len(got) != 4 || got[0].seq != 7 || got[0].c.Serial != "def0" || c.FeedSeq != 7 {
		t.Fatalf("changes after 6: %+v (new certificate's FeedSeq %d)", got, c.FeedSeq)
	}
	for i, ch := range got[1:] {
		if ch.seq != int64(8+i) || ch.c.Status != store.CertRevoked || ch.c.Reason != 4 || old[i].FeedSeq != ch.seq {
			t.Errorf("superseded change %d: %+v (record FeedSeq %d)", i, ch, old[i].FeedSeq)
		}
	}
	if c, err := s.CertStatus(ctx, serials[2]); err != nil || c == nil || c.Status != store.CertRevoked {
		t.Errorf("CertStatus: %+v, %v", c, err)
	}
	if c, err := s.CertStatus(ctx, "fffff"); err != nil || c != nil {
		t.Errorf("unknown serial: %+v, %v", c, err)
	}
	// Pruning keeps the newest; numbering goes on from the head.
	if n, err := s.PruneFeed(ctx, 2); err != nil || n != 8 {
		t.Errorf("pruned %d, %v; want 8", n, err)
	}
	if got := readFeed(t, s, 0); len(got) != 2 || got[0].seq != 9 {
		t.Errorf("after pruning: %+v", got)
	}
	if _, err := s.Revoke(ctx, store.RevokeRequest{Serial: "def0", Reason: 1, Actor: "operator"}); err != nil {
		t.Fatal(err)
	}
	if head, err := s.FeedHead(ctx); err != nil || head != 11 {
		t.Errorf("head after pruning and a revocation: %d, %v", head, err)
	}
}
