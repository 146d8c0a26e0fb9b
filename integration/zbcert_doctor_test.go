//go:build integration

package integration

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

type doctorReport struct {
	OK     bool `json:"ok"`
	Checks []struct {
		ID     string `json:"id"`
		Status string `json:"status"`
		Title  string `json:"title"`
		Detail string `json:"detail"`
		Advice string `json:"advice"`
	} `json:"checks"`
}

func (r doctorReport) check(t *testing.T, id string) (status, detail, advice string) {
	t.Helper()
	for _, c := range r.Checks {
		if c.ID == id {
			return c.Status, c.Detail, c.Advice
		}
	}
	t.Fatalf("no check %q in %+v", id, r)
	return
}

func (u *zbcertUser) doctor(args ...string) doctorReport {
	u.t.Helper()
	out, errOut, err := u.run("", append([]string{"doctor", "--json", "--timeout", "3s"}, args...)...)
	var r doctorReport
	if jerr := json.Unmarshal([]byte(out), &r); jerr != nil {
		u.t.Fatalf("doctor %v: %v %v\nstdout: %s\nstderr: %s", args, err, jerr, out, errOut)
	}
	if (err == nil) != r.OK {
		u.t.Errorf("doctor exit %v but ok=%v", err, r.OK)
	}
	return r
}

// expectFail asserts that check id failed with advice containing want.
func expectFail(t *testing.T, r doctorReport, id, want string) {
	t.Helper()
	st, detail, advice := r.check(t, id)
	if st != "fail" || !strings.Contains(advice, want) {
		t.Errorf("%s: %s %q, advice %q; want fail with advice containing %q\n%+v", id, st, detail, advice, want, r)
	}
	if r.OK {
		t.Errorf("report ok with %s failing", id)
	}
}

// TestZbcertDoctor: `zbcert doctor` against controlled faults, each
// reported by the right check with the right advice, and the all-good case
// against nginx asking for client certificates (ssl_verify_client, OCSP).
func TestZbcertDoctor(t *testing.T) {
	nginxBin := nginxPath(t)
	certutil := requireTool(t, "certutil")
	openssl := requireTool(t, "openssl")
	in := newInstance(t, "enroll:\n  policy:\n    max_active: 10\n")
	in.start()
	for _, n := range []string{"acme", "beta", "gamma", "delta"} {
		in.mustRun(testPassword+"\n", "enterprise", "add", n, "--name", strings.ToUpper(n)+" Ltd", "--password-stdin")
	}
	server := in.httpsURL()
	_, fp := rootFingerprint(t, in)
	work := t.TempDir()
	_, chainPEM := get(t, "http://"+in.http+"/pki/chain.pem")
	os.WriteFile(filepath.Join(work, "zbca-chain.pem"), chainPEM, 0o644)
	srvCA := writeServerIdentity(t, work)
	ng := startNginx(t, nginxBin, work, "doctor", fmt.Sprintf("ssl_ocsp leaf;\n        ssl_ocsp_responder http://%s/ocsp;\n        ssl_ocsp_cache off;", in.http))
	site := "https://127.0.0.1:" + ng.port + "/"

	enrolled := func(user string, install bool) *zbcertUser {
		u := newZbcertUser(t)
		if install {
			u.nssDB(certutil)
			u.mustRun("", "setup", "--server", server, "--fingerprint", fp, "--trust-stores", "nss")
		} else {
			u.mustRun("", "setup", "--server", server, "--fingerprint", fp, "--no-install")
		}
		if user != "" {
			u.mustRun(testPassword+"\n", "enroll", "--user", user, "--password-stdin")
		}
		return u
	}

	good := enrolled("acme", true)
	t.Run("all-good", func(t *testing.T) {
		r := good.doctor("--url", site, "--user", "acme", "--ca-file", srvCA)
		for _, c := range r.Checks {
			if c.Status != "ok" {
				t.Errorf("%s: %s %s (%s)", c.ID, c.Status, c.Detail, c.Advice)
			}
		}
		if !r.OK || len(r.Checks) != 15 {
			t.Errorf("report %+v", r)
		}
		if _, d, _ := r.check(t, "client_cert_requested"); !strings.Contains(d, "zbca Issuing CA") {
			t.Errorf("accepted CA names: %s", d)
		}
		if _, d, _ := r.check(t, "root_installed"); !strings.Contains(d, "NSS") {
			t.Errorf("root installed: %s", d)
		}
	})
	t.Run("wrong-user", func(t *testing.T) {
		r := good.doctor("--url", site, "--user", "beta", "--ca-file", srvCA)
		expectFail(t, r, "user", "zbcert enroll --user beta")
		// The same in Chinese, as text: the legacy help page's words.
		out, _, err := good.run("", "doctor", "--url", site, "--user", "beta", "--ca-file", srvCA, "--lang", "zh")
		if err == nil || !strings.Contains(out, "✗ 证书与用户名匹配: 该证书与用户名不匹配") || !strings.Contains(out, "✓ 端口连通") {
			t.Errorf("doctor --lang zh:\n%s", out)
		}
	})
	t.Run("two-candidates", func(t *testing.T) {
		u := enrolled("beta", false)
		u.mustRun(testPassword+"\n", "enroll", "--user", "beta", "--password-stdin")
		r := u.doctor("--url", site, "--user", "beta", "--ca-file", srvCA)
		expectFail(t, r, "candidates", "wrong one")
	})
	t.Run("revoked", func(t *testing.T) {
		u := enrolled("gamma", false)
		l := u.list()
		revoke(t, in, l.Certificates[0].Serial)
		r := u.doctor("--url", site, "--user", "gamma", "--ca-file", srvCA)
		expectFail(t, r, "revocation", "zbcert reissue --user gamma")
		if st, _, _ := r.check(t, "login"); st != "fail" {
			t.Errorf("nginx (ssl_ocsp) accepted a revoked certificate: %+v", r)
		}
	})
	t.Run("expired", func(t *testing.T) {
		u := enrolled("", false)
		cert, key, p12 := filepath.Join(work, "delta.pem"), filepath.Join(work, "delta.key"), filepath.Join(work, "delta.p12")
		issueWithClock(t, in, time.Now().AddDate(-3, 0, -2), "delta", cert, key)
		if o, err := tool(t, openssl, "pkcs12", "-export", "-in", cert, "-inkey", key, "-out", p12, "-passout", "pass:pw"); err != nil {
			t.Fatalf("openssl pkcs12 -export: %v %s", err, o)
		}
		u.mustRun("pw\n", "import", p12, "--password-stdin")
		r := u.doctor("--url", site, "--user", "delta", "--ca-file", srvCA)
		expectFail(t, r, "validity", "zbcert reissue --user delta")
	})
	t.Run("closed-port", func(t *testing.T) {
		r := good.doctor("--url", "https://"+freePort(t)+"/")
		expectFail(t, r, "port", "TCP port")
		if st, _, _ := r.check(t, "tls"); st != "skip" {
			t.Errorf("tls after a closed port: %s", st)
		}
	})

	// In-process TLS servers for the faults nginx is not configured for.
	tlsSite := func(t *testing.T, cfg *tls.Config, h http.HandlerFunc) string {
		s := httptest.NewUnstartedServer(h)
		s.TLS = cfg
		s.StartTLS()
		t.Cleanup(s.Close)
		return s.URL + "/"
	}
	ok := func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("ok")) }
	t.Run("no-client-certificate-asked", func(t *testing.T) {
		r := good.doctor("--url", tlsSite(t, &tls.Config{}, ok), "--user", "acme")
		expectFail(t, r, "client_cert_requested", "ssl_verify_client")
	})
	t.Run("other-ca-only", func(t *testing.T) {
		otherCA := writeOtherCA(t, work, filepath.Join(work, "other.pem"), filepath.Join(work, "other.key"), "acme")
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(otherCA)
		r := good.doctor("--url", tlsSite(t, &tls.Config{ClientAuth: tls.VerifyClientCertIfGiven, ClientCAs: pool}, ok), "--user", "acme")
		expectFail(t, r, "accepted_ca", "zbcert setup")
		if _, d, _ := r.check(t, "accepted_ca"); !strings.Contains(d, "Other Reporting CA") {
			t.Errorf("accepted_ca does not name the site's CA: %s", d)
		}
	})
	t.Run("clock-skew", func(t *testing.T) {
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(chainPEM)
		skewed := func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Date", time.Now().Add(-47*time.Minute).UTC().Format(http.TimeFormat))
			w.Write([]byte("ok"))
		}
		s := httptest.NewUnstartedServer(http.HandlerFunc(skewed))
		s.TLS = &tls.Config{ClientAuth: tls.VerifyClientCertIfGiven, ClientCAs: pool}
		s.StartTLS()
		t.Cleanup(s.Close)
		// The site's own certificate must verify: doctor presents the
		// enterprise's certificate only to a site it trusts.
		siteCA := filepath.Join(work, "skewed-site.pem")
		if err := os.WriteFile(siteCA, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: s.Certificate().Raw}), 0o644); err != nil {
			t.Fatal(err)
		}
		r := good.doctor("--url", s.URL+"/", "--user", "acme", "--ca-file", siteCA)
		expectFail(t, r, "clock", "time")
		if _, d, _ := r.check(t, "clock"); !strings.Contains(d, "47m") || !strings.Contains(d, "ahead") {
			t.Errorf("clock detail: %s", d)
		}
		if st, _, _ := r.check(t, "login"); st != "ok" {
			t.Errorf("the skewed site accepts the certificate; login check says %s", st)
		}
	})
}
