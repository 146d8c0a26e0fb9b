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
	"github.com/zbca/zbca/internal/lifecycle"
	"github.com/zbca/zbca/store"
)

const testPublicURL = "http://pki.test"

type fixture struct {
	dir  string
	st   *store.SQL
	a    *ca.Authority
	pub  *Publisher
	resp *Responder
	feed *Feed
	svc  *Service
	// tasks runs the stack (stop it to stop the feed).
	tasks *lifecycle.Group
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
	o := ResponderOptions{Issuers: a.IssuingCAs(), Root: a.RootCRLIssuer(), Delegated: a.OCSPResponder}
	if ro != nil {
		ro(&o)
	}
	stack, err := NewStack(StackOptions{Store: st, OCSP: o, Publisher: PublisherOptions{Delay: 200 * time.Millisecond, Interval: time.Hour, Validity: 2 * time.Hour,
		Shards: a.CRLShards(), PublicURL: testPublicURL}, Poll: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if err := stack.Load(ctx); err != nil {
		t.Fatal(err)
	}
	g := lifecycle.New(ctx, nil)
	stack.Start(g)
	t.Cleanup(func() { g.Stop(5 * time.Second) })
	return &fixture{dir: dir, st: st, a: a, pub: stack.CRL, resp: stack.OCSP, feed: stack.Feed, svc: stack.Service, tasks: g}
}

// issue makes a client certificate; the responder hears of it through
// the feed, as an enrollment acknowledges it (Service.Issued).
func (f *fixture) issue(t testing.TB) *x509.Certificate {
	t.Helper()
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, k)
	csr, _ := x509.ParseCertificateRequest(der)
	iss, err := f.a.Issue(context.Background(), ca.IssueRequest{CSR: csr, Username: "acme", Actor: "test"})
	if err != nil {
		t.Fatal(err)
	}
	f.svc.Issued(context.Background(), iss.Record, iss.Superseded)
	return iss.Certificate
}
