package adminsock

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// SafeDataDir checks that nobody but this user, root and the data
// directory's owner can replace the data directory or anything in it: the
// directory must not be writable by group or others, and no directory
// above it may be owned by anyone else or writable by group or others
// (unless it has the sticky bit, like /tmp). Otherwise another local user
// could rename the run directory away and put a socket of their own, with
// a serve lock of their own, in its place. Symlinks are resolved first.
//
// server is the check of `zbca serve`: the data directory must then belong
// to this user, and if it is writable by group or others it is made 0700
// (the caller logs that). The command line's check (server false) only
// refuses.
func SafeDataDir(dataDir string, server bool) (tightened bool, err error) {
	abs, err := filepath.Abs(dataDir)
	if err != nil {
		return false, err
	}
	real, err := filepath.EvalSymlinks(abs)
	if err != nil {
		return false, err
	}
	fi, err := os.Lstat(real)
	if err != nil {
		return false, err
	}
	if !fi.IsDir() {
		return false, fmt.Errorf("the data directory %s is not a directory", real)
	}
	owner := ownerOf(fi)
	me := os.Geteuid()
	if server && owner != me {
		return false, fmt.Errorf("the data directory %s belongs to uid %d, not to the user running zbca serve (uid %d): give it to that user (chown) or choose another", real, owner, me)
	}
	if perm := fi.Mode().Perm(); perm&0o022 != 0 {
		if !server {
			return false, fmt.Errorf("the data directory %s is writable by group or others (mode %04o): whoever can write there can impersonate the server; make it 0700", real, perm)
		}
		if err := os.Chmod(real, perm&^0o077); err != nil {
			return false, fmt.Errorf("making the data directory %s private: %w", real, err)
		}
		tightened = true
	}
	trusted := func(uid int) bool { return uid == 0 || uid == me || uid == owner }
	for p := filepath.Dir(real); ; p = filepath.Dir(p) {
		fi, err := os.Lstat(p)
		if err != nil {
			return tightened, err
		}
		if uid := ownerOf(fi); !trusted(uid) {
			return tightened, fmt.Errorf("%s, above the data directory, belongs to uid %d: its owner could replace the data directory; move the data directory somewhere only root and uid %d control", p, uid, owner)
		}
		if fi.Mode().Perm()&0o022 != 0 && fi.Mode()&os.ModeSticky == 0 {
			return tightened, fmt.Errorf("%s, above the data directory, is writable by group or others (mode %04o) without the sticky bit: anyone could replace the data directory; make it 0755 or move the data directory", p, fi.Mode().Perm())
		}
		if p == filepath.Dir(p) {
			return tightened, nil
		}
	}
}

// ownerOf is a file's owner uid, or -1 where the platform does not say.
func ownerOf(fi os.FileInfo) int {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return int(st.Uid)
	}
	return -1
}
