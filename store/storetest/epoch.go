package storetest

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/zbca/zbca/internal/zerr"
	"github.com/zbca/zbca/store"
)

// testCredentialEpoch: an operator's passwd, disable and EndAccess end
// every ACME account and unused EAB key made before, and enable revives
// none of them (issue 15, point 2).
func testCredentialEpoch(t *testing.T, h Harness) {
	ctx := context.Background()
	s, _ := h.Open(t)
	e := addEnterprise(t, s, "acme")
	now := time.Now()
	eab := func(kid string, epoch int64) {
		t.Helper()
		if err := s.AddEABKey(ctx, &store.EABKey{KID: kid, HMACKey: []byte("k"), EnterpriseID: e.ID, Epoch: epoch, CreatedAt: now, ExpiresAt: now.Add(10 * time.Minute)}, ev("eab.issue", kid)); err != nil {
			t.Fatal(err)
		}
	}
	account := func(id, kid string) error {
		return s.CreateAccountWithEAB(ctx, &store.ACMEAccount{ID: id, Thumbprint: "tp-" + id, JWK: "{}", EnterpriseID: e.ID, Contact: "[]", EABKID: kid}, now, ev("acme.account.new", id))
	}
	current := func(id string) bool {
		t.Helper()
		a, err := s.GetACMEAccount(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		return a.Current()
	}

	eab("k1", 0)
	eab("k2", 0) // obtained with the old password, unused
	if err := account("a1", "k1"); err != nil {
		t.Fatal(err)
	}
	if !current("a1") {
		t.Fatal("a fresh account is not current")
	}
	if err := s.SetPasswordHash(ctx, "acme", "new-hash", ev("enterprise.passwd", "acme")); err != nil {
		t.Fatal(err)
	}
	if current("a1") {
		t.Error("an account made before passwd is still current")
	}
	if err := account("a2", "k2"); !errors.Is(err, zerr.Unauthorized) {
		t.Errorf("an EAB key obtained before passwd made an account: %v", err)
	}
	got, err := s.GetEnterprise(ctx, "acme")
	if err != nil || got.CredentialEpoch != 1 {
		t.Fatalf("epoch after passwd: %+v %v", got, err)
	}

	// A key of the new epoch works, until disable; enable revives nothing.
	eab("k3", 1)
	if err := account("a3", "k3"); err != nil || !current("a3") {
		t.Fatalf("account of the current epoch: %v", err)
	}
	if err := s.SetEnterpriseStatus(ctx, "acme", store.StatusDisabled, ev("enterprise.disable", "acme")); err != nil {
		t.Fatal(err)
	}
	if current("a3") {
		t.Error("an account of a disabled enterprise is current")
	}
	if err := s.SetEnterpriseStatus(ctx, "acme", store.StatusActive, ev("enterprise.enable", "acme")); err != nil {
		t.Fatal(err)
	}
	if current("a3") {
		t.Error("enable revived an account made before disable")
	}
	got, _ = s.GetEnterprise(ctx, "acme")
	if got.CredentialEpoch != 2 {
		t.Errorf("epoch after disable and enable = %d, want 2", got.CredentialEpoch)
	}

	// EndAccess alone.
	eab("k4", 2)
	if err := account("a4", "k4"); err != nil || !current("a4") {
		t.Fatalf("account of the current epoch: %v", err)
	}
	if n, err := s.EndAccess(ctx, "acme", ev("enterprise.logout", "acme")); err != nil || n != 3 {
		t.Fatalf("EndAccess = %d, %v; want epoch 3", n, err)
	}
	if current("a4") {
		t.Error("an account lives after EndAccess")
	}
	if _, err := s.EndAccess(ctx, "nobody", ev("enterprise.logout", "nobody")); !errors.Is(err, zerr.NotFound) {
		t.Errorf("EndAccess of an unknown enterprise: %v", err)
	}

	// An issuance whose requester proved the password under an older
	// epoch is refused in the journaling transaction, with nothing
	// written: a change that commits while a finalize is in flight stops
	// it.
	stale, cur := int64(2), int64(3)
	before := auditCount(t, s)
	j := store.JournalEntry{Serial: "e1", EnterpriseID: e.ID, Profile: store.ProfileClient, Issuer: "aa", Node: "n1", Boot: "b1", Guards: []store.Guard{store.EpochGuard(stale)}}
	if err := s.JournalSerial(ctx, j, ev("cert.signing", j.Serial)); !errors.Is(err, store.ErrAccessEnded) {
		t.Errorf("journaling under an old epoch: %v, want ErrAccessEnded", err)
	}
	if _, err := s.GetJournal(ctx, "e1"); !errors.Is(err, zerr.NotFound) || auditCount(t, s) != before {
		t.Errorf("a refused serial left a journal entry (%v) or an audit entry", err)
	}
	j.Guards = []store.Guard{store.EpochGuard(cur)}
	if err := s.JournalSerial(ctx, j, ev("cert.signing", j.Serial)); err != nil {
		t.Errorf("journaling under the current epoch: %v", err)
	}
	if err := s.SetEnterpriseStatus(ctx, "acme", store.StatusDisabled, ev("enterprise.disable", "acme")); err != nil {
		t.Fatal(err)
	}
	next := int64(4)
	j.Serial, j.Guards = "e2", []store.Guard{store.EpochGuard(next)}
	if err := s.JournalSerial(ctx, j, ev("cert.signing", j.Serial)); !errors.Is(err, store.ErrAccessEnded) {
		t.Errorf("journaling for a disabled enterprise at its epoch: %v, want ErrAccessEnded", err)
	}
	if err := s.SetEnterpriseStatus(ctx, "acme", store.StatusActive, ev("enterprise.enable", "acme")); err != nil {
		t.Fatal(err)
	}

	list, err := s.ListACMEAccounts(ctx, e.ID)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, a := range list {
		ids = append(ids, fmt.Sprint(a.ID, "@", a.Epoch))
	}
	if fmt.Sprint(ids) != "[a1@0 a3@1 a4@2]" {
		t.Errorf("ListACMEAccounts = %v", ids)
	}
}

// testACMEOrderLimitAndPrune: an account has at most maxPending unfinished
// orders; expired orders (not those being finalized) and EAB keys are
// pruned a bounded number at a time (issue 15, point 7).
func testACMEOrderLimitAndPrune(t *testing.T, h Harness) {
	ctx := context.Background()
	s, raw := h.Open(t)
	e := addEnterprise(t, s, "acme")
	now := time.Now()
	if err := s.AddEABKey(ctx, &store.EABKey{KID: "k", HMACKey: []byte("k"), EnterpriseID: e.ID, CreatedAt: now, ExpiresAt: now.Add(10 * time.Minute)}, ev("eab.issue", "k")); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateAccountWithEAB(ctx, &store.ACMEAccount{ID: "acct", Thumbprint: "tp", JWK: "{}", EnterpriseID: e.ID, Contact: "[]", EABKID: "k"}, now, ev("acme.account.new", "acct")); err != nil {
		t.Fatal(err)
	}
	order := func(id string, expires time.Time) error {
		return s.AddACMEOrder(ctx, &store.ACMEOrder{ID: id, AccountID: "acct", Status: "ready", Identifier: "acme", ExpiresAt: expires}, 3)
	}
	for i := range 3 {
		if err := order(fmt.Sprint("o", i), now.Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
	if err := order("o3", now.Add(time.Hour)); !errors.Is(err, store.ErrTooManyOrders) {
		t.Fatalf("a fourth unfinished order: %v, want ErrTooManyOrders", err)
	}
	if _, err := s.GetACMEOrder(ctx, "o3"); !errors.Is(err, zerr.NotFound) {
		t.Error("the refused order was stored")
	}
	a, err := s.GetACMEAccount(ctx, "acct")
	if err != nil || a.LastUsedAt.IsZero() {
		t.Errorf("last use not recorded: %+v %v", a, err)
	}
	// A finished order no longer counts.
	if err := s.SetACMEOrderStatus(ctx, "o0", "ready", "invalid", "", "x"); err != nil {
		t.Fatal(err)
	}
	if err := order("o3", now.Add(time.Hour)); err != nil {
		t.Fatalf("an order after one finished: %v", err)
	}

	// Expired: two ready ones and one being finalized.
	past := now.Add(-2 * time.Hour)
	for i := range 2 {
		if err := s.AddACMEOrder(ctx, &store.ACMEOrder{ID: fmt.Sprint("old", i), AccountID: "acct", Status: "ready", Identifier: "acme", ExpiresAt: past}, 0); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.AddACMEOrder(ctx, &store.ACMEOrder{ID: "busy", AccountID: "acct", Status: "processing", Identifier: "acme", ExpiresAt: past}, 0); err != nil {
		t.Fatal(err)
	}
	if n, err := s.PruneACMEOrders(ctx, now.Add(-time.Hour), 1); err != nil || n != 1 {
		t.Fatalf("PruneACMEOrders(limit 1) = %d, %v", n, err)
	}
	if n, err := s.PruneACMEOrders(ctx, now.Add(-time.Hour), 0); err != nil || n != 1 {
		t.Fatalf("PruneACMEOrders = %d, %v; want the other expired ready order", n, err)
	}
	if _, err := s.GetACMEOrder(ctx, "busy"); err != nil {
		t.Errorf("an order being finalized was pruned: %v", err)
	}
	if _, err := s.GetACMEOrder(ctx, "o1"); err != nil {
		t.Errorf("a live order was pruned: %v", err)
	}
	// EAB keys: the expired ones, used or not.
	if err := s.AddEABKey(ctx, &store.EABKey{KID: "old", HMACKey: []byte("k"), EnterpriseID: e.ID, CreatedAt: past, ExpiresAt: past}, ev("eab.issue", "old")); err != nil {
		t.Fatal(err)
	}
	if n, err := s.PruneEABKeys(ctx, now, 0); err != nil || n != 1 {
		t.Fatalf("PruneEABKeys = %d, %v; want 1", n, err)
	}
	var left int
	if err := raw.QueryRow(`SELECT count(*) FROM eab_keys`).Scan(&left); err != nil || left != 1 {
		t.Errorf("EAB keys left: %d %v", left, err)
	}
}
