package store

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"
)

// ChangeCounter returns a function that tells, in a few nanoseconds and
// without a query, whether anything was committed to the database since a
// previous call: its value changes at every commit by any connection of any
// process. ok is false when it cannot tell (PostgreSQL, or the SQLite
// shared-memory file is not there); then ask the database.
//
// On SQLite it reads the change counter of the WAL index (the -shm file
// every connection to the database maps; https://www.sqlite.org/walformat.html,
// WalIndexHdr.iChange at offset 8, incremented by every commit and by every
// reset of the WAL, written by the committing connection before its commit
// returns). The server's own connections keep the file in place while the
// store is open; the mapping is checked against the file every second and
// renewed (the value then changes too) if the file was replaced.
func (s *SQL) ChangeCounter() func() (uint64, bool) {
	if s.d.name != "sqlite" || s.path == "" {
		return nil
	}
	w := &walWatch{path: s.path + "-shm"}
	return w.value
}

// walWatch maps the first page of a SQLite -shm file read-only.
type walWatch struct {
	path    string
	mu      sync.Mutex
	mem     atomic.Pointer[[]byte]
	ino     uint64
	gen     atomic.Uint64 // mappings made; the high half of the value
	checked atomic.Int64  // unix nanoseconds of the last check of the file
}

const shmHeaderMap = 4096

func (w *walWatch) value() (uint64, bool) {
	now := time.Now().UnixNano()
	if m := w.mem.Load(); m != nil && now-w.checked.Load() < int64(time.Second) {
		return w.gen.Load()<<32 | uint64(atomic.LoadUint32((*uint32)(unsafe.Pointer(&(*m)[8])))), true
	}
	if err := w.check(now); err != nil {
		return 0, false
	}
	m := w.mem.Load()
	return w.gen.Load()<<32 | uint64(atomic.LoadUint32((*uint32)(unsafe.Pointer(&(*m)[8])))), true
}

// check (re)maps the file when it is not mapped yet or was replaced.
func (w *walWatch) check(now int64) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if now-w.checked.Load() < int64(time.Second) && w.mem.Load() != nil {
		return nil
	}
	var st syscall.Stat_t
	if err := syscall.Stat(w.path, &st); err != nil {
		w.unmap()
		return err
	}
	if w.mem.Load() != nil && st.Ino == w.ino {
		w.checked.Store(now)
		return nil
	}
	w.unmap()
	if st.Size < shmHeaderMap {
		return errors.New("store: WAL index not initialised")
	}
	f, err := os.Open(w.path)
	if err != nil {
		return err
	}
	defer f.Close()
	b, err := syscall.Mmap(int(f.Fd()), 0, shmHeaderMap, syscall.PROT_READ, syscall.MAP_SHARED)
	if err != nil {
		return fmt.Errorf("store: mapping %s: %w", w.path, err)
	}
	w.ino = st.Ino
	w.gen.Add(1)
	w.mem.Store(&b)
	w.checked.Store(now)
	return nil
}

// unmap drops the mapping. A reader that loaded the old pointer a moment
// ago may still read it: the old mapping is left in place (one page per
// replacement of the file, which happens only when every connection of
// every process closed the database meanwhile).
func (w *walWatch) unmap() {
	w.mem.Store(nil)
}
