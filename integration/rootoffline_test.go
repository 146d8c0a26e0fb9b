//go:build integration

package integration

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestRootOffline (issue 17): init, sign the root material in a ceremony,
// import it, take the root key out of the data directory, restart. The
// server issues and revokes; openssl verifies the root's CRL and the
// root-signed OCSP answer about the issuing CA (SHA-1 and SHA-256) against
// the root; ca list and the summary say "offline"; the metric shows how
// long the material lasts. Then the compromise path: a ceremony that
// revokes the issuing CA; once imported, the root's CRL lists it, OCSP
// answers revoked, and openssl refuses a client certificate it signed.
func TestRootOffline(t *testing.T) {
	openssl := requireTool(t, "openssl")
	in := newInstance(t, "crl:\n  delay: 2s\nenroll:\n  policy:\n    max_active: 10\n")
	in.start()
	in.mustRun(testPassword+"\n", "enterprise", "add", "acme", "--name", "ACME", "--password-stdin")
	work := t.TempDir()
	p := func(n string) string { return filepath.Join(work, n) }
	issue := func(name string) {
		t.Helper()
		if o, err := tool(t, openssl, "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
			"-keyout", p(name+".key"), "-subj", "/CN=x", "-out", p(name+".csr")); err != nil {
			t.Fatalf("%v %s", err, o)
		}
		in.mustRun("", "cert", "issue", "--enterprise", "acme", "--csr", p(name+".csr"), "--out", p(name+".pem"))
	}
	issue("before")
	_, root := get(t, "http://"+in.http+"/pki/root.pem")
	_, iss := get(t, "http://"+in.http+"/pki/issuing.pem")
	os.WriteFile(p("root.pem"), root, 0o644)
	os.WriteFile(p("issuing.pem"), iss, 0o644)
	if !strings.Contains(in.stdout.String(), "root key          online") {
		t.Errorf("the first-start summary does not say where the root key is:\n%s", in.stdout)
	}
	in.stop()

	// The ceremony, and the move.
	if _, _, err := in.run("", "ca", "root-material", "sign", "--out", p("m1"), "--days", "400", "--yes"); err == nil {
		t.Fatal("signed material for 400 days")
	}
	if _, _, err := in.run("no\n", "ca", "root-material", "sign", "--out", p("m0")); err == nil {
		t.Fatal("signed without confirmation")
	}
	out := in.mustRun("yes\n", "ca", "root-material", "sign", "--out", p("m1"), "--days", "200")
	if !strings.Contains(out, "OCSP answer about issuing-1") || !strings.Contains(out, "signed; written to") {
		t.Fatalf("sign printed:\n%s", out)
	}
	if _, _, err := in.run("", "ca", "root-offline", "--key-out", p("root.key")); err == nil {
		t.Fatal("the root went offline before any material was imported")
	}
	in.mustRun("", "ca", "root-material", "import", p("m1"))
	out = in.mustRun("", "ca", "root-offline", "--key-out", p("root.key"))
	if !strings.Contains(out, "restart the server") {
		t.Fatalf("root-offline printed:\n%s", out)
	}
	if matches, _ := filepath.Glob(filepath.Join(in.dir, "ca", "root*.key")); len(matches) != 0 {
		t.Fatalf("root key still in the data directory: %v", matches)
	}
	if !regexpLine(in.mustRun("", "ca", "list"), `^root +offline `) {
		t.Error("ca list does not say the root is offline")
	}

	in.start()
	if !strings.Contains(in.stdout.String(), "root key          offline; pre-signed root material valid until") {
		t.Errorf("summary:\n%s", in.stdout)
	}
	issue("after")
	url := "http://" + in.http + "/ocsp"
	ocspAbout := func(cert, issuer string, extra ...string) string {
		t.Helper()
		args := append(append([]string{"ocsp"}, extra...), "-issuer", p(issuer), "-cert", p(cert), "-CAfile", p("root.pem"), "-url", url)
		o, _ := tool(t, openssl, args...)
		return o
	}
	for _, d := range []string{"-sha1", "-sha256"} {
		o := ocspAbout("issuing.pem", "root.pem", "-no_nonce", d)
		if !strings.Contains(o, "Response verify OK") || !strings.Contains(o, ": good") {
			t.Fatalf("OCSP about the issuing CA (%s), root offline:\n%s", d, o)
		}
	}
	if o := ocspAbout("after.pem", "issuing.pem"); !strings.Contains(o, ": good") || !strings.Contains(o, "Response verify OK") {
		t.Fatalf("OCSP about a certificate issued with the root offline:\n%s", o)
	}
	serial := strings.TrimPrefix(strings.TrimSpace(mustTool(t, openssl, "x509", "-in", p("before.pem"), "-noout", "-serial")), "serial=")
	in.mustRun("", "cert", "revoke", strings.ToLower(serial), "--reason", "keyCompromise")
	if o := ocspAbout("before.pem", "issuing.pem"); !strings.Contains(o, ": revoked") {
		t.Fatalf("OCSP after a revocation, root offline:\n%s", o)
	}
	_, crl := get(t, "http://"+in.http+"/crl/root.crl")
	os.WriteFile(p("root.crl"), crl, 0o644)
	if o, err := tool(t, openssl, "crl", "-inform", "DER", "-in", p("root.crl"), "-CAfile", p("root.pem"), "-noout", "-verify"); err != nil || !strings.Contains(o, "verify OK") {
		t.Fatalf("openssl crl -verify of the pre-signed root CRL: %v\n%s", err, o)
	}
	if _, rz := get(t, "http://"+in.admin+"/readyz"); !strings.Contains(string(rz), "root: offline; pre-signed root material: 199 days left") {
		t.Errorf("/readyz: %s", rz)
	}
	_, metrics := get(t, "http://"+in.admin+"/metrics")
	m := regexp.MustCompile(`(?m)^zbca_root_material_seconds_left (\S+)$`).FindSubmatch(metrics)
	if m == nil {
		t.Fatal("no zbca_root_material_seconds_left")
	}
	if left, _ := strconv.ParseFloat(string(m[1]), 64); left < 199*86400 || left > 200*86400 {
		t.Errorf("material left %v s, want about 200 days", left)
	}

	// nginx with ssl_ocsp on asks the root about the issuing CA at every
	// handshake: the pre-signed answer lets the client in.
	nginxBin := nginxPath(t)
	curl := requireTool(t, "curl")
	_, chainPEM := get(t, "http://"+in.http+"/pki/chain.pem")
	os.WriteFile(p("zbca-chain.pem"), chainPEM, 0o644)
	srvCA := writeServerIdentity(t, work)
	ocspOn := fmt.Sprintf("ssl_ocsp on;\n        ssl_ocsp_responder http://%s/ocsp;\n        ssl_ocsp_cache off;", in.http)
	handshake := func(ng *nginxProc) (int, string) {
		cmd := exec.Command(curl, "-sS", "--max-time", "15", "--cacert", srvCA, "--cert", p("after.pem"), "--key", p("after.key"),
			"-w", "\n%{http_code}", "https://127.0.0.1:"+ng.port+"/")
		o, _ := cmd.CombinedOutput()
		s := string(o)
		i := strings.LastIndexByte(s, '\n')
		code, _ := strconv.Atoi(strings.TrimSpace(s[i+1:]))
		return code, s
	}
	ng := startNginx(t, nginxBin, work, "root-offline", ocspOn)
	if code, body := handshake(ng); code != 200 {
		t.Fatalf("nginx ssl_ocsp on with the root offline: %d %s\n%s", code, body, ng.diag(in))
	}
	ng.stop()

	// The compromise of the issuing CA: a ceremony on "the offline
	// machine" — a copy of ca/ and the passphrase, no database — with the
	// root key, revokes it; the result is imported on the server.
	in.stop()
	cer := filepath.Join(work, "ceremony")
	os.MkdirAll(filepath.Join(cer, "data"), 0o700)
	if o, err := exec.Command("cp", "-a", filepath.Join(in.dir, "ca"), filepath.Join(cer, "data", "ca")).CombinedOutput(); err != nil {
		t.Fatalf("copying ca/: %v %s", err, o)
	}
	os.MkdirAll(filepath.Join(cer, "data", "secrets"), 0o700)
	os.WriteFile(filepath.Join(cer, "data", "secrets", "ca-passphrase"), mustRead(t, filepath.Join(in.dir, "secrets", "ca-passphrase")), 0o600)
	os.WriteFile(filepath.Join(cer, "data", "ca", "root.key"), mustRead(t, p("root.key")), 0o600)
	os.WriteFile(filepath.Join(cer, "zbca.yaml"), []byte("data_dir: "+filepath.Join(cer, "data")+"\npublic_url: http://"+in.http+"\n"), 0o600)
	time.Sleep(1100 * time.Millisecond) // a newer signing time than m1's
	sign := exec.Command(zbcaBin, "--config", filepath.Join(cer, "zbca.yaml"), "ca", "root-material", "sign", "--out", p("m2"), "--days", "200", "--revoke", "issuing-1", "--yes")
	sign.Env = append(os.Environ(), "ZBCA_CONFIG=", "ZBCA_DATA=")
	if o, err := sign.CombinedOutput(); err != nil {
		t.Fatalf("the ceremony on a copy of ca/ without a database: %v\n%s", err, o)
	}
	if _, err := os.Stat(filepath.Join(cer, "data", "zbca.db")); err == nil {
		t.Error("the ceremony created a database")
	}
	in.mustRun("", "ca", "root-material", "import", p("m2"))
	in.start()
	if o := ocspAbout("issuing.pem", "root.pem", "-no_nonce"); !strings.Contains(o, ": revoked") || !strings.Contains(o, "Response verify OK") {
		t.Fatalf("OCSP about the compromised issuing CA:\n%s", o)
	}
	ng = startNginx(t, nginxBin, work, "root-offline-compromised", ocspOn)
	if code, body := handshake(ng); code != 400 {
		t.Fatalf("nginx ssl_ocsp on accepted a client of the revoked issuing CA: %d %s\n%s", code, body, ng.diag(in))
	}
	ng.stop()
	_, crl = get(t, "http://"+in.http+"/crl/root.crl")
	os.WriteFile(p("root2.crl"), crl, 0o644)
	if o, _ := tool(t, openssl, "crl", "-inform", "DER", "-in", p("root2.crl"), "-noout", "-text"); !strings.Contains(o, "CA Compromise") {
		t.Fatalf("the root CRL does not list the issuing CA:\n%s", o)
	}
	_, issCRL := get(t, "http://"+in.http+"/crl/issuing-1.crl")
	os.WriteFile(p("issuing.crl"), issCRL, 0o644)
	for _, c := range []struct{ in, out string }{{"root2.crl", "root2.crl.pem"}, {"issuing.crl", "issuing.crl.pem"}} {
		mustTool(t, openssl, "crl", "-inform", "DER", "-in", p(c.in), "-out", p(c.out))
	}
	both := append(mustRead(t, p("root2.crl.pem")), mustRead(t, p("issuing.crl.pem"))...)
	os.WriteFile(p("crls.pem"), both, 0o644)
	if o, err := tool(t, openssl, "verify", "-crl_check_all", "-CRLfile", p("crls.pem"), "-CAfile", p("root.pem"), "-untrusted", p("issuing.pem"), p("after.pem")); err == nil || !strings.Contains(o, "revoked") {
		t.Fatalf("openssl accepted a certificate of the revoked issuing CA: %v\n%s", err, o)
	}
}

func mustTool(t *testing.T, name string, args ...string) string {
	t.Helper()
	o, err := tool(t, name, args...)
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, o)
	}
	return o
}

// TestRootOfflineRollover (issue 17): with the root offline, `zbca ca
// rollover` is refused; the rollover in two halves — prepare on the
// server, sign at the ceremony (a copy of ca/ with the root key, no
// database), import on the server — switches to the new issuing CA,
// whose certificates verify and whose status the root's pre-signed OCSP
// answers; the old CA's certificates are still answered. A CSR with a
// foreign name and a certificate of another CA are refused.
func TestRootOfflineRollover(t *testing.T) {
	openssl := requireTool(t, "openssl")
	in := newInstance(t, "enroll:\n  policy:\n    max_active: 10\n")
	in.start()
	in.mustRun(testPassword+"\n", "enterprise", "add", "acme", "--name", "ACME", "--password-stdin")
	work := t.TempDir()
	p := func(n string) string { return filepath.Join(work, n) }
	issue := func(name string) {
		t.Helper()
		mustTool(t, openssl, "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
			"-keyout", p(name+".key"), "-subj", "/CN=x", "-out", p(name+".csr"))
		in.mustRun("", "cert", "issue", "--enterprise", "acme", "--csr", p(name+".csr"), "--out", p(name+".pem"))
	}
	issue("old")
	_, root := get(t, "http://"+in.http+"/pki/root.pem")
	os.WriteFile(p("root.pem"), root, 0o644)
	_, iss1 := get(t, "http://"+in.http+"/pki/issuing.pem")
	os.WriteFile(p("issuing-1.pem"), iss1, 0o644)
	in.stop()
	in.mustRun("", "ca", "root-material", "sign", "--out", p("m1"), "--days", "100", "--yes")
	in.mustRun("", "ca", "root-material", "import", p("m1"))
	in.mustRun("", "ca", "root-offline", "--key-out", p("root.key"))
	if _, errOut, err := in.run("", "ca", "rollover"); err == nil || !strings.Contains(errOut, "offline") {
		t.Fatalf("one-step rollover with the root offline: %v %s", err, errOut)
	}

	out := in.mustRun("", "ca", "rollover", "prepare")
	csr := filepath.Join(in.dir, "ca", "issuing-2.csr")
	if !strings.Contains(out, csr) {
		t.Fatalf("prepare printed:\n%s", out)
	}
	// The ceremony machine: ca/, the passphrase, the root key.
	cer := filepath.Join(work, "ceremony")
	os.MkdirAll(filepath.Join(cer, "data", "secrets"), 0o700)
	if o, err := exec.Command("cp", "-a", filepath.Join(in.dir, "ca"), filepath.Join(cer, "data", "ca")).CombinedOutput(); err != nil {
		t.Fatalf("%v %s", err, o)
	}
	os.WriteFile(filepath.Join(cer, "data", "secrets", "ca-passphrase"), mustRead(t, filepath.Join(in.dir, "secrets", "ca-passphrase")), 0o600)
	os.WriteFile(filepath.Join(cer, "data", "ca", "root.key"), mustRead(t, p("root.key")), 0o600)
	os.WriteFile(filepath.Join(cer, "zbca.yaml"), []byte("data_dir: "+filepath.Join(cer, "data")+"\npublic_url: http://"+in.http+"\n"), 0o600)
	ceremony := func(args ...string) (string, error) {
		c := exec.Command(zbcaBin, append([]string{"--config", filepath.Join(cer, "zbca.yaml")}, args...)...)
		c.Env = append(os.Environ(), "ZBCA_CONFIG=", "ZBCA_DATA=")
		o, err := c.CombinedOutput()
		return string(o), err
	}
	// A CSR that is not the prepared issuing CA's name: refused.
	mustTool(t, openssl, "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
		"-keyout", p("evil.key"), "-subj", "/CN=Evil Issuing CA", "-out", p("evil.csr"))
	if o, err := ceremony("ca", "rollover", "sign", "--csr", p("evil.csr"), "--out", p("evil"), "--yes"); err == nil || !strings.Contains(o, "not this CA's issuing name") {
		t.Fatalf("a foreign CSR: %v\n%s", err, o)
	}
	if o, err := ceremony("ca", "rollover", "sign", "--csr", csr, "--out", p("r"), "--days", "100", "--yes"); err != nil {
		t.Fatalf("the ceremony: %v\n%s", err, o)
	}
	out = in.mustRun("", "ca", "rollover", "import", p("r"))
	if !strings.Contains(out, "current   issuing-2") {
		t.Fatalf("import printed:\n%s", out)
	}
	if _, errOut, err := in.run("", "ca", "rollover", "import", p("r")); err == nil || !strings.Contains(errOut, "no rollover is prepared") {
		t.Errorf("importing twice: %v %s", err, errOut)
	}

	in.start()
	issue("new")
	_, iss2 := get(t, "http://"+in.http+"/pki/issuing.pem")
	os.WriteFile(p("issuing-2.pem"), iss2, 0o644)
	if o := mustTool(t, openssl, "verify", "-CAfile", p("root.pem"), "-untrusted", p("issuing-2.pem"), p("new.pem")); !strings.Contains(o, "OK") {
		t.Fatalf("the new certificate: %s", o)
	}
	url := "http://" + in.http + "/ocsp"
	for _, c := range []struct{ cert, issuer, want string }{
		{"issuing-2.pem", "root.pem", ": good"}, // the root, offline: the ceremony's answer
		{"issuing-1.pem", "root.pem", ": good"},
		{"new.pem", "issuing-2.pem", ": good"},
		{"old.pem", "issuing-1.pem", ": good"}, // the retired CA still answers
	} {
		o, _ := tool(t, openssl, "ocsp", "-no_nonce", "-issuer", p(c.issuer), "-cert", p(c.cert), "-CAfile", p("root.pem"), "-url", url)
		if !strings.Contains(o, c.want) || !strings.Contains(o, "Response verify OK") {
			t.Errorf("OCSP about %s: %s", c.cert, o)
		}
	}
}

// TestHSMRootOffline (issue 17): with the CA keys in a PKCS#11 token
// (SoftHSM2), the root's private key deleted from the token after a
// ceremony: the server starts with the root offline and answers OCSP
// about the issuing CA from the pre-signed material, verified by openssl
// against the root; it still issues (the issuing key is in the token).
func TestHSMRootOffline(t *testing.T) {
	openssl := requireTool(t, "openssl")
	requireTool(t, "pkcs11-tool")
	h := newSoftHSM(t)
	pinFile := writePIN(t, h.pin)
	in := newInstance(t, fmt.Sprintf("ca:\n  kms: %q\n  pin_file: %s\n", h.kmsURI(), pinFile))
	in.start()
	in.mustRun(testPassword+"\n", "enterprise", "add", "acme", "--name", "ACME", "--password-stdin")
	work := t.TempDir()
	p := func(n string) string { return filepath.Join(work, n) }
	_, root := get(t, "http://"+in.http+"/pki/root.pem")
	_, iss := get(t, "http://"+in.http+"/pki/issuing.pem")
	os.WriteFile(p("root.pem"), root, 0o644)
	os.WriteFile(p("issuing.pem"), iss, 0o644)
	in.stop()
	in.mustRun("", "ca", "root-material", "sign", "--out", p("m"), "--days", "100", "--yes")
	in.mustRun("", "ca", "root-material", "import", p("m"))
	if _, errOut, err := in.run("", "ca", "root-offline", "--key-out", p("root.key")); err == nil || !strings.Contains(errOut, "HSM") {
		t.Errorf("root-offline on an HSM: %v %s", err, errOut)
	}
	// The ceremony's end: the root's private key leaves the token.
	var m struct {
		Root struct{ Key string } `json:"root"`
	}
	b := mustRead(t, filepath.Join(in.dir, "ca", "hierarchy.json"))
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	id := regexp.MustCompile(`id=([0-9a-f]+)`).FindStringSubmatch(m.Root.Key)
	if id == nil {
		t.Fatalf("root key reference %q", m.Root.Key)
	}
	mustTool(t, "pkcs11-tool", "--module", h.module, "--token-label", h.label, "--login", "--pin", h.pin, "--delete-object", "--type", "privkey", "--id", id[1])
	in.start()
	if !strings.Contains(in.stdout.String(), "root key          offline; pre-signed root material valid until") {
		t.Fatalf("summary with the root gone from the token:\n%s\n%s", in.stdout, in.stderr)
	}
	o, _ := tool(t, openssl, "ocsp", "-no_nonce", "-issuer", p("root.pem"), "-cert", p("issuing.pem"), "-CAfile", p("root.pem"), "-url", "http://"+in.http+"/ocsp")
	if !strings.Contains(o, ": good") || !strings.Contains(o, "Response verify OK") {
		t.Fatalf("OCSP about the issuing CA, root out of the token:\n%s", o)
	}
	mustTool(t, openssl, "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", p("c.key"), "-subj", "/CN=x", "-out", p("c.csr"))
	in.mustRun("", "cert", "issue", "--enterprise", "acme", "--csr", p("c.csr"), "--out", p("c.pem"))
	if o := mustTool(t, openssl, "verify", "-CAfile", p("root.pem"), "-untrusted", p("issuing.pem"), p("c.pem")); !strings.Contains(o, "OK") {
		t.Fatalf("a certificate issued with the root out of the token: %s", o)
	}
}
