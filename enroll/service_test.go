package enroll_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/zbca/zbca/ca"
	"github.com/zbca/zbca/config"
	"github.com/zbca/zbca/enroll"
	"github.com/zbca/zbca/internal/zerr"
	"github.com/zbca/zbca/revocation"
	"github.com/zbca/zbca/revocation/revtest"
	"github.com/zbca/zbca/store"
)

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

func newCSR(t testing.TB, k crypto.Signer) *x509.CertificateRequest {
	t.Helper()
	if k == nil {
		var err error
		if k, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
			t.Fatal(err)
		}
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, k)
	if err != nil {
		t.Fatal(err)
	}
	csr, err := ca.ParseCSR(der)
	if err != nil {
		// Keys the policy refuses fail here too; parse without the checks.
		if csr, err = x509.ParseCertificateRequest(der); err != nil {
			t.Fatal(err)
		}
	}
	return csr
}

// issue issues for username and moves the clock a second on, so that
// certificates have distinct creation times.
func (e *svcEnv) issue(t *testing.T, username string, k crypto.Signer) *ca.Issued {
	t.Helper()
	iss, err := e.svc.Issue(context.Background(), enroll.Request{Username: username, CSR: newCSR(t, k), Actor: "test"})
	if err != nil {
		t.Fatalf("issuing for %s: %v", username, err)
	}
	e.clock.Add(time.Second)
	return iss
}

// snapshot is what a refused issuance must leave as it was.
type snapshot struct {
	certs, audit int
}

func (e *svcEnv) snapshot(t *testing.T) snapshot {
	t.Helper()
	ctx := context.Background()
	certs, err := e.st.ListCertificates(ctx, store.CertFilter{Limit: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	evs, err := e.st.ListAudit(ctx, 0, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	return snapshot{certs: len(certs), audit: len(evs)}
}

func (e *svcEnv) refused(t *testing.T, username string, csr *x509.CertificateRequest, kind *zerr.Kind) {
	t.Helper()
	before := e.snapshot(t)
	iss, err := e.svc.Issue(context.Background(), enroll.Request{Username: username, CSR: csr, Actor: "test"})
	if iss != nil || !errors.Is(err, kind) {
		t.Fatalf("issuing for %s: %v, %v; want an error of kind %v", username, iss, err, kind)
	}
	if after := e.snapshot(t); after != before {
		t.Fatalf("a refused issuance changed the store: %+v → %+v", before, after)
	}
}

func (e *svcEnv) status(t *testing.T, iss *ca.Issued) *store.Certificate {
	t.Helper()
	rec, err := e.st.GetCertificate(context.Background(), iss.Record.Serial)
	if err != nil {
		t.Fatal(err)
	}
	return rec
}

func TestIssueDailyLimit(t *testing.T) {
	e := newSvcEnv(t, enroll.Policy{MaxPerDay: 2, MaxActive: 10})
	e.issue(t, "alpha", nil)
	e.issue(t, "alpha", nil)
	e.refused(t, "alpha", newCSR(t, nil), zerr.Policy)
	// Per enterprise: beta is not limited by alpha's issuances.
	e.issue(t, "beta", nil)
	// Half a second more than a day after the first issuance (at T0; the
	// second was at T0+1s), one more, and then the limit again.
	e.clock.Add(24*time.Hour - 2500*time.Millisecond)
	if _, err := e.svc.Issue(context.Background(), enroll.Request{Username: "alpha", CSR: newCSR(t, nil), Actor: "test"}); err != nil {
		t.Fatalf("a day later: %v", err)
	}
	e.refused(t, "alpha", newCSR(t, nil), zerr.Policy)
}

func TestIssueDailyLimitDefault(t *testing.T) {
	e := newSvcEnv(t, enroll.Policy{})
	for range 10 {
		e.issue(t, "alpha", nil)
	}
	e.refused(t, "alpha", newCSR(t, nil), zerr.Policy)
}

// TestIssueDailyLimitConcurrent: the limit holds when issuances race.
func TestIssueDailyLimitConcurrent(t *testing.T) {
	e := newSvcEnv(t, enroll.Policy{MaxPerDay: 2, MaxActive: 100})
	const n = 8
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range n {
		wg.Go(func() {
			_, err := e.svc.Issue(context.Background(), enroll.Request{Username: "alpha", CSR: newCSR(t, nil), Actor: "test"})
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	ok := 0
	for err := range errs {
		if err == nil {
			ok++
		} else if !errors.Is(err, zerr.Policy) {
			t.Errorf("unexpected error: %v", err)
		}
	}
	if ok > 2 {
		t.Fatalf("%d concurrent issuances succeeded under MaxPerDay 2", ok)
	}
}

func TestIssueKeyOfAnotherEnterprise(t *testing.T) {
	e := newSvcEnv(t, enroll.Policy{MaxActive: 10})
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	first := e.issue(t, "alpha", k)
	e.refused(t, "beta", newCSR(t, k), zerr.BadCSR)
	// The owner may certify its key again.
	e.issue(t, "alpha", k)
	// Still refused for beta once alpha's certificates are revoked.
	if _, err := e.svc.Revoke.Revoke(context.Background(), first.Record.Serial, revocation.KeyCompromise, "test", revocation.BySubscriber); err != nil {
		t.Fatal(err)
	}
	e.refused(t, "beta", newCSR(t, k), zerr.BadCSR)
	// An RSA key too.
	rk, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	e.issue(t, "beta", rk)
	e.refused(t, "alpha", newCSR(t, rk), zerr.BadCSR)
}

// TestIssueKeyOfAnotherEnterpriseConcurrent: two enterprises racing with
// one key get one certificate between them.
func TestIssueKeyOfAnotherEnterpriseConcurrent(t *testing.T) {
	e := newSvcEnv(t, enroll.Policy{MaxActive: 100, MaxPerDay: 100})
	for round := range 10 {
		k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		var wg sync.WaitGroup
		owners := make(chan string, 2)
		for _, u := range []string{"alpha", "beta"} {
			wg.Go(func() {
				if _, err := e.svc.Issue(context.Background(), enroll.Request{Username: u, CSR: newCSR(t, k), Actor: "test"}); err == nil {
					owners <- u
				}
			})
		}
		wg.Wait()
		close(owners)
		var got []string
		for u := range owners {
			got = append(got, u)
		}
		if len(got) > 1 {
			t.Fatalf("round %d: one key certified for %v", round, got)
		}
	}
}

// TestIssueMaxActive: with MaxActive 2, a new certificate supersedes the
// older active ones beyond the newest two, in the transaction that
// stores it.
func TestIssueMaxActive(t *testing.T) {
	e := newSvcEnv(t, enroll.Policy{MaxActive: 2})
	ctx := context.Background()
	other := e.issue(t, "beta", nil)
	c1 := e.issue(t, "alpha", nil)
	c2 := e.issue(t, "alpha", nil)
	if len(c2.Superseded) != 0 {
		t.Fatalf("the second certificate superseded %d", len(c2.Superseded))
	}
	evs, err := e.st.ListAudit(ctx, 0, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	mark := evs[len(evs)-1].Seq
	c3 := e.issue(t, "alpha", nil)
	if len(c3.Superseded) != 1 || c3.Superseded[0].Serial != c1.Record.Serial {
		t.Fatalf("the third certificate superseded %v, want %s", serials(c3.Superseded), c1.Record.Serial)
	}
	want := map[*ca.Issued]string{c1: store.CertRevoked, c2: store.CertActive, c3: store.CertActive, other: store.CertActive}
	for iss, status := range want {
		if rec := e.status(t, iss); rec.Status != status {
			t.Errorf("%s: %s, want %s", iss.Record.Serial, rec.Status, status)
		}
	}
	if rec := e.status(t, c1); rec.RevocationReason != int(revocation.Superseded) || rec.RevokedBy != "test" {
		t.Errorf("superseded certificate: reason %d, revoked by %q", rec.RevocationReason, rec.RevokedBy)
	}
	// The audit log: cert.signing, then cert.signed of c3 and the
	// cert.revoke of c1 with superseded_by, one after the other (one
	// transaction).
	evs, err = e.st.ListAudit(ctx, mark, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, ev := range evs {
		got = append(got, ev.Action+" "+ev.Subject)
	}
	wantLog := []string{"cert.signing " + c3.Record.Serial, "cert.signed " + c3.Record.Serial, "cert.revoke " + c1.Record.Serial}
	if fmt.Sprint(got) != fmt.Sprint(wantLog) {
		t.Fatalf("audit after the third issuance: %q, want %q", got, wantLog)
	}
	rev := evs[2]
	if rev.Details["superseded_by"] != c3.Record.Serial || fmt.Sprint(rev.Details["reason"]) != "4" || rev.Seq != evs[1].Seq+1 {
		t.Errorf("cert.revoke event: %+v", rev)
	}
	if _, _, err := e.st.VerifyAudit(ctx); err != nil {
		t.Fatal(err)
	}
	// A fourth supersedes the second.
	c4 := e.issue(t, "alpha", nil)
	if len(c4.Superseded) != 1 || c4.Superseded[0].Serial != c2.Record.Serial {
		t.Fatalf("the fourth certificate superseded %v, want %s", serials(c4.Superseded), c2.Record.Serial)
	}
	active, err := e.st.ListCertificates(ctx, store.CertFilter{Username: "alpha", Profile: store.ProfileClient, Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, c := range active {
		if c.Status == store.CertActive {
			n++
		}
	}
	if n != 2 {
		t.Fatalf("%d active certificates, want 2", n)
	}
}

// TestIssueMaxActiveDefault: by default a reissue supersedes the previous
// certificate.
func TestIssueMaxActiveDefault(t *testing.T) {
	e := newSvcEnv(t, enroll.Policy{})
	c1 := e.issue(t, "alpha", nil)
	c2 := e.issue(t, "alpha", nil)
	if len(c2.Superseded) != 1 || c2.Superseded[0].Serial != c1.Record.Serial {
		t.Fatalf("superseded %v", serials(c2.Superseded))
	}
	if rec := e.status(t, c1); rec.Status != store.CertRevoked || rec.RevocationReason != int(revocation.Superseded) {
		t.Fatalf("first certificate: %s reason %d", rec.Status, rec.RevocationReason)
	}
}

func serials(cs []*store.Certificate) []string {
	var out []string
	for _, c := range cs {
		out = append(out, c.Serial)
	}
	return out
}

func TestIssueRefusals(t *testing.T) {
	e := newSvcEnv(t, enroll.Policy{})
	p521, _ := ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	rsa1024, _ := rsa.GenerateKey(rand.Reader, 1024)
	cases := []struct {
		name     string
		username string
		csr      *x509.CertificateRequest
		kind     *zerr.Kind
	}{
		{"unknown enterprise", "nobody", newCSR(t, nil), zerr.NotFound},
		{"disabled enterprise", "gamma", newCSR(t, nil), zerr.Disabled},
		{"no CSR", "alpha", nil, zerr.BadCSR},
		{"P-521 key", "alpha", newCSR(t, p521), zerr.BadCSR},
		{"RSA 1024 key", "alpha", newCSR(t, rsa1024), zerr.BadCSR},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e.refused(t, tc.username, tc.csr, tc.kind)
		})
	}
}
