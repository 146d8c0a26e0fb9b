package ca

import (
	"context"
	"crypto/x509"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/zbca/zbca/internal/zerr"
	"github.com/zbca/zbca/store"
)

func caNames(a *Authority) []string {
	var n []string
	for _, is := range a.IssuingCAs() {
		n = append(n, is.Name)
	}
	return n
}

// reopen closes f.a and opens the CA directory again, as the CLI does after
// a rollover, renewing the service certificates.
func (f *fixture) reopen(t *testing.T) {
	t.Helper()
	f.a.Close()
	a, err := Open(context.Background(), f.opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	if err := a.EnsureServiceCertificates(context.Background()); err != nil {
		t.Fatal(err)
	}
	f.a = a
}

// TestRollover: an issuing CA too short for a full certificate is rolled
// over; the new one signs, the old one is retired but still listed (CRLs,
// OCSP, verification), both chains verify, the service certificates move to
// the new CA, and the audit chain records it.
func TestRollover(t *testing.T) {
	ctx := context.Background()
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	now := start
	f := newFixture(t, func() time.Time { return now })
	f.addEnterprise(t, "acme", store.StatusActive)
	old, err := f.a.Issue(ctx, IssueRequest{CSR: makeCSR(t, p256(t)), Username: "acme", Actor: "test"})
	if err != nil {
		t.Fatal(err)
	}
	oldCA := f.a.Issuing()

	now = start.AddDate(8, 0, 0)
	if _, err := f.a.Issue(ctx, IssueRequest{CSR: makeCSR(t, p256(t)), Username: "acme"}); !errors.Is(err, zerr.Policy) {
		t.Fatalf("issuance before rollover: %v, want Policy", err)
	}
	r, err := f.a.Rollover(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if r.OldName != "issuing-1" || r.NewName != "issuing-2" || !strings.HasSuffix(r.New.Subject.CommonName, " G2") {
		t.Errorf("rolled %s → %s (%q)", r.OldName, r.NewName, r.New.Subject.CommonName)
	}
	f.reopen(t)
	if got := caNames(f.a); !slices.Equal(got, []string{"issuing-2", "issuing-1"}) {
		t.Fatalf("issuing CAs %v", got)
	}
	newCA := f.a.Issuing()
	if newCA.Equal(oldCA) || newCA.Subject.String() == oldCA.Subject.String() {
		t.Fatal("the new issuing CA has the old one's certificate or name")
	}
	if err := newCA.CheckSignatureFrom(f.a.Root()); err != nil || !newCA.IsCA || !newCA.MaxPathLenZero {
		t.Errorf("new issuing CA: %v", err)
	}
	if !newCA.NotAfter.Equal(now.AddDate(10, 0, 0)) {
		t.Errorf("new issuing CA ends %s", newCA.NotAfter)
	}
	if w := f.a.ExpiryWarning(); w != "" {
		t.Errorf("warning after rollover: %q", w)
	}
	for name, c := range map[string]*x509.Certificate{"OCSP signer": f.a.OCSPSigner()} {
		if err := c.CheckSignatureFrom(newCA); err != nil {
			t.Errorf("%s not renewed under the new CA: %v", name, err)
		}
	}
	tc, err := f.a.TLSCertificate()
	if err != nil || tc.Leaf.CheckSignatureFrom(newCA) != nil || string(tc.Certificate[1]) != string(newCA.Raw) {
		t.Errorf("TLS certificate not renewed under the new CA: %v", err)
	}

	cur, err := f.a.Issue(ctx, IssueRequest{CSR: makeCSR(t, p256(t)), Username: "acme", Actor: "test"})
	if err != nil {
		t.Fatal(err)
	}
	c := cur.Certificate
	if string(c.AuthorityKeyId) != string(newCA.SubjectKeyId) || cur.Record.Issuer == old.Record.Issuer ||
		c.CRLDistributionPoints[0] != "http://pki.example:8080/crl/issuing-2.crl" || c.IssuingCertificateURL[0] != "http://pki.example:8080/pki/issuing-2.crt" {
		t.Errorf("new certificate: AKI %x issuer %s CRL %v AIA %v", c.AuthorityKeyId, cur.Record.Issuer, c.CRLDistributionPoints, c.IssuingCertificateURL)
	}
	roots, inter := x509.NewCertPool(), x509.NewCertPool()
	roots.AddCert(f.a.Root())
	for _, is := range f.a.IssuingCerts() {
		inter.AddCert(is)
	}
	for name, c := range map[string]*x509.Certificate{"before": old.Certificate, "after": c} {
		if _, err := c.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, CurrentTime: c.NotBefore.Add(time.Hour), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
			t.Errorf("certificate issued %s the rollover: %v", name, err)
		}
	}
	if retired := f.a.IssuingCAs()[1]; !retired.Cert.Equal(oldCA) || !retired.CanSign() || retired.ID != old.Record.Issuer {
		t.Errorf("retired CA %+v", retired)
	}
	if _, _, err := f.store.VerifyAudit(ctx); err != nil {
		t.Error(err)
	}

	// A second rollover keeps both older ones.
	if _, err := f.a.Rollover(ctx); err != nil {
		t.Fatal(err)
	}
	f.reopen(t)
	if got := caNames(f.a); !slices.Equal(got, []string{"issuing-3", "issuing-2", "issuing-1"}) {
		t.Fatalf("issuing CAs %v", got)
	}
}

// TestRolloverRootTooShort: when the root cannot cover a new issuing CA
// for a full client certificate, rollover refuses and changes nothing.
func TestRolloverRootTooShort(t *testing.T) {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	now := start
	f := newFixture(t, func() time.Time { return now })
	before, err := os.ReadFile(filepath.Join(f.opts.Dir, manifestFile))
	if err != nil {
		t.Fatal(err)
	}
	now = start.AddDate(18, 0, 0)
	if _, err := f.a.Rollover(context.Background()); !errors.Is(err, zerr.Policy) || !strings.Contains(err.Error(), "new root") {
		t.Fatalf("got %v, want a Policy error naming the root", err)
	}
	after, _ := os.ReadFile(filepath.Join(f.opts.Dir, manifestFile))
	if string(after) != string(before) {
		t.Error("the manifest changed")
	}
	if _, err := os.Stat(filepath.Join(f.opts.Dir, "issuing-2.crt")); err == nil {
		t.Error("a new issuing CA was written")
	}
}
