//go:build integration

package integration

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/zbca/zbca/ca"
	"github.com/zbca/zbca/config"
	"github.com/zbca/zbca/store"
)

// TestVerifyNginx runs scripts/nginx/zbca-verify.conf's shape with the
// real zbca binary, nginx (Debian package) and curl holding client
// certificates: nginx checks the certificate (ssl_verify_client on,
// ssl_ocsp leaf against zbca), asks the verification API at each request
// (auth_request), and passes the verified enterprise to the example
// submission app (scripts/nginx/exampleapp); a refused certificate gets
// zbca's 403 with X-ZBCA-Result.
func TestVerifyNginx(t *testing.T) {
	nginxBin := nginxPath(t)
	curl := requireTool(t, "curl")
	goBin := requireTool(t, "go")
	in := newInstance(t, "enroll:\n  policy:\n    max_active: 100\n    max_per_day: 1000000\n")
	in.start()
	work := t.TempDir()
	p := func(name string) string { return filepath.Join(work, name) }

	// The example submission app, built from the repository.
	appBin := p("exampleapp")
	if out, err := exec.Command(goBin, "build", "-o", appBin, "../scripts/nginx/exampleapp").CombinedOutput(); err != nil {
		t.Fatalf("building exampleapp: %v\n%s", err, out)
	}
	appAddr := freePort(t)
	app := startApp(t, appBin, appAddr)

	// The site's API key, made as an operator does.
	key := strings.TrimSpace(in.mustRun("", "apikey", "add", "report-site"))
	if !strings.HasPrefix(key, "zbca_") {
		t.Fatalf("apikey add printed %q", key)
	}

	// Enterprises and certificates: alpha (valid, also used for the
	// mismatch), gamma (revoked during the test), through the CLI.
	type client struct{ name, cert, key, serial string }
	issueCLI := func(name string) *client {
		c := &client{name: name, cert: p(name + ".pem"), key: p(name + ".key")}
		writeClientCSR(t, p(name+".csr"), c.key, name)
		in.mustRun("", "cert", "issue", "--enterprise", name, "--csr", p(name+".csr"), "--out", c.cert)
		leaf, err := x509.ParseCertificate(firstPEM(t, c.cert))
		if err != nil {
			t.Fatal(err)
		}
		c.serial = fmt.Sprintf("%x", leaf.SerialNumber)
		return c
	}
	for _, name := range []string{"alpha", "beta", "gamma"} {
		in.mustRun(testPassword+"\n", "enterprise", "add", name, "--name", strings.ToUpper(name)+" 有限公司", "--password-stdin")
	}
	alpha, gamma := issueCLI("alpha"), issueCLI("gamma")

	// Expired and not yet valid: issued through zbca's own CA, opened in
	// this process with a fake clock (the binary has none).
	now := time.Now()
	expired := &client{name: "alpha-expired", cert: p("expired.pem"), key: p("expired.key")}
	future := &client{name: "alpha-future", cert: p("future.pem"), key: p("future.key")}
	issueWithClock(t, in, now.AddDate(-3, 0, -20), "alpha", expired.cert, expired.key)
	issueWithClock(t, in, now.AddDate(0, 0, 20), "alpha", future.cert, future.key)

	// Untrusted: a certificate of another CA, which nginx is configured to
	// accept too.
	other := &client{name: "alpha-other-ca", cert: p("other.pem"), key: p("other.key")}
	otherCA := writeOtherCA(t, work, other.cert, other.key, "alpha")

	// nginx: its own server identity, zbca's chain plus the other CA as
	// accepted client CAs, zbca's root to check the API's TLS certificate.
	srvCA := writeServerIdentity(t, work)
	_, chainPEM := get(t, "http://"+in.http+"/pki/chain.pem")
	_, rootPEM := get(t, "http://"+in.http+"/pki/root.pem")
	os.WriteFile(p("client-cas.pem"), append(chainPEM, otherCA...), 0o644)
	os.WriteFile(p("zbca-root.pem"), rootPEM, 0o644)
	os.WriteFile(p("apikey.conf"), []byte(fmt.Sprintf("proxy_set_header Authorization \"Bearer %s\";\n", key)), 0o600)
	const ocspLeaf = `ssl_ocsp leaf; ssl_ocsp_responder http://%s/ocsp; ssl_ocsp_cache off;`

	// try makes a fresh handshake with a curl process and returns the
	// status, the X-ZBCA-Result header and the body.
	try := func(ng *nginxProc, cl *client, username string) (int, string, string) {
		t.Helper()
		args := []string{"-sS", "--max-time", "15", "--cacert", srvCA, "--cert", cl.cert, "--key", cl.key, "-D", "-", "-o", "-"}
		if username != "" {
			args = append(args, "-H", "X-ZBCA-Username: "+username)
		}
		out, err := exec.Command(curl, append(args, "https://127.0.0.1:"+ng.port+"/report")...).CombinedOutput()
		if err != nil {
			t.Fatalf("curl as %s: %v\n%s\n%s", cl.name, err, out, ng.diag(in))
		}
		head, body, _ := strings.Cut(strings.ReplaceAll(string(out), "\r\n", "\n"), "\n\n")
		code := 0
		if f := strings.Fields(head); len(f) > 1 {
			code, _ = strconv.Atoi(f[1])
		}
		result := ""
		for _, l := range strings.Split(head, "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.EqualFold(k, "X-ZBCA-Result") {
				result = strings.TrimSpace(v)
			}
		}
		return code, result, body
	}
	// refused expects zbca's 403 with want, and nothing at the application.
	refused := func(t *testing.T, ng *nginxProc, cl *client, username, want, message string) {
		t.Helper()
		before := app.requests()
		nginxRefusals := strings.Count(ng.log(), "client SSL certificate verify error")
		code, result, body := try(ng, cl, username)
		path := "auth_request"
		if strings.Count(ng.log(), "client SSL certificate verify error") > nginxRefusals {
			path = "nginx's own check (495), then zbca"
		}
		t.Logf("%s as %q: %d %s via %s", cl.name, username, code, result, path)
		if code != 403 || result != want || !strings.Contains(body, message) {
			t.Fatalf("%s as %q: %d, X-ZBCA-Result %q, body %q; want 403 %s %q\n%s", cl.name, username, code, result, body, want, message, ng.diag(in))
		}
		if n := app.requests(); n != before {
			t.Errorf("%s: the application received %d requests for a refused certificate", cl.name, n-before)
		}
	}
	valid := func(t *testing.T, ng *nginxProc) {
		t.Helper()
		before := app.requests()
		code, _, body := try(ng, alpha, "alpha")
		if code != 200 || !strings.Contains(body, "ALPHA 有限公司 (alpha)") {
			t.Fatalf("alpha: %d %q\n%s", code, body, ng.diag(in))
		}
		if app.requests() != before+1 || !strings.Contains(app.lastLine(), "enterprise=alpha") || !strings.Contains(app.lastLine(), "result=valid") {
			t.Errorf("the application did not receive alpha's verified enterprise: %q", app.lastLine())
		}
		// Without a username header: the certificate alone.
		if code, _, body := try(ng, alpha, ""); code != 200 || !strings.Contains(body, "(alpha)") {
			t.Errorf("alpha without username: %d %q", code, body)
		}
	}

	// 1. As scripts/nginx/zbca-verify.conf: nginx checks dates, chain and
	// OCSP itself; zbca's API decides the rest and explains every refusal.
	t.Run("ocsp-leaf", func(t *testing.T) {
		ng := startVerifyNginx(t, nginxBin, work, "ocsp-leaf", in, appAddr, fmt.Sprintf(ocspLeaf, in.http))
		defer ng.stop()
		t.Run("valid", func(t *testing.T) { valid(t, ng) })
		t.Run("mismatch", func(t *testing.T) { refused(t, ng, alpha, "beta", "mismatch", "该证书与用户名不匹配") })
		t.Run("revoked", func(t *testing.T) {
			if code, _, body := try(ng, gamma, "gamma"); code != 200 {
				t.Fatalf("gamma before revocation: %d %q", code, body)
			}
			revoke(t, in, gamma.serial)
			// The very next login (OCSP and the API both read the
			// revocation at once).
			refused(t, ng, gamma, "gamma", "revoked", "证书已废除")
		})
		t.Run("expired", func(t *testing.T) { refused(t, ng, expired, "alpha", "expired", "证书已过期") })
		t.Run("not-yet-valid", func(t *testing.T) { refused(t, ng, future, "alpha", "not_yet_valid", "证书尚未生效") })
		t.Run("untrusted", func(t *testing.T) {
			refused(t, ng, other, "alpha", "untrusted", "该证书不是本系统签发的证书")
		})
	})

	// 2. Without ssl_ocsp: the verification API alone decides revoked and
	// untrusted (auth_request); dates are still refused by nginx first.
	t.Run("api-only", func(t *testing.T) {
		ng := startVerifyNginx(t, nginxBin, work, "api-only", in, appAddr, "")
		defer ng.stop()
		t.Run("valid", func(t *testing.T) { valid(t, ng) })
		t.Run("mismatch", func(t *testing.T) { refused(t, ng, alpha, "beta", "mismatch", "该证书与用户名不匹配") })
		t.Run("revoked", func(t *testing.T) { refused(t, ng, gamma, "gamma", "revoked", "证书已废除") })
		t.Run("expired", func(t *testing.T) { refused(t, ng, expired, "alpha", "expired", "证书已过期") })
		t.Run("not-yet-valid", func(t *testing.T) { refused(t, ng, future, "alpha", "not_yet_valid", "证书尚未生效") })
		t.Run("untrusted", func(t *testing.T) {
			refused(t, ng, other, "alpha", "untrusted", "该证书不是本系统签发的证书")
		})

		t.Run("revoked-api-key", func(t *testing.T) {
			in.mustRun("", "apikey", "revoke", "report-site")
			// Within the key cache time (5 s) the key may still work;
			// after it zbca answers 401, which nginx passes on: nobody
			// gets in.
			time.Sleep(verifyKeyCacheTTL + 500*time.Millisecond)
			code, _, body := try(ng, alpha, "alpha")
			if code != 401 {
				t.Fatalf("alpha with the site's API key revoked: %d %q, want 401", code, body)
			}
		})
	})
	if strings.Contains(in.stderr.String(), "panic") {
		t.Errorf("zbca logged a panic:\n%s", in.stderr)
	}
}

// verifyKeyCacheTTL is verify.KeyCacheTTL (the test drives the binary and
// does not import the package).
const verifyKeyCacheTTL = 5 * time.Second

// issueWithClock opens the instance's CA in this process with the clock at
// at and writes a client certificate for username (and its key).
func issueWithClock(t *testing.T, in *instance, at time.Time, username, certFile, keyFile string) {
	t.Helper()
	cfg, err := config.Load(in.config)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Resolve()
	clock := func() time.Time { return at }
	ctx := context.Background()
	st, err := store.Open(ctx, store.Options{Path: cfg.Store.Path, Now: clock, MustExist: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	a, err := ca.Open(ctx, ca.Options{Dir: filepath.Join(cfg.DataDir, "ca"), Config: cfg.CA, PublicURL: cfg.PublicURL, TLSHosts: cfg.HTTPS.Hosts,
		Store: st, Now: clock, Node: "verify-test"})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, k)
	csr, err := ca.ParseCSR(der)
	if err != nil {
		t.Fatal(err)
	}
	iss, err := a.Issue(ctx, ca.IssueRequest{CSR: csr, Username: username, Actor: "test"})
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalPKCS8PrivateKey(k)
	os.WriteFile(certFile, iss.PEMChain(), 0o644)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600)
}

// writeOtherCA makes a CA that is not zbca's and a client certificate of
// it for cn; it returns the CA certificate in PEM.
func writeOtherCA(t *testing.T, dir, certFile, keyFile, cn string) []byte {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	now := time.Now()
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "Other Reporting CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: cn, Organization: []string{"ALPHA 有限公司"}},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour), KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalPKCS8PrivateKey(key)
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})
}

// verifyNginxConf is scripts/nginx/zbca-verify.conf with test paths and
// ports: 1 nginx dir, 2 port, 3 work dir, 4 zbca HTTPS address,
// 5 zbca public HTTP address, 6 app address, 7 the OCSP lines.
const verifyNginxConf = `worker_processes 1;
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
    upstream zbca_verify {
        server %[4]s;
        keepalive 16;
    }
    server {
        listen 127.0.0.1:%[2]s ssl;
        ssl_certificate %[3]s/server.pem;
        ssl_certificate_key %[3]s/server.key;
        ssl_session_cache off;
        ssl_session_tickets off;

        ssl_verify_client      on;
        ssl_client_certificate %[3]s/client-cas.pem;
        ssl_verify_depth       2;
        %[7]s

        error_page 495 = @zbca_refused;

        location / {
            auth_request     /_zbca/verify;
            auth_request_set $zbca_result     $upstream_http_x_zbca_result;
            auth_request_set $zbca_enterprise $upstream_http_x_zbca_enterprise;
            auth_request_set $zbca_name       $upstream_http_x_zbca_enterprise_name;
            auth_request_set $zbca_id         $upstream_http_x_zbca_enterprise_id;
            auth_request_set $zbca_days_left  $upstream_http_x_zbca_days_left;
            auth_request_set $zbca_serial     $upstream_http_x_zbca_serial;
            error_page 403 495 = @zbca_refused;

            proxy_set_header X-ZBCA-Result          $zbca_result;
            proxy_set_header X-ZBCA-Enterprise      $zbca_enterprise;
            proxy_set_header X-ZBCA-Enterprise-Name $zbca_name;
            proxy_set_header X-ZBCA-Enterprise-ID   $zbca_id;
            proxy_set_header X-ZBCA-Days-Left       $zbca_days_left;
            proxy_set_header X-ZBCA-Serial          $zbca_serial;
            proxy_pass http://%[6]s;
        }

        location = /_zbca/verify {
            internal;
            proxy_method               GET;
            proxy_pass_request_body    off;
            proxy_pass_request_headers off;
            proxy_set_header X-SSL-Client-Cert $ssl_client_escaped_cert;
            proxy_set_header X-ZBCA-Username   $http_x_zbca_username;
            include %[3]s/apikey.conf;
            proxy_set_header Connection "";
            proxy_http_version 1.1;
            proxy_ssl_verify              on;
            proxy_ssl_trusted_certificate %[3]s/zbca-root.pem;
            proxy_ssl_name                localhost;
            proxy_ssl_session_reuse       on;
            proxy_pass https://zbca_verify/api/v1/verify/nginx;
        }

        location @zbca_refused {
            proxy_method               GET;
            proxy_pass_request_body    off;
            proxy_pass_request_headers off;
            proxy_set_header X-SSL-Client-Cert $ssl_client_escaped_cert;
            proxy_set_header X-ZBCA-Username   $http_x_zbca_username;
            include %[3]s/apikey.conf;
            proxy_set_header Connection "";
            proxy_http_version 1.1;
            proxy_ssl_verify              on;
            proxy_ssl_trusted_certificate %[3]s/zbca-root.pem;
            proxy_ssl_name                localhost;
            rewrite ^ /api/v1/verify/nginx? break;
            proxy_pass https://zbca_verify;
        }
    }
}
`

func startVerifyNginx(t *testing.T, bin, work, name string, in *instance, appAddr, ocsp string) *nginxProc {
	t.Helper()
	return runNginx(t, bin, work, name, func(dir, port string) string {
		return fmt.Sprintf(verifyNginxConf, dir, port, work, in.https, in.http, appAddr, ocsp)
	})
}

// appProc is the example submission app; its standard output has one line
// per request it served.
type appProc struct {
	cmd *exec.Cmd
	out *syncBuffer
}

func startApp(t *testing.T, bin, addr string) *appProc {
	t.Helper()
	a := &appProc{out: &syncBuffer{}}
	a.cmd = exec.Command(bin, "-listen", addr)
	a.cmd.Stdout, a.cmd.Stderr = a.out, a.out
	if err := a.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = a.cmd.Process.Signal(syscall.SIGTERM)
		_ = a.cmd.Wait()
	})
	waitFor(t, 10*time.Second, func() bool {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
		}
		return err == nil
	}, func() string { return "exampleapp not listening: " + a.out.String() })
	return a
}

func (a *appProc) reports() []string {
	var out []string
	sc := bufio.NewScanner(strings.NewReader(a.out.String()))
	for sc.Scan() {
		if strings.Contains(sc.Text(), "msg=report") {
			out = append(out, sc.Text())
		}
	}
	return out
}

func (a *appProc) requests() int { return len(a.reports()) }

func (a *appProc) lastLine() string {
	r := a.reports()
	if len(r) == 0 {
		return ""
	}
	return r[len(r)-1]
}

// syncBuffer is a bytes.Buffer safe for a process's output and the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }
