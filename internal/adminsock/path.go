package adminsock

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"syscall"
)

// SafeDataDir checks that nobody but this user and root (and the members
// of a group this user is in) can replace the data directory or anything
// in it. Otherwise another local user could rename the run directory away
// and put a socket of their own, with a serve lock of their own, in its
// place, and be sent the admin token.
//
//   - The data directory belongs to this user, or to root with write
//     access for a group of this user's (a Kubernetes volume with
//     fsGroup); it is not writable by others, nor by a group this user is
//     not in.
//   - Every directory above it, on the path as written and on the path
//     its symlinks resolve to, belongs to root or this user and is not
//     writable by others or by a group this user is not in, unless it has
//     the sticky bit (like /tmp).
//
// server is the check of `zbca serve`: a data directory of this user that
// is too open is made 0700 (tightened reports it, for a log line). The
// command line's check (server false) only refuses: run it as the data
// directory's owner.
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
	me := os.Geteuid()
	groups, _ := os.Getgroups()
	groups = append(groups, os.Getegid())
	mine := func(gid int) bool { return slices.Contains(groups, gid) }
	owner, gid := ownerOf(fi)
	perm := fi.Mode().Perm()
	groupOK := perm&0o020 == 0 || mine(gid)
	switch {
	case owner == me:
		if perm&0o002 != 0 || !groupOK {
			if !server {
				return false, fmt.Errorf("the data directory %s is writable by group or others (mode %04o): whoever can write there can impersonate the server; make it 0700", real, perm)
			}
			if err := os.Chmod(real, perm&^0o077); err != nil {
				return false, fmt.Errorf("making the data directory %s private: %w", real, err)
			}
			tightened = true
		}
	case owner == 0 && perm&0o002 == 0 && perm&0o020 != 0 && mine(gid):
		// A volume given to this user's group (Kubernetes fsGroup).
	default:
		who := "run zbca as that user (sudo -u '#" + fmt.Sprint(owner) + "' zbca …)"
		if server {
			who = "give it to the user running zbca serve (chown) or choose another"
		}
		return false, fmt.Errorf("the data directory %s belongs to uid %d (mode %04o), not to this user (uid %d): %s", real, owner, perm, me, who)
	}
	check := func(p string) error {
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		if fi.Mode()&os.ModeSymlink != 0 {
			return nil // replaced only by whoever may write the directory holding it, checked too
		}
		uid, gid := ownerOf(fi)
		if uid != 0 && uid != me {
			return fmt.Errorf("%s, above the data directory, belongs to uid %d: its owner could replace the data directory; move the data directory somewhere only root and this user control", p, uid)
		}
		m := fi.Mode()
		if m&os.ModeSticky == 0 && (m.Perm()&0o002 != 0 || (m.Perm()&0o020 != 0 && !mine(gid))) {
			return fmt.Errorf("%s, above the data directory, is writable by group or others (mode %04o) without the sticky bit: anyone could replace the data directory; make it 0755 or move the data directory", p, m.Perm())
		}
		return nil
	}
	for _, start := range []string{abs, real} {
		for p := filepath.Dir(start); ; p = filepath.Dir(p) {
			if err := check(p); err != nil {
				return tightened, err
			}
			if p == filepath.Dir(p) {
				break
			}
		}
	}
	return tightened, nil
}

// ownerOf is a file's owner uid and gid, or -1 where the platform does not
// say.
func ownerOf(fi os.FileInfo) (uid, gid int) {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return int(st.Uid), int(st.Gid)
	}
	return -1, -1
}
