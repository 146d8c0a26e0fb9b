//go:build integration

package integration

import (
	"crypto/ecdsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"golang.org/x/crypto/ocsp"
)

var (
	zbcertOnce sync.Once
	zbcertPath string
	zbcertErr  error
)

// zbcertBinary builds cmd/zbcert once, beside the zbca binary.
func zbcertBinary(t *testing.T) string {
	t.Helper()
	zbcertOnce.Do(func() {
		zbcertPath = filepath.Join(filepath.Dir(zbcaBin), "zbcert")
		out, err := exec.Command("go", "build", "-o", zbcertPath, "../cmd/zbcert").CombinedOutput()
		if err != nil {
			zbcertErr = err
			t.Logf("%s", out)
		}
	})
	if zbcertErr != nil {
		t.Fatalf("building zbcert: %v", zbcertErr)
	}
	return zbcertPath
}

// zbcertUser is one computer: a HOME (for NSS) and a zbcert config
// directory, English output, no proxy.
type zbcertUser struct {
	t    *testing.T
	bin  string
	home string
	dir  string
}

func newZbcertUser(t *testing.T) *zbcertUser {
	home := t.TempDir()
	return &zbcertUser{t: t, bin: zbcertBinary(t), home: home, dir: filepath.Join(home, "zbcert")}
}

func (u *zbcertUser) run(stdin string, args ...string) (string, string, error) {
	u.t.Helper()
	cmd := exec.Command(u.bin, args...)
	env := []string{"HOME=" + u.home, "ZBCERT_HOME=" + u.dir, "LANG=en_US.UTF-8", "PATH=" + os.Getenv("PATH")}
	cmd.Env = env
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	return out.String(), errb.String(), err
}

func (u *zbcertUser) mustRun(stdin string, args ...string) string {
	u.t.Helper()
	out, errOut, err := u.run(stdin, args...)
	if err != nil {
		u.t.Fatalf("zbcert %s: %v\nstdout: %s\nstderr: %s", strings.Join(args, " "), err, out, errOut)
	}
	return out
}

// nssDB creates an empty NSS database at $HOME/.pki/nssdb, as Chromium
// does on first start.
func (u *zbcertUser) nssDB(certutil string) string {
	db := filepath.Join(u.home, ".pki", "nssdb")
	os.MkdirAll(db, 0o700)
	if o, err := tool(u.t, certutil, "-N", "-d", "sql:"+db, "--empty-password"); err != nil {
		u.t.Fatalf("certutil -N: %v %s", err, o)
	}
	return db
}

type zbcertList struct {
	Certificates []struct {
		Serial   string `json:"serial"`
		User     string `json:"user"`
		DaysLeft int    `json:"days_left"`
		Validity string `json:"validity"`
		OCSP     string `json:"ocsp_status"`
		Reason   string `json:"revocation_reason"`
	} `json:"certificates"`
}

func (u *zbcertUser) list() zbcertList {
	u.t.Helper()
	var l zbcertList
	out := u.mustRun("", "list", "--json")
	if err := json.Unmarshal([]byte(out), &l); err != nil {
		u.t.Fatalf("list --json: %v\n%s", err, out)
	}
	return l
}

// rootFingerprint is the SHA-256 of the instance's root as zbcert prints it.
func rootFingerprint(t *testing.T, in *instance) (*x509.Certificate, string) {
	_, der := get(t, "http://"+in.http+"/pki/root.crt")
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c, fingerprintOf(c)
}

func fingerprintOf(c *x509.Certificate) string {
	sum := sha256.Sum256(c.Raw)
	var parts []string
	for _, b := range sum {
		parts = append(parts, fmt.Sprintf("%02X", b))
	}
	return strings.Join(parts, ":")
}

// leafOf reads the first certificate of a zbcert certificate directory.
func (u *zbcertUser) leaf(serial string) (*x509.Certificate, *x509.Certificate) {
	u.t.Helper()
	b, err := os.ReadFile(filepath.Join(u.dir, "certs", serial, "cert.pem"))
	if err != nil {
		u.t.Fatal(err)
	}
	leaf, _, rest := splitPEMChain(u.t, b)
	issuer, _, _ := splitPEMChain(u.t, rest)
	return leaf, issuer
}

// TestZbcert: setup (also into a real NSS database), enroll (with a real
// pk12util import), list, export (openssl opens both PKCS#12 profiles),
// import, renew, reissue (the old certificate revoked as superseded per
// OCSP), revoke — the real binary against zbca serve.
func TestZbcert(t *testing.T) {
	openssl := requireTool(t, "openssl")
	certutil := requireTool(t, "certutil")
	requireTool(t, "pk12util")
	in := newInstance(t, "")
	in.start()
	in.mustRun(testPassword+"\n", "enterprise", "add", "acme", "--name", "ACME 有限公司", "--password-stdin")
	server := in.httpsURL()
	root, fp := rootFingerprint(t, in)
	u := newZbcertUser(t)

	// setup: a wrong fingerprint and an unconfirmed one change nothing.
	if _, errOut, err := u.run("", "setup", "--server", server, "--no-install", "--fingerprint", strings.Repeat("AB", 32)); err == nil || !strings.Contains(errOut, fp) {
		t.Fatalf("setup with a wrong fingerprint: %v %s", err, errOut)
	}
	if _, errOut, err := u.run("n\n", "setup", "--server", server, "--no-install"); err == nil || !strings.Contains(errOut, fp) {
		t.Fatalf("setup answered no: %v %s", err, errOut)
	}
	if _, err := os.Stat(filepath.Join(u.dir, "config.json")); err == nil {
		t.Fatal("config.json written without confirmation")
	}
	out := u.mustRun("y\n", "setup", "--server", server, "--no-install")
	if !strings.Contains(out, "not installed") {
		t.Errorf("setup --no-install: %s", out)
	}
	u.mustRun("", "setup", "--server", server, "--no-install", "--fingerprint", strings.ToLower(strings.ReplaceAll(fp, ":", "")))

	// A real install into an NSS database under a temporary HOME.
	db := u.nssDB(certutil)
	u.mustRun("", "setup", "--server", server, "--fingerprint", fp, "--trust-stores", "nss")
	o, err := tool(t, certutil, "-L", "-d", "sql:"+db)
	if err != nil || !strings.Contains(o, "zbca root") || !strings.Contains(o, "C,,") {
		t.Fatalf("certutil -L after setup: %v\n%s", err, o)
	}
	nick := "zbca root " + strings.ReplaceAll(fp[:23], ":", "") + " " + root.SerialNumber.String()
	if o, err := tool(t, certutil, "-L", "-d", "sql:"+db, "-n", nick, "-a"); err != nil || !strings.Contains(o, "BEGIN CERTIFICATE") {
		t.Fatalf("certutil -L -n %q: %v\n%s", nick, err, o)
	}

	// enroll, with a PKCS#12 imported by pk12util into the same database.
	work := t.TempDir()
	p12 := filepath.Join(work, "acme.p12")
	if _, errOut, err := u.run("wrong-password\n", "enroll", "--user", "acme", "--password-stdin"); err == nil || !strings.Contains(errOut, "wrong username or password") {
		t.Fatalf("enroll with a wrong password: %v %s", err, errOut)
	}
	out = u.mustRun(testPassword+"\np12-secret\n", "enroll", "--user", "acme", "--password-stdin", "--p12", p12, "--install")
	if !strings.Contains(out, "CN=acme") || !strings.Contains(out, "NSS") {
		t.Fatalf("enroll: %s", out)
	}
	if o, err := tool(t, certutil, "-L", "-d", "sql:"+db); err != nil || !strings.Contains(o, "u,u,u") {
		t.Fatalf("certutil -L after enroll --install: %v\n%s", err, o)
	}
	l := u.list()
	if len(l.Certificates) != 1 || l.Certificates[0].User != "acme" || l.Certificates[0].OCSP != "good" || l.Certificates[0].Validity != "valid" || l.Certificates[0].DaysLeft < 1090 {
		t.Fatalf("list after enroll: %+v", l)
	}
	first := l.Certificates[0].Serial
	keyPEM, _ := os.ReadFile(filepath.Join(u.dir, "certs", first, "key.pem"))
	if !strings.Contains(string(keyPEM), "ENCRYPTED PRIVATE KEY") {
		t.Errorf("the stored key is not encrypted PKCS#8:\n%s", keyPEM[:40])
	}
	if o, err := tool(t, openssl, "pkcs12", "-in", p12, "-passin", "pass:p12-secret", "-noout"); err != nil {
		t.Fatalf("openssl pkcs12 on enroll --p12: %v %s", err, o)
	}

	// export in both profiles; openssl opens them; import on another computer.
	for _, profile := range []string{"modern", "legacy"} {
		f := filepath.Join(work, profile+".p12")
		u.mustRun("export-pw\n", "export", "--p12", f, "--p12-profile", profile, "--password-stdin")
		o, err := tool(t, openssl, "pkcs12", "-in", f, "-passin", "pass:export-pw", "-nodes", "-info")
		if err != nil || !strings.Contains(o, "CN = acme") || !strings.Contains(o, "PRIVATE KEY") || strings.Count(o, "BEGIN CERTIFICATE") != 3 {
			t.Fatalf("openssl pkcs12 (%s): %v\n%s", profile, err, o)
		}
		if profile == "modern" && !strings.Contains(o, "AES-256-CBC") || profile == "legacy" && !strings.Contains(o, "TripleDES") {
			t.Errorf("%s profile: openssl reports\n%s", profile, o)
		}
	}
	other := newZbcertUser(t)
	other.mustRun("", "setup", "--server", server, "--no-install", "--fingerprint", fp)
	out = other.mustRun("export-pw\n", "import", filepath.Join(work, "modern.p12"), "--password-stdin")
	if !strings.Contains(out, first) {
		t.Errorf("import: %s", out)
	}
	if l := other.list(); len(l.Certificates) != 1 || l.Certificates[0].Serial != first || l.Certificates[0].OCSP != "good" {
		t.Errorf("list after import: %+v", l)
	}

	// renew: no password (the ACME account is remembered); the server
	// supersedes the old certificate (max_active 1).
	oldLeaf, issuer := u.leaf(first)
	u.mustRun("", "renew", "--user", "acme")
	l = u.list()
	if len(l.Certificates) != 1 || l.Certificates[0].Serial == first || l.Certificates[0].OCSP != "good" {
		t.Fatalf("list after renew: %+v", l)
	}
	second := l.Certificates[0].Serial
	if r := in.ocspStatusOf(t, oldLeaf, issuer); r.Status != ocsp.Revoked || r.RevocationReason != ocsp.Superseded {
		t.Errorf("after renew the old certificate is %d (reason %d), want revoked superseded", r.Status, r.RevocationReason)
	}

	// reissue: a new key and certificate; the previous one revoked as
	// superseded, per OCSP.
	secondLeaf, _ := u.leaf(second)
	u.mustRun(testPassword+"\n", "reissue", "--user", "acme", "--password-stdin")
	l = u.list()
	if len(l.Certificates) != 1 || l.Certificates[0].Serial == second || l.Certificates[0].OCSP != "good" {
		t.Fatalf("list after reissue: %+v", l)
	}
	third := l.Certificates[0].Serial
	if r := in.ocspStatusOf(t, secondLeaf, issuer); r.Status != ocsp.Revoked || r.RevocationReason != ocsp.Superseded {
		t.Errorf("after reissue the previous certificate is %d (reason %d), want revoked superseded", r.Status, r.RevocationReason)
	}
	if thirdLeaf, _ := u.leaf(third); secondLeaf.PublicKey.(*ecdsa.PublicKey).Equal(thirdLeaf.PublicKey) {
		t.Error("reissue kept the old key")
	}

	// revoke from "another computer" (no certificate there), by serial.
	thirdLeaf, _ := u.leaf(third)
	out = other.mustRun(testPassword+"\n", "revoke", "--user", "acme", "--serial", third, "--reason", "keyCompromise", "--password-stdin")
	if !strings.Contains(out, third) {
		t.Errorf("revoke: %s", out)
	}
	if r := in.ocspStatusOf(t, thirdLeaf, issuer); r.Status != ocsp.Revoked || r.RevocationReason != ocsp.KeyCompromise {
		t.Errorf("after revoke: OCSP %d reason %d", r.Status, r.RevocationReason)
	}
	if l := u.list(); len(l.Certificates) != 1 || l.Certificates[0].OCSP != "revoked" || l.Certificates[0].Reason != "keyCompromise" {
		t.Errorf("list of the revoked certificate: %+v", l)
	}
	if _, errOut, err := other.run(testPassword+"\n", "revoke", "--user", "acme", "--serial", third, "--password-stdin"); err == nil || !strings.Contains(errOut, "already revoked") {
		t.Errorf("revoking twice: %v %s", err, errOut)
	}
	out = other.mustRun(testPassword+"\n", "revoke", "--user", "acme", "--all", "--password-stdin")
	if !strings.Contains(out, "No certificate to revoke") {
		t.Errorf("revoke --all with nothing active: %s", out)
	}
}
