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

// testStatusScan: the responder's reads. A full scan returns every
// certificate with its status; a scan since a time returns the ones changed
// after it; the count hint is at least the number of certificates.
func testStatusScan(t *testing.T, h Harness) {
	ctx := context.Background()
	s, _ := h.Open(t)
	if n, err := s.CertificateCountHint(ctx); err != nil || n != 0 {
		t.Errorf("empty store: count hint %d, %v", n, err)
	}
	e := addEnterprise(t, s, "acme")
	serials := issueN(t, s, e, 5)
	if n, err := s.CertificateCountHint(ctx); err != nil || n < 5 {
		t.Errorf("count hint %d, %v; want at least 5", n, err)
	}
	all := map[string]store.CertStatus{}
	wm, err := s.ForEachStatus(ctx, time.Time{}, func(c store.CertStatus) error { all[c.Serial] = c; return nil })
	if err != nil || len(all) != 5 || wm.IsZero() {
		t.Fatalf("full scan: %d statuses, watermark %v, %v", len(all), wm, err)
	}
	for _, sr := range serials {
		if c := all[sr]; c.Status != store.CertActive || c.Issuer != "aa" {
			t.Errorf("%s: %+v", sr, c)
		}
	}
	time.Sleep(2 * time.Millisecond)
	at := time.Now().UTC().Truncate(time.Second)
	if _, err := s.Revoke(ctx, store.RevokeRequest{Serial: serials[2], Reason: 4, At: at, Actor: "operator"}); err != nil {
		t.Fatal(err)
	}
	var changed []store.CertStatus
	if _, err := s.ForEachStatus(ctx, wm, func(c store.CertStatus) error { changed = append(changed, c); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(changed) != 1 || changed[0].Serial != serials[2] || changed[0].Status != store.CertRevoked || changed[0].Reason != 4 || !changed[0].RevokedAt.Equal(at) {
		t.Errorf("changed since the watermark: %+v", changed)
	}
	if c, err := s.CertStatus(ctx, serials[2]); err != nil || c == nil || c.Status != store.CertRevoked {
		t.Errorf("CertStatus: %+v, %v", c, err)
	}
	if c, err := s.CertStatus(ctx, "fffff"); err != nil || c != nil {
		t.Errorf("unknown serial: %+v, %v", c, err)
	}
}
