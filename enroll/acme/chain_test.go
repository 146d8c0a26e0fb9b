package acme

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"testing"
	"time"
)

// TestIssuerPEM: after a rollover, a certificate is downloaded with the
// issuing CA that signed it, not the current one.
func TestIssuerPEM(t *testing.T) {
	mk := func(cn string, parent *x509.Certificate, parentKey *ecdsa.PrivateKey, ca bool, ski []byte) (*x509.Certificate, *ecdsa.PrivateKey) {
		k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: cn}, NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour),
			IsCA: ca, BasicConstraintsValid: true, SubjectKeyId: ski, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
		if parent == nil {
			parent, parentKey = tmpl, k
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &k.PublicKey, parentKey)
		if err != nil {
			t.Fatal(err)
		}
		c, _ := x509.ParseCertificate(der)
		return c, k
	}
	oldCA, oldKey := mk("old", nil, nil, true, []byte{1})
	newCA, newKey := mk("new", nil, nil, true, []byte{2})
	oldLeaf, _ := mk("a", oldCA, oldKey, false, nil)
	newLeaf, _ := mk("b", newCA, newKey, false, nil)
	s := &Server{}
	s.issuingPEM, s.currentPEM = issuerPEMs([]*x509.Certificate{newCA, oldCA})
	pemOf := func(c *x509.Certificate) []byte {
		return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
	}
	for name, tc := range map[string]struct {
		der  []byte
		want *x509.Certificate
	}{"old": {oldLeaf.Raw, oldCA}, "new": {newLeaf.Raw, newCA}, "garbage": {[]byte("x"), newCA}} {
		if got := s.issuerPEM(tc.der); !bytes.Equal(got, pemOf(tc.want)) {
			t.Errorf("%s: got the wrong issuing CA", name)
		}
	}
}
