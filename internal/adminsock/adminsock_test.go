package adminsock

import (
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// serveEcho answers each connection with "ok\n" and closes it.
func serveEcho(t *testing.T, ln net.Listener) {
	t.Helper()
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			io.WriteString(c, "ok\n")
			c.Close()
		}
	}()
}

func dialRead(t *testing.T, dir string) Peer {
	t.Helper()
	c, peer, err := Dial(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	b, err := io.ReadAll(c)
	if err != nil || string(b) != "ok\n" {
		t.Fatalf("read %q, %v", b, err)
	}
	return peer
}

// The socket lives in a private directory: a looser run directory is
// tightened to 0700, the socket is 0600, and the peer is this process.
func TestListenPrivate(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "run")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	ln, err := Listen(dir)
	if err != nil {
		t.Fatal(err)
	}
	serveEcho(t, ln)
	fi, err := os.Stat(dir)
	if err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("run directory mode %v (%v), want 0700", fi.Mode().Perm(), err)
	}
	fi, err = os.Lstat(Path(dir))
	if err != nil || fi.Mode().Type() != os.ModeSocket || fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket %s: mode %v (%v), want a 0600 socket", Path(dir), fi.Mode(), err)
	}
	if p := dialRead(t, dir); p.PID != os.Getpid() || p.UID != os.Getuid() {
		t.Fatalf("peer %+v, want pid %d uid %d", p, os.Getpid(), os.Getuid())
	}
	// Closing leaves the socket file for Remove (the lock holder) to take.
	ln.Close()
	if _, _, err := Dial(dir); !errors.Is(err, ErrNoServer) {
		t.Fatalf("dial after close: %v, want ErrNoServer", err)
	}
	if err := Remove(dir); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(Path(dir)); !os.IsNotExist(err) {
		t.Fatal("socket not removed")
	}
}

// A dead server's socket is replaced; anything else at the path is not
// touched; a symlinked run directory is refused.
func TestListenStale(t *testing.T) {
	dir := t.TempDir()
	old, err := Listen(dir)
	if err != nil {
		t.Fatal(err)
	}
	old.Close() // a server that died: the socket file stays
	if _, _, err := Dial(dir); !errors.Is(err, ErrNoServer) {
		t.Fatalf("dial a stale socket: %v, want ErrNoServer", err)
	}
	ln, err := Listen(dir)
	if err != nil {
		t.Fatalf("stale socket not replaced: %v", err)
	}
	serveEcho(t, ln)
	dialRead(t, dir)

	other := t.TempDir()
	os.WriteFile(Path(other), []byte("keep"), 0o600)
	if _, err := Listen(other); err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Fatalf("regular file at the socket path: %v", err)
	}
	if b, _ := os.ReadFile(Path(other)); string(b) != "keep" {
		t.Fatal("regular file at the socket path was changed")
	}

	link := filepath.Join(t.TempDir(), "run")
	if err := os.Symlink(t.TempDir(), link); err != nil {
		t.Fatal(err)
	}
	if _, err := Listen(link); err == nil {
		t.Fatal("symlinked run directory accepted")
	}
}

func TestDialNothing(t *testing.T) {
	for name, dir := range map[string]string{"no socket": t.TempDir(), "no directory": filepath.Join(t.TempDir(), "absent")} {
		if _, _, err := Dial(dir); !errors.Is(err, ErrNoServer) {
			t.Errorf("%s: %v, want ErrNoServer", name, err)
		}
	}
}

// A data directory deep enough that <dir>/admin.sock exceeds sun_path
// still gets its socket, in the directory itself, through /proc/self/fd.
func TestLongPath(t *testing.T) {
	dir := t.TempDir()
	for len(Path(dir)) <= 110 {
		dir = filepath.Join(dir, "a-rather-long-directory-name")
	}
	ln, err := Listen(dir)
	if err != nil {
		t.Fatal(err)
	}
	serveEcho(t, ln)
	fi, err := os.Lstat(Path(dir))
	if err != nil || fi.Mode().Type() != os.ModeSocket {
		t.Fatalf("socket not at %s: %v", Path(dir), err)
	}
	if p := dialRead(t, dir); p.PID != os.Getpid() {
		t.Fatalf("peer %+v", p)
	}
	ln.Close()
	if _, err := os.Lstat(Path(dir)); err != nil {
		t.Fatalf("closing the listener removed or moved the socket: %v", err)
	}
}

func TestInfo(t *testing.T) {
	dir := t.TempDir()
	want := Info{PID: 4242, HTTP: "http://127.0.0.1:8080", HTTPS: "https://127.0.0.1:8443", Admin: "http://127.0.0.1:9090",
		AdminSocket: Path(dir), PublicURL: "http://localhost:8080", Started: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	if err := WriteInfo(dir, want); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(dir, InfoName))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("listen.json mode %v (%v), want 0600", fi.Mode().Perm(), err)
	}
	got, err := ReadInfo(dir)
	if err != nil || *got != want {
		t.Fatalf("read %+v, %v; want %+v", got, err, want)
	}
	if m, _ := filepath.Glob(filepath.Join(dir, "*.tmp")); len(m) > 0 {
		t.Fatalf("temporary files left: %v", m)
	}
	// Another server's file is left alone; our own goes.
	if err := RemoveInfo(dir, 1); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadInfo(dir); err != nil {
		t.Fatal("removed another process's listen.json")
	}
	if err := RemoveInfo(dir, want.PID); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadInfo(dir); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("listen.json not removed: %v", err)
	}
	os.WriteFile(filepath.Join(dir, InfoName), []byte(`{"pid":1,"extra":2}`), 0o600)
	if _, err := ReadInfo(dir); err == nil {
		t.Fatal("unknown member accepted")
	}
}
