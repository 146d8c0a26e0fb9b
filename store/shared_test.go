package store_test

import (
	"bytes"
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/zbca/zbca/store"
	"github.com/zbca/zbca/store/storetest"
)

// openTwo opens two stores on one database, as two nodes would: two
// store.Open on one SQLite file, or on one PostgreSQL schema.
func openTwo(t *testing.T, backend string) (a, b *store.SQL) {
	t.Helper()
	ctx := context.Background()
	var o store.Options
	switch backend {
	case "sqlite":
		o = store.Options{Path: filepath.Join(t.TempDir(), "zbca.db")}
		first, err := store.Open(ctx, o)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { first.Close() })
		a = first
	case "postgres":
		st, raw := openPG(t)
		var schema string
		if err := raw.QueryRowContext(ctx, `SELECT current_schema()`).Scan(&schema); err != nil {
			t.Fatal(err)
		}
		o = store.Options{Driver: "postgres", DSN: withSearchPath(pgDSN(), schema)}
		a = st.(*store.SQL)
	}
	b, err := store.Open(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return a, b
}

// TestSharedStateAcrossStores: what one node writes of the shared state,
// another node on the same database reads and obeys.
func TestSharedStateAcrossStores(t *testing.T) {
	for _, backend := range []string{"sqlite", "postgres"} {
		t.Run(backend, func(t *testing.T) {
			if backend == "postgres" {
				pgAdmin(t)
			}
			a, b := openTwo(t, backend)
			testSharedAcross(t, a, b)
		})
	}
}

func testSharedAcross(t *testing.T, a, b *store.SQL) {
	ctx := context.Background()
	now := time.Date(2027, 3, 1, 8, 0, 0, 0, time.UTC)

	// A session started on a ends on b.
	if err := a.AddEnterprise(ctx, &store.Enterprise{Username: "acme", Name: "Acme", PasswordHash: "x", Status: store.StatusActive}, store.AuditEvent{Actor: "test", Action: "enterprise.add", Subject: "acme"}); err != nil {
		t.Fatal(err)
	}
	if err := a.CreateSession(ctx, "tok", "acme", 0, now.Add(10*time.Minute)); err != nil {
		t.Fatal(err)
	}
	if u, _, found, err := b.Session(ctx, "tok", now); err != nil || !found || u != "acme" {
		t.Fatalf("session on the other node: %q %v %v", u, found, err)
	}
	if err := b.DeleteSession(ctx, "tok"); err != nil {
		t.Fatal(err)
	}
	if _, _, found, err := a.Session(ctx, "tok", now); err != nil || found {
		t.Fatalf("a session ended on one node lives on the other: %v %v", found, err)
	}

	// The operator ends access on b: a's next read of a session or an
	// ACME account made before is refused (the credential epoch).
	if err := a.CreateSession(ctx, "tok2", "acme", 0, now.Add(10*time.Minute)); err != nil {
		t.Fatal(err)
	}
	e, err := a.GetEnterprise(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	if err := a.AddEABKey(ctx, &store.EABKey{KID: "k1", HMACKey: []byte("k"), EnterpriseID: e.ID, CreatedAt: time.Now(), ExpiresAt: time.Now().Add(time.Hour)}, store.AuditEvent{Actor: "test", Action: "eab.issue", Subject: "k1"}); err != nil {
		t.Fatal(err)
	}
	if err := a.CreateAccountWithEAB(ctx, &store.ACMEAccount{ID: "acct", Thumbprint: "tp", JWK: "{}", EnterpriseID: e.ID, Contact: "[]", EABKID: "k1"}, time.Now(), store.AuditEvent{Actor: "test", Action: "acme.account.new", Subject: "acct"}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.EndAccess(ctx, "acme", store.AuditEvent{Actor: "operator", Action: "enterprise.logout", Subject: "acme"}); err != nil {
		t.Fatal(err)
	}
	if _, _, found, err := a.Session(ctx, "tok2", now); err != nil || found {
		t.Fatalf("a session lives on one node after the other ended access: %v %v", found, err)
	}
	if acct, err := a.GetACMEAccount(ctx, "acct"); err != nil || acct.Current() {
		t.Fatalf("an ACME account is current on one node after the other ended access: %+v %v", acct, err)
	}

	// A nonce used on a is a replay on b.
	if fresh, err := a.UseNonce(ctx, "nonce", now.Add(time.Minute)); err != nil || !fresh {
		t.Fatalf("first use: %v %v", fresh, err)
	}
	if fresh, err := b.UseNonce(ctx, "nonce", now.Add(time.Minute)); err != nil || fresh {
		t.Fatalf("use on the other node: %v %v, want a replay", fresh, err)
	}

	// One secret for both, whoever asks first.
	sb, err := b.ClusterSecret(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	if sa, err := a.ClusterSecret(ctx, "k"); err != nil || !bytes.Equal(sa, sb) {
		t.Fatalf("secrets differ: %x %x %v", sa, sb, err)
	}

	// One bucket: a burst of 4 taken in turns on both, then both refuse,
	// and only the first refusal, wherever it happens, is marked first.
	for i := range 4 {
		s := []*store.SQL{a, b}[i%2]
		if ok, _, err := s.TakeToken(ctx, "198.51.100.1", now, 1, 4); err != nil || !ok {
			t.Fatalf("take %d: %v %v", i+1, ok, err)
		}
	}
	for i, s := range []*store.SQL{a, b, a} {
		ok, first, err := s.TakeToken(ctx, "198.51.100.1", now, 1, 4)
		if err != nil || ok || first != (i == 0) {
			t.Fatalf("refusal %d: ok %v first %v %v", i+1, ok, first, err)
		}
	}
	storetest.ConcurrentTakes(t, []store.RateStore{a, b})
}

// TestPrunerLockOneNode: on PostgreSQL one node at a time prunes expired
// ACME state; the other skips its round until the lock is released (or
// its holder's session ends). On SQLite (one server per file) always
// granted.
func TestPrunerLockOneNode(t *testing.T) {
	ctx := context.Background()
	for _, backend := range []string{"sqlite", "postgres"} {
		t.Run(backend, func(t *testing.T) {
			if backend == "postgres" {
				pgAdmin(t)
			}
			a, b := openTwo(t, backend)
			unlockA, ok, err := a.TryLockPruner(ctx)
			if err != nil || !ok {
				t.Fatalf("first node: %v %v", ok, err)
			}
			unlockB, ok, err := b.TryLockPruner(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if want := backend == "sqlite"; ok != want {
				t.Fatalf("second node while the first prunes: granted %v, want %v", ok, want)
			}
			if ok {
				unlockB()
			}
			unlockA()
			unlockB, ok, err = b.TryLockPruner(ctx)
			if err != nil || !ok {
				t.Fatalf("second node after the first released: %v %v", ok, err)
			}
			unlockB()
		})
	}
}
