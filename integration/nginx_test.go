//go:build integration

package integration

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ocsp"
)

// TestNginx puts nginx (the Debian package, 1.22) in front of zbca as a
// submission site would: mutual TLS with ssl_verify_client, the client
// certificate checked by OCSP against zbca's responder (ssl_ocsp leaf and
// on, no cache) and by zbca's PEM CRLs (ssl_crl, then reload).
//
// .ci/run installs the Debian package "nginx" (in bookworm it holds
// /usr/sbin/nginx; nginx-light is a metapackage on top of it).
func TestNginx(t *testing.T) {
	nginxBin := nginxPath(t)
	curl := requireTool(t, "curl")
	in := newInstance(t, "crl:\n  delay: 2s\nenroll:\n  policy:\n    max_active: 100\n    max_per_day: 1000000\n")
	in.start()
	work := t.TempDir()
	p := func(name string) string { return filepath.Join(work, name) }

	_, chainPEM := get(t, "http://"+in.http+"/pki/chain.pem")
	os.WriteFile(p("zbca-chain.pem"), chainPEM, 0o644)

	// nginx's own server identity: a throwaway CA made here. Only the
	// client side is under test.
	srvCA := writeServerIdentity(t, work)

	// Three enterprises, one client certificate each: a is revoked in the
	// OCSP part, b in the CRL part, c stays good.
	type client struct{ name, cert, key, serial string }
	clients := map[string]*client{}
	for _, name := range []string{"alpha", "beta", "gamma"} {
		in.mustRun(testPassword+"\n", "enterprise", "add", name, "--name", strings.ToUpper(name)+" Ltd", "--password-stdin")
		c := &client{name: name, cert: p(name + ".pem"), key: p(name + ".key")}
		writeClientCSR(t, p(name+".csr"), c.key, name)
		in.mustRun("", "cert", "issue", "--enterprise", name, "--csr", p(name+".csr"), "--out", c.cert)
		leaf, err := x509.ParseCertificate(firstPEM(t, c.cert))
		if err != nil {
			t.Fatal(err)
		}
		c.serial = fmt.Sprintf("%x", leaf.SerialNumber)
		clients[name] = c
	}
	a, b, c := clients["alpha"], clients["beta"], clients["gamma"]

	// `zbca cert issue` goes through the running server, which signs the
	// first OCSP response at issuance: the new certificates are good at
	// once, not "never issued" until the next poll.
	for _, cl := range []*client{a, b, c} {
		if st := ocspStatus(t, in, cl.cert); st != ocsp.Good {
			t.Fatalf("%s's certificate, just issued, has OCSP status %d", cl.name, st)
		}
	}

	// try makes one fresh handshake (a new curl process: no session
	// reuse) and returns the HTTP status (0 if the handshake failed) and
	// the body.
	try := func(ng *nginxProc, cl *client) (int, string) {
		cmd := exec.Command(curl, "-sS", "--max-time", "15", "--cacert", srvCA, "--cert", cl.cert, "--key", cl.key,
			"-w", "\n%{http_code}", "https://127.0.0.1:"+ng.port+"/")
		out, _ := cmd.CombinedOutput()
		s := string(out)
		i := strings.LastIndexByte(s, '\n')
		code, _ := strconv.Atoi(strings.TrimSpace(s[i+1:]))
		return code, s[:max(i, 0)]
	}
	expect := func(t *testing.T, ng *nginxProc, cl *client, want int, what string) {
		t.Helper()
		code, body := try(ng, cl)
		if code != want {
			t.Fatalf("%s: %s's certificate got %d, want %d\nbody: %s\n%s", what, cl.name, code, want, body, ng.diag(in))
		}
		if want == 200 && (!strings.HasPrefix(body, "ok ") || !strings.Contains(body, "CN="+cl.name)) {
			t.Fatalf("%s: %s got body %q", what, cl.name, body)
		}
		if want == 400 && !strings.Contains(body, "The SSL certificate error") {
			t.Fatalf("%s: %s refused with body %q", what, cl.name, body)
		}
	}
	// refusedWithin polls fresh handshakes every 50 ms until one is refused;
	// it returns when (after start) the refused attempt began and ended,
	// and how many attempts were still accepted before it.
	refusedWithin := func(t *testing.T, ng *nginxProc, cl *client, start time.Time, limit time.Duration) (began, ended time.Duration, accepted int) {
		t.Helper()
		for {
			t0 := time.Now()
			code, body := try(ng, cl)
			if code != 200 {
				if code != 400 || !strings.Contains(body, "The SSL certificate error") {
					t.Fatalf("%s refused with %d %q, want 400 The SSL certificate error\n%s", cl.name, code, body, ng.diag(in))
				}
				return t0.Sub(start), time.Since(start), accepted
			}
			accepted++
			if time.Since(start) > limit {
				t.Fatalf("%s's revoked certificate still accepted %s later (%d handshakes)\n%s", cl.name, limit, accepted, ng.diag(in))
			}
			time.Sleep(50 * time.Millisecond)
		}
	}

	ocspConf := fmt.Sprintf(`ssl_ocsp %%s;
        ssl_ocsp_responder http://%s/ocsp;
        ssl_ocsp_cache off;`, in.http)

	// 1. ssl_ocsp leaf: good → 200; after `zbca cert revoke` the very next
	// handshake is refused.
	t.Run("ocsp-leaf", func(t *testing.T) {
		ng := startNginx(t, nginxBin, work, "ocsp-leaf", fmt.Sprintf(ocspConf, "leaf"))
		defer ng.stop()
		n := ocspAnswers(t, in)
		expect(t, ng, a, 200, "ssl_ocsp leaf, before revocation")
		if d := ocspAnswers(t, in) - n; d != 1 {
			t.Errorf("one handshake with ssl_ocsp leaf made %v OCSP requests, want 1", d)
		}
		expect(t, ng, c, 200, "ssl_ocsp leaf, before revocation")
		t0 := time.Now()
		revoke(t, in, a.serial)
		revoked := time.Now()
		began, ended, accepted := refusedWithin(t, ng, a, revoked, 10*time.Second)
		t.Logf("ssl_ocsp leaf: `zbca cert revoke` took %s; %d handshakes accepted after it returned; the refused one began %s and was answered 400 %s after it returned",
			revoked.Sub(t0).Round(time.Millisecond), accepted, began.Round(time.Microsecond), ended.Round(time.Millisecond))
		if accepted > 0 {
			t.Errorf("nginx accepted %d new handshakes with a revoked certificate after `zbca cert revoke` returned", accepted)
		}
		if !strings.Contains(ng.log(), "certificate revoked") {
			t.Errorf("nginx error log does not name the revocation:\n%s", ng.log())
		}
		expect(t, ng, c, 200, "ssl_ocsp leaf, another certificate after the revocation")
	})

	// 2. ssl_ocsp on also asks about the issuing CA, which the root (or a
	// root-delegated responder) must answer.
	t.Run("ocsp-on", func(t *testing.T) {
		ng := startNginx(t, nginxBin, work, "ocsp-on", fmt.Sprintf(ocspConf, "on"))
		defer ng.stop()
		n := ocspAnswers(t, in)
		expect(t, ng, c, 200, "ssl_ocsp on, good certificate")
		if d := ocspAnswers(t, in) - n; d != 2 {
			t.Errorf("one handshake with ssl_ocsp on made %v OCSP requests, want 2 (leaf and issuing CA)", d)
		}
		expect(t, ng, a, 400, "ssl_ocsp on, revoked certificate")
	})

	// 3. ssl_crl with zbca's PEM CRLs.
	t.Run("crl", func(t *testing.T) {
		fetch := func(name string) ([]byte, *x509.RevocationList) {
			t.Helper()
			resp, body := get(t, "http://"+in.http+"/crl/"+name+".pem")
			if resp.StatusCode != 200 {
				t.Fatalf("/crl/%s.pem: %d %s", name, resp.StatusCode, body)
			}
			blk, _ := pem.Decode(body)
			if blk == nil || blk.Type != "X509 CRL" {
				t.Fatalf("/crl/%s.pem is not a PEM CRL:\n%s", name, body)
			}
			crl, err := x509.ParseRevocationList(blk.Bytes)
			if err != nil {
				t.Fatalf("/crl/%s.pem: %v", name, err)
			}
			return body, crl
		}
		crlFile := filepath.Join(work, "crl.pem")
		// Wait until alpha's revocation (part 1) is in the issuing CRL,
		// so that the first CRL file already proves something.
		issPEM, issCRL := fetch("issuing-1")
		for deadline := time.Now().Add(15 * time.Second); !crlHas(issCRL, a.serial); {
			if time.Now().After(deadline) {
				t.Fatalf("alpha's revocation not in /crl/issuing-1.pem within 15 s (crl.delay is 2s); CRL number %v", issCRL.Number)
			}
			time.Sleep(100 * time.Millisecond)
			issPEM, issCRL = fetch("issuing-1")
		}
		rootPEM, _ := fetch("root")

		// Only the issuing CA's CRL: OpenSSL checks every CA of the chain,
		// finds no CRL for the issuing CA (issued by the root) and refuses
		// every client. This is why zbca publishes the root's CRL.
		os.WriteFile(crlFile, issPEM, 0o644)
		ng := startNginx(t, nginxBin, work, "crl", "ssl_crl "+crlFile+";")
		defer ng.stop()
		expect(t, ng, c, 400, "ssl_crl with the issuing CA's CRL alone")
		expect(t, ng, b, 400, "ssl_crl with the issuing CA's CRL alone")
		if l := ng.log(); !strings.Contains(l, "unable to get certificate CRL") {
			t.Errorf("nginx did not refuse for the missing root CRL:\n%s", l)
		}

		// Both CRLs: good certificates pass, alpha (revoked) is refused.
		os.WriteFile(crlFile, append(append([]byte{}, issPEM...), rootPEM...), 0o644)
		ng.reload()
		expect(t, ng, c, 200, "ssl_crl with issuing and root CRLs")
		expect(t, ng, b, 200, "ssl_crl with issuing and root CRLs")
		expect(t, ng, a, 400, "ssl_crl, alpha revoked earlier")

		// Revoke beta; wait for the CRL number to increase; rewrite; reload.
		before := issCRL.Number
		revoke(t, in, b.serial)
		revoked := time.Now()
		for issCRL.Number.Cmp(before) <= 0 {
			if time.Since(revoked) > 15*time.Second {
				t.Fatalf("CRL number still %v 15 s after a revocation (crl.delay 2s)", issCRL.Number)
			}
			time.Sleep(100 * time.Millisecond)
			issPEM, issCRL = fetch("issuing-1")
		}
		published := time.Since(revoked)
		if !crlHas(issCRL, b.serial) {
			t.Fatalf("CRL %v lacks beta's serial %s", issCRL.Number, b.serial)
		}
		rootPEM, _ = fetch("root")
		os.WriteFile(crlFile, append(append([]byte{}, issPEM...), rootPEM...), 0o644)
		ng.reload()
		_, ended, accepted := refusedWithin(t, ng, b, revoked, 20*time.Second)
		t.Logf("ssl_crl: CRL number %v with beta published %s after the revoke command returned; rewritten, nginx reloaded, beta refused %s after it",
			issCRL.Number, published.Round(time.Millisecond), ended.Round(time.Millisecond))
		if accepted > 0 {
			t.Errorf("nginx accepted beta %d times after the reload with the new CRL", accepted)
		}
		expect(t, ng, c, 200, "ssl_crl after beta's revocation, another good certificate")
		expect(t, ng, a, 400, "ssl_crl after beta's revocation, alpha")
		expect(t, ng, b, 400, "ssl_crl after beta's revocation, beta")
	})
}

// revoke runs `zbca cert revoke` (through the running server's admin API).
func revoke(t *testing.T, in *instance, serial string) {
	t.Helper()
	out, errOut, err := in.run("", "cert", "revoke", serial, "--reason", "keyCompromise")
	if err != nil || !strings.Contains(out, "OCSP responder answers revoked now") {
		t.Fatalf("zbca cert revoke %s: %v\nstdout: %s\nstderr: %s", serial, err, out, errOut)
	}
}

// ocspStatus asks zbca's responder about the leaf of a PEM chain file as
// nginx does: GET, SHA-1 CertID, percent-encoded base64.
func ocspStatus(t *testing.T, in *instance, chainFile string) int {
	t.Helper()
	b, err := os.ReadFile(chainFile)
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
		t.Fatalf("%s: no issuer in the chain", chainFile)
	}
	req, err := ocsp.CreateRequest(certs[0], certs[1], &ocsp.RequestOptions{Hash: crypto.SHA1})
	if err != nil {
		t.Fatal(err)
	}
	_, body := get(t, "http://"+in.http+"/ocsp/"+url.PathEscape(base64.StdEncoding.EncodeToString(req)))
	resp, err := ocsp.ParseResponseForCert(body, certs[0], certs[1])
	if err != nil {
		t.Fatalf("OCSP response for %s: %v", chainFile, err)
	}
	return resp.Status
}

// ocspAnswers sums zbca_ocsp_responses_total over its statuses.
func ocspAnswers(t *testing.T, in *instance) float64 {
	t.Helper()
	_, body := get(t, "http://"+in.admin+"/metrics")
	var sum float64
	for _, line := range strings.Split(string(body), "\n") {
		if strings.HasPrefix(line, "zbca_ocsp_responses_total{") {
			f := strings.Fields(line)
			v, err := strconv.ParseFloat(f[len(f)-1], 64)
			if err != nil {
				t.Fatalf("metrics line %q: %v", line, err)
			}
			sum += v
		}
	}
	return sum
}

func crlHas(crl *x509.RevocationList, serial string) bool {
	for _, e := range crl.RevokedCertificateEntries {
		if fmt.Sprintf("%x", e.SerialNumber) == serial {
			return true
		}
	}
	return false
}

func waitFor(t *testing.T, limit time.Duration, ok func() bool, msg func() string) {
	t.Helper()
	for deadline := time.Now().Add(limit); !ok(); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal(msg())
		}
	}
}

// nginxPath finds the nginx binary, which Debian puts in /usr/sbin (not
// always in PATH).
func nginxPath(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("nginx"); err == nil {
		return p
	}
	if _, err := os.Stat("/usr/sbin/nginx"); err == nil {
		return "/usr/sbin/nginx"
	}
	return requireTool(t, "nginx")
}

// nginxProc is one nginx master process in the foreground, with its own
// prefix, configuration, pid file and logs in a temporary directory.
type nginxProc struct {
	t       *testing.T
	bin     string
	dir     string
	conf    string
	port    string
	cmd     *exec.Cmd
	stderr  *bytes.Buffer
	waitErr chan error
}

const nginxConf = `worker_processes 1;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log info;
events { worker_connections 64; }
http {
    access_log %[1]s/access.log;
    client_body_temp_path %[1]s/tmp/body;
    proxy_temp_path %[1]s/tmp/proxy;
    fastcgi_temp_path %[1]s/tmp/fastcgi;
    uwsgi_temp_path %[1]s/tmp/uwsgi;
    scgi_temp_path %[1]s/tmp/scgi;
    server {
        listen 127.0.0.1:%[2]s ssl;
        ssl_certificate %[3]s/server.pem;
        ssl_certificate_key %[3]s/server.key;
        ssl_session_cache off;
        ssl_session_tickets off;
        ssl_verify_client on;
        ssl_client_certificate %[3]s/zbca-chain.pem;
        ssl_verify_depth 2;
        %[4]s
        default_type text/plain;
        location / { return 200 "ok $ssl_client_s_dn\n"; }
    }
}
`

func startNginx(t *testing.T, bin, work, name, verify string) *nginxProc {
	t.Helper()
	return runNginx(t, bin, work, name, func(dir, port string) string {
		return fmt.Sprintf(nginxConf, dir, port, work, verify)
	})
}

// runNginx writes the configuration conf makes for nginx's prefix
// directory and port, checks it with nginx -t, starts nginx in the
// foreground (stopped at the end of the test) and waits until it listens.
func runNginx(t *testing.T, bin, work, name string, conf func(dir, port string) string) *nginxProc {
	t.Helper()
	dir := filepath.Join(work, "nginx-"+name)
	if err := os.MkdirAll(filepath.Join(dir, "tmp"), 0o755); err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(freePort(t))
	ng := &nginxProc{t: t, bin: bin, dir: dir, conf: filepath.Join(dir, "nginx.conf"), port: port, stderr: &bytes.Buffer{}}
	if err := os.WriteFile(ng.conf, []byte(conf(dir, port)), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(bin, "-p", dir, "-c", ng.conf, "-t").CombinedOutput(); err != nil {
		t.Fatalf("nginx -t: %v\n%s", err, out)
	}
	ng.cmd = exec.Command(bin, "-p", dir, "-c", ng.conf, "-g", "daemon off;")
	ng.cmd.Stdout, ng.cmd.Stderr = ng.stderr, ng.stderr
	if err := ng.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ng.waitErr = make(chan error, 1)
	go func() { ng.waitErr <- ng.cmd.Wait() }()
	t.Cleanup(ng.stop)
	deadline := time.Now().Add(10 * time.Second)
	for {
		select {
		case err := <-ng.waitErr:
			ng.cmd = nil
			t.Fatalf("nginx exited: %v\n%s\n%s", err, ng.stderr, ng.log())
		default:
		}
		if c, err := net.DialTimeout("tcp", "127.0.0.1:"+port, time.Second); err == nil {
			c.Close()
			return ng
		}
		if time.Now().After(deadline) {
			t.Fatalf("nginx not listening after 10 s\n%s", ng.log())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// reload is `nginx -s reload` as an operator runs it; it returns once the
// master has started its new worker and the old one has exited, so that
// every later handshake sees the new configuration.
func (ng *nginxProc) reload() {
	ng.t.Helper()
	l := ng.log()
	started, exited := strings.Count(l, "start worker process "), strings.Count(l, " exited with code ")
	if out, err := exec.Command(ng.bin, "-p", ng.dir, "-c", ng.conf, "-s", "reload").CombinedOutput(); err != nil {
		ng.t.Fatalf("nginx -s reload: %v\n%s", err, out)
	}
	waitFor(ng.t, 10*time.Second, func() bool {
		l := ng.log()
		return strings.Count(l, "start worker process ") > started && strings.Count(l, " exited with code ") > exited
	}, func() string { return "nginx did not replace its worker after reload\n" + ng.log() })
}

// stop asks for a fast shutdown (SIGTERM) and waits; SIGKILL after 10 s.
func (ng *nginxProc) stop() {
	if ng.cmd == nil {
		return
	}
	_ = ng.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-ng.waitErr:
	case <-time.After(10 * time.Second):
		ng.cmd.Process.Kill()
		<-ng.waitErr
		ng.t.Errorf("nginx did not stop within 10 s of SIGTERM")
	}
	ng.cmd = nil
}

func (ng *nginxProc) log() string {
	b, _ := os.ReadFile(filepath.Join(ng.dir, "error.log"))
	return string(b)
}

// diag is what to read when nginx did not do what we expected.
func (ng *nginxProc) diag(in *instance) string {
	zl := in.stderr.String()
	if len(zl) > 6000 {
		zl = "…" + zl[len(zl)-6000:]
	}
	return "nginx error.log:\n" + ng.log() + "\nnginx stderr:\n" + ng.stderr.String() + "\nzbca stderr (tail):\n" + zl
}

// writeServerIdentity makes a throwaway CA and a certificate for
// 127.0.0.1 (server.pem, server.key in dir) and returns the CA file.
func writeServerIdentity(t *testing.T, dir string) string {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	now := time.Now()
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "nginx test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour), IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames: []string{"localhost"}, KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalPKCS8PrivateKey(key)
	write := func(name, typ string, der []byte) {
		if err := os.WriteFile(filepath.Join(dir, name), pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("server.pem", "CERTIFICATE", der)
	write("server.key", "PRIVATE KEY", keyDER)
	write("server-ca.pem", "CERTIFICATE", caDER)
	return filepath.Join(dir, "server-ca.pem")
}

// writeClientCSR makes a P-256 key and a CSR for it (the subject is
// ignored by zbca).
func writeClientCSR(t *testing.T, csrFile, keyFile, cn string) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: cn}}, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalPKCS8PrivateKey(key)
	os.WriteFile(csrFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}), 0o644)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600)
}
