package store_test

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"

	_ "modernc.org/sqlite"

	"github.com/zbca/zbca/store"
	"github.com/zbca/zbca/store/storetest"
)

func openSQLite(t *testing.T) (storetest.Store, *sql.DB) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "zbca.db")
	s, err := store.Open(context.Background(), store.Options{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	raw, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { raw.Close() })
	return s, raw
}

func TestSQLite(t *testing.T) {
	storetest.Run(t, storetest.Harness{Open: openSQLite})
}

func TestSQLiteReopenKeepsData(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "zbca.db")
	s, err := store.Open(ctx, store.Options{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.AddEnterprise(ctx, &store.Enterprise{Username: "a", Name: "A", PasswordHash: "h"}, store.AuditEvent{Actor: "t", Action: "enterprise.add"}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s, err = store.Open(ctx, store.Options{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.GetEnterprise(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	if n, _, err := s.VerifyAudit(ctx); err != nil || n != 1 {
		t.Fatalf("audit after reopen: %d %v", n, err)
	}
}

func TestBackup(t *testing.T) {
	ctx := context.Background()
	s, _ := openSQLite(t)
	if err := s.AppendAudit(ctx, store.AuditEvent{Actor: "t", Action: "x"}); err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(t.TempDir(), "copy.db")
	if err := s.(*store.SQL).Backup(ctx, dst); err != nil {
		t.Fatal(err)
	}
	c, err := store.Open(ctx, store.Options{Path: dst})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if n, _, err := c.VerifyAudit(ctx); err != nil || n != 1 {
		t.Fatalf("backup audit: %d %v", n, err)
	}
}
