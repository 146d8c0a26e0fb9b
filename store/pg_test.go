package store_test

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	_ "github.com/jackc/pgx/v5/stdlib"

	"github.com/zbca/zbca/store"
	"github.com/zbca/zbca/store/storetest"
)

// pgDSN is the test database: ZBCA_TEST_PG_DSN, or the local PostgreSQL
// (trust auth, database test).
func pgDSN() string {
	if dsn := os.Getenv("ZBCA_TEST_PG_DSN"); dsn != "" {
		return dsn
	}
	return "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
}

// pgAdmin connects to the test database, or skips the test when
// PostgreSQL is not reachable (fails instead in CI).
func pgAdmin(t *testing.T) *sql.DB {
	t.Helper()
	admin, err := sql.Open("pgx", pgDSN())
	if err == nil {
		err = admin.PingContext(context.Background())
	}
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("PostgreSQL: %v", err)
		}
		t.Skipf("PostgreSQL not reachable: %v", err)
	}
	t.Cleanup(func() { admin.Close() })
	return admin
}

// openPG opens a store in a schema of its own, dropped after the test.
func openPG(t *testing.T) (storetest.Store, *sql.DB) {
	t.Helper()
	ctx := context.Background()
	admin := pgAdmin(t)
	var b [8]byte
	rand.Read(b[:])
	schema := "zbca_test_" + hex.EncodeToString(b[:])
	if _, err := admin.ExecContext(ctx, `CREATE SCHEMA `+schema); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if _, err := admin.ExecContext(context.Background(), `DROP SCHEMA `+schema+` CASCADE`); err != nil {
			t.Errorf("dropping %s: %v", schema, err)
		}
	})
	dsn := withSearchPath(pgDSN(), schema)
	s, err := store.Open(ctx, store.Options{Driver: "postgres", DSN: dsn})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	raw, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { raw.Close() })
	return s, raw
}

// withSearchPath adds search_path to a DSN in URL or keyword/value form.
func withSearchPath(dsn, schema string) string {
	switch {
	case !strings.Contains(dsn, "://"):
		return dsn + " search_path=" + schema
	case strings.Contains(dsn, "?"):
		return dsn + "&search_path=" + schema
	default:
		return dsn + "?search_path=" + schema
	}
}

func TestPostgres(t *testing.T) {
	pgAdmin(t)
	storetest.Run(t, storetest.Harness{Open: openPG})
}

// eachBackend runs a store-internal test on SQLite and on PostgreSQL.
func eachBackend(t *testing.T, fn func(t *testing.T, s *store.SQL)) {
	t.Run("sqlite", func(t *testing.T) {
		s, _ := openSQLite(t)
		fn(t, s.(*store.SQL))
	})
	t.Run("postgres", func(t *testing.T) {
		s, _ := openPG(t)
		fn(t, s.(*store.SQL))
	})
}

// TestPostgresReopen: migrations run once; data and the audit chain
// survive a reopen; Backup points to pg_dump.
func TestPostgresReopen(t *testing.T) {
	ctx := context.Background()
	st, raw := openPG(t)
	s := st.(*store.SQL)
	if err := s.AddEnterprise(ctx, &store.Enterprise{Username: "a", Name: "A", PasswordHash: "h"}, store.AuditEvent{Actor: "t", Action: "enterprise.add"}); err != nil {
		t.Fatal(err)
	}
	var schema string
	if err := raw.QueryRowContext(ctx, `SELECT current_schema()`).Scan(&schema); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s, err := store.Open(ctx, store.Options{Driver: "postgres", DSN: withSearchPath(pgDSN(), schema)})
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
	if err := s.Backup(ctx, filepath.Join(t.TempDir(), "x")); !errors.Is(err, store.ErrBackupPostgres) {
		t.Fatalf("Backup: %v", err)
	}
}

// TestPostgresTwoWritersOneChain: two stores on one database (two nodes,
// each with its own writer) append to one audit chain without forking it.
func TestPostgresTwoWritersOneChain(t *testing.T) {
	ctx := context.Background()
	st, raw := openPG(t)
	var schema string
	if err := raw.QueryRowContext(ctx, `SELECT current_schema()`).Scan(&schema); err != nil {
		t.Fatal(err)
	}
	other, err := store.Open(ctx, store.Options{Driver: "postgres", DSN: withSearchPath(pgDSN(), schema)})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	const n = 200
	errs := make(chan error, 2*n)
	for _, s := range []storetest.Store{st, other} {
		for range n {
			go func() { errs <- s.AppendAudit(ctx, store.AuditEvent{Actor: "t", Action: "x"}) }()
		}
	}
	for range 2 * n {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if got, _, err := st.VerifyAudit(ctx); err != nil || got != 2*n {
		t.Fatalf("VerifyAudit: %d %v, want %d", got, err, 2*n)
	}
}
