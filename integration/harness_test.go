//go:build integration

// Package integration runs zbca as a user would: the real binary, started
// as a subprocess on a temporary data directory, driven by its CLI and by
// real clients (curl-like HTTP, openssl, zlint, SoftHSM2).
//
//	go test -tags integration ./integration/
//
// With CI=true a test whose external tool is missing fails instead of
// skipping.
package integration

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

var zbcaBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "zbca-integration-")
	if err != nil {
		panic(err)
	}
	zbcaBin = filepath.Join(dir, "zbca")
	build := exec.Command("go", "build", "-o", zbcaBin, "../cmd/zbca")
	build.Stdout, build.Stderr = os.Stdout, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building zbca:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// requireTool returns the path of an external tool; without it the test
// skips, or fails in CI.
func requireTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s not found: .ci/run must install it", name)
		}
		t.Skipf("%s not found", name)
	}
	return p
}

// freePort is a free loopback address for a server the test starts
// later. It is picked below the kernel's ephemeral range: a port from that
// range (what ":0" gives) can be taken meanwhile by any outgoing
// connection, such as a server's own PostgreSQL connections ("address
// already in use", seen in the cluster test).
func freePort(t *testing.T) string {
	t.Helper()
	lo := 32768
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		fmt.Sscan(string(b), &lo)
	}
	for range 100 {
		if lo < 12000 {
			break
		}
		addr := fmt.Sprintf("127.0.0.1:%d", 10000+mrand.IntN(lo-10000))
		if ln, err := net.Listen("tcp", addr); err == nil {
			ln.Close()
			return addr
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// instance is one data directory with its configuration.
type instance struct {
	t       *testing.T
	dir     string // data directory
	config  string // config file
	http    string
	https   string
	admin   string
	cmd     *exec.Cmd
	stdout  *bytes.Buffer
	stderr  *bytes.Buffer
	waitErr chan error
}

// newInstance writes a config with free loopback ports; extra YAML is
// appended to it.
func newInstance(t *testing.T, extra string) *instance {
	t.Helper()
	base := t.TempDir()
	in := &instance{t: t, dir: filepath.Join(base, "data"), config: filepath.Join(base, "zbca.yaml"),
		http: freePort(t), https: freePort(t), admin: freePort(t)}
	cfg := fmt.Sprintf(`data_dir: %s
public_url: http://%s
listen:
  http: %q
  https: %q
  admin: %q
log:
  level: debug
%s`, in.dir, in.http, in.http, in.https, in.admin, extra)
	if err := os.WriteFile(in.config, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return in
}

// run runs a zbca CLI command on the instance and returns stdout; it fails
// the test on a non-zero exit unless wantErr.
func (in *instance) run(stdin string, args ...string) (string, string, error) {
	in.t.Helper()
	cmd := exec.Command(zbcaBin, append([]string{"--config", in.config}, args...)...)
	cmd.Env = append(os.Environ(), "ZBCA_CONFIG=", "ZBCA_DATA=")
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	return out.String(), errb.String(), err
}

func (in *instance) mustRun(stdin string, args ...string) string {
	in.t.Helper()
	out, errOut, err := in.run(stdin, args...)
	if err != nil {
		in.t.Fatalf("zbca %s: %v\nstdout: %s\nstderr: %s", strings.Join(args, " "), err, out, errOut)
	}
	return out
}

// start runs `zbca serve` and waits until /readyz answers.
func (in *instance) start() {
	in.t.Helper()
	in.stdout, in.stderr = &bytes.Buffer{}, &bytes.Buffer{}
	in.cmd = exec.Command(zbcaBin, "serve", "--config", in.config)
	in.cmd.Env = append(os.Environ(), "ZBCA_CONFIG=", "ZBCA_DATA=")
	in.cmd.Stdout, in.cmd.Stderr = in.stdout, in.stderr
	if err := in.cmd.Start(); err != nil {
		in.t.Fatal(err)
	}
	in.waitErr = make(chan error, 1)
	go func() { in.waitErr <- in.cmd.Wait() }()
	in.t.Cleanup(func() { in.stop() })
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-in.waitErr:
			in.t.Fatalf("zbca serve exited: %v\nstdout: %s\nstderr: %s", err, in.stdout, in.stderr)
		default:
		}
		resp, err := http.Get("http://" + in.admin + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	in.t.Fatalf("zbca serve not ready after 30s\nstderr: %s", in.stderr)
}

// stop sends SIGTERM and waits; a server that does not exit cleanly (status
// 0, "stopped" logged) within 20 s fails the test.
func (in *instance) stop() {
	if in.cmd == nil || in.cmd.Process == nil {
		return
	}
	_ = in.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-in.waitErr:
		if err != nil {
			in.t.Errorf("zbca serve exited with %v after SIGTERM\nstderr: %s", err, in.stderr)
		} else if !strings.Contains(in.stderr.String(), "msg=stopped") {
			in.t.Errorf("zbca serve did not log its graceful stop\nstderr: %s", in.stderr)
		}
	case <-time.After(20 * time.Second):
		in.cmd.Process.Kill()
		<-in.waitErr
		in.t.Errorf("zbca serve did not stop within 20 s of SIGTERM")
	}
	in.cmd = nil
}

// kill sends SIGKILL and waits.
func (in *instance) kill() {
	in.cmd.Process.Kill()
	<-in.waitErr
	in.cmd = nil
}

func (in *instance) adminToken() string {
	b, err := os.ReadFile(filepath.Join(in.dir, "secrets", "admin-token"))
	if err != nil {
		in.t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

func get(t *testing.T, url string) (*http.Response, []byte) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

// tool runs an external command and returns its combined output.
func tool(t *testing.T, name string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	return string(out), err
}

// httpsClient trusts only the instance's root.
func (in *instance) httpsClient(t *testing.T) *http.Client {
	_, root := get(t, "http://"+in.http+"/pki/root.crt")
	c, err := x509.ParseCertificate(root)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(c)
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
}
