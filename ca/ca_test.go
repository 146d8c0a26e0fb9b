package ca

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/zbca/zbca/config"
	"github.com/zbca/zbca/internal/password"
	"github.com/zbca/zbca/internal/zerr"
	"github.com/zbca/zbca/store"
)

type fixture struct {
	dir   string
	opts  Options
	store *store.SQL
	a     *Authority
}

// newFixture initialises a CA at the time now returns.
func newFixture(t testing.TB, now func() time.Time) *fixture {
	t.Helper()
	return newFixtureConfig(t, now, nil)
}

// newFixtureConfig is newFixture with the default configuration changed by
// mod first.
func newFixtureConfig(t testing.TB, now func() time.Time, mod func(*config.Config)) *fixture {
	t.Helper()
	dir := t.TempDir()
	s, err := store.Open(context.Background(), store.Options{Path: filepath.Join(dir, "zbca.db"), Now: now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	c := config.Default()
	c.DataDir = dir
	if mod != nil {
		mod(&c)
	}
	c.Resolve()
	opts := Options{Dir: filepath.Join(dir, "ca"), Config: c.CA, PublicURL: "http://pki.example:8080", TLSHosts: c.HTTPS.Hosts,
		Store: s, Now: now, Node: "test"}
	a, err := Init(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	return &fixture{dir: dir, opts: opts, store: s, a: a}
}

func (f *fixture) addEnterprise(t testing.TB, username, status string) {
	t.Helper()
	h, _ := password.Hash("pw", password.Params{MemoryKiB: 64, Time: 1, Threads: 1})
	e := &store.Enterprise{Username: username, Name: "某某科技有限公司", Code: "91350100M000100Y43", PasswordHash: h, Status: status}
	if err := f.store.AddEnterprise(context.Background(), e, store.AuditEvent{Actor: "test", Action: "enterprise.add", Subject: username}); err != nil {
		t.Fatal(err)
	}
}

func makeCSR(t testing.TB, key crypto.Signer) *x509.CertificateRequest {
	t.Helper()
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "ignored"}}, key)
	if err != nil {
		t.Fatal(err)
	}
	csr, err := ParseCSR(der)
	if err != nil {
		t.Fatal(err)
	}
	return csr
}

func p256(t testing.TB) *ecdsa.PrivateKey {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestHierarchy(t *testing.T) {
	f := newFixture(t, time.Now)
	root, iss := f.a.Root(), f.a.Issuing()
	if k, ok := root.PublicKey.(*ecdsa.PublicKey); !ok || k.Curve != elliptic.P384() {
		t.Errorf("root key %T, want ECDSA P-384", root.PublicKey)
	}
	if k, ok := iss.PublicKey.(*ecdsa.PublicKey); !ok || k.Curve != elliptic.P256() {
		t.Errorf("issuing key %T, want ECDSA P-256", iss.PublicKey)
	}
	if got := root.NotAfter.Sub(root.NotBefore); got < 20*365*24*time.Hour {
		t.Errorf("root validity %s, want 20 years", got)
	}
	if !root.IsCA || !iss.IsCA || !iss.MaxPathLenZero {
		t.Error("CA flags wrong")
	}
	if err := iss.CheckSignatureFrom(root); err != nil {
		t.Error(err)
	}
	ocsp := f.a.OCSPSigner()
	if ocsp == nil || len(ocsp.ExtKeyUsage) != 1 || ocsp.ExtKeyUsage[0] != x509.ExtKeyUsageOCSPSigning {
		t.Fatalf("OCSP signer %+v", ocsp)
	}
	noCheck := false
	for _, e := range ocsp.Extensions {
		if e.Id.Equal(oidOCSPNoCheck) {
			noCheck = true
		}
	}
	if !noCheck {
		t.Error("OCSP signer lacks id-pkix-ocsp-nocheck")
	}
	tc, err := f.a.TLSCertificate()
	if err != nil {
		t.Fatal(err)
	}
	if err := tc.Leaf.VerifyHostname("localhost"); err != nil {
		t.Error(err)
	}
	if err := tc.Leaf.VerifyHostname("127.0.0.1"); err != nil {
		t.Error(err)
	}
	// Keys on disk are encrypted PKCS#8 and private to the owner.
	for _, name := range []string{"root.key", "issuing-1.key"} {
		p := filepath.Join(f.opts.Dir, name)
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s mode %o", name, fi.Mode().Perm())
		}
		b, _ := os.ReadFile(p)
		if blk, _ := pem.Decode(b); blk == nil || blk.Type != "ENCRYPTED PRIVATE KEY" {
			t.Errorf("%s is not an encrypted PKCS#8 PEM", name)
		}
	}
	fi, _ := os.Stat(f.opts.Config.PassphraseFile)
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("passphrase file mode %o", fi.Mode().Perm())
	}
	// The service certificates went through the journal.
	list, err := f.store.ListCertificates(context.Background(), store.CertFilter{})
	if err != nil || len(list) != 2 {
		t.Errorf("stored service certificates: %d, %v", len(list), err)
	}
}

func TestInitRefusesExisting(t *testing.T) {
	f := newFixture(t, time.Now)
	before, _ := os.ReadFile(filepath.Join(f.opts.Dir, "root.crt"))
	_, err := Init(context.Background(), f.opts)
	if !errors.Is(err, zerr.Conflict) {
		t.Fatalf("second init: %v, want Conflict", err)
	}
	after, _ := os.ReadFile(filepath.Join(f.opts.Dir, "root.crt"))
	if string(before) != string(after) {
		t.Fatal("second init changed the root")
	}
	// Reopening gives the same hierarchy and issues.
	a, err := Open(context.Background(), f.opts)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if !a.Root().Equal(f.a.Root()) || !a.OCSPSigner().Equal(f.a.OCSPSigner()) {
		t.Error("reopened hierarchy differs")
	}
}

func TestOpenWrongPassphrase(t *testing.T) {
	f := newFixture(t, time.Now)
	if err := os.WriteFile(f.opts.Config.PassphraseFile, []byte("wrong\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(context.Background(), f.opts); err == nil || !strings.Contains(err.Error(), "passphrase") {
		t.Fatalf("wrong passphrase: %v", err)
	}
	os.Chmod(f.opts.Config.PassphraseFile, 0o644)
	if _, err := Open(context.Background(), f.opts); err == nil || !strings.Contains(err.Error(), "0600") {
		t.Fatalf("world-readable passphrase: %v", err)
	}
}

func TestIssueProfile(t *testing.T) {
	f := newFixture(t, time.Now)
	f.addEnterprise(t, "acme", store.StatusActive)
	iss, err := f.a.Issue(context.Background(), IssueRequest{CSR: makeCSR(t, p256(t)), Username: "acme", Actor: "test"})
	if err != nil {
		t.Fatal(err)
	}
	c := iss.Certificate
	if c.Subject.CommonName != "acme" || len(c.Subject.Organization) != 1 || c.Subject.Organization[0] != "某某科技有限公司" || c.Subject.SerialNumber != "91350100M000100Y43" {
		t.Errorf("subject %v", c.Subject)
	}
	if len(c.URIs) != 1 || c.URIs[0].String() != "urn:zbca:enterprise:acme" {
		t.Errorf("URIs %v", c.URIs)
	}
	if !c.NotAfter.Equal(c.NotBefore.AddDate(3, 0, 0)) {
		t.Errorf("validity %s – %s is not three calendar years", c.NotBefore, c.NotAfter)
	}
	if d := time.Since(c.NotBefore); d < 4*time.Minute || d > 6*time.Minute {
		t.Errorf("NotBefore backdated by %s, want 5m", d)
	}
	if c.KeyUsage != x509.KeyUsageDigitalSignature || len(c.ExtKeyUsage) != 1 || c.ExtKeyUsage[0] != x509.ExtKeyUsageClientAuth {
		t.Errorf("usages %v %v", c.KeyUsage, c.ExtKeyUsage)
	}
	if c.IsCA || !c.BasicConstraintsValid {
		t.Error("basic constraints")
	}
	if len(c.SubjectKeyId) == 0 || string(c.AuthorityKeyId) != string(f.a.Issuing().SubjectKeyId) {
		t.Error("SKI/AKI")
	}
	if len(c.CRLDistributionPoints) != 1 || c.CRLDistributionPoints[0] != "http://pki.example:8080/crl/issuing-1.crl" ||
		len(c.OCSPServer) != 1 || c.OCSPServer[0] != "http://pki.example:8080/ocsp" ||
		len(c.IssuingCertificateURL) != 1 || c.IssuingCertificateURL[0] != "http://pki.example:8080/pki/issuing-1.crt" {
		t.Errorf("URLs %v %v %v", c.CRLDistributionPoints, c.OCSPServer, c.IssuingCertificateURL)
	}
	if c.SerialNumber.BitLen() <= 64 {
		t.Errorf("serial has %d bits", c.SerialNumber.BitLen())
	}
	pool := x509.NewCertPool()
	pool.AddCert(f.a.Root())
	inter := x509.NewCertPool()
	inter.AddCert(f.a.Issuing())
	if _, err := c.Verify(x509.VerifyOptions{Roots: pool, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("chain: %v", err)
	}
	rec, err := f.store.GetCertificate(context.Background(), iss.Record.Serial)
	if err != nil || string(rec.DER) != string(c.Raw) || rec.Username != "acme" {
		t.Fatalf("stored record: %v", err)
	}
	if j, _ := f.store.GetJournal(context.Background(), rec.Serial); j.State != store.JournalIssued {
		t.Errorf("journal %q", j.State)
	}
	if _, _, err := f.store.VerifyAudit(context.Background()); err != nil {
		t.Error(err)
	}
}

// TestLeapDay: a certificate issued on 29 February ends exactly three
// calendar years after its NotBefore.
func TestLeapDay(t *testing.T) {
	now := time.Date(2028, 2, 29, 12, 0, 0, 0, time.UTC)
	f := newFixture(t, func() time.Time { return now })
	f.addEnterprise(t, "acme", store.StatusActive)
	iss, err := f.a.Issue(context.Background(), IssueRequest{CSR: makeCSR(t, p256(t)), Username: "acme"})
	if err != nil {
		t.Fatal(err)
	}
	c := iss.Certificate
	wantNB := time.Date(2028, 2, 29, 11, 55, 0, 0, time.UTC)
	wantNA := time.Date(2031, 3, 1, 11, 55, 0, 0, time.UTC) // AddDate normalises 2031-02-29
	if !c.NotBefore.Equal(wantNB) || !c.NotAfter.Equal(wantNA) || !c.NotAfter.Equal(c.NotBefore.AddDate(3, 0, 0)) {
		t.Errorf("validity %s – %s, want %s – %s", c.NotBefore, c.NotAfter, wantNB, wantNA)
	}
	if c.NotAfter.Sub(c.NotBefore) == 3*365*24*time.Hour {
		t.Error("validity computed as 3*365 days")
	}
}

func TestIssueRefusals(t *testing.T) {
	f := newFixture(t, time.Now)
	f.addEnterprise(t, "acme", store.StatusActive)
	f.addEnterprise(t, "gone", store.StatusDisabled)
	good := makeCSR(t, p256(t))
	rsa1024, _ := rsa.GenerateKey(rand.Reader, 1024)
	p224, _ := ecdsa.GenerateKey(elliptic.P224(), rand.Reader)
	_, edKey, _ := ed25519.GenerateKey(rand.Reader)
	rawCSR := func(key crypto.Signer) *x509.CertificateRequest {
		der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
		if err != nil {
			t.Fatal(err)
		}
		c, _ := x509.ParseCertificateRequest(der)
		return c
	}
	broken := rawCSR(p256(t))
	broken.Signature = append([]byte(nil), broken.Signature...)
	broken.Signature[len(broken.Signature)-3] ^= 0xff

	cases := []struct {
		name string
		req  IssueRequest
		kind *zerr.Kind
	}{
		{"unknown enterprise", IssueRequest{CSR: good, Username: "nobody"}, zerr.NotFound},
		{"disabled enterprise", IssueRequest{CSR: good, Username: "gone"}, zerr.Disabled},
		{"rsa-1024", IssueRequest{CSR: rawCSR(rsa1024), Username: "acme"}, zerr.BadCSR},
		{"p-224", IssueRequest{CSR: rawCSR(p224), Username: "acme"}, zerr.BadCSR},
		{"ed25519", IssueRequest{CSR: rawCSR(edKey), Username: "acme"}, zerr.BadCSR},
		{"broken signature", IssueRequest{CSR: broken, Username: "acme"}, zerr.BadCSR},
		{"no csr", IssueRequest{Username: "acme"}, zerr.BadCSR},
	}
	ctx := context.Background()
	_, auditBefore, _ := f.store.VerifyAudit(ctx)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := f.a.Issue(ctx, tc.req)
			if !errors.Is(err, tc.kind) {
				t.Fatalf("got %v, want kind %v", err, tc.kind)
			}
		})
	}
	_, auditAfter, _ := f.store.VerifyAudit(ctx)
	counts, _ := f.store.JournalCounts(ctx)
	if auditAfter != auditBefore || counts[store.JournalPending]+counts[store.JournalFailed] != 0 || counts[store.JournalIssued] != 2 {
		t.Errorf("refusals changed the database: journal %v", counts)
	}
}

func TestIssuerTooShort(t *testing.T) {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	now := start
	f := newFixture(t, func() time.Time { return now })
	f.addEnterprise(t, "acme", store.StatusActive)
	// Eight years on, the ten-year issuing CA cannot cover three years.
	now = start.AddDate(8, 0, 0)
	if w := f.a.ExpiryWarning(); !strings.Contains(w, "rolled over") {
		t.Errorf("warning %q", w)
	}
	_, err := f.a.Issue(context.Background(), IssueRequest{CSR: makeCSR(t, p256(t)), Username: "acme"})
	if !errors.Is(err, zerr.Policy) {
		t.Fatalf("got %v, want Policy", err)
	}
	now = start.AddDate(6, 8, 0)
	if w := f.a.ExpiryWarning(); !strings.Contains(w, "plan its rollover") {
		t.Errorf("warning %q", w)
	}
}

func TestCustomTemplate(t *testing.T) {
	f := newFixture(t, time.Now)
	f.addEnterprise(t, "acme", store.StatusActive)
	dir := t.TempDir()
	write := func(body string) string {
		p := filepath.Join(dir, "t.tpl")
		os.WriteFile(p, []byte(body), 0o644)
		return p
	}
	opts := f.opts
	opts.Config.Client.Template = write(strings.Replace(DefaultClientTemplate, `"extKeyUsage": ["clientAuth"]`, `"extKeyUsage": ["clientAuth", "emailProtection"]`, 1))
	a, err := Open(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	iss, err := a.Issue(context.Background(), IssueRequest{CSR: makeCSR(t, p256(t)), Username: "acme"})
	a.Close()
	if err != nil || len(iss.Certificate.ExtKeyUsage) != 2 {
		t.Fatalf("custom template: %v", err)
	}
	for name, body := range map[string]string{
		"ca":        strings.Replace(DefaultClientTemplate, `"isCA": false`, `"isCA": true`, 1),
		"no-client": strings.Replace(DefaultClientTemplate, `["clientAuth"]`, `["serverAuth"]`, 1),
		"syntax":    "{{ .Enterprise.Username ",
		"json":      "{ not json",
		"certsign":  strings.Replace(DefaultClientTemplate, `["digitalSignature"]`, `["digitalSignature","certSign"]`, 1),
	} {
		opts.Config.Client.Template = write(body)
		if a, err := Open(context.Background(), opts); err == nil {
			a.Close()
			t.Errorf("template %s accepted", name)
		}
	}
}

func TestParseCSR(t *testing.T) {
	key := p256(t)
	der, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
	pemCSR := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
	if _, err := ParseCSR(pemCSR); err != nil {
		t.Errorf("PEM: %v", err)
	}
	if _, err := ParseCSR(der); err != nil {
		t.Errorf("DER: %v", err)
	}
	bad := map[string][]byte{
		"empty":     nil,
		"garbage":   []byte("hello"),
		"truncated": der[:len(der)/2],
		"cert pem":  pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		"two":       append(append([]byte{}, pemCSR...), pemCSR...),
		"huge":      make([]byte, MaxCSRSize+1),
		"trailing":  append(append([]byte{}, der...), 0),
	}
	for name, b := range bad {
		if _, err := ParseCSR(b); !errors.Is(err, zerr.BadCSR) {
			t.Errorf("%s: got %v, want BadCSR", name, err)
		}
	}
}

func TestNormalizeSerial(t *testing.T) {
	for in, want := range map[string]string{"0A:bC": "abc", "00ff": "ff", "1": "1"} {
		if got, err := NormalizeSerial(in); err != nil || got != want {
			t.Errorf("NormalizeSerial(%q) = %q, %v", in, got, err)
		}
	}
	for _, in := range []string{"", "xyz", "0", "-1", strings.Repeat("f", 41)} {
		if _, err := NormalizeSerial(in); err == nil {
			t.Errorf("NormalizeSerial(%q) accepted", in)
		}
	}
}

func FuzzParseCSR(f *testing.F) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
	f.Add(der)
	f.Add(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}))
	f.Add([]byte("-----BEGIN CERTIFICATE REQUEST-----\n-----END CERTIFICATE REQUEST-----\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		csr, err := ParseCSR(b)
		if err != nil {
			if !errors.Is(err, zerr.BadCSR) {
				t.Fatalf("error of the wrong kind: %v", err)
			}
			return
		}
		if csr.CheckSignature() != nil || CheckKey(csr.PublicKey) != nil {
			t.Fatal("accepted a CSR that fails its checks")
		}
	})
}

func TestServiceRenewal(t *testing.T) {
	start := time.Now()
	now := start
	f := newFixture(t, func() time.Time { return now })
	oldOCSP := f.a.OCSPSigner()
	oldTLS, _ := f.a.TLSCertificate()
	if err := f.a.EnsureServiceCertificates(context.Background()); err != nil {
		t.Fatal(err)
	}
	if !f.a.OCSPSigner().Equal(oldOCSP) {
		t.Fatal("renewed an OCSP signer that was not due")
	}
	now = start.Add(21 * 24 * time.Hour) // past two thirds of 30 days
	if err := f.a.EnsureServiceCertificates(context.Background()); err != nil {
		t.Fatal(err)
	}
	if f.a.OCSPSigner().Equal(oldOCSP) {
		t.Fatal("OCSP signer not renewed")
	}
	if tc, _ := f.a.TLSCertificate(); !tc.Leaf.Equal(oldTLS.Leaf) {
		t.Error("TLS certificate renewed before it was due")
	}
	// The renewal survives a reopen.
	a, err := Open(context.Background(), f.opts)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if !a.OCSPSigner().Equal(f.a.OCSPSigner()) {
		t.Error("reopened CA has the old OCSP signer")
	}
}

func TestIssueBulk(t *testing.T) {
	f := newFixture(t, time.Now)
	f.addEnterprise(t, "acme", store.StatusActive)
	e, _ := f.store.GetEnterprise(context.Background(), "acme")
	var items []BulkItem
	for range 50 {
		items = append(items, BulkItem{Enterprise: e, PublicKey: p256(t).Public()})
	}
	recs, err := f.a.IssueBulk(context.Background(), f.store, items, "test")
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(f.a.Root())
	inter := x509.NewCertPool()
	inter.AddCert(f.a.Issuing())
	seen := map[string]bool{}
	for _, r := range recs {
		got, err := f.store.GetCertificate(context.Background(), r.Serial)
		if err != nil {
			t.Fatal(err)
		}
		c, _ := x509.ParseCertificate(got.DER)
		if _, err := c.Verify(x509.VerifyOptions{Roots: pool, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
			t.Fatal(err)
		}
		if c.Subject.CommonName != "acme" || !c.NotAfter.Equal(c.NotBefore.AddDate(3, 0, 0)) || seen[r.Serial] {
			t.Fatalf("bulk certificate %v", c.Subject)
		}
		seen[r.Serial] = true
	}
	counts, _ := f.store.JournalCounts(context.Background())
	if counts[store.JournalIssued] != 52 || counts[store.JournalPending] != 0 {
		t.Errorf("journal %v", counts)
	}
	// A refused item refuses the whole batch, before any serial is drawn.
	bad := append(items[:1:1], BulkItem{Enterprise: e, PublicKey: nil})
	if _, err := f.a.IssueBulk(context.Background(), f.store, bad, "test"); !errors.Is(err, zerr.BadCSR) {
		t.Errorf("bad key in batch: %v", err)
	}
	if c2, _ := f.store.JournalCounts(context.Background()); c2[store.JournalIssued] != 52 || c2[store.JournalPending] != 0 || c2[store.JournalFailed] != 0 {
		t.Errorf("refused batch changed the journal: %v", c2)
	}
}

// outage fails StoreCertificate, and FailSerial the first failFails times:
// a database that went away mid-issuance and came back.
type outage struct {
	*store.SQL
	failFails atomic.Int32
	tries     atomic.Int32
}

func (o *outage) StoreCertificate(context.Context, *store.Certificate, store.AuditEvent, ...store.Guard) error {
	return errors.New("connection refused")
}

func (o *outage) FailSerial(ctx context.Context, serial, reason string, ev store.AuditEvent, guards ...store.Guard) error {
	o.tries.Add(1)
	if o.failFails.Add(-1) >= 0 {
		return errors.New("connection refused")
	}
	return o.SQL.FailSerial(ctx, serial, reason, ev, guards...)
}

// TestFailSerialRetried: when marking a serial failed fails too (the same
// outage), it is retried in the background until it lands, so the serial
// does not stay pending until the next start.
func TestFailSerialRetried(t *testing.T) {
	f := newFixture(t, time.Now)
	f.addEnterprise(t, "acme", store.StatusActive)
	o := &outage{SQL: f.store}
	o.failFails.Store(2)
	opts := f.opts
	opts.Store = o
	a, err := Open(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	_, err = a.Issue(context.Background(), IssueRequest{CSR: makeCSR(t, p256(t)), Username: "acme", Actor: "test"})
	if err == nil {
		t.Fatal("issued through a store that cannot store")
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		counts, err := f.store.JournalCounts(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if counts[store.JournalFailed] == 1 && counts[store.JournalPending] == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("journal %v after 10 s (%d tries)", counts, o.tries.Load())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if n := o.tries.Load(); n != 3 {
		t.Errorf("%d FailSerial calls, want 3 (two failures, then success)", n)
	}
}
