package adminsock

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestSafeDataDir: a data directory that others can write, or that sits
// in a directory others can write without the sticky bit, is refused by
// the command line; the server makes its own 0700 and refuses the rest.
func TestSafeDataDir(t *testing.T) {
	base := t.TempDir() // 0700, in /tmp (sticky)
	mk := func(p string, mode os.FileMode) string {
		t.Helper()
		if err := os.MkdirAll(p, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := mk(filepath.Join(base, "good"), 0o700)
	if _, err := SafeDataDir(good, false); err != nil {
		t.Errorf("a private data directory: %v", err)
	}
	open := mk(filepath.Join(base, "open"), 0o777)
	if _, err := SafeDataDir(open, false); err == nil || !strings.Contains(err.Error(), "writable by group or others") {
		t.Errorf("a world-writable data directory, client: %v", err)
	}
	if tight, err := SafeDataDir(open, true); err != nil || !tight {
		t.Errorf("a world-writable data directory, server: %v %v", tight, err)
	}
	if fi, _ := os.Stat(open); fi.Mode().Perm() != 0o700 {
		t.Errorf("the server left mode %o", fi.Mode().Perm())
	}
	shared := mk(filepath.Join(base, "shared"), 0o777)
	inShared := mk(filepath.Join(shared, "data"), 0o700)
	if err := os.Chmod(shared, 0o777); err != nil {
		t.Fatal(err)
	}
	for _, server := range []bool{false, true} {
		if _, err := SafeDataDir(inShared, server); err == nil || !strings.Contains(err.Error(), "above the data directory") {
			t.Errorf("a data directory in a world-writable directory (server %v): %v", server, err)
		}
	}
	sticky := mk(filepath.Join(base, "sticky"), 0o777|os.ModeSticky)
	inSticky := mk(filepath.Join(sticky, "data"), 0o700)
	if _, err := SafeDataDir(inSticky, false); err != nil {
		t.Errorf("a data directory in a sticky directory like /tmp: %v", err)
	}
	// A symlink is followed to what it names.
	link := filepath.Join(base, "link")
	if err := os.Symlink(inShared, link); err != nil {
		t.Fatal(err)
	}
	if _, err := SafeDataDir(link, false); err == nil {
		t.Error("a symlink to an unsafe data directory was accepted")
	}
}

// TestSafeDataDirOwners: a data directory, or a directory above it, of
// another user is refused, on both sides (the second review: the command
// line sent the token to another user's server in that user's directory).
func TestSafeDataDirOwners(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to give a directory to another uid")
	}
	base := t.TempDir()
	theirs := filepath.Join(base, "theirs")
	if err := os.Mkdir(theirs, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(theirs, 4242, 4242); err != nil {
		t.Fatal(err)
	}
	for _, server := range []bool{false, true} {
		if _, err := SafeDataDir(theirs, server); err == nil || !strings.Contains(err.Error(), "belongs to uid 4242") {
			t.Errorf("another user's data directory (server %v): %v", server, err)
		}
	}
	parent := filepath.Join(base, "parent")
	mine := filepath.Join(parent, "data")
	if err := os.MkdirAll(mine, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(parent, 4242, 4242); err != nil {
		t.Fatal(err)
	}
	if _, err := SafeDataDir(mine, false); err == nil || !strings.Contains(err.Error(), "above the data directory, belongs to uid 4242") {
		t.Errorf("a data directory inside another user's directory: %v", err)
	}
	// A symlink in the path as written, in a directory another user
	// controls, is refused though its target is safe.
	if err := os.Chown(parent, 0, 0); err != nil {
		t.Fatal(err)
	}
	links := filepath.Join(base, "links")
	if err := os.Mkdir(links, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(links, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(parent, filepath.Join(links, "to")); err != nil {
		t.Fatal(err)
	}
	if _, err := SafeDataDir(mine, false); err != nil {
		t.Fatalf("the target on its own: %v", err)
	}
	if _, err := SafeDataDir(filepath.Join(links, "to", "data"), false); err == nil {
		t.Error("a path through a symlink in a world-writable directory was accepted")
	}
	// Group-writable by a group of this user's: accepted (Kubernetes fsGroup).
	grp := filepath.Join(base, "grp")
	if err := os.MkdirAll(filepath.Join(grp, "data"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(grp, 0o775|os.ModeSetgid); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(grp, 0, os.Getegid()); err != nil {
		t.Fatal(err)
	}
	if _, err := SafeDataDir(filepath.Join(grp, "data"), true); err != nil {
		t.Errorf("under a directory writable by this user's group: %v", err)
	}
	if err := os.Chown(grp, 0, 4242); err != nil {
		t.Fatal(err)
	}
	if _, err := SafeDataDir(filepath.Join(grp, "data"), true); err == nil {
		t.Error("under a directory writable by another group: accepted")
	}
}
