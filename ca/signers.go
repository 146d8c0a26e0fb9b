package ca

import (
	"crypto"
	"crypto/x509"
	"encoding/hex"
)

// CRLIssuer is a CA that signs CRLs: the signer is used through the
// crypto.Signer interface only; the key stays here (or in the HSM).
type CRLIssuer struct {
	// Name is the CRL's name in URLs and in the store: "issuing-1", "root".
	Name string
	Cert *x509.Certificate
	// ID is the CA's SubjectKeyId in hex, as stored with its certificates.
	ID     string
	Signer crypto.Signer
}

// IssuingCAs returns every issuing CA zbca has had, the current one first
// and then the rolled-over ones, newest first, with their signers, for CRLs
// and OCSP.
func (a *Authority) IssuingCAs() []CRLIssuer {
	return append([]CRLIssuer{{Name: a.m.Issuing.Name, Cert: a.issuing, ID: a.issuerID, Signer: a.issSigner}}, a.retired...)
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
	return CRLIssuer{Name: "root", Cert: a.root, ID: hex.EncodeToString(a.root.SubjectKeyId), Signer: a.rootSigner}
}

// OCSPResponder returns the delegated OCSP signer's certificate and key.
func (a *Authority) OCSPResponder() (*x509.Certificate, crypto.Signer) {
	a.svcMu.RLock()
	defer a.svcMu.RUnlock()
	return a.ocsp, a.ocspSigner
}
