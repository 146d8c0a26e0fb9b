package revocation

import (
	"bytes"
	"context"
	"crypto"
	"crypto/x509"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ocsp"

	"github.com/zbca/zbca/ca"
	"github.com/zbca/zbca/internal/ocspder"
)

// TestRootOfflineAnswers: with the root offline, a question to the root
// about an issuing CA gets the pre-signed answer for its CertID hash
// (cacheable until the material's nextUpdate); about anything else, or
// once the material ran out, "unauthorized". The root's CRL is the
// pre-signed one.
func TestRootOfflineAnswers(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, nil)
	m, err := f.a.SignRootMaterial(30*24*time.Hour, nil)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	clock := func() time.Time { return now }
	rootRef := f.a.RootCRLIssuer()
	offline := ca.CRLIssuer{Name: rootRef.Name, Cert: rootRef.Cert, ID: rootRef.ID} // no key
	r, err := NewResponder(ResponderOptions{Issuers: f.a.IssuingCAs(), Root: offline, Delegated: f.a.OCSPResponder,
		RootMaterial: func() *ca.RootMaterial { return m }, Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Load(ctx, f.st); err != nil {
		t.Fatal(err)
	}
	iss, root := f.a.Issuing(), f.a.Root()
	for _, h := range []crypto.Hash{crypto.SHA1, crypto.SHA256} {
		rec := post(t, r, ocspRequest(t, iss, root, h))
		resp, err := ocsp.ParseResponseForCert(rec.Body.Bytes(), iss, root)
		if err != nil || resp.Status != ocsp.Good || !resp.NextUpdate.Equal(m.NextUpdate) {
			t.Fatalf("%v: %v %+v", h, err, resp)
		}
		if cc := rec.Header().Get("Cache-Control"); !strings.Contains(cc, "max-age=86400") || rec.Header().Get("ETag") == "" {
			t.Errorf("%v: caching headers %q, want a day at most", h, cc)
		}
	}
	// Another serial asked of the root: nothing signed for it.
	leaf := f.issue(t)
	if rec := post(t, r, ocspRequest(t, leaf, root, crypto.SHA1)); !bytes.Equal(rec.Body.Bytes(), ocspder.Unauthorized) {
		t.Errorf("a leaf asked of the offline root: %x", rec.Body.Bytes())
	}
	// The material runs out.
	now = m.NextUpdate.Add(time.Second)
	if rec := post(t, r, ocspRequest(t, iss, root, crypto.SHA1)); !bytes.Equal(rec.Body.Bytes(), ocspder.Unauthorized) {
		t.Errorf("past the material's nextUpdate: %x", rec.Body.Bytes())
	}

	// The publisher serves the pre-signed root CRL.
	pub, err := NewPublisher(PublisherOptions{Store: f.st, Issuers: f.a.IssuingCAs(), Root: offline, Interval: time.Hour, Validity: 2 * time.Hour,
		RootMaterial: func() *ca.RootMaterial { return m }})
	if err != nil {
		t.Fatal(err)
	}
	if err := pub.Load(ctx); err != nil {
		t.Fatal(err)
	}
	if got := pub.Get("root"); got == nil || !bytes.Equal(got.DER, m.CRL) {
		t.Fatalf("root CRL served: %+v", got)
	}
	if _, err := NewPublisher(PublisherOptions{Store: f.st, Issuers: f.a.IssuingCAs(), Root: offline}); err == nil {
		t.Error("a publisher without the root key and without material")
	}
}

// TestRootOnlineRevokedIssuing: an issuing CA a root ceremony revoked
// stays revoked when the root signs online again: its CRL lists it and
// its OCSP answer about it is revoked.
func TestRootOnlineRevokedIssuing(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, nil)
	revoked := func() []*x509.Certificate { return []*x509.Certificate{f.a.Issuing()} }
	pub, err := NewPublisher(PublisherOptions{Store: f.st, Issuers: f.a.IssuingCAs(), Root: f.a.RootCRLIssuer(), Interval: time.Hour, Validity: 2 * time.Hour,
		RevokedIssuing: revoked})
	if err != nil {
		t.Fatal(err)
	}
	got, err := pub.Publish(ctx, "root")
	if err != nil {
		t.Fatal(err)
	}
	crl, err := x509.ParseRevocationList(got.DER)
	if err != nil || crl.CheckSignatureFrom(f.a.Root()) != nil || len(crl.RevokedCertificateEntries) != 1 ||
		crl.RevokedCertificateEntries[0].SerialNumber.Cmp(f.a.Issuing().SerialNumber) != 0 || crl.RevokedCertificateEntries[0].ReasonCode != 2 {
		t.Fatalf("root CRL: %v %+v", err, crl)
	}
	r, err := NewResponder(ResponderOptions{Issuers: f.a.IssuingCAs(), Root: f.a.RootCRLIssuer(), Delegated: f.a.OCSPResponder, RevokedIssuing: revoked})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Load(ctx, f.st); err != nil {
		t.Fatal(err)
	}
	r.refreshAll(ctx)
	rec := post(t, r, ocspRequest(t, f.a.Issuing(), f.a.Root(), crypto.SHA1))
	resp, err := ocsp.ParseResponseForCert(rec.Body.Bytes(), f.a.Issuing(), f.a.Root())
	if err != nil || resp.Status != ocsp.Revoked || resp.RevocationReason != ocsp.CACompromise {
		t.Fatalf("OCSP about the revoked issuing CA, root online: %v %+v", err, resp)
	}
}
