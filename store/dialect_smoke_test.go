package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/zbca/zbca/store"
)

// TestDialectSmoke runs, on each backend, the store methods that neither
// the conformance suite nor the other store tests reach, so that a query
// one database does not accept is caught here rather than in production.
func TestDialectSmoke(t *testing.T) { eachBackend(t, testDialectSmoke) }

func testDialectSmoke(t *testing.T, s *store.SQL) {
	ctx := context.Background()
	now := time.Now()
	ev := store.AuditEvent{Actor: "test", Action: "test"}
	must := func(what string, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	must("ping", s.Ping(ctx))
	e := &store.Enterprise{Username: "alpha", Name: "Alpha", PasswordHash: "x"}
	must("add enterprise", s.AddEnterprise(ctx, e, ev))
	if n, err := s.CountEnterprises(ctx); err != nil || n != 1 {
		t.Fatalf("CountEnterprises: %d %v", n, err)
	}

	must("add eab", s.AddEABKey(ctx, &store.EABKey{KID: "k", HMACKey: []byte("h"), EnterpriseID: e.ID, CreatedAt: now, ExpiresAt: now.Add(time.Hour)}, ev))
	if k, err := s.GetEABKey(ctx, "k"); err != nil || string(k.HMACKey) != "h" {
		t.Fatalf("GetEABKey: %+v %v", k, err)
	}
	acct := &store.ACMEAccount{ID: "acct", Thumbprint: "tp", JWK: "{}", EnterpriseID: e.ID, Contact: "[]", EABKID: "k"}
	must("create account", s.CreateAccountWithEAB(ctx, acct, now, ev))
	if _, err := s.GetACMEAccount(ctx, "acct"); err != nil {
		t.Fatalf("GetACMEAccount: %v", err)
	}
	must("change key", s.ChangeACMEAccountKey(ctx, "acct", "tp", "tp2", "{}", ev))
	a, err := s.GetACMEAccountByThumbprint(ctx, "tp2")
	must("account by thumbprint", err)
	a.Contact = `["mailto:a@example.com"]`
	must("update account", s.UpdateACMEAccount(ctx, a, ev))
	must("add order", s.AddACMEOrder(ctx, &store.ACMEOrder{ID: "o", AccountID: "acct", Status: "pending", Identifier: "alpha", ExpiresAt: now.Add(time.Hour)}, 0))
	must("order status", s.SetACMEOrderStatus(ctx, "o", "pending", "ready", "", ""))

	var js []store.JournalEntry
	var cs []*store.Certificate
	for _, serial := range []string{"a1", "a2", "a3"} {
		js = append(js, store.JournalEntry{Serial: serial, EnterpriseID: e.ID, Profile: store.ProfileClient, Issuer: "i", Node: "n", Boot: "b"})
		cs = append(cs, &store.Certificate{Serial: serial, EnterpriseID: e.ID, Profile: store.ProfileClient, Issuer: "i", Subject: "CN=alpha",
			NotBefore: now, NotAfter: now.AddDate(1, 0, 0), DER: []byte{1}, SPKISHA256: "k" + serial, FingerprintSHA256: "f" + serial})
	}
	must("journal serials", s.JournalSerials(ctx, js, ev))
	must("store certificates", s.StoreCertificates(ctx, cs, ev))
	must("journal a4", s.JournalSerial(ctx, store.JournalEntry{Serial: "a4", EnterpriseID: e.ID, Profile: store.ProfileClient, Issuer: "i", Node: "n", Boot: "b"}, ev))
	c := &store.Certificate{Serial: "a4", EnterpriseID: e.ID, Profile: store.ProfileClient, Issuer: "i", Subject: "CN=alpha",
		NotBefore: now, NotAfter: now.AddDate(1, 0, 0), DER: []byte{1}, SPKISHA256: "ka4", FingerprintSHA256: "fa4"}
	sup, err := s.StoreCertificateSuperseding(ctx, c, ev, 2, "test")
	if err != nil || len(sup) != 2 {
		t.Fatalf("StoreCertificateSuperseding: %d superseded, %v", len(sup), err)
	}
	if n, err := s.CountRevoked(ctx, "i"); err != nil || n != 2 {
		t.Fatalf("CountRevoked: %d %v", n, err)
	}
	list, err := s.ListCertificates(ctx, store.CertFilter{Username: "alpha", Profile: store.ProfileClient, After: "a1", Limit: 10})
	if err != nil || len(list) != 3 {
		t.Fatalf("ListCertificates: %d %v", len(list), err)
	}
	if n, _, err := s.VerifyAudit(ctx); err != nil || n == 0 {
		t.Fatalf("VerifyAudit: %d %v", n, err)
	}
}
