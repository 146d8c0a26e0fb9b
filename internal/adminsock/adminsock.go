// Package adminsock is the local channel between `zbca serve` and the
// operator's command line on the same host (PRODUCT.md, Listeners: local
// admin).
//
// The server listens on a Unix domain socket, admin.sock, in the data
// directory's run directory, which is kept at mode 0700 and owned by the
// server's user: nobody without access to the data directory can connect
// to it or bind it first. Only the process holding the data directory's
// serve lock may create or remove the socket (it replaces a stale one left
// by a server that died). Beside it, listen.json records the addresses the
// server really listens on, for commands and scripts that need them.
//
// A client checks who answers with the kernel's peer credentials
// (SO_PEERCRED) before it sends anything: the caller compares the peer's
// pid with the pid of the serve lock's holder.
package adminsock

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
)

// SocketName is the socket's file name in the run directory.
const SocketName = "admin.sock"

// maxPath is the longest socket path bind and connect take: sun_path holds
// 108 bytes on Linux (104 on the BSDs), one of them the terminating NUL.
const maxPath = 103

// Path returns the socket's path in the run directory dir.
func Path(dir string) string { return filepath.Join(dir, SocketName) }

// SecureDir makes sure dir is a directory (not a symlink) owned by this
// process's user, and tightens its mode to 0700 if it is looser. It creates
// dir (and its parents) when missing.
func SecureDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	fi, err := os.Lstat(dir)
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		return fmt.Errorf("%s is not a directory", dir)
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Uid) != os.Getuid() {
		return fmt.Errorf("%s belongs to uid %d, not to this user (uid %d): the admin socket must live in a directory only this user can enter", dir, st.Uid, os.Getuid())
	}
	if fi.Mode().Perm() != 0o700 {
		if err := os.Chmod(dir, 0o700); err != nil {
			return fmt.Errorf("making %s private: %w", dir, err)
		}
	}
	return nil
}

// Listen binds the admin socket in dir. The caller must hold the data
// directory's serve lock: a socket already there is then a dead server's
// and is removed (anything else at that path is an error). dir is made
// private first (SecureDir) and the socket gets mode 0600. Closing the
// listener does not remove the socket; Remove does.
//
// Connections from another user (possible only if someone loosens the
// directory's mode) are closed unanswered.
func Listen(dir string) (net.Listener, error) {
	if err := SecureDir(dir); err != nil {
		return nil, err
	}
	p := Path(dir)
	if err := removeStale(p); err != nil {
		return nil, err
	}
	var ln *net.UnixListener
	err := withShortPath(dir, func(addr string) error {
		l, err := net.ListenUnix("unix", &net.UnixAddr{Name: addr, Net: "unix"})
		if err != nil {
			return err
		}
		// Go would unlink addr on Close; with the /proc/self/fd form that
		// path means another directory once the descriptor is closed.
		l.SetUnlinkOnClose(false)
		ln = l
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("listening on the admin socket %s: %w", p, err)
	}
	if err := os.Chmod(p, 0o600); err != nil {
		ln.Close()
		os.Remove(p)
		return nil, err
	}
	return &sameUserListener{UnixListener: ln}, nil
}

// Remove removes the socket in dir; only the serve lock's holder calls it.
func Remove(dir string) error {
	err := os.Remove(Path(dir))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	return err
}

func removeStale(p string) error {
	fi, err := os.Lstat(p)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if fi.Mode().Type() != os.ModeSocket {
		return fmt.Errorf("%s exists and is not a socket: remove it by hand", p)
	}
	return os.Remove(p)
}

// Peer is the process at the other end of a connection, as the kernel
// reports it.
type Peer struct {
	PID int
	UID int
}

// Dial connects to the admin socket in dir and returns the connection with
// its peer. ErrNoServer (wrapped) means nothing listens there: the socket
// is missing, or left by a server that died.
func Dial(dir string) (*net.UnixConn, Peer, error) {
	var c *net.UnixConn
	err := withShortPath(dir, func(addr string) error {
		conn, err := net.DialUnix("unix", nil, &net.UnixAddr{Name: addr, Net: "unix"})
		c = conn
		return err
	})
	if err != nil {
		if errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ECONNREFUSED) {
			return nil, Peer{}, fmt.Errorf("%w at %s", ErrNoServer, Path(dir))
		}
		return nil, Peer{}, fmt.Errorf("connecting to %s: %w", Path(dir), err)
	}
	peer, err := peerOf(c)
	if err != nil {
		c.Close()
		return nil, Peer{}, fmt.Errorf("asking the kernel who answers on %s: %w", Path(dir), err)
	}
	return c, peer, nil
}

// ErrNoServer: no process listens on the admin socket.
var ErrNoServer = errors.New("no server listens on the admin socket")

// withShortPath calls f with the socket's path, or, when that path is too
// long for sun_path, with /proc/self/fd/N/admin.sock, N being a descriptor
// of dir held open during f (Linux).
func withShortPath(dir string, f func(addr string) error) error {
	p := Path(dir)
	if len(p) <= maxPath {
		return f(p)
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	short := "/proc/self/fd/" + strconv.Itoa(int(d.Fd())) + "/" + SocketName
	if _, err := os.Stat(filepath.Dir(short)); err != nil {
		return fmt.Errorf("the socket path is %d bytes, longer than the %d a Unix socket path may have, and /proc is not there to shorten it: use a shorter data directory path", len(p), maxPath)
	}
	return f(short)
}

// sameUserListener closes, unanswered, connections from processes of
// another user than the server's (root excepted).
type sameUserListener struct {
	*net.UnixListener
}

func (l *sameUserListener) Accept() (net.Conn, error) {
	for {
		c, err := l.UnixListener.AcceptUnix()
		if err != nil {
			return nil, err
		}
		p, err := peerOf(c)
		if err == nil && (p.UID == os.Getuid() || p.UID == 0) {
			return c, nil
		}
		c.Close()
	}
}
