//go:build integration

package integration

import (
	"archive/tar"
	"compress/gzip"
	"crypto/sha256"
	"crypto/x509"
	"database/sql"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	zx509 "github.com/zmap/zcrypto/x509"
	"github.com/zmap/zlint/v3"
	"github.com/zmap/zlint/v3/lint"
	_ "modernc.org/sqlite"
)

const testPassword = "correct-horse-battery"

// TestQuickstart follows the README: first start, fetch root and chain,
// add an enterprise, sign an openssl CSR, verify with openssl, lint with
// zlint, restart, and refuse a second init.
func TestQuickstart(t *testing.T) {
	openssl := requireTool(t, "openssl")
	in := newInstance(t, "")
	in.start()

	// The first start prints where everything is.
	out := in.stdout.String()
	for _, want := range []string{"root SHA-256", "admin token file", filepath.Join(in.dir, "secrets", "admin-token"), "https://"} {
		if !strings.Contains(out, want) {
			t.Errorf("first-start summary lacks %q:\n%s", want, out)
		}
	}

	// Root and chain over plain HTTP.
	resp, rootDER := get(t, "http://"+in.http+"/pki/root.crt")
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/pkix-cert" {
		t.Fatalf("root.crt: %d %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	sum := sha256.Sum256(rootDER)
	fp := strings.ToUpper(hex.EncodeToString(sum[:]))
	if !strings.Contains(strings.ReplaceAll(out, ":", ""), fp) {
		t.Errorf("printed fingerprint does not match /pki/root.crt (%s)", fp)
	}
	etag := resp.Header.Get("ETag")
	req, _ := http.NewRequest("GET", "http://"+in.http+"/pki/root.crt", nil)
	req.Header.Set("If-None-Match", etag)
	if r2, err := http.DefaultClient.Do(req); err != nil || r2.StatusCode != http.StatusNotModified {
		t.Errorf("conditional GET: %v %v", err, r2)
	}
	_, rootPEM := get(t, "http://"+in.http+"/pki/root.pem")
	resp, chainPEM := get(t, "http://"+in.http+"/pki/chain.pem")
	if resp.StatusCode != 200 || strings.Count(string(chainPEM), "BEGIN CERTIFICATE") != 2 {
		t.Fatalf("chain.pem: %d\n%s", resp.StatusCode, chainPEM)
	}
	resp, issDER := get(t, "http://"+in.http+"/pki/issuing.crt")
	if resp.StatusCode != 200 {
		t.Fatalf("issuing.crt: %d", resp.StatusCode)
	}
	if resp, _ := get(t, "http://"+in.http+"/pki/nope.crt"); resp.StatusCode != 404 {
		t.Errorf("unknown file: %d", resp.StatusCode)
	}
	// HTTPS landing page, trusted through our root.
	hr, err := in.httpsClient(t).Get("https://" + strings.Replace(in.https, "127.0.0.1", "localhost", 1) + "/")
	if err != nil {
		t.Fatalf("HTTPS: %v", err)
	}
	hr.Body.Close()
	if hr.StatusCode != 200 || hr.Header.Get("Strict-Transport-Security") == "" {
		t.Errorf("landing page: %d", hr.StatusCode)
	}

	// The quickstart of the README.
	work := t.TempDir()
	rootFile := filepath.Join(work, "root.pem")
	os.WriteFile(rootFile, rootPEM, 0o644)
	in.mustRun(testPassword+"\n", "enterprise", "add", "acme", "--name", "某某科技有限公司", "--id", "91350100M000100Y43", "--password-stdin")
	key, csr := filepath.Join(work, "acme.key"), filepath.Join(work, "acme.csr")
	if o, err := tool(t, openssl, "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
		"-keyout", key, "-subj", "/CN=acme", "-out", csr); err != nil {
		t.Fatalf("openssl req: %v\n%s", err, o)
	}
	certFile := filepath.Join(work, "acme.pem")
	in.mustRun("", "cert", "issue", "--enterprise", "acme", "--csr", csr, "--out", certFile)
	o, err := tool(t, openssl, "verify", "-purpose", "sslclient", "-CAfile", rootFile, "-untrusted", certFile, certFile)
	if err != nil || !strings.Contains(o, ": OK") {
		t.Fatalf("openssl verify: %v\n%s", err, o)
	}
	o, _ = tool(t, openssl, "x509", "-in", certFile, "-noout", "-subject", "-ext", "subjectAltName")
	if !strings.Contains(o, "CN = acme") || !strings.Contains(o, "serialNumber = 91350100M000100Y43") || !strings.Contains(o, "URI:urn:zbca:enterprise:acme") {
		t.Errorf("openssl sees:\n%s", o)
	}

	leaf, err := x509.ParseCertificate(firstPEM(t, certFile))
	if err != nil {
		t.Fatal(err)
	}
	if !leaf.NotAfter.Equal(leaf.NotBefore.AddDate(3, 0, 0)) {
		t.Errorf("validity %s – %s is not exactly three calendar years", leaf.NotBefore, leaf.NotAfter)
	}
	if !strings.HasPrefix(leaf.CRLDistributionPoints[0], "http://"+in.http+"/crl/") || leaf.OCSPServer[0] != "http://"+in.http+"/ocsp" {
		t.Errorf("URLs do not follow public_url: %v %v", leaf.CRLDistributionPoints, leaf.OCSPServer)
	}

	// zlint's RFC 5280 lints: no error, no warning, for leaf, issuing CA and root.
	leafDER := firstPEM(t, certFile)
	for name, der := range map[string][]byte{"client": leafDER, "issuing": issDER, "root": rootDER} {
		zlintRFC5280(t, name, der)
	}

	// The certificate is in the store; listing and showing work.
	list := in.mustRun("", "cert", "list", "--enterprise", "acme", "--json")
	if strings.Count(list, `"serial"`) != 1 {
		t.Fatalf("cert list: %s", list)
	}

	// A restart keeps everything.
	in.stop()
	in.start()
	_, rootAgain := get(t, "http://"+in.http+"/pki/root.crt")
	if string(rootAgain) != string(rootDER) {
		t.Fatal("root changed across a restart")
	}
	if l := in.mustRun("", "cert", "list", "--enterprise", "acme", "--json"); l != list {
		t.Errorf("certificates changed across a restart:\n%s\n%s", list, l)
	}
	in.mustRun("", "audit", "verify")

	// init on an existing data directory refuses and destroys nothing,
	// while the server runs and after it stopped; a second server on the
	// same data directory is refused too.
	before := snapshotFiles(t, filepath.Join(in.dir, "ca"))
	_, errOut, err := in.run("", "init")
	if err == nil || !strings.Contains(errOut, "another zbca server") {
		t.Fatalf("init while serving: %v %s", err, errOut)
	}
	_, errOut, err = in.run("", "serve", "--http", freePort(t), "--https", freePort(t), "--admin", freePort(t))
	if err == nil || !strings.Contains(errOut, "another zbca server") {
		t.Fatalf("second server: %v %s", err, errOut)
	}
	in.stop()
	_, errOut, err = in.run("", "init")
	if err == nil || !strings.Contains(errOut, "refusing") {
		t.Fatalf("second init: %v %s", err, errOut)
	}
	in.start()
	if after := snapshotFiles(t, filepath.Join(in.dir, "ca")); after != before {
		t.Fatal("second init changed the CA directory")
	}

	// A consistent backup while the server runs.
	bk := filepath.Join(work, "backup.tar.gz")
	in.mustRun("", "backup", bk)
	names := tarNames(t, bk)
	for _, want := range []string{"zbca.db", "ca/root.crt", "ca/hierarchy.json", "ca/issuing-1.key"} {
		if !names[want] {
			t.Errorf("backup lacks %s (has %v)", want, names)
		}
	}
	for n := range names {
		if strings.Contains(n, "secrets") || strings.Contains(n, "passphrase") {
			t.Errorf("backup contains secret %s", n)
		}
	}
}

func firstPEM(t *testing.T, path string) []byte {
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		t.Fatalf("%s: no PEM", path)
	}
	return blk.Bytes
}

func zlintRFC5280(t *testing.T, name string, der []byte) {
	t.Helper()
	c, err := zx509.ParseCertificate(der)
	if err != nil {
		t.Fatalf("zcrypto parse %s: %v", name, err)
	}
	reg, err := lint.GlobalRegistry().Filter(lint.FilterOptions{IncludeSources: lint.SourceList{lint.RFC5280}})
	if err != nil {
		t.Fatal(err)
	}
	rs := zlint.LintCertificateEx(c, reg)
	ran := 0
	for lintName, r := range rs.Results {
		if r.Status != lint.NA && r.Status != lint.NE {
			ran++
		}
		if r.Status == lint.Error || r.Status == lint.Warn || r.Status == lint.Fatal {
			t.Errorf("zlint %s on the %s certificate: %s %s", lintName, name, r.Status, r.Details)
		}
	}
	if ran < 20 {
		t.Errorf("only %d RFC 5280 lints applied to the %s certificate", ran, name)
	}
	t.Logf("zlint: %d RFC 5280 lints applied to the %s certificate, no error or warning", ran, name)
}

func snapshotFiles(t *testing.T, dir string) string {
	h := sha256.New()
	filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil || fi.IsDir() {
			return err
		}
		b, _ := os.ReadFile(p)
		h.Write([]byte(p))
		h.Write(b)
		return nil
	})
	return hex.EncodeToString(h.Sum(nil))
}

func tarNames(t *testing.T, path string) map[string]bool {
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	gz, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(gz)
	names := map[string]bool{}
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		names[h.Name] = true
	}
	return names
}

// dbState summarises what a refused command must not change.
func dbState(t *testing.T, in *instance) string {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(in.dir, "zbca.db")+"?_pragma=busy_timeout(5000)&mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var parts []string
	for _, q := range []string{
		"SELECT COUNT(*) FROM enterprises", "SELECT COUNT(*) FROM certificates", "SELECT COUNT(*) FROM issuance_journal",
		"SELECT COUNT(*) FROM audit_log", "SELECT COALESCE(MAX(hash), '') FROM audit_log",
		"SELECT group_concat(username || status || password_hash) FROM enterprises",
	} {
		var v sql.NullString
		if err := db.QueryRow(q).Scan(&v); err != nil {
			t.Fatal(err)
		}
		parts = append(parts, v.String)
	}
	return strings.Join(parts, "|")
}

// TestBadInputChangesNothing: each bad input gets a clear error and leaves
// the database as it was.
func TestBadInputChangesNothing(t *testing.T) {
	openssl := requireTool(t, "openssl")
	in := newInstance(t, "")
	in.mustRun("", "init")
	in.mustRun(testPassword+"\n", "enterprise", "add", "acme", "--name", "ACME Ltd", "--password-stdin")
	in.mustRun(testPassword+"\n", "enterprise", "add", "gone", "--name", "Gone Ltd", "--password-stdin")
	in.mustRun("", "enterprise", "disable", "gone")
	work := t.TempDir()
	p := func(name string) string { return filepath.Join(work, name) }

	mustTool := func(args ...string) {
		if o, err := tool(t, openssl, args...); err != nil {
			t.Fatalf("openssl %v: %v\n%s", args, err, o)
		}
	}
	mustTool("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", p("good.key"), "-subj", "/CN=x", "-out", p("good.csr"))
	mustTool("req", "-new", "-newkey", "rsa:1024", "-nodes", "-keyout", p("rsa1024.key"), "-subj", "/CN=x", "-out", p("rsa1024.csr"))
	// A CSR whose signature is broken: flip a byte near the end of the DER.
	mustTool("req", "-in", p("good.csr"), "-outform", "DER", "-out", p("good.der"))
	der, _ := os.ReadFile(p("good.der"))
	der[len(der)-5] ^= 0x55
	os.WriteFile(p("broken.der"), der, 0o644)
	os.WriteFile(p("garbage.csr"), []byte("-----BEGIN CERTIFICATE REQUEST-----\nnot base64 at all\n-----END CERTIFICATE REQUEST-----\n"), 0o644)
	os.WriteFile(p("unknown.yaml"), []byte("listen:\n  htp: \":1\"\n"), 0o600)

	cases := []struct {
		name string
		args []string
		want string // in the error output
	}{
		{"malformed CSR", []string{"cert", "issue", "--enterprise", "acme", "--csr", p("garbage.csr")}, "CSR"},
		{"broken signature", []string{"cert", "issue", "--enterprise", "acme", "--csr", p("broken.der")}, "signature"},
		{"RSA-1024", []string{"cert", "issue", "--enterprise", "acme", "--csr", p("rsa1024.csr")}, "1024 bits is not accepted"},
		{"unknown enterprise", []string{"cert", "issue", "--enterprise", "nobody", "--csr", p("good.csr")}, `enterprise "nobody" does not exist`},
		{"disabled enterprise", []string{"cert", "issue", "--enterprise", "gone", "--csr", p("good.csr")}, `enterprise "gone" is disabled`},
		{"duplicate enterprise", []string{"enterprise", "add", "acme", "--name", "Other", "--password-stdin"}, "already exists"},
		{"bad username", []string{"enterprise", "add", "bad name", "--name", "X", "--password-stdin"}, "username"},
		{"unknown config key", []string{"--config", p("unknown.yaml"), "enterprise", "list"}, "field htp not found"},
	}
	before := dbState(t, in)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, errOut, err := in.run(testPassword+"\n", tc.args...)
			if err == nil {
				t.Fatalf("accepted")
			}
			if !strings.Contains(errOut, tc.want) {
				t.Errorf("error output %q lacks %q", errOut, tc.want)
			}
			if after := dbState(t, in); after != before {
				t.Errorf("database changed:\n%s\n%s", before, after)
			}
		})
	}
	// A mistyped data directory is an error, not a new empty CA.
	typo := filepath.Join(t.TempDir(), "typo")
	for _, args := range [][]string{{"audit", "verify"}, {"cert", "list"}, {"enterprise", "list"}} {
		_, errOut, err := in.run("", append([]string{"--data", typo}, args...)...)
		if err == nil || !strings.Contains(errOut, "no zbca data directory") {
			t.Errorf("%v on a missing data directory: %v %s", args, err, errOut)
		}
	}
	if _, err := os.Stat(typo); !os.IsNotExist(err) {
		t.Errorf("a command created the mistyped data directory")
	}
	// The line of an unknown key is named.
	_, errOut, _ := in.run("", "--config", p("unknown.yaml"), "enterprise", "list")
	if !regexp.MustCompile(`line 2`).MatchString(errOut) {
		t.Errorf("unknown key error does not name the line: %s", errOut)
	}
	// A good CSR still works afterwards.
	in.mustRun("", "cert", "issue", "--enterprise", "acme", "--csr", p("good.csr"), "--out", p("good.pem"))
}

// TestCSVImport: bad rows are listed with line numbers and skipped, good
// rows are kept, and a re-run creates no duplicates.
func TestCSVImport(t *testing.T) {
	in := newInstance(t, "")
	in.mustRun("", "init")
	csv := "username,name,enterprise_id,password_hash\n" +
		"alpha,Alpha Ltd,,$2a$10$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy\n" + // line 2
		"beta,Beta Ltd\n" + // line 3: truncated
		"gamma,Gamma Ltd,,\"$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaGhhc2g\"\n" + // line 4
		"alpha,Alpha Again,,$2a$10$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy\n" + // line 5: duplicate
		"delta,Delta Ltd,,not-a-hash\n" // line 6: bad hash
	f := filepath.Join(t.TempDir(), "accounts.csv")
	os.WriteFile(f, []byte(csv), 0o644)
	out, errOut, err := in.run("", "enterprise", "import", f)
	if err == nil {
		t.Fatal("import with bad rows exited 0")
	}
	for _, want := range []string{"line 3", "line 5", "line 6"} {
		if !strings.Contains(errOut, want) {
			t.Errorf("bad row %s not reported:\n%s", want, errOut)
		}
	}
	if !strings.Contains(out, "2 added") || !strings.Contains(out, "3 bad") {
		t.Errorf("summary: %s", out)
	}
	list := in.mustRun("", "enterprise", "list")
	if !strings.Contains(list, "alpha") || !strings.Contains(list, "gamma") || strings.Contains(list, "beta") || strings.Contains(list, "delta") {
		t.Errorf("after import:\n%s", list)
	}
	// Re-run: nothing new, nothing duplicated.
	out, _, _ = in.run("", "enterprise", "import", f)
	if !strings.Contains(out, "0 added, 2 already present") {
		t.Errorf("re-run summary: %s", out)
	}
	if strings.Count(in.mustRun("", "enterprise", "list"), "\n") != 3 {
		t.Error("re-run created duplicates")
	}
	in.mustRun("", "audit", "verify")
}

// TestAuditTamper: editing, deleting or reordering an audit row directly in
// the database makes `zbca audit verify` fail.
func TestAuditTamper(t *testing.T) {
	for name, stmts := range map[string][]string{
		"edited":    {"UPDATE audit_log SET actor = 'mallory' WHERE seq = 2"},
		"deleted":   {"DELETE FROM audit_log WHERE seq = 2"},
		"reordered": {"UPDATE audit_log SET seq = 100 WHERE seq = 1", "UPDATE audit_log SET seq = 1 WHERE seq = 2", "UPDATE audit_log SET seq = 2 WHERE seq = 100"},
		"truncated": {"DELETE FROM audit_log WHERE seq = (SELECT MAX(seq) FROM audit_log)"},
	} {
		t.Run(name, func(t *testing.T) {
			in := newInstance(t, "")
			in.mustRun("", "init")
			in.mustRun(testPassword+"\n", "enterprise", "add", "acme", "--name", "ACME", "--password-stdin")
			in.mustRun("", "audit", "verify")
			db, err := sql.Open("sqlite", "file:"+filepath.Join(in.dir, "zbca.db")+"?_pragma=busy_timeout(5000)")
			if err != nil {
				t.Fatal(err)
			}
			for _, q := range stmts {
				if _, err := db.Exec(q); err != nil {
					t.Fatal(err)
				}
			}
			db.Close()
			out, _, err := in.run("", "audit", "verify")
			if err == nil || !strings.Contains(out, "BROKEN") {
				t.Fatalf("tampering not detected: %v\n%s", err, out)
			}
		})
	}
}

// TestStartupTime: a restart on an existing data directory serves within
// five seconds.
func TestStartupTime(t *testing.T) {
	in := newInstance(t, "")
	in.mustRun("", "init")
	start := time.Now()
	in.start()
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("start to ready took %s", d)
	}
}
