package zbcert

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestDetectLang(t *testing.T) {
	for _, tc := range []struct {
		env  map[string]string
		want Lang
	}{
		{map[string]string{"LANG": "zh_CN.UTF-8"}, Zh},
		{map[string]string{"LANG": "en_US.UTF-8"}, En},
		{map[string]string{"LC_ALL": "en_GB", "LANG": "zh_CN"}, En},
		{map[string]string{"LC_MESSAGES": "zh_TW", "LANG": "en_US"}, Zh},
		{map[string]string{"LANG": "C"}, En},
	} {
		if got := DetectLang(func(k string) string { return tc.env[k] }); got != tc.want {
			t.Errorf("%v: %s, want %s", tc.env, got, tc.want)
		}
	}
	if l, err := ParseLang("zh_CN.UTF-8"); err != nil || l != Zh {
		t.Errorf("ParseLang zh_CN: %v %v", l, err)
	}
	if _, err := ParseLang("fr"); err == nil {
		t.Error("ParseLang fr accepted")
	}
}

func TestMessagesComplete(t *testing.T) {
	for k, m := range messages {
		if m[0] == "" || m[1] == "" || strings.Count(m[0], "%") != strings.Count(m[1], "%") {
			t.Errorf("message %q: %q / %q", k, m[0], m[1])
		}
	}
	for _, id := range []string{CheckDNS, CheckProxy, CheckPort, CheckTLS, CheckServer, CheckRequested, CheckAccepted, CheckMultiple,
		CheckValidity, CheckRevoked, CheckUser, CheckChain, CheckRoot, CheckClock, CheckLogin} {
		if _, ok := messages["title."+id]; !ok {
			t.Errorf("no title for check %s", id)
		}
	}
	if got := En.T("no such key %d", 3); !strings.Contains(got, "no such key") {
		t.Errorf("missing key: %q", got)
	}
}

func TestNormalizeFingerprint(t *testing.T) {
	want := strings.TrimSuffix(strings.Repeat("AB:", 32), ":")
	for _, in := range []string{strings.Repeat("ab", 32), want, strings.ToLower(want), "SHA256=" + strings.Repeat("AB", 32), strings.Repeat("ab ", 32)} {
		if got, err := NormalizeFingerprint(in); err != nil || got != want {
			t.Errorf("%q: %q %v", in, got, err)
		}
	}
	for _, bad := range []string{"", "abc", strings.Repeat("zz", 32), strings.Repeat("ab", 31)} {
		if _, err := NormalizeFingerprint(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestConfigDir(t *testing.T) {
	env := map[string]string{"ZBCERT_HOME": "/z"}
	get := func(k string) string { return env[k] }
	if d, _ := ConfigDir("/flag", get); d != "/flag" {
		t.Errorf("flag: %s", d)
	}
	if d, _ := ConfigDir("", get); d != "/z" {
		t.Errorf("env: %s", d)
	}
	if d, err := ConfigDir("", func(string) string { return "" }); err == nil && filepath.Base(d) != "zbcert" {
		t.Errorf("default: %s", d)
	}
}

func TestConfigRoundTrip(t *testing.T) {
	h := Home{Dir: t.TempDir()}
	if _, _, err := h.LoadConfig(); err != ErrNoSetup {
		t.Fatalf("empty dir: %v", err)
	}
	ca := newTestCA(t, "Test Root")
	if err := h.SaveConfig(&Config{Server: "https://ca.test:8443", RootSHA256: Fingerprint(ca.cert)}, ca.cert, pemCert(ca.cert.Raw)); err != nil {
		t.Fatal(err)
	}
	c, root, err := h.LoadConfig()
	if err != nil || c.Server != "https://ca.test:8443" || !root.Equal(ca.cert) {
		t.Fatalf("%+v %v", c, err)
	}
	// A root replaced behind zbcert's back is refused.
	other := newTestCA(t, "Other Root")
	os.WriteFile(filepath.Join(h.Dir, "root.pem"), pemCert(other.cert.Raw), 0o644)
	if _, _, err := h.LoadConfig(); err == nil || !strings.Contains(err.Error(), "fingerprint") {
		t.Errorf("swapped root: %v", err)
	}
	os.WriteFile(filepath.Join(h.Dir, "config.json"), []byte(`{"server":"x","root_sha256":"y","extra":1}`), 0o600)
	if _, _, err := h.LoadConfig(); err == nil {
		t.Error("unknown key accepted")
	}
}

func TestCheckServerURL(t *testing.T) {
	if u, err := CheckServerURL("https://ca.test:8443/portal"); err != nil || u != "https://ca.test:8443" {
		t.Errorf("%q %v", u, err)
	}
	for _, bad := range []string{"http://ca.test", "ca.test", ""} {
		if _, err := CheckServerURL(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestNoProxyBypass(t *testing.T) {
	for _, tc := range []struct {
		host, no string
		want     bool
	}{
		{"zb.example.cn", "", false},
		{"zb.example.cn", "*", true},
		{"zb.example.cn", "example.cn", true},
		{"zb.example.cn", ".example.cn", true},
		{"zb.example.cn", "other.cn, zb.example.cn:443", true},
		{"zb.example.cn", "ample.cn", false},
	} {
		if got := bypassed(tc.host, tc.no); got != tc.want {
			t.Errorf("bypassed(%q, %q) = %v", tc.host, tc.no, got)
		}
	}
}

func TestKeystoreAndP12(t *testing.T) {
	h := Home{Dir: t.TempDir()}
	ca := newTestCA(t, "Test Root")
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	leaf := ca.issue(t, "acme", key, time.Now().Add(-time.Hour), time.Now().AddDate(3, 0, 0))
	if _, err := h.SaveCert(newKeyT(t), []*x509.Certificate{leaf, ca.cert}); err == nil {
		t.Error("a certificate saved with another key")
	}
	e, err := h.SaveCert(key, []*x509.Certificate{leaf, ca.cert})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(filepath.Join(e.Dir, "key.pem"))
	if !strings.Contains(string(b), "ENCRYPTED PRIVATE KEY") {
		t.Errorf("key not encrypted:\n%s", b)
	}
	if fi, _ := os.Stat(filepath.Join(h.Dir, "secrets", "key-passphrase")); fi == nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("passphrase file: %v", fi)
	}
	k2, err := h.Key(e)
	if err != nil || !samePublicKey(k2.Public(), key.Public()) {
		t.Fatalf("key round trip: %v", err)
	}
	list, err := h.Certs()
	if err != nil || len(list) != 1 || list[0].User() != "acme" {
		t.Fatalf("certs: %v %v", list, err)
	}
	if _, err := h.FindCert(strings.ToUpper(e.Serial)); err != nil {
		t.Errorf("FindCert upper-case: %v", err)
	}
	for _, p := range []P12Profile{P12Modern, P12Legacy} {
		f := filepath.Join(t.TempDir(), "x.p12")
		if err := h.Export(e, f, "pw", p); err != nil {
			t.Fatal(err)
		}
		h2 := Home{Dir: t.TempDir()}
		if _, err := h2.Import(f, "wrong"); err == nil {
			t.Error("import with a wrong password")
		}
		e2, err := h2.Import(f, "pw")
		if err != nil || e2.Serial != e.Serial || len(e2.Chain) != 2 {
			t.Fatalf("%s import: %v %+v", p, err, e2)
		}
	}
	if p, _ := ParseP12Profile("", "darwin"); p != P12Legacy {
		t.Errorf("darwin default %s", p)
	}
	if p, _ := ParseP12Profile("", "windows"); p != P12Modern {
		t.Errorf("windows default %s", p)
	}
	if _, err := ParseP12Profile("rc2", "linux"); err == nil {
		t.Error("profile rc2 accepted")
	}
}

func TestParseTrustStores(t *testing.T) {
	if s, err := ParseTrustStores("nss, java"); err != nil || s.System || !s.NSS || !s.Java {
		t.Errorf("%+v %v", s, err)
	}
	if s, _ := ParseTrustStores("all"); !s.System || !s.NSS || !s.Java {
		t.Errorf("all: %+v", s)
	}
	if _, err := ParseTrustStores("keychain"); err == nil {
		t.Error("keychain accepted")
	}
}

// testCA is an in-process CA with its own clock: certificates are made
// with any validity.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	ocsp string // OCSP URL written into leaves
}

func newKeyT(t *testing.T) *ecdsa.PrivateKey {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func newTestCA(t *testing.T, cn string) *testCA {
	t.Helper()
	k := newKeyT(t)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn, Organization: []string{"test"}},
		NotBefore: time.Now().AddDate(-10, 0, 0), NotAfter: time.Now().AddDate(10, 0, 0), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	return &testCA{cert: c, key: k}
}

func (ca *testCA) issue(t *testing.T, cn string, key *ecdsa.PrivateKey, nb, na time.Time) *x509.Certificate {
	t.Helper()
	serial, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 64))
	tmpl := &x509.Certificate{SerialNumber: serial.Add(serial, big.NewInt(1)), Subject: pkix.Name{CommonName: cn, Organization: []string{cn + " Ltd"}},
		NotBefore: nb, NotAfter: na, KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	if ca.ocsp != "" {
		tmpl.OCSPServer = []string{ca.ocsp}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	return c
}

// TestPassphraseConcurrentFirstUse: zbcert processes starting together
// all get the one passphrase, never a half-written file, and no temporary
// file stays behind.
func TestPassphraseConcurrentFirstUse(t *testing.T) {
	for round := range 20 {
		h := Home{Dir: t.TempDir()}
		var wg sync.WaitGroup
		got := make([]string, 8)
		errs := make([]error, 8)
		for i := range got {
			wg.Add(1)
			go func() {
				defer wg.Done()
				p, err := h.passphrase()
				got[i], errs[i] = string(p), err
			}()
		}
		wg.Wait()
		for i := range got {
			if errs[i] != nil || got[i] != got[0] || len(got[0]) < 32 {
				t.Fatalf("round %d caller %d: %q, %v (first %q)", round, i, got[i], errs[i], got[0])
			}
		}
		left, _ := filepath.Glob(filepath.Join(h.Dir, "secrets", ".tmp-*"))
		if len(left) > 0 {
			t.Fatalf("temporary files left: %v", left)
		}
	}
}

// TestCheckChain: chain.pem is kept only when every certificate in it is a
// CA chaining to the confirmed root.
func TestCheckChain(t *testing.T) {
	root := newTestCA(t, "Test Root")
	other := newTestCA(t, "Intercepting Proxy CA")
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	leaf := root.issue(t, "acme", key, time.Now().Add(-time.Hour), time.Now().AddDate(1, 0, 0))
	for _, tc := range []struct {
		name  string
		chain []*x509.Certificate
		ok    bool
	}{
		{"the root", []*x509.Certificate{root.cert}, true},
		{"another CA", []*x509.Certificate{other.cert}, false},
		{"the root and another CA", []*x509.Certificate{root.cert, other.cert}, false},
		{"a leaf", []*x509.Certificate{leaf, root.cert}, false},
		{"empty", nil, false},
	} {
		if err := checkChain(tc.chain, root.cert); (err == nil) != tc.ok {
			t.Errorf("%s: %v, want ok=%v", tc.name, err, tc.ok)
		}
	}
}
