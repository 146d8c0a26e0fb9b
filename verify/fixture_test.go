package verify

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/zbca/zbca/ca"
	"github.com/zbca/zbca/config"
	"github.com/zbca/zbca/revocation"
	"github.com/zbca/zbca/revocation/revtest"
	"github.com/zbca/zbca/store"
)

// clock is the fake clock shared by the store, the CA and the service.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time  { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Set(t time.Time) { c.mu.Lock(); defer c.mu.Unlock(); c.t = t }

// t0 is "now" in the tests; the CA was created five years before.
var t0 = time.Date(2030, 6, 15, 12, 0, 0, 0, time.UTC)

type fixture struct {
	st    *store.SQL
	ca    *ca.Authority
	clock *clock
	svc   *Service
	key   string // an active API key
	feed  *revocation.Feed
	reads *countingStore // with withFeed
}

// withFeed makes the service read statuses from the node's status feed
// (memory), as serve does, and counts the store reads it still makes. The
// stack runs on the real clock (the certificates, dated around t0 in
// 2030, are far from past their grace).
func (f *fixture) withFeed(t testing.TB) {
	t.Helper()
	stack := revtest.Start(t, f.st, f.ca)
	f.feed = stack.Feed
	f.svc.current = stack.Feed
	f.reads = &countingStore{Store: f.svc.store}
	f.svc.store = f.reads
}

// countingStore counts the status reads that reach the store.
type countingStore struct {
	Store
	n atomic.Int64
}

func (c *countingStore) CertRevocation(ctx context.Context, serial string) (store.Revocation, bool, error) {
	c.n.Add(1)
	return c.Store.CertRevocation(ctx, serial)
}

// newFixture is the real stack: SQLite store, CA (created at t0 − 5y),
// enterprises acme and beta, a service on the fake clock at t0 and an
// API key.
func newFixture(t testing.TB) *fixture {
	t.Helper()
	dir := t.TempDir()
	ctx := context.Background()
	clk := &clock{t: t0.AddDate(-5, 0, 0)}
	st, err := store.Open(ctx, store.Options{Path: filepath.Join(dir, "zbca.db"), Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	c := config.Default()
	c.DataDir = dir
	c.Resolve()
	a, err := ca.Init(ctx, ca.Options{Dir: filepath.Join(dir, "ca"), Config: c.CA, PublicURL: "http://pki.test", TLSHosts: c.HTTPS.Hosts, Store: st, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	for _, e := range []store.Enterprise{{Username: "acme", Name: "某某科技有限公司", Code: "91350100M000100Y43"}, {Username: "beta", Name: "Beta Ltd"}} {
		e.PasswordHash = "x"
		if err := st.AddEnterprise(ctx, &e, store.AuditEvent{Actor: "test", Action: "enterprise.add", Subject: e.Username}); err != nil {
			t.Fatal(err)
		}
	}
	var issuers []*x509.Certificate
	for _, is := range a.IssuingCAs() {
		issuers = append(issuers, is.Cert)
	}
	svc, err := New(Options{Root: a.Root(), Issuers: issuers, Store: st, Keys: st, ExpiringDays: 30, CacheSize: 1000, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	key, rec, err := NewAPIKey("site-a")
	if err != nil {
		t.Fatal(err)
	}
	if err := st.AddAPIKey(ctx, rec, store.AuditEvent{Actor: "test", Action: "apikey.add", Subject: "site-a"}); err != nil {
		t.Fatal(err)
	}
	clk.Set(t0)
	return &fixture{st: st, ca: a, clock: clk, svc: svc, key: key}
}

// issueAt issues a client certificate for username with the CA's clock at
// at, and puts the clock back.
func (f *fixture) issueAt(t testing.TB, username string, at time.Time) *ca.Issued {
	t.Helper()
	saved := f.clock.Now()
	defer f.clock.Set(saved)
	f.clock.Set(at)
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, k)
	csr, err := ca.ParseCSR(der)
	if err != nil {
		t.Fatal(err)
	}
	iss, err := f.ca.Issue(context.Background(), ca.IssueRequest{CSR: csr, Username: username, Actor: "test"})
	if err != nil {
		t.Fatal(err)
	}
	return iss
}

func (f *fixture) revoke(t testing.TB, serial string) {
	t.Helper()
	if _, err := f.st.Revoke(context.Background(), store.RevokeRequest{Serial: serial, Reason: 1, Actor: "test"}); err != nil {
		t.Fatal(err)
	}
}

func pemOf(certs ...*x509.Certificate) []byte {
	var out []byte
	for _, c := range certs {
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	return out
}

// foreign is a CA that is not zbca's.
type foreign struct {
	cert *x509.Certificate
	key  crypto.Signer
}

func newForeignCA(t testing.TB, name pkix.Name, key crypto.Signer) *foreign {
	t.Helper()
	if key == nil {
		key, _ = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: name, NotBefore: t0.AddDate(-1, 0, 0), NotAfter: t0.AddDate(5, 0, 0),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	return &foreign{cert: c, key: key}
}

// issue signs a client certificate for pub with subject CN=cn.
func (f *foreign) issue(t testing.TB, cn string, pub crypto.PublicKey) *x509.Certificate {
	t.Helper()
	if pub == nil {
		k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		pub = k.Public()
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn, Organization: []string{"Foreign"}},
		NotBefore: t0.AddDate(0, -1, 0), NotAfter: t0.AddDate(1, 0, 0), KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, f.cert, pub, f.key)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func pkixName(cn string) pkix.Name { return pkix.Name{CommonName: cn} }

func pemFromDER(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}
