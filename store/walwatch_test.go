package store_test

import (
	"context"
	"testing"

	"github.com/zbca/zbca/store"
)

// TestChangeCounter: the SQLite change counter stays put while nothing is
// committed (reads included) and moves at every commit, by this store or by
// another connection (as another process would be); PostgreSQL has none.
func TestChangeCounter(t *testing.T) {
	ctx := context.Background()
	st, raw := openSQLite(t)
	s := st.(*store.SQL)
	cc := s.ChangeCounter()
	if cc == nil {
		t.Fatal("no change counter on SQLite")
	}
	v0, ok := cc()
	if !ok {
		t.Fatal("change counter unavailable on an open SQLite store")
	}
	if _, err := s.GetEnterprise(ctx, "nobody"); err == nil {
		t.Fatal("found nobody")
	}
	var n int
	if err := raw.QueryRowContext(ctx, `SELECT count(*) FROM certificates`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if v, _ := cc(); v != v0 {
		t.Fatalf("counter moved on reads: %x → %x", v0, v)
	}
	if err := s.AddEnterprise(ctx, &store.Enterprise{Username: "a", Name: "A", PasswordHash: "h"}, store.AuditEvent{Actor: "t", Action: "enterprise.add"}); err != nil {
		t.Fatal(err)
	}
	v1, _ := cc()
	if v1 == v0 {
		t.Fatal("counter did not move on this store's commit")
	}
	if _, err := raw.ExecContext(ctx, `UPDATE enterprises SET name = 'B' WHERE username = 'a'`); err != nil {
		t.Fatal(err)
	}
	v2, _ := cc()
	if v2 == v1 {
		t.Fatal("counter did not move on another connection's commit")
	}
	if v, _ := cc(); v != v2 {
		t.Fatalf("counter moved without a commit: %x → %x", v2, v)
	}
}

func TestChangeCounterPostgres(t *testing.T) {
	st, _ := openPG(t)
	if st.(*store.SQL).ChangeCounter() != nil {
		t.Fatal("PostgreSQL has a change counter")
	}
}
