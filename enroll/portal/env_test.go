package portal_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/zbca/zbca/ca"
	"github.com/zbca/zbca/config"
	"github.com/zbca/zbca/enroll"
	"github.com/zbca/zbca/revocation/revtest"
	"github.com/zbca/zbca/store"
)

// The stack behind the portal, as enroll's service tests build it
// (enroll/service_test.go): the real store, CA and revocation, so that
// the portal is tested with the enrollment service's own policy.

// svcClock is the store's and the service's clock; it starts at the real
// time (the CA signs with the real time) and only moves forward.
type svcClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *svcClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *svcClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

type svcEnv struct {
	st    *store.SQL
	svc   *enroll.Service
	clock *svcClock
}

// newSvcEnv is the real stack behind enroll.Service: SQLite store, CA,
// OCSP responder, CRL publisher, revocation service. Enterprises: alpha
// and beta (active), gamma (disabled).
func newSvcEnv(t *testing.T, p enroll.Policy) *svcEnv {
	t.Helper()
	dir := t.TempDir()
	ctx := context.Background()
	clk := &svcClock{t: time.Now()}
	st, err := store.Open(ctx, store.Options{Path: filepath.Join(dir, "zbca.db"), Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	cfg := config.Default()
	cfg.DataDir = dir
	cfg.Resolve()
	a, err := ca.Init(ctx, ca.Options{Dir: filepath.Join(dir, "ca"), Config: cfg.CA, PublicURL: "http://pki.test", TLSHosts: cfg.HTTPS.Hosts, Store: st})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	for _, u := range []string{"alpha", "beta", "gamma"} {
		if err := st.AddEnterprise(ctx, &store.Enterprise{Username: u, Name: u, PasswordHash: "x"}, store.AuditEvent{Actor: "test", Action: "enterprise.add", Subject: u}); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.SetEnterpriseStatus(ctx, "gamma", store.StatusDisabled, store.AuditEvent{Actor: "test", Action: "enterprise.disable", Subject: "gamma"}); err != nil {
		t.Fatal(err)
	}
	stack := revtest.Start(t, st, a)
	svc := &enroll.Service{CA: a, Store: st, Revoke: stack.Service, Policy: p, Now: clk.Now}
	return &svcEnv{st: st, svc: svc, clock: clk}
}

// issue issues for username with a new key and moves the clock a second
// on, so that certificates have distinct creation times.
func (e *svcEnv) issue(t *testing.T, username string) *ca.Issued {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, k)
	if err != nil {
		t.Fatal(err)
	}
	csr, err := ca.ParseCSR(der)
	if err != nil {
		t.Fatal(err)
	}
	iss, err := e.svc.Issue(context.Background(), enroll.Request{Username: username, CSR: csr, Actor: "test"})
	if err != nil {
		t.Fatalf("issuing for %s: %v", username, err)
	}
	e.clock.Add(time.Second)
	return iss
}
