package main

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/zbca/zbca/config"
	"github.com/zbca/zbca/internal/adminsock"
	"github.com/zbca/zbca/internal/runlock"
	"github.com/zbca/zbca/revocation"
)

const testToken = "0123456789abcdef0123456789abcdef"

// testApp is an app on a fresh data directory with an admin token, the
// configured admin address being a TCP listener that records whoever
// talks to it: the squatter of the admin port.
func testApp(t *testing.T) (*app, *bytes.Buffer, *atomic.Int32) {
	t.Helper()
	data := t.TempDir()
	var cfg config.Config
	cfg.DataDir = data
	cfg.Admin.TokenFile = filepath.Join(data, "secrets", "admin-token")
	os.MkdirAll(filepath.Dir(cfg.Admin.TokenFile), 0o700)
	if err := os.WriteFile(cfg.Admin.TokenFile, []byte(testToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	squatter, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { squatter.Close() })
	var hits atomic.Int32
	go http.Serve(squatter, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.Write([]byte(`{"serial":"01","status":"revoked","revoked_at":"2026-01-01T00:00:00Z","reason":"keyCompromise"}`))
	}))
	cfg.Listen.Admin = squatter.Addr().String()
	var out bytes.Buffer
	return &app{cfg: cfg, stdout: &out, stderr: io.Discard}, &out, &hits
}

// fakeServer serves h on the data directory's admin socket, in this
// process.
func fakeServer(t *testing.T, a *app, h http.HandlerFunc) {
	t.Helper()
	ln, err := adminsock.Listen(a.runDir())
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close(); adminsock.Remove(a.runDir()) })
}

func holdServeLock(t *testing.T, a *app) {
	t.Helper()
	f, err := runlock.Exclusive(filepath.Join(a.runDir(), "serve.lock"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
}

const goodAnswer = `{"serial":"01","status":"revoked","revoked_at":"2026-01-01T00:00:00Z","reason":"keyCompromise"}`

// The server is down and someone listens on the admin port: the CLI
// neither talks to that listener nor reports a revocation by a server; it
// goes to the offline path (reachable false).
func TestRevokeIgnoresAdminPortSquatter(t *testing.T) {
	a, out, hits := testApp(t)
	done, err := a.revokeViaServer("01", revocation.KeyCompromise)
	if done || err != nil {
		t.Fatalf("server down: done %v err %v, want the offline path", done, err)
	}
	if hits.Load() != 0 {
		t.Fatalf("the listener on the admin port got %d requests (and the admin token)", hits.Load())
	}
	if out.Len() != 0 {
		t.Fatalf("printed %q", out)
	}
}

// A process answering on the socket without holding the serve lock (a
// leftover, an impostor of the same user) gets neither the token nor
// trust; so does one when another process holds the lock.
func TestAdminSocketNeedsLockHolder(t *testing.T) {
	a, out, _ := testApp(t)
	var got atomic.Int32
	fakeServer(t, a, func(w http.ResponseWriter, r *http.Request) {
		got.Add(1)
		w.Write([]byte(goodAnswer))
	})
	done, err := a.revokeViaServer("01", revocation.KeyCompromise)
	if !done || err == nil || !strings.Contains(err.Error(), "does not hold the data directory's serve lock") {
		t.Fatalf("socket without lock: done %v err %v", done, err)
	}

	// The lock held by another process (flock(1) standing in for a server
	// whose socket this impostor answers).
	if _, err := exec.LookPath("flock"); err != nil {
		t.Skip("flock(1) not available")
	}
	lock := filepath.Join(a.runDir(), "serve.lock")
	cmd := exec.Command("flock", "-x", lock, "sh", "-c", "echo $$ > "+lock+"; echo ready; exec sleep 30")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	pipe, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL); cmd.Wait() })
	if line, err := bufio.NewReader(pipe).ReadString('\n'); err != nil || line != "ready\n" {
		t.Fatalf("flock: %q %v", line, err)
	}
	done, err = a.revokeViaServer("01", revocation.KeyCompromise)
	if !done || err == nil || !strings.Contains(err.Error(), "holds it") {
		t.Fatalf("socket of another process than the lock holder: done %v err %v", done, err)
	}
	if got.Load() != 0 || out.Len() != 0 {
		t.Fatalf("requests sent %d, printed %q", got.Load(), out)
	}
}

// The lock holder answers: the request carries the token over the socket,
// and only an answer confirming this revocation is reported as success.
func TestRevokeChecksTheAnswer(t *testing.T) {
	for name, tc := range map[string]struct {
		status int
		body   string
		ok     bool
	}{
		"confirmed":      {200, goodAnswer, true},
		"empty 2xx":      {200, `{}`, false},
		"not json":       {204, ``, false},
		"other serial":   {200, strings.Replace(goodAnswer, `"01"`, `"02"`, 1), false},
		"not revoked":    {200, strings.Replace(goodAnswer, `"revoked",`, `"active",`, 1), false},
		"other reason":   {200, strings.Replace(goodAnswer, `keyCompromise`, `superseded`, 1), false},
		"no time":        {200, `{"serial":"01","status":"revoked","reason":"keyCompromise"}`, false},
		"server refuses": {409, `{"detail":"certificate 01 is already revoked"}`, false},
	} {
		t.Run(name, func(t *testing.T) {
			a, out, hits := testApp(t)
			holdServeLock(t, a)
			var auth string
			fakeServer(t, a, func(w http.ResponseWriter, r *http.Request) {
				auth = r.Header.Get("Authorization")
				if r.URL.Path != "/admin/v1/certificates/01/revoke" || r.Method != http.MethodPost {
					http.NotFound(w, r)
					return
				}
				w.WriteHeader(tc.status)
				w.Write([]byte(tc.body))
			})
			done, err := a.revokeViaServer("01", revocation.KeyCompromise)
			if !done {
				t.Fatal("the lock holder's socket was not used")
			}
			if auth != "Bearer "+testToken {
				t.Errorf("Authorization %q", auth)
			}
			if hits.Load() != 0 {
				t.Error("the TCP admin address was used")
			}
			if tc.ok {
				if err != nil || !strings.Contains(out.String(), "answers revoked now") {
					t.Fatalf("err %v, printed %q", err, out)
				}
				return
			}
			if err == nil || strings.Contains(out.String(), "revoked") {
				t.Fatalf("unconfirmed answer taken for success: err %v, printed %q", err, out)
			}
		})
	}
}

// The lock is held but nothing answers on the socket (a server starting,
// or one from before the socket): say so, do not guess.
func TestAdminSocketMissingWhileLocked(t *testing.T) {
	a, out, hits := testApp(t)
	holdServeLock(t, a)
	done, err := a.revokeViaServer("01", revocation.KeyCompromise)
	if !done || err == nil || !strings.Contains(err.Error(), "--offline") {
		t.Fatalf("done %v err %v", done, err)
	}
	if hits.Load() != 0 || out.Len() != 0 {
		t.Fatalf("TCP requests %d, printed %q", hits.Load(), out)
	}
}

// No admin token yet and no server: the offline path, quietly.
func TestAdminCallNoServerEver(t *testing.T) {
	a, _, _ := testApp(t)
	os.Remove(a.cfg.Admin.TokenFile)
	start := time.Now()
	if _, reachable, err := a.adminCall(http.MethodGet, "/healthz", nil); reachable || err != nil {
		t.Fatalf("reachable %v err %v", reachable, err)
	}
	if time.Since(start) > 2*time.Second {
		t.Fatal("slow")
	}
}

// TestAdminCallUnsafeDataDir: the review's attack. When another user can
// write to the data directory, they can rename its run directory away and
// put a socket and a serve lock of their own there (their process would
// answer as the lock holder, as the directory's owner): the command line
// refuses such a data directory before it dials, and sends no token.
func TestAdminCallUnsafeDataDir(t *testing.T) {
	a, out, _ := testApp(t)
	var got atomic.Int32
	holdServeLock(t, a)
	fakeServer(t, a, func(w http.ResponseWriter, r *http.Request) {
		got.Add(1)
		w.Write([]byte(goodAnswer))
	})
	if err := os.Chmod(a.cfg.DataDir, 0o777); err != nil {
		t.Fatal(err)
	}
	done, err := a.revokeViaServer("01", revocation.KeyCompromise)
	if !done || err == nil || !strings.Contains(err.Error(), "writable by group or others") {
		t.Fatalf("world-writable data directory: done %v err %v", done, err)
	}
	if got.Load() != 0 || out.Len() != 0 {
		t.Fatalf("requests sent %d, printed %q", got.Load(), out)
	}
	// The same directory made private again: the lock holder (this
	// process) is asked.
	if err := os.Chmod(a.cfg.DataDir, 0o700); err != nil {
		t.Fatal(err)
	}
	if done, err := a.revokeViaServer("01", revocation.KeyCompromise); !done || err != nil || got.Load() != 1 {
		t.Fatalf("private data directory: done %v err %v requests %d", done, err, got.Load())
	}
}
