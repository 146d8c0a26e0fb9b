package ca

import (
	"crypto"
	"crypto/x509"
	"encoding/hex"

	"github.com/zbca/zbca/internal/crlder"
	"github.com/zbca/zbca/internal/ocspder"
)

// CRLIssuer is a CA as the revocation side sees it: a capability to sign
// CRLs and OCSP responses with the CA's key, and nothing else. The key
// itself is never handed out (a root or issuing key that could sign
// anything — a certificate — stays in this package, or in the HSM).
type CRLIssuer struct {
	// Name is the CRL's name in URLs and in the store: "issuing-1", "root".
	Name string
	Cert *x509.Certificate
	// ID is the CA's SubjectKeyId in hex, as stored with its certificates.
	ID  string
	key crypto.Signer
}

// CanSign reports whether the capability holds a key.
func (c CRLIssuer) CanSign() bool { return c.key != nil }

// NewCRLBuilder starts a CRL of this CA (p's Issuer and Signer are set
// here); see crlder.NewBuilder.
func (c CRLIssuer) NewCRLBuilder(p crlder.Params) (*crlder.Builder, error) {
	p.Issuer, p.Signer = c.Cert, c.key
	return crlder.NewBuilder(p)
}

// BuildEmptyCRL signs a CRL of this CA without entries.
func (c CRLIssuer) BuildEmptyCRL(p crlder.Params) ([]byte, error) {
	p.Issuer, p.Signer = c.Cert, c.key
	return crlder.BuildEmpty(p)
}

// BuildCRL signs a CRL of this CA with entries (the root's: its revoked
// issuing CAs), in serial order.
func (c CRLIssuer) BuildCRL(p crlder.Params, entries []crlder.Entry) ([]byte, error) {
	p.Issuer, p.Signer = c.Cert, c.key
	return crlder.Build(p, crlder.Entries(entries))
}

// OCSPSigner returns a signer of OCSP responses made with this CA's key
// and naming it as the responder (the issuing CA answering for its own
// certificates, the root for the issuing CAs).
func (c CRLIssuer) OCSPSigner() (*ocspder.Signer, error) {
	return ocspder.NewSigner(c.key, c.Cert)
}

// IssuingCAs returns every issuing CA zbca has had, the current one first
// and then the rolled-over ones, newest first, with their signers, for CRLs
// and OCSP.
func (a *Authority) IssuingCAs() []CRLIssuer {
	return append([]CRLIssuer{{Name: a.m.Issuing.Name, Cert: a.issuing, ID: a.issuerID, key: a.issSigner}}, a.retired...)
}

// IssuingCerts returns the certificates of IssuingCAs, in the same order.
func (a *Authority) IssuingCerts() []*x509.Certificate {
	var out []*x509.Certificate
	for _, is := range a.IssuingCAs() {
		out = append(out, is.Cert)
	}
	return out
}

// RootCRLIssuer returns the root for its own CRL, which lists revoked
// issuing CAs. nginx with ssl_crl checks every CA of the chain, so this CRL
// must exist.
func (a *Authority) RootCRLIssuer() CRLIssuer {
	return CRLIssuer{Name: "root", Cert: a.root, ID: hex.EncodeToString(a.root.SubjectKeyId), key: a.rootSigner}
}

// OCSPResponder returns the delegated OCSP signer's certificate and key.
func (a *Authority) OCSPResponder() (*x509.Certificate, crypto.Signer) {
	a.svcMu.RLock()
	defer a.svcMu.RUnlock()
	return a.ocsp, a.ocspSigner
}
