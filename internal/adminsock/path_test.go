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
