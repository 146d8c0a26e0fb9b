package main

import (
	"archive/tar"
	"compress/gzip"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestBackupPermissions: the archive and every entry holding secrets
// (the database with its password hashes, EAB keys and nonce key; the CA
// keys and manifest; the configuration) are owner-only, even under a
// permissive umask and over a stale world-readable temporary file.
func TestBackupPermissions(t *testing.T) {
	dir := t.TempDir()
	if out, err := runZbca(t, "--data", dir, "init"); err != nil {
		t.Fatalf("init: %v\n%s", err, out)
	}
	outDir := t.TempDir()
	file := filepath.Join(outDir, "b.tar.gz")
	if err := os.WriteFile(file+".tmp", []byte("stale"), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := runZbca(t, "--data", dir, "backup", file); err != nil {
		t.Fatalf("backup: %v\n%s", err, out)
	}
	fi, err := os.Stat(file)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("archive mode %v, want 0600", fi.Mode().Perm())
	}
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	gz, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(gz)
	seen := map[string]int64{}
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		seen[h.Name] = h.Mode
		switch {
		case h.Typeflag == tar.TypeDir:
			if h.Mode != 0o700 {
				t.Errorf("%s: mode %o, want 0700", h.Name, h.Mode)
			}
		case strings.HasSuffix(h.Name, ".crt"):
			if h.Mode&0o022 != 0 {
				t.Errorf("%s: mode %o is writable by others", h.Name, h.Mode)
			}
		default:
			if h.Mode != 0o600 {
				t.Errorf("%s: mode %o, want 0600", h.Name, h.Mode)
			}
		}
	}
	for _, want := range []string{"zbca.db", "ca/root.key", "ca/hierarchy.json"} {
		if _, ok := seen[want]; !ok {
			t.Errorf("archive lacks %s: %v", want, seen)
		}
	}
}
