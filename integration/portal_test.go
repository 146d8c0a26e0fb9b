//go:build integration

package integration

import (
	"bytes"
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ocsp"
	"software.sslmate.com/src/go-pkcs12"
)

// browserResult is what integration/browser/portal.mjs brings back.
type browserResult struct {
	Pages           map[string]string `json:"pages"`
	Files           map[string]string `json:"files"`
	Console         []string          `json:"console"`
	ApplyPassword   string            `json:"applyPassword"`
	ReissuePassword string            `json:"reissuePassword"`
	IssuedSerial    string            `json:"issuedSerial"`
	GenStatus       string            `json:"genStatus"`
	Error           string            `json:"error"`
}

// portalBrowser is Debian's Chromium driven by playwright-core, with a
// HOME whose NSS database trusts the instance's root (as `zbcert setup`
// or the download page's steps would), so that the portal is a secure
// context for WebCrypto without any certificate-error override.
type portalBrowser struct {
	t         *testing.T
	in        *instance
	home      string
	shots     string
	downloads string
	username  string
	password  string
}

func newPortalBrowser(t *testing.T, in *instance, rootPEM string) *portalBrowser {
	t.Helper()
	requireTool(t, "chromium")
	requireTool(t, "node")
	certutil := requireTool(t, "certutil")
	if _, err := os.Stat("browser/node_modules/playwright-core"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("playwright-core missing: .ci/run must run npm ci in integration/browser")
		}
		t.Skip("playwright-core missing: run npm ci in integration/browser")
	}
	shots := os.Getenv("ZBCA_SCREENSHOTS")
	if shots == "" {
		var err error
		if shots, err = os.MkdirTemp("", "zbca-portal-screenshots-"); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.MkdirAll(shots, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshots in %s", shots)
	b := &portalBrowser{t: t, in: in, home: t.TempDir(), shots: shots, downloads: t.TempDir(), username: "acme", password: testPassword}
	nss := filepath.Join(b.home, ".pki", "nssdb")
	if err := os.MkdirAll(nss, 0o700); err != nil {
		t.Fatal(err)
	}
	if out, err := tool(t, certutil, "-N", "-d", "sql:"+nss, "--empty-password"); err != nil {
		t.Fatalf("certutil -N: %v\n%s", err, out)
	}
	if out, err := tool(t, certutil, "-A", "-d", "sql:"+nss, "-t", "C,,", "-n", "zbca-root", "-i", rootPEM); err != nil {
		t.Fatalf("certutil -A: %v\n%s", err, out)
	}
	return b
}

// run drives one phase of portal.mjs with a fresh --user-data-dir.
func (b *portalBrowser) run(phase string, extra map[string]any) *browserResult {
	b.t.Helper()
	cfg := map[string]any{"base": b.in.httpsURL(), "username": b.username, "password": b.password, "phase": phase,
		"shots": b.shots, "downloads": b.downloads, "profile": b.t.TempDir()}
	for k, v := range extra {
		cfg[k] = v
	}
	cfgFile := filepath.Join(b.t.TempDir(), "browser.json")
	data, _ := json.Marshal(cfg)
	if err := os.WriteFile(cfgFile, data, 0o600); err != nil {
		b.t.Fatal(err)
	}
	cmd := exec.Command("node", "browser/portal.mjs", cfgFile)
	cmd.Env = append(os.Environ(), "HOME="+b.home)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		b.t.Fatal(err)
	}
	go func() { done <- cmd.Wait() }()
	var err error
	select {
	case err = <-done:
	case <-time.After(8 * time.Minute):
		cmd.Process.Kill()
		err = <-done
	}
	var res browserResult
	if jerr := json.Unmarshal(stdout.Bytes(), &res); jerr != nil {
		b.t.Fatalf("browser phase %s: %v (%v)\nstdout: %s\nstderr: %s\nserver: %s", phase, err, jerr, stdout.String(), stderr.String(), b.in.stderr)
	}
	if err != nil || res.Error != "" {
		b.t.Fatalf("browser phase %s: %v\n%s\nstatus: %s\nconsole: %q\nstderr: %s", phase, err, res.Error, res.GenStatus, res.Console, stderr.String())
	}
	for _, m := range res.Console {
		// 404 (favicon, the not-found page), 401 (the failed logins) are
		// expected; a CSP violation or a script error is not.
		if strings.Contains(m, "Content Security Policy") || strings.HasPrefix(m, "pageerror") || strings.Contains(m, "Uncaught") {
			b.t.Errorf("browser console (%s): %s", phase, m)
		}
	}
	return &res
}

// checkPages checks that each screenshot exists and its page shows its
// key texts.
func checkPages(t *testing.T, shots string, res *browserResult, want map[string][]string) {
	t.Helper()
	for name, texts := range want {
		body, ok := res.Pages[name]
		if !ok {
			t.Errorf("page %s was not visited", name)
			continue
		}
		if st, err := os.Stat(filepath.Join(shots, name+".png")); err != nil || st.Size() < 1000 {
			t.Errorf("screenshot %s.png missing or empty: %v", name, err)
		}
		for _, s := range texts {
			if !strings.Contains(body, s) {
				t.Errorf("page %s lacks %q:\n%s", name, s, body)
			}
		}
	}
}

// checkP12 opens a PKCS#12 file with openssl and the password, checks the
// chain against the root and that the key matches the certificate,
// imports it with pk12util into a fresh NSS database, and returns the
// certificate.
func checkP12(t *testing.T, dir, p12, password, rootPEM string) *x509.Certificate {
	t.Helper()
	openssl := requireTool(t, "openssl")
	pk12util := requireTool(t, "pk12util")
	certutil := requireTool(t, "certutil")
	pass := "pass:" + password
	info, err := tool(t, openssl, "pkcs12", "-info", "-in", p12, "-passin", pass, "-nokeys")
	if err != nil {
		t.Fatalf("openssl pkcs12 -info %s: %v\n%s", p12, err, info)
	}
	for _, s := range []string{"MAC: sha256, Iteration 100000", "Shrouded Keybag: PBES2, PBKDF2, AES-256-CBC, Iteration 100000, PRF hmacWithSHA256"} {
		if !strings.Contains(info, s) {
			t.Errorf("%s: openssl -info lacks %q:\n%s", p12, s, info)
		}
	}
	if out, err := tool(t, openssl, "pkcs12", "-in", p12, "-passin", "pass:wrong-password", "-nokeys"); err == nil {
		t.Errorf("%s opened with a wrong password:\n%s", p12, out)
	}
	base := filepath.Join(dir, strings.TrimSuffix(filepath.Base(p12), ".p12"))
	leafPEM, chainPEM, keyPEM := base+"-leaf.pem", base+"-cas.pem", base+"-key.pem"
	for _, a := range [][]string{
		{"pkcs12", "-in", p12, "-passin", pass, "-clcerts", "-nokeys", "-out", leafPEM},
		{"pkcs12", "-in", p12, "-passin", pass, "-cacerts", "-nokeys", "-out", chainPEM},
		{"pkcs12", "-in", p12, "-passin", pass, "-nocerts", "-nodes", "-out", keyPEM},
	} {
		if out, err := tool(t, openssl, a...); err != nil {
			t.Fatalf("openssl %v: %v\n%s", a, err, out)
		}
	}
	if out, err := tool(t, openssl, "verify", "-purpose", "sslclient", "-CAfile", rootPEM, "-untrusted", chainPEM, leafPEM); err != nil || !strings.Contains(out, "OK") {
		t.Fatalf("openssl verify %s: %v\n%s", p12, err, out)
	}
	kp, err1 := tool(t, openssl, "pkey", "-in", keyPEM, "-pubout")
	cp, err2 := tool(t, openssl, "x509", "-in", leafPEM, "-pubkey", "-noout")
	if err1 != nil || err2 != nil || kp != cp {
		t.Fatalf("%s: key does not match the certificate (%v %v)\n%s\n%s", p12, err1, err2, kp, cp)
	}
	nss := filepath.Join(dir, strings.TrimSuffix(filepath.Base(p12), ".p12")+"-nss")
	os.MkdirAll(nss, 0o700)
	if out, err := tool(t, certutil, "-N", "-d", "sql:"+nss, "--empty-password"); err != nil {
		t.Fatalf("certutil -N: %v\n%s", err, out)
	}
	if out, err := tool(t, pk12util, "-i", p12, "-d", "sql:"+nss, "-W", password); err != nil || !strings.Contains(out, "SUCCESSFUL") {
		t.Fatalf("pk12util -i %s: %v\n%s", p12, err, out)
	}
	if out, err := tool(t, certutil, "-L", "-d", "sql:"+nss); err != nil || !strings.Contains(out, "u,u,u") {
		t.Fatalf("certutil -L after import: %v\n%s", err, out)
	}
	return readPEMCert(t, leafPEM)
}

func readPEMCert(t *testing.T, file string) *x509.Certificate {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	for {
		var blk *pem.Block
		if blk, b = pem.Decode(b); blk == nil {
			t.Fatalf("no certificate in %s", file)
		}
		if blk.Type == "CERTIFICATE" {
			c, err := x509.ParseCertificate(blk.Bytes)
			if err != nil {
				t.Fatal(err)
			}
			return c
		}
	}
}

func wantOCSP(t *testing.T, in *instance, what string, leaf, issuer *x509.Certificate, status, reason int) {
	t.Helper()
	r := in.ocspStatusOf(t, leaf, issuer)
	if r.Status != status || (status == ocsp.Revoked && r.RevocationReason != reason) {
		t.Errorf("%s: OCSP status %d reason %d, want %d reason %d", what, r.Status, r.RevocationReason, status, reason)
	}
}

func csrPEMFile(t *testing.T, dir, name string) string {
	t.Helper()
	openssl := requireTool(t, "openssl")
	file := filepath.Join(dir, name+".csr")
	if out, err := tool(t, openssl, "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
		"-keyout", filepath.Join(dir, name+".key"), "-subj", "/CN=acme", "-out", file); err != nil {
		t.Fatalf("openssl req: %v\n%s", err, out)
	}
	b, _ := os.ReadFile(file)
	return string(b)
}

// portalKeygen logs in over HTTPS as a browser would and asks for a
// server-made PKCS#12 file for os.
func portalKeygen(t *testing.T, in *instance, osName, password string) []byte {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	cl := in.httpsClient(t)
	cl.Jar = jar
	base := in.httpsURL()
	resp, err := cl.Get(base + "/keygen")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	u, _ := url.Parse(base)
	csrf := ""
	for _, c := range jar.Cookies(u) {
		if c.Name == "__Host-zbca-csrf" {
			csrf = c.Value
		}
	}
	post := func(path string, form url.Values) *http.Response {
		form.Set("csrf", csrf)
		resp, err := cl.PostForm(base+path, form)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	resp = post("/login", url.Values{"username": {"acme"}, "password": {testPassword}, "next": {"keygen"}})
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), "keygen-form") {
		t.Fatalf("login for keygen: %d\n%s", resp.StatusCode, body)
	}
	resp = post("/keygen", url.Values{"os": {osName}, "keytype": {"EC-P256"}, "p12_password": {password}, "p12_password2": {password}})
	defer resp.Body.Close()
	body, _ = io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/x-pkcs12" {
		t.Fatalf("keygen %s: %d\n%s", osName, resp.StatusCode, body)
	}
	return body
}

// TestPortal: a clerk in headless Chromium applies (key, CSR and PKCS#12
// made in the browser), reissues, pastes a CSR and revokes, in Chinese and
// in English; the files open with openssl and NSS, OCSP follows; the
// server-side keygen profiles open with openssl and go-pkcs12.
func TestPortal(t *testing.T) {
	openssl := requireTool(t, "openssl")
	in := newInstance(t, "")
	in.start()
	in.mustRun(testPassword+"\n", "enterprise", "add", "acme", "--name", "ACME Ltd", "--password-stdin")
	in.mustRun("", "enterprise", "set", "acme", "--server-keygen")
	dir := t.TempDir()
	rootPEM := filepath.Join(dir, "root.pem")
	_, rb := get(t, "http://"+in.http+"/pki/root.pem")
	if err := os.WriteFile(rootPEM, rb, 0o644); err != nil {
		t.Fatal(err)
	}
	root := readPEMCert(t, rootPEM)
	_, ib := get(t, "http://"+in.http+"/pki/issuing.crt")
	issuing, err := x509.ParseCertificate(ib)
	if err != nil {
		t.Fatal(err)
	}
	rootSum := sha256.Sum256(root.Raw)
	rootFP := fmt.Sprintf("%X", rootSum[:])

	b := newPortalBrowser(t, in, rootPEM)
	res := b.run("main", map[string]any{"csr": csrPEMFile(t, dir, "pasted")})
	checkPages(t, b.shots, res, map[string][]string{
		"zh-home": {"证书在线服务系统", "第一步", "申请证书", "废除证书"}, "en-home": {"Certificate online service", "Step 1", "Apply", "Revoke"},
		"zh-download": {"根证书", "root.crt", colonHex(rootFP)}, "en-download": {"Root certificate", "chain.pem", colonHex(rootFP)},
		"zh-help": {"zbcert doctor", "废除证书", "证书已过期"}, "en-help": {"zbcert doctor", "Revoking", "expired"},
		"zh-notfound": {"页面不存在"}, "en-notfound": {"No such page"},
		"zh-login": {"企业用户登录", "企业用户名"}, "en-login": {"Enterprise login", "Enterprise username"},
		"zh-login-failed": {"用户名或口令错误"}, "en-login-failed": {"wrong username or password"},
		"zh-apply": {"生成密钥并申请证书", "ECDSA P-256"}, "en-apply": {"Generate key and apply", "superseded"},
		"zh-apply-done": {"证书已签发", "只显示这一次", "acme.p12"}, "en-reissue-done": {"Your certificate is issued", "acme.p12"},
		"zh-certificates": {"有效", "acme"}, "en-certificates": {"revoked", "superseded by a new certificate", "valid"},
		"zh-reissue": {"重新申请证书"}, "en-reissue": {"Reissue a certificate", "superseded"},
		"zh-keygen": {"服务器生成密钥", "macOS"}, "en-keygen": {"Server-side key", "Older Windows"},
		"zh-issued": {"证书已签发", "已自动废除"},
		"zh-revoke": {"废除原因", "全部有效证书"}, "zh-revoke-confirm": {"不可撤销"}, "zh-revoke-done": {"已废除 1 张证书"},
	})
	if len(res.ApplyPassword) != 19 {
		t.Errorf("random PKCS#12 password %q: want 16 characters in groups of 4", res.ApplyPassword)
	}

	// The browser-made files: ECDSA with a random password, RSA with the
	// clerk's own.
	cert1 := checkP12(t, dir, res.Files["zh-apply.p12"], res.ApplyPassword, rootPEM)
	cert2 := checkP12(t, dir, res.Files["en-reissue.p12"], res.ReissuePassword, rootPEM)
	if cert1.PublicKeyAlgorithm != x509.ECDSA || cert2.PublicKeyAlgorithm != x509.RSA || cert1.Subject.CommonName != "acme" {
		t.Errorf("key types %v %v, subject %s", cert1.PublicKeyAlgorithm, cert2.PublicKeyAlgorithm, cert1.Subject)
	}
	if chain, err := os.ReadFile(res.Files["zh-apply-chain.pem"]); err != nil || bytes.Count(chain, []byte("BEGIN CERTIFICATE")) != 3 {
		t.Errorf("chain download: %v, %d certificates", err, bytes.Count(chain, []byte("BEGIN CERTIFICATE")))
	}
	// Reissue superseded the first; the pasted CSR superseded the second;
	// the pasted one was revoked from the portal.
	wantOCSP(t, in, "applied, then reissued", cert1, issuing, ocsp.Revoked, ocsp.Superseded)
	wantOCSP(t, in, "reissued, then superseded by the pasted CSR", cert2, issuing, ocsp.Revoked, ocsp.Superseded)
	pasted := readPEMCert(t, res.Files["zh-issued.pem"])
	if fmt.Sprintf("%x", pasted.SerialNumber) != strings.TrimLeft(res.IssuedSerial, "0") {
		t.Errorf("pasted CSR: serial %x, page said %s", pasted.SerialNumber, res.IssuedSerial)
	}
	wantOCSP(t, in, "revoked from the portal", pasted, issuing, ocsp.Revoked, ocsp.KeyCompromise)

	// Server-side keygen: both profiles open with openssl and go-pkcs12.
	var last *x509.Certificate
	for _, osName := range []string{"windows", "macos"} {
		const pw = "Server-Passw0rd-1"
		pfx := portalKeygen(t, in, osName, pw)
		key, cert, cas, err := pkcs12.DecodeChain(pfx, pw)
		if err != nil {
			t.Fatalf("go-pkcs12 %s: %v", osName, err)
		}
		if !key.(crypto.Signer).Public().(interface{ Equal(crypto.PublicKey) bool }).Equal(cert.PublicKey) || len(cas) != 2 {
			t.Fatalf("%s: key does not match or chain has %d", osName, len(cas))
		}
		file := filepath.Join(dir, "keygen-"+osName+".p12")
		os.WriteFile(file, pfx, 0o600)
		info, err := tool(t, openssl, "pkcs12", "-info", "-in", file, "-passin", "pass:"+pw, "-nokeys")
		want := map[string]string{"windows": "AES-256-CBC", "macos": "pbeWithSHA1And3-KeyTripleDES-CBC"}[osName]
		if err != nil || !strings.Contains(info, want) {
			t.Fatalf("openssl %s: %v, want %s\n%s", osName, err, want, info)
		}
		kp, err1 := tool(t, openssl, "pkcs12", "-in", file, "-passin", "pass:"+pw, "-nocerts", "-nodes")
		if err1 != nil {
			t.Fatalf("openssl key %s: %v\n%s", osName, err1, kp)
		}
		last = cert
	}

	// Revoke every certificate from the portal in English.
	res = b.run("revoke-en", map[string]any{"csr": csrPEMFile(t, dir, "pasted2")})
	checkPages(t, b.shots, res, map[string][]string{
		"en-revoke": {"Reason", "All valid certificates"}, "en-revoke-confirm": {"cannot be undone"},
		"en-revoke-done": {"1 certificate(s) revoked"}, "en-certificates-after": {"revoked"}, "en-issued": {"Certificate issued"},
	})
	wantOCSP(t, in, "server-made, revoked from the portal", last, issuing, ocsp.Revoked, ocsp.CessationOfOperation)

	// A phone-sized screen.
	res = b.run("mobile", map[string]any{"mobile": true})
	checkPages(t, b.shots, res, map[string][]string{"zh-mobile-home": {"申请证书"}, "en-mobile-home": {"Apply"},
		"zh-mobile-apply": {"生成密钥并申请证书"}, "zh-mobile-certificates": {"查看证书"}})
}

func colonHex(h string) string {
	var b strings.Builder
	for i := 0; i+1 < len(h); i += 2 {
		if i > 0 {
			b.WriteByte(':')
		}
		b.WriteString(h[i : i+2])
	}
	return b.String()
}
