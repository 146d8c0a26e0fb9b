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
	store.APIKeys
	store.RevocationReader
	store.StatusReader
	store.ACMEStore
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
	t.Run("Guards", func(t *testing.T) { testGuards(t, h) })
	t.Run("Recover", func(t *testing.T) { testRecover(t, h) })
	t.Run("ConcurrentGroupCommit", func(t *testing.T) { testConcurrent(t, h) })
	t.Run("AuditTamper", func(t *testing.T) { testAuditTamper(t, h) })
	t.Run("AuditVerifyWhileWriting", func(t *testing.T) { testAuditVerifyWhileWriting(t, h) })
	t.Run("Revoke", func(t *testing.T) { testRevoke(t, h) })
	t.Run("ConcurrentRevoke", func(t *testing.T) { testConcurrentRevoke(t, h) })
	t.Run("CRLNumbers", func(t *testing.T) { testCRLNumbers(t, h) })
	t.Run("StatusScan", func(t *testing.T) { testStatusScan(t, h) })
	t.Run("LoginLockout", func(t *testing.T) { testLoginLockout(t, h) })
	t.Run("LoginSettle", func(t *testing.T) { testLoginSettle(t, h) })
	t.Run("ConcurrentLogins", func(t *testing.T) { testConcurrentLogins(t, h) })
	t.Run("PruneLogins", func(t *testing.T) { testPruneLogins(t, h) })
	t.Run("UpgradePasswordHash", func(t *testing.T) { testUpgradePasswordHash(t, h) })
	t.Run("APIKeys", func(t *testing.T) { testAPIKeys(t, h) })
	t.Run("ConcurrentAPIKeyRevoke", func(t *testing.T) { testConcurrentAPIKeyRevoke(t, h) })
	t.Run("CertRevocation", func(t *testing.T) { testCertRevocation(t, h) })
	t.Run("SharedState", func(t *testing.T) { testShared(t, h) })
	t.Run("CredentialEpoch", func(t *testing.T) { testCredentialEpoch(t, h) })
	t.Run("ACMEOrderLimitAndPrune", func(t *testing.T) { testACMEOrderLimitAndPrune(t, h) })
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
