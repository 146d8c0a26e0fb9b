package verify

import (
	"bytes"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// Input limits.
const (
	// MaxInput bounds the certificate field: a leaf and its chain in PEM
	// take 2–6 KB.
	MaxInput = 64 << 10
	// MaxChain bounds the certificates in one input (the leaf included).
	MaxChain = 10
)

// errEmpty is the malformed detail of an empty certificate.
var errEmpty = errors.New("no certificate")

// splitInput finds the certificates in a verification request: PEM
// CERTIFICATE blocks (text around them is ignored, as openssl does), or
// base64 (standard or URL alphabet, padding and line breaks optional) of
// one or more concatenated DER certificates. It returns the leaf's DER and
// the number of certificates; it parses nothing beyond the outer DER
// structure. The error is the detail of a malformed answer.
func splitInput(in []byte) (leaf []byte, n int, err error) {
	in = bytes.TrimSpace(in)
	switch {
	case len(in) == 0:
		return nil, 0, errEmpty
	case len(in) > MaxInput:
		return nil, 0, fmt.Errorf("certificate input larger than %d bytes", MaxInput)
	case bytes.Contains(in, []byte("-----BEGIN")):
		return splitPEM(in)
	}
	der, err := decodeBase64(in)
	if err != nil {
		return nil, 0, errors.New("neither PEM nor base64 DER")
	}
	return splitDER(der)
}

func splitPEM(in []byte) ([]byte, int, error) {
	var leaf []byte
	n := 0
	rest := in
	for {
		blk, r := pem.Decode(rest)
		if blk == nil {
			break
		}
		rest = r
		if blk.Type != "CERTIFICATE" {
			return nil, 0, fmt.Errorf("PEM block %q is not a CERTIFICATE", truncate(blk.Type, 40))
		}
		if n++; n > MaxChain {
			return nil, 0, fmt.Errorf("more than %d certificates", MaxChain)
		}
		if leaf == nil {
			leaf = blk.Bytes
		}
	}
	if leaf == nil {
		return nil, 0, errors.New("the PEM block cannot be decoded")
	}
	if bytes.Contains(rest, []byte("-----BEGIN")) {
		return nil, 0, errors.New("a PEM block cannot be decoded")
	}
	return leaf, n, nil
}

// splitDER splits concatenated DER certificates (each an ASN.1 SEQUENCE).
func splitDER(der []byte) ([]byte, int, error) {
	s := cryptobyte.String(der)
	var leaf []byte
	n := 0
	for !s.Empty() {
		var el cryptobyte.String
		if !s.ReadASN1Element(&el, cbasn1.SEQUENCE) {
			return nil, 0, errors.New("not DER: expected a certificate (ASN.1 SEQUENCE)")
		}
		if n++; n > MaxChain {
			return nil, 0, fmt.Errorf("more than %d certificates", MaxChain)
		}
		if leaf == nil {
			leaf = el
		}
	}
	if leaf == nil {
		return nil, 0, errEmpty
	}
	return leaf, n, nil
}

// decodeBase64 accepts the standard and URL alphabets, with or without
// padding, with line breaks and spaces anywhere.
func decodeBase64(in []byte) ([]byte, error) {
	clean := make([]byte, 0, len(in))
	url := false
	for _, c := range in {
		switch {
		case c == ' ' || c == '\t' || c == '\r' || c == '\n':
			continue
		case c == '-' || c == '_':
			url = true
		case c == '=':
			continue
		}
		clean = append(clean, c)
	}
	enc := base64.RawStdEncoding
	if url {
		enc = base64.RawURLEncoding
	}
	out := make([]byte, enc.DecodedLen(len(clean)))
	n, err := enc.Decode(out, clean)
	return out[:n], err
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}
