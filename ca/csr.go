package ca

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"fmt"

	"github.com/zbca/zbca/internal/zerr"
)

// MaxCSRSize bounds the size of a CSR accepted from outside.
const MaxCSRSize = 64 << 10

// ParseCSR parses a CSR in PEM ("CERTIFICATE REQUEST" or "NEW CERTIFICATE
// REQUEST") or DER and checks its signature and key. Every failure is of
// kind zerr.BadCSR with a message for the caller.
func ParseCSR(b []byte) (*x509.CertificateRequest, error) {
	csr, err := DecodeCSR(b)
	if err != nil {
		return nil, err
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, zerr.Wrap(zerr.BadCSR, err, "CSR signature does not verify")
	}
	if err := CheckKey(csr.PublicKey); err != nil {
		return nil, err
	}
	return csr, nil
}

// DecodeCSR is ParseCSR without the signature and key checks, for a caller
// that hands the CSR straight to Authority.Issue, which makes them (step 1)
// before anything is written.
func DecodeCSR(b []byte) (*x509.CertificateRequest, error) {
	if len(b) == 0 {
		return nil, zerr.New(zerr.BadCSR, "empty CSR")
	}
	if len(b) > MaxCSRSize {
		return nil, zerr.New(zerr.BadCSR, "CSR larger than %d bytes", MaxCSRSize)
	}
	der := b
	if block, rest := pem.Decode(b); block != nil {
		if block.Type != "CERTIFICATE REQUEST" && block.Type != "NEW CERTIFICATE REQUEST" {
			return nil, zerr.New(zerr.BadCSR, "malformed CSR: PEM block is %q, want CERTIFICATE REQUEST", block.Type)
		}
		if extra, _ := pem.Decode(rest); extra != nil {
			return nil, zerr.New(zerr.BadCSR, "malformed CSR: more than one PEM block")
		}
		der = block.Bytes
	} else if bytes.Contains(b, []byte("-----BEGIN")) {
		return nil, zerr.New(zerr.BadCSR, "malformed CSR: the PEM block cannot be decoded")
	} else if b[0] != 0x30 {
		return nil, zerr.New(zerr.BadCSR, "malformed CSR: neither PEM nor DER")
	}
	csr, err := x509.ParseCertificateRequest(der)
	if err != nil {
		return nil, zerr.Wrap(zerr.BadCSR, err, "malformed CSR")
	}
	return csr, nil
}

// CheckKey enforces the accepted client keys: ECDSA P-256 or P-384, RSA
// 2048–4096 bits with exponent 65537.
func CheckKey(pub any) error {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256(), elliptic.P384():
			return nil
		}
		return zerr.New(zerr.BadCSR, "ECDSA curve %s is not accepted (use P-256 or P-384)", k.Curve.Params().Name)
	case *rsa.PublicKey:
		bits := k.N.BitLen()
		if bits < 2048 || bits > 4096 {
			return zerr.New(zerr.BadCSR, "RSA key of %d bits is not accepted (use 2048 to 4096 bits)", bits)
		}
		if k.E != 65537 {
			return zerr.New(zerr.BadCSR, "RSA public exponent %d is not accepted (use 65537)", k.E)
		}
		return nil
	default:
		return zerr.New(zerr.BadCSR, "key type %s is not accepted (use ECDSA P-256/P-384 or RSA 2048–4096)", keyTypeName(pub))
	}
}

func keyTypeName(pub any) string {
	return fmt.Sprintf("%T", pub)
}
