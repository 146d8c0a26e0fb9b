// Package runlock tells which zbca processes on this host are alive.
//
// Every process that may journal serials (serve, init, cert issue) holds an
// exclusive flock on <dir>/<boot>.lock for as long as it runs. A journal
// entry whose boot has no held lock belongs to a process that died, so its
// pending serial can be marked failed; one whose lock is held belongs to a
// running process (a CLI issuance while the server starts) and is left
// alone. The kernel drops the lock when a process dies, even by SIGKILL.
package runlock

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Lock is a held boot lock.
type Lock struct {
	Boot string
	f    *os.File
	path string
}

// Acquire creates and locks a new boot lock in dir.
//
// Live may run in another process between the create and the flock: it
// finds the new file unlocked, takes the lock itself for an instant and
// unlinks the file as a dead process's. So Acquire waits for the lock
// (only such a probe can hold a file just made under a random name), then
// checks that dir still names the file it locked; if not, the boot was
// never handed out and Acquire starts again under a new one. Live unlinks
// only while it holds the lock, so once Acquire holds it on the named file
// nobody unlinks it until Release, and every later Live reports the boot;
// no Live before that could matter, as nothing is journaled under a boot
// before Acquire returns it.
func Acquire(dir string) (*Lock, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	for attempt := 0; ; attempt++ {
		l, err := tryAcquire(dir)
		if l != nil || err != nil {
			return l, err
		}
		if attempt == 10 {
			return nil, fmt.Errorf("locking a boot lock in %s: removed under us %d times", dir, attempt+1)
		}
	}
}

// tryAcquire makes one boot lock; it returns nil, nil when Live removed the
// file before the lock was taken.
func tryAcquire(dir string) (*Lock, error) {
	b := make([]byte, 8)
	if _, err := rand.Read(b); err != nil {
		return nil, err
	}
	boot := hex.EncodeToString(b)
	path := filepath.Join(dir, boot+".lock")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, err
	}
	if testHookCreated != nil {
		testHookCreated(path)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		os.Remove(path)
		return nil, fmt.Errorf("locking %s: %w", path, err)
	}
	locked, err := f.Stat()
	if err != nil {
		f.Close()
		os.Remove(path)
		return nil, err
	}
	named, err := os.Stat(path)
	if errors.Is(err, os.ErrNotExist) || err == nil && !os.SameFile(locked, named) {
		f.Close() // Live took it for a dead process's
		return nil, nil
	}
	if err != nil {
		f.Close()
		os.Remove(path)
		return nil, err
	}
	fmt.Fprintf(f, "%d\n", os.Getpid())
	return &Lock{Boot: boot, f: f, path: path}, nil
}

// testHookCreated, when set by a test, runs between Acquire's create and
// its flock.
var testHookCreated func(path string)

// Release removes the lock (on a clean exit).
func (l *Lock) Release() {
	os.Remove(l.path)
	l.f.Close()
}

// Live returns the boots in dir whose lock is held by a running process,
// and removes the lock files of dead ones.
func Live(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var live []string
	for _, e := range entries {
		boot, ok := strings.CutSuffix(e.Name(), ".lock")
		if !ok {
			continue
		}
		path := filepath.Join(dir, e.Name())
		f, err := os.OpenFile(path, os.O_RDWR, 0)
		if err != nil {
			continue // removed meanwhile
		}
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
			live = append(live, boot) // held: alive
		} else {
			os.Remove(path) // nobody holds it: its process is gone
		}
		f.Close()
	}
	return live, nil
}

// Exclusive takes the non-blocking exclusive lock of path for this
// process's lifetime: one server per data directory. The error names the
// holder's pid.
func Exclusive(path string) (*os.File, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		b, _ := os.ReadFile(path)
		f.Close()
		return nil, fmt.Errorf("another zbca server (pid %s) is using this data directory", strings.TrimSpace(string(b)))
	}
	if err := f.Truncate(0); err == nil {
		fmt.Fprintf(f, "%d\n", os.Getpid())
	}
	return f, nil
}

// Holder reports whether a process holds the exclusive lock of path (see
// Exclusive), and its pid as it wrote it there. It does not create path; a
// missing file is a free lock. The probe takes a shared lock for an instant
// when the lock is free.
func Holder(path string) (pid int, held bool, err error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, err
	}
	defer f.Close()
	switch err := syscall.Flock(int(f.Fd()), syscall.LOCK_SH|syscall.LOCK_NB); {
	case err == nil:
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		return 0, false, nil
	case !errors.Is(err, syscall.EWOULDBLOCK):
		return 0, false, fmt.Errorf("probing %s: %w", path, err)
	}
	// The holder truncates the file, then writes its pid, after locking.
	for range 50 {
		b, err := os.ReadFile(path)
		if err != nil {
			return 0, true, err
		}
		if s := strings.TrimSpace(string(b)); s != "" {
			pid, err := strconv.Atoi(s)
			if err != nil {
				return 0, true, fmt.Errorf("%s: %q is not a pid", path, s)
			}
			return pid, true, nil
		}
		time.Sleep(10 * time.Millisecond)
	}
	return 0, true, fmt.Errorf("%s is locked but names no pid", path)
}
