//go:build integration

package integration

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ocsp"
)

// listenInfo is <data>/run/listen.json as a script reads it.
type listenInfo struct {
	PID         int    `json:"pid"`
	HTTP        string `json:"http"`
	HTTPS       string `json:"https"`
	Admin       string `json:"admin"`
	AdminSocket string `json:"admin_socket"`
	PublicURL   string `json:"public_url"`
}

// squatter listens on addr as a local attacker does while the server is
// down, answers every request with a convincing "revoked", and records
// the Authorization headers it was handed.
type squatter struct {
	mu    sync.Mutex
	auths []string
	ln    net.Listener
}

func squat(t *testing.T, addr string) *squatter {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("squatting %s: %v", addr, err)
	}
	s := &squatter{ln: ln}
	go http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.auths = append(s.auths, r.Method+" "+r.URL.Path+" "+r.Header.Get("Authorization"))
		s.mu.Unlock()
		serial := strings.TrimSuffix(strings.TrimPrefix(r.URL.Path, "/admin/v1/certificates/"), "/revoke")
		fmt.Fprintf(w, `{"serial":%q,"status":"revoked","revoked_at":%q,"reason":"keyCompromise"}`, serial, time.Now().UTC().Format(time.RFC3339))
	}))
	t.Cleanup(func() { ln.Close() })
	return s
}

func (s *squatter) requests() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.auths...)
}

// writeCSR writes a fresh P-256 CSR in PEM to dir/name.csr.
func writeCSR(t *testing.T, dir, name string) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: name}}, key)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, name+".csr")
	if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// readChain returns the leaf and its issuer from a PEM chain file.
func readChain(t *testing.T, path string) (leaf, issuer *x509.Certificate) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var certs []*x509.Certificate
	for blk, rest := pem.Decode(b); blk != nil; blk, rest = pem.Decode(rest) {
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		certs = append(certs, c)
	}
	if len(certs) < 2 {
		t.Fatalf("%s: no issuer in the chain", path)
	}
	return certs[0], certs[1]
}

// ocspAt asks the responder at base (http://host:port) about a leaf.
func ocspAt(t *testing.T, base string, leaf, issuer *x509.Certificate) int {
	t.Helper()
	req, err := ocsp.CreateRequest(leaf, issuer, &ocsp.RequestOptions{Hash: crypto.SHA1})
	if err != nil {
		t.Fatal(err)
	}
	_, body := get(t, base+"/ocsp/"+url.PathEscape(base64.StdEncoding.EncodeToString(req)))
	resp, err := ocsp.ParseResponseForCert(body, leaf, issuer)
	if err != nil {
		t.Fatalf("OCSP response: %v", err)
	}
	return resp.Status
}

// startServe runs `zbca serve` with extra flags (ports the harness's
// readiness probe does not know) and waits for listen.json to name this
// process and its admin listener to be ready.
func (in *instance) startServe(args ...string) listenInfo {
	t := in.t
	t.Helper()
	in.stdout, in.stderr = &bytes.Buffer{}, &bytes.Buffer{}
	in.cmd = exec.Command(zbcaBin, append([]string{"serve", "--config", in.config}, args...)...)
	in.cmd.Env = append(os.Environ(), "ZBCA_CONFIG=", "ZBCA_DATA=")
	in.cmd.Stdout, in.cmd.Stderr = in.stdout, in.stderr
	if err := in.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	in.waitErr = make(chan error, 1)
	go func() { in.waitErr <- in.cmd.Wait() }()
	t.Cleanup(func() { in.stop() })
	path := filepath.Join(in.dir, "run", "listen.json")
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		select {
		case err := <-in.waitErr:
			t.Fatalf("zbca serve exited: %v\nstdout: %s\nstderr: %s", err, in.stdout, in.stderr)
		default:
		}
		b, err := os.ReadFile(path)
		if err != nil {
			continue
		}
		var info listenInfo
		if err := json.Unmarshal(b, &info); err != nil {
			t.Fatalf("listen.json: %v\n%s", err, b)
		}
		if info.PID != in.cmd.Process.Pid {
			continue
		}
		if resp, err := http.Get(info.Admin + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return info
			}
		}
	}
	t.Fatalf("zbca serve did not write listen.json or become ready within 60 s\nstderr: %s", in.stderr)
	return listenInfo{}
}

func mode(t *testing.T, path string) os.FileMode {
	t.Helper()
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode()
}

// TestAdminSocketSquattedAdminPort: the server is down and a local user
// listens on the configured admin address. `zbca cert revoke` must not
// hand that listener the admin token nor take its "revoked" for an answer:
// it revokes in the database, says so, and OCSP says revoked once the
// server runs.
func TestAdminSocketSquattedAdminPort(t *testing.T) {
	in := newInstance(t, "")
	in.mustRun("", "init")
	in.mustRun(testPassword+"\n", "enterprise", "add", "acme", "--name", "ACME Ltd", "--password-stdin")
	work := t.TempDir()
	chain := filepath.Join(work, "acme.pem")
	in.mustRun("", "cert", "issue", "--enterprise", "acme", "--csr", writeCSR(t, work, "acme"), "--out", chain)
	leaf, issuer := readChain(t, chain)
	serial := fmt.Sprintf("%x", leaf.SerialNumber)

	sq := squat(t, in.admin)
	out, errOut, err := in.run("", "cert", "revoke", serial, "--reason", "keyCompromise")
	if reqs := sq.requests(); len(reqs) > 0 {
		t.Fatalf("the listener squatting the admin port got %v", reqs)
	}
	if err != nil || strings.Contains(out, "answers revoked now") || !strings.Contains(out, "in the database (no zbca server runs on") {
		t.Fatalf("zbca cert revoke with the admin port squatted: %v\nstdout: %s\nstderr: %s", err, out, errOut)
	}
	var shown struct {
		Status string `json:"status"`
	}
	if err := json.Unmarshal([]byte(in.mustRun("", "cert", "show", serial, "--json")), &shown); err != nil || shown.Status != "revoked" {
		t.Fatalf("after revoke: status %q (%v)", shown.Status, err)
	}

	// The real server, on other ports, knows the revocation from the
	// database.
	info := in.startServe("--admin", freePort(t))
	if got := ocspAt(t, info.HTTP, leaf, issuer); got != ocsp.Revoked {
		t.Fatalf("OCSP status %d after the offline revocation, want revoked", got)
	}
	if reqs := sq.requests(); len(reqs) > 0 {
		t.Fatalf("the listener squatting the admin port got %v", reqs)
	}
}

// TestAdminSocketRevokeThroughServer: with `zbca serve` running on ports
// chosen at start, listen.json names the real addresses; the admin socket
// is private to the data directory's owner; `zbca cert issue` and `cert
// revoke` go through it (a squatter on the configured admin port hears
// nothing) and OCSP answers revoked when revoke returns. A clean stop
// removes the socket and listen.json.
func TestAdminSocketRevokeThroughServer(t *testing.T) {
	in := newInstance(t, "")
	in.mustRun("", "init")
	info := in.startServe("--http", "127.0.0.1:0", "--https", "127.0.0.1:0", "--admin", "127.0.0.1:0")

	// listen.json: the ports the kernel gave, each answering.
	runDir := filepath.Join(in.dir, "run")
	if m := mode(t, filepath.Join(runDir, "listen.json")); m.Perm() != 0o600 {
		t.Errorf("listen.json mode %v, want 0600", m)
	}
	for name, u := range map[string]string{"http": info.HTTP, "https": info.HTTPS, "admin": info.Admin} {
		pu, err := url.Parse(u)
		if err != nil || pu.Port() == "" || pu.Port() == "0" {
			t.Fatalf("listen.json %s %q: not a bound address", name, u)
		}
	}
	if resp, _ := get(t, info.HTTP+"/pki/root.crt"); resp.StatusCode != 200 {
		t.Errorf("GET %s/pki/root.crt: %d", info.HTTP, resp.StatusCode)
	}
	if resp, _ := get(t, info.Admin+"/healthz"); resp.StatusCode != 200 {
		t.Errorf("GET %s/healthz: %d", info.Admin, resp.StatusCode)
	}
	conn, err := tls.Dial("tcp", strings.TrimPrefix(info.HTTPS, "https://"), &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Errorf("TLS to %s: %v", info.HTTPS, err)
	} else {
		conn.Close()
	}

	// The socket: in the data directory's run directory, 0700, itself 0600.
	sock := filepath.Join(runDir, "admin.sock")
	if info.AdminSocket != sock {
		t.Errorf("listen.json admin_socket %q, want %q", info.AdminSocket, sock)
	}
	if m := mode(t, sock); m.Type() != os.ModeSocket || m.Perm() != 0o600 {
		t.Errorf("%s mode %v, want a 0600 socket", sock, m)
	}
	if m := mode(t, runDir); m.Perm() != 0o700 {
		t.Errorf("%s mode %v, want 0700", runDir, m)
	}

	sq := squat(t, in.admin) // the configured admin address, unused by this server
	in.mustRun(testPassword+"\n", "enterprise", "add", "acme", "--name", "ACME Ltd", "--password-stdin")
	work := t.TempDir()
	chain := filepath.Join(work, "acme.pem")
	_, errOut, err := in.run("", "cert", "issue", "--enterprise", "acme", "--csr", writeCSR(t, work, "acme"), "--out", chain)
	if err != nil || !strings.Contains(errOut, "by the running server") {
		t.Fatalf("cert issue did not go through the server: %v\n%s", err, errOut)
	}
	leaf, issuer := readChain(t, chain)
	serial := fmt.Sprintf("%x", leaf.SerialNumber)
	if got := ocspAt(t, info.HTTP, leaf, issuer); got != ocsp.Good {
		t.Fatalf("OCSP status %d for the new certificate, want good", got)
	}
	out, errOut, err := in.run("", "cert", "revoke", serial, "--reason", "keyCompromise")
	if err != nil || !strings.Contains(out, "OCSP responder answers revoked now") {
		t.Fatalf("cert revoke: %v\nstdout: %s\nstderr: %s", err, out, errOut)
	}
	if got := ocspAt(t, info.HTTP, leaf, issuer); got != ocsp.Revoked {
		t.Fatalf("OCSP status %d right after cert revoke returned, want revoked", got)
	}
	// A second revocation is refused by the server, not reported.
	if out, _, err := in.run("", "cert", "revoke", serial, "--reason", "keyCompromise"); err == nil || strings.Contains(out, "revoked") {
		t.Fatalf("revoking twice: %v\n%s", err, out)
	}
	if reqs := sq.requests(); len(reqs) > 0 {
		t.Fatalf("the CLI talked to the configured admin address: %v", reqs)
	}

	in.stop()
	for _, p := range []string{sock, filepath.Join(runDir, "listen.json")} {
		if _, err := os.Lstat(p); !os.IsNotExist(err) {
			t.Errorf("%s left after a clean stop (%v)", p, err)
		}
	}
}

// TestAdminSocketPublicURLFollowsHTTP: without public_url, the URLs in
// certificates follow `serve --http`, for the server and for a command
// signing in its own process while that server runs.
func TestAdminSocketPublicURLFollowsHTTP(t *testing.T) {
	in := newInstance(t, "")
	// The harness sets public_url; this test needs it unset.
	cfg := fmt.Sprintf("data_dir: %s\nlisten:\n  http: %q\n  https: %q\n  admin: %q\n", in.dir, in.http, in.https, in.admin)
	if err := os.WriteFile(in.config, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	httpAddr := freePort(t)
	want := "http://" + httpAddr
	info := in.startServe("--http", httpAddr)
	if info.PublicURL != want || info.HTTP != want {
		t.Fatalf("listen.json public_url %q http %q, want %q", info.PublicURL, info.HTTP, want)
	}
	in.mustRun(testPassword+"\n", "enterprise", "add", "acme", "--name", "ACME Ltd", "--password-stdin")
	work := t.TempDir()
	for _, offline := range []bool{false, true} {
		name := fmt.Sprintf("acme-offline-%v", offline)
		chain := filepath.Join(work, name+".pem")
		args := []string{"cert", "issue", "--enterprise", "acme", "--csr", writeCSR(t, work, name), "--out", chain}
		if offline {
			args = append(args, "--offline")
		}
		in.mustRun("", args...)
		leaf, issuer := readChain(t, chain)
		urls := append(append(append([]string{}, leaf.CRLDistributionPoints...), leaf.OCSPServer...), leaf.IssuingCertificateURL...)
		urls = append(urls, issuer.CRLDistributionPoints...)
		if len(urls) < 3 {
			t.Fatalf("%s: URLs %v", name, urls)
		}
		for _, u := range urls {
			if !strings.HasPrefix(u, want+"/") {
				t.Errorf("%s: URL %s does not follow --http %s", name, u, httpAddr)
			}
		}
		if got := ocspAt(t, leaf.OCSPServer[0][:len(want)], leaf, issuer); got != ocsp.Good {
			t.Errorf("%s: OCSP at the certificate's own URL: status %d", name, got)
		}
	}
}
