package store_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/zbca/zbca/store"
)

// TestCopyTablesCoverSchema fails when a migration adds a table that
// neither store.CopyTables nor store.TransientTables lists (its rows would
// not be moved).
func TestCopyTablesCoverSchema(t *testing.T) {
	st, _ := openSQLite(t)
	names, err := store.SQLiteTables(context.Background(), st.(*store.SQL))
	if err != nil {
		t.Fatal(err)
	}
	names = slices.DeleteFunc(names, func(n string) bool { return n == "schema_migrations" })
	want := slices.Concat(store.CopyTables, store.TransientTables)
	slices.Sort(want)
	if !slices.Equal(names, want) {
		t.Fatalf("schema tables %v, store.CopyTables and TransientTables %v: add the new table to CopyTables (in dependency order)", names, want)
	}
}

var hash1 = strings.Repeat("a", 64)

// fillStore writes some of everything through the store API.
func fillStore(t *testing.T, s *store.SQL) {
	t.Helper()
	ctx := context.Background()
	now := time.Now()
	ev := func(a, sub string) store.AuditEvent { return store.AuditEvent{Actor: "test", Action: a, Subject: sub} }
	var first int64
	for i := range 30 {
		e := &store.Enterprise{Username: fmt.Sprintf("e%02d", i), Name: fmt.Sprintf("E %d", i), PasswordHash: "h"}
		if err := s.AddEnterprise(ctx, e, ev("enterprise.add", e.Username)); err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			first = e.ID
		}
	}
	if err := s.SetServerKeygen(ctx, "e01", true, ev("enterprise.keygen", "e01")); err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		serial := fmt.Sprintf("%x", 0x1000+i)
		if err := s.JournalSerial(ctx, store.JournalEntry{Serial: serial, EnterpriseID: first, Profile: store.ProfileClient, Issuer: "aa",
			Node: "n", Boot: "b", SPKISHA256: "spki-" + serial}, ev("cert.signing", serial)); err != nil {
			t.Fatal(err)
		}
		c := &store.Certificate{Serial: serial, EnterpriseID: first, Profile: store.ProfileClient, Issuer: "aa", Subject: "CN=" + serial,
			NotBefore: now, NotAfter: now.AddDate(3, 0, 0), DER: []byte{0x30, 0x03, 0x02, 0x01, byte(i)}, SPKISHA256: "spki-" + serial, FingerprintSHA256: "fp" + serial}
		if err := s.StoreCertificate(ctx, c, ev("cert.signed", serial)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.JournalSerial(ctx, store.JournalEntry{Serial: "dead", EnterpriseID: first, Profile: store.ProfileClient, Issuer: "aa",
		Node: "n", Boot: "b", SPKISHA256: "spki-dead"}, ev("cert.signing", "dead")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Revoke(ctx, store.RevokeRequest{Serial: "1003", Reason: 1, Actor: "test"}); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		n, err := s.NextCRLNumber(ctx, "aa")
		if err != nil {
			t.Fatal(err)
		}
		if err := s.SaveCRL(ctx, &store.CRL{Name: "aa", Number: n, ThisUpdate: now, NextUpdate: now.Add(time.Hour), DER: []byte{0x30, byte(n)}, Entries: 1}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.NextCRLNumber(ctx, "bb"); err != nil { // a CRL number without a CRL yet: empty DER
		t.Fatal(err)
	}
	if err := s.AddEABKey(ctx, &store.EABKey{KID: "k", HMACKey: []byte("hmac"), EnterpriseID: first, CreatedAt: now, ExpiresAt: now.Add(time.Hour)}, ev("eab.issue", "k")); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateAccountWithEAB(ctx, &store.ACMEAccount{ID: "acct", Thumbprint: "tp", JWK: "{}", EnterpriseID: first, Contact: "[]", EABKID: "k"}, now, ev("acme.account.new", "acct")); err != nil {
		t.Fatal(err)
	}
	if err := s.AddACMEOrder(ctx, &store.ACMEOrder{ID: "o1", AccountID: "acct", Status: "ready", Identifier: "e00", ExpiresAt: now.Add(time.Hour)}, 0); err != nil {
		t.Fatal(err)
	}
	if err := s.AddAPIKey(ctx, &store.APIKey{Name: "site", Hash: hash1, Prefix: "zb_1"}, ev("apikey.add", "site")); err != nil {
		t.Fatal(err)
	}
	a, err := s.BeginLogin(ctx, "e02", now, store.LockoutPolicy{Threshold: 5, Base: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.FinishLogin(ctx, a, store.LoginFailed, ev("login.failed", "e02")); err != nil {
		t.Fatal(err)
	}
	for i := range 50 {
		if err := s.AppendAudit(ctx, store.AuditEvent{Actor: "test", Action: "x", Subject: fmt.Sprint(i), Details: map[string]any{"i": i}}); err != nil {
			t.Fatal(err)
		}
	}
	// Transient state, which is not copied.
	if err := s.CreateSession(ctx, "session-token", "e00", 0, now.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.UseNonce(ctx, "used-nonce", now.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.TakeToken(ctx, "192.0.2.1", now, 1, 5); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ClusterSecret(ctx, "acme-nonce"); err != nil {
		t.Fatal(err)
	}
}

func TestCopySQLiteToPostgres(t *testing.T) {
	ctx := context.Background()
	s1, _ := openSQLite(t)
	src := s1.(*store.SQL)
	fillStore(t, src)
	d1, raw := openPG(t)
	dst := d1.(*store.SQL)
	defer store.SetCopyBatch(7, 3)() // many batches and statements per table

	seen := map[string]int64{}
	if err := store.Copy(ctx, dst, src, func(table string, n int64) { seen[table] = n }); err != nil {
		t.Fatal(err)
	}
	if seen["enterprises"] != 30 || seen["certificates"] != 20 || seen["issuance_journal"] != 21 {
		t.Fatalf("progress: %v", seen)
	}
	srcN, srcHead, err := src.VerifyAudit(ctx)
	if err != nil {
		t.Fatal(err)
	}
	dstN, dstHead, err := dst.VerifyAudit(ctx)
	if err != nil || dstN != srcN || dstHead != srcHead || dstN < 100 {
		t.Fatalf("audit: dst %d %s %v; src %d %s", dstN, dstHead, err, srcN, srcHead)
	}

	// The planner has statistics for the loaded tables (autovacuum may be
	// off, as on this machine).
	var analysed int
	if err := raw.QueryRowContext(ctx, `SELECT count(*) FROM pg_stat_user_tables WHERE schemaname = current_schema() AND relname = 'certificates' AND (last_analyze IS NOT NULL OR last_autoanalyze IS NOT NULL)`).Scan(&analysed); err != nil || analysed != 1 {
		t.Errorf("certificates not analysed after the copy (%d, %v)", analysed, err)
	}

	// Spot checks.
	c, err := dst.GetCertificate(ctx, "1005")
	if err != nil || !bytes.Equal(c.DER, []byte{0x30, 0x03, 0x02, 0x01, 5}) || c.Username != "e00" {
		t.Fatalf("certificate: %+v %v", c, err)
	}
	r, found, err := dst.CertRevocation(ctx, "1003")
	if err != nil || !found || !r.Revoked || r.Reason != 1 {
		t.Fatalf("revocation: %+v %v %v", r, found, err)
	}
	if j, err := dst.GetJournal(ctx, "dead"); err != nil || j.State != "pending" {
		t.Fatalf("journal: %+v %v", j, err)
	}
	if on, err := dst.ServerKeygen(ctx, "e01"); err != nil || !on {
		t.Fatalf("server keygen: %v %v", on, err)
	}
	if ls, err := dst.LoginState(ctx, "e02"); err != nil || ls.Failures != 1 {
		t.Fatalf("login state: %+v %v", ls, err)
	}
	if o, err := dst.GetACMEOrder(ctx, "o1"); err != nil || o.AccountID != "acct" {
		t.Fatalf("order: %+v %v", o, err)
	}
	if k, err := dst.APIKeyByHash(ctx, hash1); err != nil || k.Name != "site" {
		t.Fatalf("api key: %+v %v", k, err)
	}
	if crl, err := dst.LatestCRL(ctx, "aa"); err != nil || crl.Number != 3 || !bytes.Equal(crl.DER, []byte{0x30, 3}) {
		t.Fatalf("CRL: %+v %v", crl, err)
	}
	if n, err := dst.NextCRLNumber(ctx, "bb"); err != nil || n != 2 {
		t.Fatalf("NextCRLNumber(bb): %d %v, want 2", n, err)
	}
	if n, err := dst.NextCRLNumber(ctx, "aa"); err != nil || n != 4 {
		t.Fatalf("NextCRLNumber: %d %v, want 4", n, err)
	}
	// Transient state stays behind; the cluster secrets come along (the
	// keyed hashes of the lockout table and the audit log depend on them).
	if _, _, found, err := dst.Session(ctx, "session-token", time.Now()); err != nil || found {
		t.Fatalf("session copied: %v %v", found, err)
	}
	if fresh, err := dst.UseNonce(ctx, "used-nonce", time.Now().Add(time.Hour)); err != nil || fresh {
		t.Fatalf("a nonce used before the move is fresh after it: %v %v", fresh, err)
	}
	srcKey, _ := src.ClusterSecret(ctx, "acme-nonce")
	if dstKey, err := dst.ClusterSecret(ctx, "acme-nonce"); err != nil || len(dstKey) != 32 || !bytes.Equal(dstKey, srcKey) {
		t.Fatalf("cluster secret after copy: %x %v", dstKey, err)
	}
	// New writes continue the ids and the chain.
	e := &store.Enterprise{Username: "new", Name: "New", PasswordHash: "h"}
	if err := dst.AddEnterprise(ctx, e, store.AuditEvent{Actor: "t", Action: "enterprise.add"}); err != nil {
		t.Fatalf("insert after copy: %v", err)
	}
	old, _ := src.GetEnterprise(ctx, "e29")
	if e.ID <= old.ID {
		t.Fatalf("new enterprise id %d, last copied %d", e.ID, old.ID)
	}
	if err := dst.AddAPIKey(ctx, &store.APIKey{Name: "site2", Hash: strings.Repeat("b", 64), Prefix: "zb_2"}, store.AuditEvent{Actor: "t", Action: "apikey.add"}); err != nil {
		t.Fatalf("api key after copy: %v", err)
	}
	if n, _, err := dst.VerifyAudit(ctx); err != nil || n != srcN+2 {
		t.Fatalf("audit after new writes: %d %v, want %d", n, err, srcN+2)
	}

	// A second copy into the now non-empty destination is refused and
	// writes nothing.
	var before int64
	raw.QueryRowContext(ctx, `SELECT COUNT(*) FROM audit_log`).Scan(&before)
	err = store.Copy(ctx, dst, src, nil)
	if !errors.Is(err, store.ErrDestinationNotEmpty) {
		t.Fatalf("copy into a non-empty store: %v", err)
	}
	var after int64
	raw.QueryRowContext(ctx, `SELECT COUNT(*) FROM audit_log`).Scan(&after)
	if after != before {
		t.Fatalf("refused copy changed the destination: %d → %d", before, after)
	}
}

// TestCopyRefusesNonEmpty: one row anywhere (here only a login state, no
// enterprise) makes the destination non-empty.
func TestCopyRefusesNonEmpty(t *testing.T) {
	ctx := context.Background()
	s1, _ := openSQLite(t)
	src := s1.(*store.SQL)
	fillStore(t, src)
	d1, _ := openPG(t)
	dst := d1.(*store.SQL)
	if _, err := dst.BeginLogin(ctx, "x", time.Now(), store.LockoutPolicy{Threshold: 5, Base: time.Minute}); err != nil {
		t.Fatal(err)
	}
	if err := store.Copy(ctx, dst, src, nil); !errors.Is(err, store.ErrDestinationNotEmpty) {
		t.Fatalf("Copy: %v", err)
	}
	if n, err := dst.CountEnterprises(ctx); err != nil || n != 0 {
		t.Fatalf("enterprises after a refused copy: %d %v", n, err)
	}
}

func TestQuoteIdent(t *testing.T) {
	for in, want := range map[string]string{
		"serial":                 `"serial"`,
		`a"b`:                    `"a""b"`,
		`x) VALUES (1); DROP --`: `"x) VALUES (1); DROP --"`,
	} {
		if got := store.QuoteIdent(in); got != want {
			t.Errorf("QuoteIdent(%q) = %s, want %s", in, got, want)
		}
	}
}
