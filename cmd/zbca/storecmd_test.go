package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"

	_ "github.com/jackc/pgx/v5/stdlib"

	"github.com/zbca/zbca/internal/runlock"
	"github.com/zbca/zbca/store"
)

// testSchemaDSN makes a fresh PostgreSQL schema and returns a DSN using it;
// it skips when PostgreSQL is unreachable (fails in CI).
func testSchemaDSN(t *testing.T) string {
	t.Helper()
	base := os.Getenv("ZBCA_TEST_PG_DSN")
	if base == "" {
		base = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
	}
	admin, err := sql.Open("pgx", base)
	if err == nil {
		err = admin.Ping()
	}
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("PostgreSQL: %v", err)
		}
		t.Skipf("PostgreSQL not reachable: %v", err)
	}
	t.Cleanup(func() { admin.Close() })
	b := make([]byte, 8)
	rand.Read(b)
	schema := "zbca_cli_" + hex.EncodeToString(b)
	if _, err := admin.Exec(`CREATE SCHEMA ` + schema); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.Exec(`DROP SCHEMA ` + schema + ` CASCADE`) })
	sep := "?"
	if strings.Contains(base, "?") {
		sep = "&"
	}
	if !strings.Contains(base, "://") {
		return base + " search_path=" + schema
	}
	return base + sep + "search_path=" + schema
}

func runZbca(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	a := &app{stdin: strings.NewReader(""), stdout: &out, stderr: &out}
	root := a.rootCmd()
	root.SetArgs(args)
	err := root.ExecuteContext(context.Background())
	if a.lock != nil {
		a.lock.Release()
	}
	return out.String(), err
}

func TestStoreMigrate(t *testing.T) {
	dsn := testSchemaDSN(t)
	ctx := context.Background()
	dir := t.TempDir()
	s, err := store.Open(ctx, store.Options{Path: filepath.Join(dir, "zbca.db")})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.AddEnterprise(ctx, &store.Enterprise{Username: "a", Name: "A", PasswordHash: "h"}, store.AuditEvent{Actor: "t", Action: "enterprise.add"}); err != nil {
		t.Fatal(err)
	}
	_, head, _ := s.VerifyAudit(ctx)
	s.Close()
	dsnFile := filepath.Join(dir, "dsn")
	if err := os.WriteFile(dsnFile, []byte(dsn), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := runZbca(t, "--data", dir, "store", "migrate", "--dsn-file", dsnFile); err == nil || !strings.Contains(err.Error(), "0600") {
		t.Fatalf("a 0644 DSN file: %v", err)
	}
	os.Chmod(dsnFile, 0o600)

	lock, err := runlock.Exclusive(filepath.Join(dir, "run", "serve.lock"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := runZbca(t, "--data", dir, "store", "migrate", "--dsn-file", dsnFile); err == nil || !strings.Contains(err.Error(), "stop it") {
		t.Fatalf("migrate while a server runs: %v", err)
	}
	lock.Close()

	out, err := runZbca(t, "--data", dir, "store", "migrate", "--dsn-file", dsnFile)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	for _, want := range []string{"enterprises        1 rows", "audit chain 1 entries, head " + head, "driver: postgres", "dsn_file: " + dsnFile} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, dsn) {
		t.Errorf("the DSN was printed:\n%s", out)
	}
	if _, err := runZbca(t, "--data", dir, "store", "migrate", "--dsn-file", dsnFile); err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Fatalf("second migrate: %v", err)
	}
}
