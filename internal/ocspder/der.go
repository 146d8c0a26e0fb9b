package ocspder

import (
	"crypto"
	"time"
)

// DER tags used here (X.690 §8.1.2), identifier octets as written on the wire.
const (
	tagInteger          = 0x02
	tagBitString        = 0x03
	tagOctetString      = 0x04
	tagNull             = 0x05
	tagOID              = 0x06
	tagEnumerated       = 0x0a
	tagGeneralizedTime  = 0x18
	tagSequence         = 0x30
	tagContext0         = 0x80 // [0] IMPLICIT, primitive
	tagContext2         = 0x82 // [2] IMPLICIT, primitive
	tagContextCons0     = 0xa0 // [0], constructed
	tagContextCons1     = 0xa1 // [1], constructed
	tagContextCons2     = 0xa2 // [2], constructed
	generalizedTimeSize = 15   // YYYYMMDDHHMMSSZ
)

// Object identifiers, as the complete DER TLV (tag 06, length, value).
var (
	// id-pkix-ocsp-basic, RFC 6960 §4.2.1.
	oidOCSPBasic = []byte{tagOID, 9, 0x2b, 6, 1, 5, 5, 7, 48, 1, 1}
	// id-pkix-ocsp-nonce, RFC 6960 §4.4.1, RFC 8954.
	oidOCSPNonce = []byte{tagOID, 9, 0x2b, 6, 1, 5, 5, 7, 48, 1, 2}
	// id-pkix-ocsp-extended-revoke, RFC 6960 §4.4.8.
	oidOCSPExtendedRevoke = []byte{tagOID, 9, 0x2b, 6, 1, 5, 5, 7, 48, 1, 9}
)

// hashAlgorithms maps the CertID hash algorithms this package accepts to
// the value of their OID (without tag and length), and back.
var hashAlgorithms = [...]struct {
	hash crypto.Hash
	oid  []byte
	// algID is the complete AlgorithmIdentifier written in responses,
	// with NULL parameters like openssl and x/crypto/ocsp write them.
	algID []byte
}{
	{crypto.SHA1, []byte{0x2b, 14, 3, 2, 26},
		[]byte{tagSequence, 9, tagOID, 5, 0x2b, 14, 3, 2, 26, tagNull, 0}},
	{crypto.SHA256, []byte{0x60, 0x86, 0x48, 1, 0x65, 3, 4, 2, 1},
		[]byte{tagSequence, 13, tagOID, 9, 0x60, 0x86, 0x48, 1, 0x65, 3, 4, 2, 1, tagNull, 0}},
	{crypto.SHA384, []byte{0x60, 0x86, 0x48, 1, 0x65, 3, 4, 2, 2},
		[]byte{tagSequence, 13, tagOID, 9, 0x60, 0x86, 0x48, 1, 0x65, 3, 4, 2, 2, tagNull, 0}},
	{crypto.SHA512, []byte{0x60, 0x86, 0x48, 1, 0x65, 3, 4, 2, 3},
		[]byte{tagSequence, 13, tagOID, 9, 0x60, 0x86, 0x48, 1, 0x65, 3, 4, 2, 3, tagNull, 0}},
}

// hashAlgID returns the AlgorithmIdentifier DER for h, or nil if h is not
// a CertID hash this package supports.
func hashAlgID(h crypto.Hash) []byte {
	for i := range hashAlgorithms {
		if hashAlgorithms[i].hash == h {
			return hashAlgorithms[i].algID
		}
	}
	return nil
}

// tlvSize is the size of a TLV with a one-octet tag and n content octets.
func tlvSize(n int) int {
	switch {
	case n < 0x80:
		return 2 + n
	case n <= 0xff:
		return 3 + n
	case n <= 0xffff:
		return 4 + n
	case n <= 0xffffff:
		return 5 + n
	default:
		return 6 + n
	}
}

// appendHeader appends a one-octet tag and the DER length n (X.690 §10.1).
func appendHeader(b []byte, tag byte, n int) []byte {
	switch {
	case n < 0x80:
		return append(b, tag, byte(n))
	case n <= 0xff:
		return append(b, tag, 0x81, byte(n))
	case n <= 0xffff:
		return append(b, tag, 0x82, byte(n>>8), byte(n))
	case n <= 0xffffff:
		return append(b, tag, 0x83, byte(n>>16), byte(n>>8), byte(n))
	default:
		return append(b, tag, 0x84, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	}
}

// appendGeneralizedTime appends t as a GeneralizedTime TLV in the form RFC
// 5280 §4.1.2.5.2 requires (UTC, "Z", whole seconds; fractions dropped).
// The caller has checked that the year is in 0..9999.
func appendGeneralizedTime(b []byte, t time.Time) []byte {
	t = t.UTC()
	year, month, day := t.Date()
	hour, minute, sec := t.Clock()
	return append(b, tagGeneralizedTime, generalizedTimeSize,
		byte('0'+year/1000), byte('0'+year/100%10), byte('0'+year/10%10), byte('0'+year%10),
		byte('0'+int(month)/10), byte('0'+int(month)%10),
		byte('0'+day/10), byte('0'+day%10),
		byte('0'+hour/10), byte('0'+hour%10),
		byte('0'+minute/10), byte('0'+minute%10),
		byte('0'+sec/10), byte('0'+sec%10),
		'Z')
}

// validTime reports whether t can be written as a GeneralizedTime.
func validTime(t time.Time) bool {
	y := t.UTC().Year()
	return !t.IsZero() && y >= 0 && y <= 9999
}
