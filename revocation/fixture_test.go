package revocation

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"path/filepath"
	"testing"
	"time"

	"github.com/zbca/zbca/ca"
	"github.com/zbca/zbca/config"
	"github.com/zbca/zbca/store"
)

const testPublicURL = "http://pki.test"

type fixture struct {
	dir  string
	st   *store.SQL
	a    *ca.Authority
	pub  *Publisher
	resp *Responder
	svc  *Service
}

func newFixture(t testing.TB, ro func(*ResponderOptions)) *fixture {
	t.Helper()
	return newShardedFixture(t, 0, ro)
}

// newShardedFixture is newFixture with a CA created with ca.crl_shards
// shards, and its publisher publishing them.
func newShardedFixture(t testing.TB, shards int, ro func(*ResponderOptions)) *fixture {
	t.Helper()
	dir := t.TempDir()
	ctx := context.Background()
	st, err := store.Open(ctx, store.Options{Path: filepath.Join(dir, "zbca.db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	c := config.Default()
	c.DataDir = dir
	c.CA.CRLShards = shards
	c.Resolve()
	a, err := ca.Init(ctx, ca.Options{Dir: filepath.Join(dir, "ca"), Config: c.CA, PublicURL: testPublicURL, TLSHosts: c.HTTPS.Hosts, Store: st})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	if err := st.AddEnterprise(ctx, &store.Enterprise{Username: "acme", Name: "ACME", PasswordHash: "x"}, store.AuditEvent{Actor: "t", Action: "enterprise.add"}); err != nil {
		t.Fatal(err)
	}
	pub, err := NewPublisher(PublisherOptions{Store: st, Issuers: a.IssuingCAs(), Root: a.RootCRLIssuer(), Delay: 200 * time.Millisecond, Interval: time.Hour, Validity: 2 * time.Hour,
		Shards: a.CRLShards(), PublicURL: testPublicURL})
	if err != nil {
		t.Fatal(err)
	}
	if err := pub.Load(ctx); err != nil {
		t.Fatal(err)
	}
	o := ResponderOptions{Issuers: a.IssuingCAs(), Root: a.RootCRLIssuer(), Delegated: a.OCSPResponder, Source: st, OnChange: pub.Trigger}
	if ro != nil {
		ro(&o)
	}
	resp, err := NewResponder(o)
	if err != nil {
		t.Fatal(err)
	}
	if err := resp.Load(ctx); err != nil {
		t.Fatal(err)
	}
	return &fixture{dir: dir, st: st, a: a, pub: pub, resp: resp, svc: &Service{Store: st, OCSP: resp, CRL: pub}}
}

// issue makes a client certificate; the responder hears of it as serve
// wires it (the OnIssued hook), here by calling OnIssued.
func (f *fixture) issue(t testing.TB) *x509.Certificate {
	t.Helper()
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, k)
	csr, _ := x509.ParseCertificateRequest(der)
	iss, err := f.a.Issue(context.Background(), ca.IssueRequest{CSR: csr, Username: "acme", Actor: "test"})
	if err != nil {
		t.Fatal(err)
	}
	f.resp.OnIssued(iss.Record)
	return iss.Certificate
}
