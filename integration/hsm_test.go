//go:build integration

package integration

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// softHSM is a private SoftHSM2 token for one test: its own token
// directory, named by SOFTHSM2_CONF, which the zbca subprocesses inherit.
type softHSM struct {
	module string // path of libsofthsm2.so
	label  string // token label
	pin    string // user PIN
}

// softHSMModules are where distributions install the SoftHSM2 module;
// SOFTHSM2_MODULE overrides them.
var softHSMModules = []string{
	"/usr/lib/softhsm/libsofthsm2.so",                   // Debian, Ubuntu
	"/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",  // Debian multiarch
	"/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so", // Debian arm64
	"/usr/lib64/pkcs11/libsofthsm2.so",                  // Fedora
	"/usr/local/lib/softhsm/libsofthsm2.so",             // source builds
	"/opt/homebrew/lib/softhsm/libsofthsm2.so",          // macOS
}

// newSoftHSM initialises a fresh token labelled "zbca" in a temporary
// directory. It skips (fails in CI) without softhsm2-util and the module.
func newSoftHSM(t *testing.T) *softHSM {
	t.Helper()
	requireTool(t, "softhsm2-util")
	module := os.Getenv("SOFTHSM2_MODULE")
	if module == "" {
		for _, m := range softHSMModules {
			if _, err := os.Stat(m); err == nil {
				module = m
				break
			}
		}
	}
	if module == "" {
		if os.Getenv("CI") == "true" {
			t.Fatalf("libsofthsm2.so not found in %v: .ci/run must install softhsm2", softHSMModules)
		}
		t.Skip("libsofthsm2.so not found")
	}
	dir := t.TempDir()
	tokens := filepath.Join(dir, "tokens")
	if err := os.Mkdir(tokens, 0o700); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(dir, "softhsm2.conf")
	if err := os.WriteFile(conf, []byte("directories.tokendir = "+tokens+"\nobjectstore.backend = file\nlog.level = ERROR\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("SOFTHSM2_CONF", conf)
	h := &softHSM{module: module, label: "zbca", pin: "28461937"}
	if out, err := tool(t, "softhsm2-util", "--init-token", "--free", "--label", h.label, "--pin", h.pin, "--so-pin", "97531864"); err != nil {
		t.Fatalf("softhsm2-util --init-token: %v\n%s", err, out)
	}
	return h
}

// kmsURI is the value of ca.kms for this token.
func (h *softHSM) kmsURI() string {
	return "pkcs11:module-path=" + h.module + ";token=" + h.label
}

// writePIN writes pin to a new 0600 file and returns its path.
func writePIN(t *testing.T, pin string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "hsm-pin")
	if err := os.WriteFile(p, []byte(pin+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// p11Object is one object in the output of pkcs11-tool --list-objects.
type p11Object struct {
	class   string // "Private Key Object; EC", "Public Key Object; RSA 2048 bits", …
	label   string
	id      string // hex
	access  string
	ecPoint string // hex, EC public keys only
}

// objects lists the token's objects, logged in so that private keys show.
func (h *softHSM) objects(t *testing.T) []p11Object {
	t.Helper()
	requireTool(t, "pkcs11-tool")
	out, err := tool(t, "pkcs11-tool", "--module", h.module, "--token-label", h.label, "--login", "--pin", h.pin, "--list-objects")
	if err != nil {
		t.Fatalf("pkcs11-tool --list-objects: %v\n%s", err, out)
	}
	var objs []p11Object
	for _, line := range strings.Split(out, "\n") {
		if line == "" {
			continue
		}
		if !strings.HasPrefix(line, " ") {
			objs = append(objs, p11Object{class: strings.TrimSpace(line)})
			continue
		}
		if len(objs) == 0 {
			continue
		}
		o := &objs[len(objs)-1]
		k, v, ok := strings.Cut(strings.TrimSpace(line), ":")
		if !ok {
			continue
		}
		v = strings.TrimSpace(v)
		switch k {
		case "label":
			o.label = v
		case "ID":
			o.id = v
		case "Access":
			o.access = v
		case "EC_POINT":
			o.ecPoint = v
		}
	}
	return objs
}

// find returns the object of the given kind ("Private Key", "Public Key")
// with the given label.
func find(objs []p11Object, kind, label string) (p11Object, bool) {
	for _, o := range objs {
		if strings.HasPrefix(o.class, kind+" Object") && o.label == label {
			return o, true
		}
	}
	return p11Object{}, false
}

// tokenPublicKeyMatches reports whether the token's public key object o
// holds the public key of cert.
func (h *softHSM) tokenPublicKeyMatches(t *testing.T, o p11Object, cert *x509.Certificate) bool {
	t.Helper()
	switch pub := cert.PublicKey.(type) {
	case *ecdsa.PublicKey:
		// CKA_EC_POINT is a DER OCTET STRING around the uncompressed point.
		b, err := hex.DecodeString(o.ecPoint)
		if err != nil || len(b) < 3 || b[0] != 0x04 {
			t.Fatalf("token key %s: bad EC_POINT %q", o.label, o.ecPoint)
		}
		point, err := pub.Bytes()
		if err != nil {
			t.Fatal(err)
		}
		return bytes.HasSuffix(b, point) && len(b)-len(point) <= 3
	case *rsa.PublicKey:
		// pkcs11-tool writes RSA public keys as DER SubjectPublicKeyInfo
		// (OpenSC 0.23 cannot do so for EC keys on OpenSSL 3).
		der := filepath.Join(t.TempDir(), "pub.der")
		if out, err := tool(t, "pkcs11-tool", "--module", h.module, "--token-label", h.label,
			"--read-object", "--type", "pubkey", "--id", o.id, "-o", der); err != nil {
			t.Fatalf("pkcs11-tool --read-object: %v\n%s", err, out)
		}
		b, err := os.ReadFile(der)
		if err != nil {
			t.Fatal(err)
		}
		k, err := x509.ParsePKIXPublicKey(b)
		if err != nil {
			t.Fatalf("token key %s: %v", o.label, err)
		}
		return pub.Equal(k)
	}
	t.Fatalf("unexpected key type %T", cert.PublicKey)
	return false
}

// hierarchyJSON is the part of <data>/ca/hierarchy.json this test reads.
type hierarchyJSON struct {
	KMS  string `json:"kms"`
	Root struct {
		Key string `json:"key"`
	} `json:"root"`
	Issuing struct {
		Key string `json:"key"`
	} `json:"issuing"`
	OCSP *struct {
		Key string `json:"key"`
	} `json:"ocsp"`
}

func readCertFile(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(b)
	if block == nil {
		t.Fatalf("%s: no PEM", path)
	}
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return c
}

// splitPEMChain returns the leaf and the rest of a PEM chain.
func splitPEMChain(t *testing.T, chain []byte) (leaf *x509.Certificate, leafPEM, restPEM []byte) {
	t.Helper()
	block, rest := pem.Decode(chain)
	if block == nil || block.Type != "CERTIFICATE" {
		t.Fatalf("no PEM certificate in %q", chain)
	}
	leaf, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return leaf, pem.EncodeToMemory(block), rest
}

// newCSR makes a P-256 key and CSR with openssl and returns the CSR path.
func newCSR(t *testing.T, dir, name string) string {
	t.Helper()
	requireTool(t, "openssl")
	csr := filepath.Join(dir, name+".csr")
	if out, err := tool(t, "openssl", "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
		"-keyout", filepath.Join(dir, name+".key"), "-subj", "/CN="+name, "-out", csr); err != nil {
		t.Fatalf("openssl req: %v\n%s", err, out)
	}
	return csr
}

// TestHSM creates the CA in a SoftHSM2 token and issues certificates with
// the token's keys, from the CLI and from `zbca serve`.
func TestHSM(t *testing.T) {
	for _, tc := range []struct {
		name string
		keys string // YAML under ca:
	}{
		{"EC", ""}, // defaults: root EC-P384, issuing EC-P256
		{"RSA", "  root:\n    key_type: RSA-2048\n  issuing:\n    key_type: RSA-2048\n"},
	} {
		t.Run(tc.name, func(t *testing.T) { testHSM(t, tc.keys) })
	}
}

func testHSM(t *testing.T, keysYAML string) {
	requireTool(t, "openssl")
	requireTool(t, "pkcs11-tool")
	h := newSoftHSM(t)
	pinFile := writePIN(t, h.pin)
	in := newInstance(t, fmt.Sprintf("ca:\n  kms: %q\n  pin_file: %s\n%s", h.kmsURI(), pinFile, keysYAML))
	caDir := filepath.Join(in.dir, "ca")

	start := time.Now()
	in.mustRun("", "init")
	t.Logf("zbca init with the token: %s", time.Since(start).Round(time.Millisecond))

	// (a) the manifest names the token's keys.
	b, err := os.ReadFile(filepath.Join(caDir, "hierarchy.json"))
	if err != nil {
		t.Fatal(err)
	}
	var m hierarchyJSON
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("hierarchy.json: %v\n%s", err, b)
	}
	if m.KMS != h.kmsURI() {
		t.Errorf("hierarchy.json kms = %q, want %q", m.KMS, h.kmsURI())
	}
	for name, ref := range map[string]string{"root": m.Root.Key, "issuing-1": m.Issuing.Key} {
		if !strings.HasPrefix(ref, "pkcs11:") || !strings.Contains(ref, "object=zbca-"+name) || !strings.Contains(ref, "id=") {
			t.Errorf("hierarchy.json %s key = %q, want a pkcs11: URI with id= and object=zbca-%s", name, ref, name)
		}
		if strings.Contains(ref, "pin") {
			t.Errorf("hierarchy.json %s key %q carries a PIN", name, ref)
		}
	}
	if m.OCSP == nil || strings.HasPrefix(m.OCSP.Key, "pkcs11:") {
		t.Errorf("hierarchy.json ocsp = %+v, want an encrypted key file", m.OCSP)
	}

	// (b) no CA key file was written.
	for _, f := range []string{"root.key", "issuing-1.key"} {
		if _, err := os.Stat(filepath.Join(caDir, f)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s exists in %s (stat: %v): CA keys must stay in the token", f, caDir, err)
		}
	}

	// (c) the private keys are in the token, not extractable, and their
	// public halves are those of the certificates.
	objs := h.objects(t)
	rootCert := readCertFile(t, filepath.Join(caDir, "root.crt"))
	issCert := readCertFile(t, filepath.Join(caDir, "issuing-1.crt"))
	for _, k := range []struct {
		name, ref string
		cert      *x509.Certificate
	}{{"root", m.Root.Key, rootCert}, {"issuing-1", m.Issuing.Key, issCert}} {
		priv, ok := find(objs, "Private Key", "zbca-"+k.name)
		if !ok {
			t.Fatalf("no private key zbca-%s in the token: %+v", k.name, objs)
		}
		if !strings.Contains(k.ref, "id="+priv.id) {
			t.Errorf("token key zbca-%s has ID %s, hierarchy.json says %q", k.name, priv.id, k.ref)
		}
		if !strings.Contains(priv.access, "never extractable") {
			t.Errorf("token key zbca-%s access %q: want never extractable", k.name, priv.access)
		}
		pub, ok := find(objs, "Public Key", "zbca-"+k.name)
		if !ok {
			t.Fatalf("no public key zbca-%s in the token: %+v", k.name, objs)
		}
		if !h.tokenPublicKeyMatches(t, pub, k.cert) {
			t.Errorf("the token's zbca-%s key is not the key of %s.crt", k.name, k.name)
		}
	}

	// (d) a certificate issued from the CLI chains to the root.
	in.mustRun("s3cret-passw0rd\n", "enterprise", "add", "acme", "--name", "ACME", "--password-stdin")
	work := t.TempDir()
	csr := newCSR(t, work, "acme")
	chainFile := filepath.Join(work, "acme.pem")
	in.mustRun("", "cert", "issue", "--enterprise", "acme", "--csr", csr, "--out", chainFile)
	chain, err := os.ReadFile(chainFile)
	if err != nil {
		t.Fatal(err)
	}
	leaf, leafPEM, restPEM := splitPEMChain(t, chain)
	if err := leaf.CheckSignatureFrom(issCert); err != nil {
		t.Errorf("CLI certificate not signed by the issuing CA: %v", err)
	}
	opensslVerify(t, work, filepath.Join(caDir, "root.crt"), leafPEM, restPEM)

	// (e) zbca serve opens the token, publishes the token's root and
	// issues through the admin API.
	in.start()
	resp, der := get(t, "http://"+in.http+"/pki/root.crt")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /pki/root.crt: %s", resp.Status)
	}
	served, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	if !served.Equal(rootCert) {
		t.Error("/pki/root.crt is not <data>/ca/root.crt")
	}
	if pub, _ := find(objs, "Public Key", "zbca-root"); !h.tokenPublicKeyMatches(t, pub, served) {
		t.Error("the key of /pki/root.crt is not the token's zbca-root key")
	}

	csr2, err := os.ReadFile(newCSR(t, work, "acme2"))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := json.Marshal(map[string]string{"enterprise": "acme", "csr": string(csr2)})
	req, err := http.NewRequest(http.MethodPost, "http://"+in.admin+"/admin/v1/certificates", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+in.adminToken())
	req.Header.Set("Content-Type", "application/json")
	start = time.Now()
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	rb, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusCreated {
		t.Fatalf("POST /admin/v1/certificates: %s\n%s\nserver stderr: %s", res.Status, rb, in.stderr)
	}
	t.Logf("admin API issuance with the token: %s", time.Since(start).Round(time.Millisecond))
	var issued struct {
		PEM      string `json:"pem"`
		ChainPEM string `json:"chain_pem"`
	}
	if err := json.Unmarshal(rb, &issued); err != nil {
		t.Fatalf("admin API answer: %v\n%s", err, rb)
	}
	leaf2, leaf2PEM, rest2PEM := splitPEMChain(t, []byte(issued.ChainPEM))
	roots := x509.NewCertPool()
	roots.AddCert(served)
	inter := x509.NewCertPool()
	inter.AppendCertsFromPEM(rest2PEM)
	if _, err := leaf2.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("admin API certificate does not verify against /pki/root.crt: %v", err)
	}
	if !strings.Contains(issued.PEM, strings.TrimSpace(string(leaf2PEM))) {
		t.Error(`admin API "pem" is not the first certificate of "chain_pem"`)
	}
	opensslVerify(t, work, filepath.Join(caDir, "root.crt"), leaf2PEM, rest2PEM)
}

// opensslVerify checks a client certificate with openssl against root.
func opensslVerify(t *testing.T, dir, root string, leafPEM, untrustedPEM []byte) {
	t.Helper()
	leaf := filepath.Join(dir, "verify-leaf.pem")
	untrusted := filepath.Join(dir, "verify-untrusted.pem")
	if err := os.WriteFile(leaf, leafPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(untrusted, untrustedPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := tool(t, "openssl", "verify", "-purpose", "sslclient", "-CAfile", root, "-untrusted", untrusted, leaf)
	if err != nil || !strings.Contains(out, ": OK") {
		t.Errorf("openssl verify: %v\n%s", err, out)
	}
}

// TestHSMWrongPIN: a wrong PIN makes init fail, saying so, and leaves no
// CA behind, neither in the data directory nor in the token.
func TestHSMWrongPIN(t *testing.T) {
	requireTool(t, "pkcs11-tool")
	h := newSoftHSM(t)
	pinFile := writePIN(t, "11112222")
	in := newInstance(t, fmt.Sprintf("ca:\n  kms: %q\n  pin_file: %s\n", h.kmsURI(), pinFile))
	out, errOut, err := in.run("", "init")
	if err == nil {
		t.Fatalf("zbca init with a wrong PIN succeeded\nstdout: %s", out)
	}
	t.Logf("zbca init with a wrong PIN: %v\n%s", err, errOut)
	if !strings.Contains(errOut, "PIN") {
		t.Errorf("the error does not mention the PIN:\n%s", errOut)
	}
	if strings.Contains(errOut, "11112222") {
		t.Errorf("the error shows the PIN:\n%s", errOut)
	}
	caDir := filepath.Join(in.dir, "ca")
	for _, f := range []string{"hierarchy.json", "root.crt", "root.key", "issuing-1.crt", "issuing-1.key"} {
		if _, err := os.Stat(filepath.Join(caDir, f)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s exists after a failed init (stat: %v)", f, err)
		}
	}
	if objs := h.objects(t); len(objs) != 0 {
		t.Errorf("the token holds objects after a failed init: %+v", objs)
	}

	// The operator corrects the PIN and runs init again on the same
	// data directory.
	if err := os.WriteFile(pinFile, []byte(h.pin+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	in.mustRun("", "init")
	if _, err := os.Stat(filepath.Join(caDir, "hierarchy.json")); err != nil {
		t.Errorf("init after correcting the PIN: %v", err)
	}
}
