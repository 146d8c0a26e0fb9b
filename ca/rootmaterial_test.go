package ca

import (
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ocsp"

	"github.com/zbca/zbca/internal/zerr"
)

// TestRootOffline: the ceremony signs the root's CRL and the OCSP answers
// about the issuing CAs; imported, they let the CA open without the root
// key, which then refuses what needs it (a rollover, new material).
func TestRootOffline(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, nil)
	out := filepath.Join(t.TempDir(), "material")
	m, err := f.a.SignRootMaterial(90*24*time.Hour, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := WriteRootMaterial(out, m); err != nil {
		t.Fatal(err)
	}
	if _, err := f.a.ImportRootMaterial(out); err != nil {
		t.Fatal(err)
	}
	// The same material again: not newer, refused.
	if _, err := f.a.ImportRootMaterial(out); !errors.Is(err, zerr.Conflict) {
		t.Errorf("importing the same material twice: %v", err)
	}
	// Take the key away and open again.
	key := filepath.Join(f.opts.Dir, f.a.RootKeyFile())
	if err := os.Rename(key, key+".away"); err != nil {
		t.Fatal(err)
	}
	f.a.Close()
	a, err := Open(ctx, f.opts)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if a.RootOnline() || a.RootCRLIssuer().CanSign() {
		t.Fatal("the root is online without its key")
	}
	served := a.ServedRootMaterial()
	if served == nil || !served.NextUpdate.Equal(m.NextUpdate) {
		t.Fatalf("served material %+v", served)
	}
	crl, err := x509.ParseRevocationList(served.CRL)
	if err != nil || crl.CheckSignatureFrom(a.Root()) != nil || len(crl.RevokedCertificateEntries) != 0 {
		t.Fatalf("root CRL: %v", err)
	}
	for _, h := range []crypto.Hash{crypto.SHA1, crypto.SHA256} {
		der := served.OCSP[SerialHex(a.Issuing().SerialNumber)][h]
		r, err := ocsp.ParseResponseForCert(der, a.Issuing(), a.Root())
		if err != nil || r.Status != ocsp.Good || r.IssuerHash != h {
			t.Fatalf("%v answer about the issuing CA: %v %+v", h, err, r)
		}
	}
	if _, err := a.Rollover(ctx); err == nil || !strings.Contains(err.Error(), "offline") {
		t.Errorf("rollover with the root offline: %v", err)
	}
	if _, err := a.SignRootMaterial(30*24*time.Hour, nil); err == nil {
		t.Error("material signed without the root key")
	}
	if w := a.RootMaterialWarning(); w != "" {
		t.Errorf("warning with 90 days left: %s", w)
	}
	if left, ok := a.RootMaterialLeft(); !ok || left < 89*24*time.Hour {
		t.Errorf("material left %v %v", left, ok)
	}
}

// TestRootMaterialWarning: 30 days before the material runs out the
// operator is warned; after, the warning says relying parties refuse.
func TestRootMaterialWarning(t *testing.T) {
	now := time.Now()
	clock := func() time.Time { return now }
	f := newFixture(t, clock)
	m, err := f.a.SignRootMaterial(60*24*time.Hour, nil)
	if err != nil {
		t.Fatal(err)
	}
	f.a.material.Store(m)
	f.a.rootSigner = nil // offline from here
	if w := f.a.RootMaterialWarning(); w != "" {
		t.Errorf("60 days left: %q", w)
	}
	now = now.Add(31 * 24 * time.Hour)
	if w := f.a.RootMaterialWarning(); !strings.Contains(w, "runs out on") {
		t.Errorf("29 days left: %q", w)
	}
	now = now.Add(30 * 24 * time.Hour)
	if w := f.a.RootMaterialWarning(); !strings.Contains(w, "ran out") || !strings.Contains(w, "refuse") {
		t.Errorf("run out: %q", w)
	}
	f.a.material.Store(nil)
	if w := f.a.RootMaterialWarning(); !strings.Contains(w, "no pre-signed root material") {
		t.Errorf("none: %q", w)
	}
}

// TestRootMaterialRefused: unsafe ceremony input is refused before
// anything is signed; material signed by another root, or tampered with,
// is refused whole and changes nothing.
func TestRootMaterialRefused(t *testing.T) {
	f := newFixture(t, nil)
	for _, tc := range []struct {
		validity time.Duration
		revoke   []string
		want     string
	}{
		{400 * 24 * time.Hour, nil, "outside"},
		{time.Hour, nil, "outside"},
		{30 * 24 * time.Hour, []string{"issuing-9"}, `no issuing CA is named "issuing-9"`},
		{30 * 24 * time.Hour, []string{"root"}, `no issuing CA is named "root"`},
	} {
		if _, err := f.a.SignRootMaterial(tc.validity, tc.revoke); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v %v: %v, want %q", tc.validity, tc.revoke, err, tc.want)
		}
	}
	// Past the root's own end.
	var at time.Time
	late := newFixture(t, func() time.Time {
		if at.IsZero() {
			return time.Now()
		}
		return at
	})
	at = late.a.Root().NotAfter.Add(-100 * 24 * time.Hour)
	if _, err := late.a.SignRootMaterial(300*24*time.Hour, nil); err == nil || !strings.Contains(err.Error(), "past the root") {
		t.Errorf("past the root: %v", err)
	}

	other := newFixture(t, nil)
	m, err := other.a.SignRootMaterial(30*24*time.Hour, nil)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "other")
	if err := WriteRootMaterial(dir, m); err != nil {
		t.Fatal(err)
	}
	if _, err := f.a.ImportRootMaterial(dir); err == nil || !strings.Contains(err.Error(), "refused") {
		t.Errorf("another root's material: %v", err)
	}
	if _, err := f.a.RootMaterial(); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a refused import left material: %v", err)
	}
	// Our own, with the CRL swapped for another root's.
	mine, err := f.a.SignRootMaterial(30*24*time.Hour, nil)
	if err != nil {
		t.Fatal(err)
	}
	mine.CRL = m.CRL
	dir = filepath.Join(t.TempDir(), "tampered")
	if err := WriteRootMaterial(dir, mine); err != nil {
		t.Fatal(err)
	}
	if _, err := f.a.ImportRootMaterial(dir); err == nil || !strings.Contains(err.Error(), "root.crl") {
		t.Errorf("a swapped CRL: %v", err)
	}
}

// TestRootMaterialRevokesIssuingCA: the compromise ceremony lists the
// issuing CA in the root's CRL and answers "revoked" for it.
func TestRootMaterialRevokesIssuingCA(t *testing.T) {
	f := newFixture(t, nil)
	m, err := f.a.SignRootMaterial(30*24*time.Hour, []string{f.a.IssuingName()})
	if err != nil {
		t.Fatal(err)
	}
	crl, err := x509.ParseRevocationList(m.CRL)
	if err != nil || len(crl.RevokedCertificateEntries) != 1 || crl.RevokedCertificateEntries[0].SerialNumber.Cmp(f.a.Issuing().SerialNumber) != 0 ||
		crl.RevokedCertificateEntries[0].ReasonCode != 2 {
		t.Fatalf("root CRL: %v %+v", err, crl)
	}
	r, err := ocsp.ParseResponseForCert(m.OCSP[SerialHex(f.a.Issuing().SerialNumber)][crypto.SHA1], f.a.Issuing(), f.a.Root())
	if err != nil || r.Status != ocsp.Revoked || r.RevocationReason != ocsp.CACompromise {
		t.Fatalf("OCSP: %v %+v", err, r)
	}
}

// TestRolloverInHalves: prepare makes a key and a CSR (twice: refused);
// the root signs it with the CA's own profile; a CSR naming something
// else, a certificate of another root or for another key is refused at
// its step and changes nothing; the import switches and retires.
func TestRolloverInHalves(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, nil)
	name, csr, err := f.a.PrepareRollover(ctx)
	if err != nil || name != "issuing-2" {
		t.Fatalf("prepare: %s %v", name, err)
	}
	if _, _, err := f.a.PrepareRollover(ctx); !errors.Is(err, zerr.Conflict) {
		t.Errorf("prepared twice: %v", err)
	}
	cert, err := f.a.SignIssuingCSR(csr)
	if err != nil {
		t.Fatal(err)
	}
	if !cert.IsCA || !cert.MaxPathLenZero || cert.CheckSignatureFrom(f.a.Root()) != nil || !strings.HasSuffix(cert.Subject.CommonName, " G2") {
		t.Fatalf("signed: %+v", cert.Subject)
	}
	// Another CA's issuing certificate, and one for another key.
	other := newFixture(t, nil)
	_, ocsr, err := other.a.PrepareRollover(ctx)
	if err != nil {
		t.Fatal(err)
	}
	foreign, err := other.a.SignIssuingCSR(ocsr)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.a.ImportRollover(ctx, foreign, ""); err == nil || !strings.Contains(err.Error(), "not signed by this CA's root") {
		t.Errorf("another root's certificate: %v", err)
	}
	wrongKey, err := f.a.SignIssuingCSR(ocsr) // our root, their key
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.a.ImportRollover(ctx, wrongKey, ""); err == nil || !strings.Contains(err.Error(), "not for the key prepared") {
		t.Errorf("a certificate for another key: %v", err)
	}
	if f.a.IssuingName() != "issuing-1" {
		t.Fatal("a refused import switched")
	}
	// The root's own key, or a current issuing CA's, in a CSR: refused.
	if _, err := f.a.SignIssuingCSR([]byte("garbage")); err == nil {
		t.Error("garbage signed")
	}
	r, err := f.a.ImportRollover(ctx, cert, "")
	if err != nil || r.NewName != "issuing-2" || r.OldName != "issuing-1" {
		t.Fatalf("import: %+v %v", r, err)
	}
	f.a.Close()
	a, err := Open(ctx, f.opts)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if a.IssuingName() != "issuing-2" || len(a.IssuingCAs()) != 2 {
		t.Fatalf("after the import: %s, %d issuing CAs", a.IssuingName(), len(a.IssuingCAs()))
	}
}

// TestRevokedIssuingCAIssuesNothing: once a ceremony's material revoking
// the current issuing CA is imported, issuance is refused with the
// reason until the rollover.
func TestRevokedIssuingCAIssuesNothing(t *testing.T) {
	f := newFixture(t, nil)
	f.addEnterprise(t, "acme", "active")
	m, err := f.a.SignRootMaterial(30*24*time.Hour, []string{f.a.IssuingName()})
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "m")
	if err := WriteRootMaterial(dir, m); err != nil {
		t.Fatal(err)
	}
	if _, err := f.a.ImportRootMaterial(dir); err != nil {
		t.Fatal(err)
	}
	_, err = f.a.Issue(context.Background(), IssueRequest{CSR: makeCSR(t, p256(t)), Username: "acme", Actor: "test"})
	if !errors.Is(err, zerr.Policy) || !strings.Contains(err.Error(), "revoked by a root ceremony") {
		t.Fatalf("issuance from a revoked issuing CA: %v", err)
	}
}

// TestSignIssuingCSRRefusesUnsafe: the ceremony refuses, before signing,
// a CSR with a key of a kind zbca does not use (Ed25519, RSA-1024), one
// not self-signed, and one whose key is the root's.
func TestSignIssuingCSRRefusesUnsafe(t *testing.T) {
	f := newFixture(t, nil)
	name := f.a.opts.Config.Issuing.CommonName + " G2"
	csrWith := func(key crypto.Signer) []byte {
		der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: name}}, key)
		if err != nil {
			t.Fatal(err)
		}
		return der
	}
	_, ed, _ := ed25519.GenerateKey(rand.Reader)
	weak, _ := rsa.GenerateKey(rand.Reader, 1024)
	tampered := csrWith(p256(t))
	tampered[len(tampered)-3] ^= 0xff // the signature
	for what, csr := range map[string][]byte{"Ed25519": csrWith(ed), "RSA-1024": csrWith(weak), "tampered": tampered} {
		if c, err := f.a.SignIssuingCSR(csr); err == nil {
			t.Errorf("%s: signed %s", what, c.Subject)
		}
	}
	if c, err := f.a.SignIssuingCSR(csrWith(f.a.rootSigner)); err == nil || !strings.Contains(err.Error(), "root") {
		t.Errorf("the root's own key: %v %v", c, err)
	}
}
