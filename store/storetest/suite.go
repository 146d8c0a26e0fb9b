// Package storetest is the conformance suite every store backend must pass.
// It is run by store's own tests on SQLite and, unchanged, on any other
// backend.
package storetest

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/zbca/zbca/internal/zerr"
	"github.com/zbca/zbca/store"
)

// Store is everything the suite exercises.
type Store interface {
	store.EnterpriseReader
	store.EnterpriseWriter
	store.CertReader
	store.CertWriter
	store.Journal
	store.AuditLog
	store.Revoker
	store.CRLStore
	store.Logins
	store.PasswordUpgrader
	Close() error
}

// Harness opens a fresh, empty store for one test. Raw is a separate
// connection to the same database, used to tamper with the audit log the
// way an attacker with database access would.
type Harness struct {
	Open func(t *testing.T) (s Store, raw *sql.DB)
}

// Run runs the whole suite.
func Run(t *testing.T, h Harness) {
	t.Run("Enterprises", func(t *testing.T) { testEnterprises(t, h) })
	t.Run("Import", func(t *testing.T) { testImport(t, h) })
	t.Run("IssuanceJournal", func(t *testing.T) { testJournal(t, h) })
	t.Run("Recover", func(t *testing.T) { testRecover(t, h) })
	t.Run("ConcurrentGroupCommit", func(t *testing.T) { testConcurrent(t, h) })
	t.Run("AuditTamper", func(t *testing.T) { testAuditTamper(t, h) })
	t.Run("AuditVerifyWhileWriting", func(t *testing.T) { testAuditVerifyWhileWriting(t, h) })
	t.Run("Revoke", func(t *testing.T) { testRevoke(t, h) })
	t.Run("ConcurrentRevoke", func(t *testing.T) { testConcurrentRevoke(t, h) })
	t.Run("CRLNumbers", func(t *testing.T) { testCRLNumbers(t, h) })
	t.Run("LoginLockout", func(t *testing.T) { testLoginLockout(t, h) })
	t.Run("LoginSettle", func(t *testing.T) { testLoginSettle(t, h) })
	t.Run("ConcurrentLogins", func(t *testing.T) { testConcurrentLogins(t, h) })
	t.Run("PruneLogins", func(t *testing.T) { testPruneLogins(t, h) })
	t.Run("UpgradePasswordHash", func(t *testing.T) { testUpgradePasswordHash(t, h) })
}

func ev(action, subject string) store.AuditEvent {
	return store.AuditEvent{Actor: "test", Action: action, Subject: subject}
}

func auditCount(t *testing.T, s Store) int64 {
	t.Helper()
	n, _, err := s.VerifyAudit(context.Background())
	if err != nil {
		t.Fatalf("VerifyAudit: %v", err)
	}
	return n
}

func testEnterprises(t *testing.T, h Harness) {
	ctx := context.Background()
	s, _ := h.Open(t)
	e := &store.Enterprise{Username: "acme", Name: "某某有限公司", Code: "91350100M000100Y43", PasswordHash: "$argon2id$x"}
	if err := s.AddEnterprise(ctx, e, ev("enterprise.add", "acme")); err != nil {
		t.Fatal(err)
	}
	if e.ID == 0 {
		t.Error("AddEnterprise did not set the ID")
	}
	got, err := s.GetEnterprise(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	if got.Name != e.Name || got.Code != e.Code || got.Status != store.StatusActive || got.PasswordHash != e.PasswordHash {
		t.Errorf("got %+v", got)
	}
	byID, err := s.GetEnterpriseByID(ctx, e.ID)
	if err != nil || byID.Username != "acme" {
		t.Errorf("GetEnterpriseByID: %v %+v", err, byID)
	}
	before := auditCount(t, s)
	err = s.AddEnterprise(ctx, &store.Enterprise{Username: "acme", Name: "other", PasswordHash: "x"}, ev("enterprise.add", "acme"))
	if !errors.Is(err, zerr.Conflict) {
		t.Errorf("duplicate: got %v, want Conflict", err)
	}
	if auditCount(t, s) != before {
		t.Error("a refused AddEnterprise left an audit entry")
	}
	if _, err := s.GetEnterprise(ctx, "nobody"); !errors.Is(err, zerr.NotFound) {
		t.Errorf("missing: got %v, want NotFound", err)
	}
	if err := s.SetEnterpriseStatus(ctx, "acme", store.StatusDisabled, ev("enterprise.disable", "acme")); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.GetEnterprise(ctx, "acme"); got.Status != store.StatusDisabled {
		t.Errorf("status %q after disable", got.Status)
	}
	if err := s.SetEnterpriseStatus(ctx, "nobody", store.StatusDisabled, ev("enterprise.disable", "nobody")); !errors.Is(err, zerr.NotFound) {
		t.Errorf("disable missing: got %v", err)
	}
	if err := s.SetEnterpriseStatus(ctx, "acme", "bogus", ev("x", "acme")); !errors.Is(err, zerr.BadRequest) {
		t.Errorf("bogus status: got %v", err)
	}
	if err := s.SetPasswordHash(ctx, "acme", "$argon2id$new", ev("enterprise.passwd", "acme")); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.GetEnterprise(ctx, "acme"); got.PasswordHash != "$argon2id$new" {
		t.Errorf("hash not updated")
	}
	for _, u := range []string{"b", "c", "d"} {
		if err := s.AddEnterprise(ctx, &store.Enterprise{Username: u, Name: u, PasswordHash: "x"}, ev("enterprise.add", u)); err != nil {
			t.Fatal(err)
		}
	}
	page, err := s.ListEnterprises(ctx, "acme", 2)
	if err != nil || len(page) != 2 || page[0].Username != "b" || page[1].Username != "c" {
		t.Errorf("ListEnterprises after acme: %v %+v", err, page)
	}
}

func testImport(t *testing.T, h Harness) {
	ctx := context.Background()
	s, _ := h.Open(t)
	var rows []store.Enterprise
	for i := range 1000 {
		rows = append(rows, store.Enterprise{Username: fmt.Sprintf("u%04d", i), Name: "n", PasswordHash: "h"})
	}
	ins, err := s.ImportEnterprises(ctx, rows, ev("enterprise.import", "batch-1"))
	if err != nil {
		t.Fatal(err)
	}
	for i, ok := range ins {
		if !ok {
			t.Fatalf("row %d not inserted", i)
		}
	}
	// Re-running inserts nothing and keeps the existing rows.
	rows[0].Name = "changed"
	ins, err = s.ImportEnterprises(ctx, append(rows[:10:10], store.Enterprise{Username: "new", Name: "n", PasswordHash: "h"}), ev("enterprise.import", "batch-2"))
	if err != nil {
		t.Fatal(err)
	}
	for i, ok := range ins[:10] {
		if ok {
			t.Errorf("row %d inserted twice", i)
		}
	}
	if !ins[10] {
		t.Error("new row not inserted")
	}
	if e, _ := s.GetEnterprise(ctx, "u0000"); e.Name != "n" {
		t.Errorf("re-import overwrote row: %q", e.Name)
	}
	all, _ := s.ListEnterprises(ctx, "", 5000)
	if len(all) != 1001 {
		t.Errorf("%d enterprises, want 1001", len(all))
	}
	if n := auditCount(t, s); n != 2 {
		t.Errorf("%d audit events for two import batches, want 2", n)
	}
}

func addEnterprise(t *testing.T, s Store, u string) *store.Enterprise {
	e := &store.Enterprise{Username: u, Name: u, PasswordHash: "x"}
	if err := s.AddEnterprise(context.Background(), e, ev("enterprise.add", u)); err != nil {
		t.Fatal(err)
	}
	return e
}

func cert(serial string, eid int64) *store.Certificate {
	now := time.Now().Truncate(time.Second)
	return &store.Certificate{Serial: serial, EnterpriseID: eid, Profile: store.ProfileClient, Issuer: "aa", Subject: "CN=x",
		NotBefore: now, NotAfter: now.AddDate(3, 0, 0), DER: []byte{0x30, 0x00, byte(len(serial))}, SPKISHA256: "spki-" + serial, FingerprintSHA256: "fp-" + serial}
}

func testJournal(t *testing.T, h Harness) {
	ctx := context.Background()
	s, _ := h.Open(t)
	e := addEnterprise(t, s, "acme")
	j := store.JournalEntry{Serial: "1a2b", EnterpriseID: e.ID, Profile: store.ProfileClient, Issuer: "aa", Node: "n1", Boot: "b1"}
	if err := s.JournalSerial(ctx, j, ev("cert.signing", j.Serial)); err != nil {
		t.Fatal(err)
	}
	if err := s.JournalSerial(ctx, j, ev("cert.signing", j.Serial)); !errors.Is(err, zerr.Conflict) {
		t.Errorf("reused serial: got %v, want Conflict", err)
	}
	if got, _ := s.GetJournal(ctx, "1a2b"); got.State != store.JournalPending {
		t.Errorf("state %q, want pending", got.State)
	}
	// A certificate whose serial was never journaled is refused and leaves
	// nothing behind.
	before := auditCount(t, s)
	if err := s.StoreCertificate(ctx, cert("ffff", e.ID), ev("cert.signed", "ffff")); err == nil {
		t.Error("stored a certificate without a journal entry")
	}
	if _, err := s.GetCertificate(ctx, "ffff"); !errors.Is(err, zerr.NotFound) {
		t.Errorf("unjournaled certificate is readable: %v", err)
	}
	if auditCount(t, s) != before {
		t.Error("refused StoreCertificate left an audit entry")
	}
	c := cert("1a2b", e.ID)
	if err := s.StoreCertificate(ctx, c, ev("cert.signed", "1a2b")); err != nil {
		t.Fatal(err)
	}
	got, err := s.GetCertificate(ctx, "1a2b")
	if err != nil {
		t.Fatal(err)
	}
	if got.Username != "acme" || got.Status != store.CertActive || !got.NotAfter.Equal(c.NotAfter) || string(got.DER) != string(c.DER) {
		t.Errorf("got %+v", got)
	}
	if jj, _ := s.GetJournal(ctx, "1a2b"); jj.State != store.JournalIssued {
		t.Errorf("journal state %q, want issued", jj.State)
	}
	if err := s.StoreCertificate(ctx, c, ev("cert.signed", "1a2b")); !errors.Is(err, zerr.Conflict) {
		t.Errorf("second store: %v", err)
	}
	list, err := s.ListCertificates(ctx, store.CertFilter{Username: "acme"})
	if err != nil || len(list) != 1 {
		t.Errorf("ListCertificates: %v %d", err, len(list))
	}
	j2 := store.JournalEntry{Serial: "2c", EnterpriseID: e.ID, Profile: store.ProfileClient, Issuer: "aa", Node: "n1", Boot: "b1"}
	if err := s.JournalSerial(ctx, j2, ev("cert.signing", "2c")); err != nil {
		t.Fatal(err)
	}
	if err := s.FailSerial(ctx, "2c", "signer down", ev("cert.failed", "2c")); err != nil {
		t.Fatal(err)
	}
	if jj, _ := s.GetJournal(ctx, "2c"); jj.State != store.JournalFailed || jj.Error != "signer down" {
		t.Errorf("after FailSerial: %+v", jj)
	}
	if err := s.JournalSerial(ctx, j2, ev("cert.signing", "2c")); !errors.Is(err, zerr.Conflict) {
		t.Errorf("a failed serial was reused: %v", err)
	}
}

func testRecover(t *testing.T, h Harness) {
	ctx := context.Background()
	s, _ := h.Open(t)
	for i, b := range []string{"old", "old", "current"} {
		j := store.JournalEntry{Serial: fmt.Sprintf("%x", i+10), Profile: store.ProfileTLS, Issuer: "aa", Node: "n1", Boot: b}
		if err := s.JournalSerial(ctx, j, ev("cert.signing", j.Serial)); err != nil {
			t.Fatal(err)
		}
	}
	other := store.JournalEntry{Serial: "ff", Profile: store.ProfileTLS, Issuer: "aa", Node: "n2", Boot: "old"}
	if err := s.JournalSerial(ctx, other, ev("cert.signing", "ff")); err != nil {
		t.Fatal(err)
	}
	n, err := s.RecoverJournal(ctx, "n1", []string{"current", "other-live"})
	if err != nil || n != 2 {
		t.Fatalf("RecoverJournal = %d, %v; want 2", n, err)
	}
	for serial, want := range map[string]string{"a": store.JournalFailed, "b": store.JournalFailed, "c": store.JournalPending, "ff": store.JournalPending} {
		if j, _ := s.GetJournal(ctx, serial); j.State != want {
			t.Errorf("serial %s: state %q, want %q", serial, j.State, want)
		}
	}
	// One host (SQLite): every node name, as after a host name change.
	if n, err := s.RecoverJournal(ctx, "", []string{"current"}); err != nil || n != 1 {
		t.Fatalf("RecoverJournal(all nodes) = %d, %v; want 1 (the other node's)", n, err)
	}
	if j, _ := s.GetJournal(ctx, "c"); j.State != store.JournalPending {
		t.Error("a live boot's entry was failed")
	}
}

func testConcurrent(t *testing.T, h Harness) {
	ctx := context.Background()
	s, _ := h.Open(t)
	e := addEnterprise(t, s, "acme")
	const n = 200
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			serial := fmt.Sprintf("%x", 0x1000+i)
			j := store.JournalEntry{Serial: serial, EnterpriseID: e.ID, Profile: store.ProfileClient, Issuer: "aa", Node: "n", Boot: "b"}
			if err := s.JournalSerial(ctx, j, ev("cert.signing", serial)); err != nil {
				errs <- err
				return
			}
			if i%10 == 0 { // every tenth write fails inside the batch
				if err := s.StoreCertificate(ctx, cert("dead"+serial, e.ID), ev("cert.signed", serial)); err == nil {
					errs <- errors.New("unjournaled certificate accepted")
				}
			}
			errs <- s.StoreCertificate(ctx, cert(serial, e.ID), ev("cert.signed", serial))
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	list, err := s.ListCertificates(ctx, store.CertFilter{Limit: 1000})
	if err != nil || len(list) != n {
		t.Fatalf("%d certificates stored (err %v), want %d", len(list), err, n)
	}
	if got := auditCount(t, s); got != 1+2*n {
		t.Errorf("%d audit entries, want %d", got, 1+2*n)
	}
}

func testAuditTamper(t *testing.T, h Harness) {
	ctx := context.Background()
	cases := []struct {
		name   string
		tamper string
	}{
		{"edited", `UPDATE audit_log SET subject = 'mallory' WHERE seq = 3`},
		{"edited-hash-too", `UPDATE audit_log SET actor = 'mallory', hash = 'abcd' WHERE seq = 3`},
		{"deleted", `DELETE FROM audit_log WHERE seq = 3`},
		{"deleted-newest", `DELETE FROM audit_log WHERE seq = 5`},
		{"reordered", `UPDATE audit_log SET seq = CASE seq WHEN 2 THEN 4 WHEN 4 THEN 2 END WHERE seq IN (2, 4)`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s, raw := h.Open(t)
			for i := range 5 {
				if err := s.AppendAudit(ctx, ev("test.event", fmt.Sprint(i))); err != nil {
					t.Fatal(err)
				}
			}
			if n, head, err := s.VerifyAudit(ctx); err != nil || n != 5 || head == "" {
				t.Fatalf("intact chain: n=%d head=%q err=%v", n, head, err)
			}
			if tc.name == "reordered" {
				// Swap through a free seq to satisfy the primary key.
				for _, q := range []string{`UPDATE audit_log SET seq = 100 WHERE seq = 2`, `UPDATE audit_log SET seq = 2 WHERE seq = 4`, `UPDATE audit_log SET seq = 4 WHERE seq = 100`} {
					if _, err := raw.Exec(q); err != nil {
						t.Fatal(err)
					}
				}
			} else if _, err := raw.Exec(tc.tamper); err != nil {
				t.Fatal(err)
			}
			if _, _, err := s.VerifyAudit(ctx); !errors.Is(err, store.ErrAuditBroken) {
				t.Errorf("tampering (%s) not detected: %v", tc.name, err)
			}
		})
	}
}

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

// testAuditVerifyWhileWriting: verifying while others append never reports
// tampering.
func testAuditVerifyWhileWriting(t *testing.T, h Harness) {
	ctx := context.Background()
	s, _ := h.Open(t)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if err := s.AppendAudit(ctx, ev("test.event", "x")); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	for range 50 {
		if _, _, err := s.VerifyAudit(ctx); err != nil {
			t.Errorf("verify during writes: %v", err)
			break
		}
	}
	close(stop)
	wg.Wait()
}

var lockout = store.LockoutPolicy{Threshold: 5, Base: time.Minute, Max: time.Hour}

// testLoginLockout: five counted failures lock for Base, each further one
// (after the lock ran out) for twice as long, capped at Max; a locked
// username is refused without counting; unknown usernames lock alike.
func testLoginLockout(t *testing.T, h Harness) {
	ctx := context.Background()
	s, _ := h.Open(t)
	if st, err := s.LoginState(ctx, "acme"); err != nil || st.Failures != 0 || !st.LockedUntil.IsZero() || !st.LastFailure.IsZero() {
		t.Fatalf("state of a fresh username: %+v %v", st, err)
	}
	now := time.Date(2027, 3, 1, 8, 0, 0, 0, time.UTC)
	for i := 1; i <= 4; i++ {
		a, err := s.BeginLogin(ctx, "acme", now, lockout)
		if err != nil {
			t.Fatal(err)
		}
		if !a.Allowed || a.After.Failures != i || !a.After.LockedUntil.IsZero() || !a.After.LastFailure.Equal(now) || a.Before.Failures != i-1 {
			t.Fatalf("attempt %d: %+v", i, a)
		}
		now = now.Add(time.Second)
	}
	// The fifth is allowed (it may be the right password) and locks.
	a, err := s.BeginLogin(ctx, "acme", now, lockout)
	if err != nil || !a.Allowed || a.After.Failures != 5 || !a.After.LockedUntil.Equal(now.Add(time.Minute)) {
		t.Fatalf("fifth attempt: %+v %v", a, err)
	}
	st, err := s.LoginState(ctx, "acme")
	if err != nil || st != a.After {
		t.Fatalf("LoginState %+v %v, want %+v", st, err, a.After)
	}
	if !st.Locked(now) || !st.Locked(now.Add(59*time.Second)) || st.Locked(now.Add(time.Minute)) {
		t.Errorf("Locked() wrong around %v", st.LockedUntil)
	}
	// Locked: refused, nothing counted.
	b, err := s.BeginLogin(ctx, "acme", now.Add(30*time.Second), lockout)
	if err != nil || b.Allowed || b.After != st || b.Before != st {
		t.Fatalf("attempt while locked: %+v %v", b, err)
	}
	if st2, _ := s.LoginState(ctx, "acme"); st2 != st {
		t.Errorf("an attempt while locked changed the state: %+v", st2)
	}
	// After the lock: each failure doubles it, up to an hour.
	want := []time.Duration{2 * time.Minute, 4 * time.Minute, 8 * time.Minute, 16 * time.Minute, 32 * time.Minute, time.Hour, time.Hour}
	now = st.LockedUntil
	for i, d := range want {
		a, err := s.BeginLogin(ctx, "acme", now, lockout)
		if err != nil || !a.Allowed {
			t.Fatalf("attempt %d after the lock: %+v %v", 6+i, a, err)
		}
		if got := a.After.LockedUntil.Sub(now); got != d || a.After.Failures != 6+i {
			t.Fatalf("failure %d: locked for %v, want %v (%+v)", 6+i, got, d, a.After)
		}
		if err := s.FinishLogin(ctx, a, store.LoginFailed, ev("login.failure", "acme")); err != nil {
			t.Fatal(err)
		}
		now = a.After.LockedUntil
	}
	// Unknown usernames are counted and locked the same way (nothing says
	// whether an account exists).
	for range 5 {
		if _, err := s.BeginLogin(ctx, "nobody-such", now, lockout); err != nil {
			t.Fatal(err)
		}
	}
	if st, _ := s.LoginState(ctx, "nobody-such"); !st.Locked(now) {
		t.Errorf("unknown username not locked after 5 failures: %+v", st)
	}
	if _, err := s.GetEnterprise(ctx, "nobody-such"); !errors.Is(err, zerr.NotFound) {
		t.Errorf("counting a login created an enterprise: %v", err)
	}
	if got := (store.LockoutPolicy{Threshold: 5, Base: time.Minute, Max: time.Hour}).LockFor(1000); got != time.Hour {
		t.Errorf("LockFor(1000) = %v", got)
	}
	if got := (store.LockoutPolicy{}).LockFor(1000); got != 0 {
		t.Errorf("zero policy locks for %v", got)
	}
}

// testLoginSettle: success clears, failure keeps, abort undoes; each with
// its audit event in the same transaction.
func testLoginSettle(t *testing.T, h Harness) {
	ctx := context.Background()
	s, _ := h.Open(t)
	now := time.Date(2027, 3, 1, 8, 0, 0, 0, time.UTC)
	begin := func(u string) store.LoginAttempt {
		t.Helper()
		a, err := s.BeginLogin(ctx, u, now, lockout)
		if err != nil || !a.Allowed {
			t.Fatalf("BeginLogin(%s): %+v %v", u, a, err)
		}
		now = now.Add(time.Second)
		return a
	}
	var a store.LoginAttempt
	for range 3 {
		a = begin("acme")
		if err := s.FinishLogin(ctx, a, store.LoginFailed, ev("login.failure", "acme")); err != nil {
			t.Fatal(err)
		}
	}
	if st, _ := s.LoginState(ctx, "acme"); st.Failures != 3 {
		t.Fatalf("%d failures after 3 failed logins", st.Failures)
	}
	// Aborted: the count goes back.
	a = begin("acme")
	if err := s.FinishLogin(ctx, a, store.LoginAborted, ev("login.error", "acme")); err != nil {
		t.Fatal(err)
	}
	if st, _ := s.LoginState(ctx, "acme"); st != a.Before {
		t.Errorf("after abort %+v, want %+v", st, a.Before)
	}
	// An abort does not undo a count made by another attempt since.
	a1 := begin("acme")
	a2 := begin("acme")
	if err := s.FinishLogin(ctx, a1, store.LoginAborted, ev("login.error", "acme")); err != nil {
		t.Fatal(err)
	}
	if st, _ := s.LoginState(ctx, "acme"); st != a2.After {
		t.Errorf("a stale abort changed the state: %+v, want %+v", st, a2.After)
	}
	// Aborting the first attempt of a fresh username leaves no record.
	f := begin("fresh")
	if err := s.FinishLogin(ctx, f, store.LoginAborted, ev("login.error", "fresh")); err != nil {
		t.Fatal(err)
	}
	if st, _ := s.LoginState(ctx, "fresh"); st != (store.LoginState{}) {
		t.Errorf("after aborting the first attempt: %+v", st)
	}
	// a2 was the fifth counted attempt: it locked, and it succeeds, which
	// clears everything.
	if a2.After.Failures != 5 || !a2.After.Locked(now) {
		t.Fatalf("fifth counted attempt did not lock: %+v", a2.After)
	}
	before := auditCount(t, s)
	if err := s.FinishLogin(ctx, a2, store.LoginSucceeded, ev("login.success", "acme")); err != nil {
		t.Fatal(err)
	}
	if st, _ := s.LoginState(ctx, "acme"); st != (store.LoginState{}) {
		t.Errorf("after success: %+v", st)
	}
	if got := auditCount(t, s); got != before+1 {
		t.Errorf("%d audit entries after a success, want %d", got, before+1)
	}
	// A settle whose audit event is refused changes nothing.
	a = begin("acme")
	if err := s.FinishLogin(ctx, a, store.LoginSucceeded, store.AuditEvent{}); err == nil {
		t.Error("FinishLogin accepted an audit event without actor and action")
	}
	if st, _ := s.LoginState(ctx, "acme"); st != a.After {
		t.Errorf("a failed FinishLogin changed the state: %+v", st)
	}
}

// testConcurrentLogins: of many simultaneous attempts on one username, at
// most the threshold are allowed to check a password.
func testConcurrentLogins(t *testing.T, h Harness) {
	ctx := context.Background()
	s, _ := h.Open(t)
	now := time.Date(2027, 3, 1, 8, 0, 0, 0, time.UTC)
	var wg sync.WaitGroup
	var mu sync.Mutex
	allowed, refused := 0, 0
	for range 40 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a, err := s.BeginLogin(ctx, "acme", now, lockout)
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			defer mu.Unlock()
			if a.Allowed {
				allowed++
			} else {
				refused++
			}
		}()
	}
	wg.Wait()
	if allowed != lockout.Threshold || refused != 40-lockout.Threshold {
		t.Errorf("%d allowed, %d refused; want %d, %d", allowed, refused, lockout.Threshold, 40-lockout.Threshold)
	}
	if st, _ := s.LoginState(ctx, "acme"); st.Failures != lockout.Threshold {
		t.Errorf("%d failures counted, want %d", st.Failures, lockout.Threshold)
	}
}

func testPruneLogins(t *testing.T, h Harness) {
	ctx := context.Background()
	s, _ := h.Open(t)
	t0 := time.Date(2027, 3, 1, 8, 0, 0, 0, time.UTC)
	for range 5 { // locked until t0+1m
		if _, err := s.BeginLogin(ctx, "locked", t0, lockout); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.BeginLogin(ctx, "old", t0, lockout); err != nil {
		t.Fatal(err)
	}
	if _, err := s.BeginLogin(ctx, "recent", t0.Add(time.Hour), lockout); err != nil {
		t.Fatal(err)
	}
	n, err := s.PruneLogins(ctx, t0.Add(30*time.Second))
	if err != nil || n != 1 {
		t.Fatalf("PruneLogins = %d, %v; want 1 (old)", n, err)
	}
	if st, _ := s.LoginState(ctx, "old"); st.Failures != 0 {
		t.Error("old record kept")
	}
	if st, _ := s.LoginState(ctx, "locked"); st.Failures != 5 {
		t.Error("a record still locked was pruned")
	}
	if st, _ := s.LoginState(ctx, "recent"); st.Failures != 1 {
		t.Error("a recent record was pruned")
	}
}

func testUpgradePasswordHash(t *testing.T, h Harness) {
	ctx := context.Background()
	s, _ := h.Open(t)
	addEnterprise(t, s, "acme") // hash "x"
	before := auditCount(t, s)
	ok, err := s.UpgradePasswordHash(ctx, "acme", "x", "$argon2id$new", ev("enterprise.password.upgrade", "acme"))
	if err != nil || !ok {
		t.Fatalf("UpgradePasswordHash = %v, %v", ok, err)
	}
	if e, _ := s.GetEnterprise(ctx, "acme"); e.PasswordHash != "$argon2id$new" {
		t.Errorf("hash %q after upgrade", e.PasswordHash)
	}
	// The hash changed since it was verified (an operator's passwd): the
	// upgrade must not undo it.
	ok, err = s.UpgradePasswordHash(ctx, "acme", "x", "$argon2id$stale", ev("enterprise.password.upgrade", "acme"))
	if err != nil || ok {
		t.Fatalf("stale UpgradePasswordHash = %v, %v; want false, nil", ok, err)
	}
	if e, _ := s.GetEnterprise(ctx, "acme"); e.PasswordHash != "$argon2id$new" {
		t.Errorf("a stale upgrade replaced the hash: %q", e.PasswordHash)
	}
	if ok, err := s.UpgradePasswordHash(ctx, "nobody", "x", "y", ev("enterprise.password.upgrade", "nobody")); err != nil || ok {
		t.Errorf("unknown username: %v, %v", ok, err)
	}
	if got := auditCount(t, s); got != before+1 {
		t.Errorf("%d audit entries, want %d (refused upgrades are not audited)", got, before+1)
	}
}
