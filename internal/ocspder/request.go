package ocspder

import (
	"bytes"
	"crypto"
	"errors"

	"golang.org/x/crypto/cryptobyte"
	"golang.org/x/crypto/cryptobyte/asn1"
)

// Limits on request fields.
const (
	// MaxSerialLen is the longest serial magnitude accepted, in octets
	// (RFC 5280 §4.1.2.2).
	MaxSerialLen = 20
	// MaxNonceLen is the longest nonce accepted, in octets (RFC 8954 §2.1).
	MaxNonceLen = 32
)

// ErrMalformed is wrapped by every error ParseRequest returns: the answer
// to such a request is [MalformedRequest] (RFC 6960 §2.3).
var ErrMalformed = errors.New("malformed OCSP request")

// malformedError is an ErrMalformed with a reason. The reasons are package
// variables so that rejecting hostile input allocates nothing.
type malformedError struct{ reason string }

func (e *malformedError) Error() string { return "malformed OCSP request: " + e.reason }
func (e *malformedError) Unwrap() error { return ErrMalformed }

func malformed(reason string) error { return &malformedError{reason} }

var (
	errOCSPRequest    = malformed("bad OCSPRequest SEQUENCE")
	errTrailing       = malformed("trailing data")
	errTBSRequest     = malformed("bad tbsRequest")
	errVersion        = malformed("unsupported version")
	errRequestorName  = malformed("bad requestorName")
	errRequestList    = malformed("bad requestList")
	errEmptyList      = malformed("empty requestList")
	errRequest        = malformed("bad Request")
	errCertID         = malformed("bad CertID")
	errHashAlgorithm  = malformed("bad hashAlgorithm")
	errUnknownHash    = malformed("unsupported hash algorithm")
	errHashLength     = malformed("issuer hash length does not match the hash algorithm")
	errSerial         = malformed("bad serialNumber")
	errSerialSign     = malformed("serialNumber not positive")
	errSerialLength   = malformed("serialNumber longer than 20 octets")
	errExtensions     = malformed("bad extensions")
	errCritical       = malformed("unsupported critical extension")
	errNonce          = malformed("bad nonce extension")
	errNonceLength    = malformed("nonce length not in 1..32 octets")
	errDuplicateNonce = malformed("duplicate nonce extension")
	errSignature      = malformed("bad optionalSignature")
)

// Request is the first CertID of an OCSPRequest plus its nonce.
//
// The byte slices alias the DER passed to ParseRequest: copy them, or keep
// that buffer unchanged, for as long as the Request is used.
type Request struct {
	// HashAlgorithm is crypto.SHA1, SHA256, SHA384 or SHA512, from the
	// CertID's AlgorithmIdentifier (NULL or absent parameters).
	HashAlgorithm crypto.Hash
	// IssuerNameHash and IssuerKeyHash are HashAlgorithm.Size() octets
	// each (RFC 6960 §4.1.1).
	IssuerNameHash []byte
	IssuerKeyHash  []byte
	// Serial is the big-endian magnitude of the positive serialNumber,
	// without leading zeros: 1..MaxSerialLen octets.
	Serial []byte
	// Nonce is the value of the id-pkix-ocsp-nonce requestExtension, the
	// OCTET STRING inside extnValue (RFC 8954 §2.1), 1..MaxNonceLen octets;
	// nil if HasNonce is false.
	Nonce    []byte
	HasNonce bool
}

// ParseRequest parses a DER OCSPRequest (RFC 6960 §4.1.1).
//
// It accepts a version of v1, a requestorName, several Requests (only the
// first CertID is returned, the others are only checked to be DER), request
// and single request extensions, and an optionalSignature, which is not
// verified. Unknown non-critical extensions are ignored; an unknown
// critical one is an error. Every error wraps ErrMalformed.
//
// ParseRequest is strict DER: indefinite or non-minimal lengths, wrong
// tags and trailing data are errors.
func ParseRequest(der []byte) (*Request, error) {
	r := new(Request)
	if err := parseRequest(der, r); err != nil {
		return nil, err
	}
	return r, nil
}

func parseRequest(der []byte, r *Request) error {
	input := cryptobyte.String(der)
	var ocspReq, tbs cryptobyte.String
	if !input.ReadASN1(&ocspReq, asn1.SEQUENCE) {
		return errOCSPRequest
	}
	if !input.Empty() {
		return errTrailing
	}
	if !ocspReq.ReadASN1(&tbs, asn1.SEQUENCE) {
		return errTBSRequest
	}
	// optionalSignature [0] EXPLICIT Signature OPTIONAL: checked for form,
	// not verified (RFC 5019 §2.1.1 clients do not sign).
	if ocspReq.PeekASN1Tag(tagContextCons0) {
		var sig, sigSeq cryptobyte.String
		if !ocspReq.ReadASN1(&sig, tagContextCons0) ||
			!sig.ReadASN1(&sigSeq, asn1.SEQUENCE) || !sig.Empty() {
			return errSignature
		}
	}
	if !ocspReq.Empty() {
		return errTrailing
	}

	// version [0] EXPLICIT Version DEFAULT v1. DER omits it, but some
	// clients write v1 explicitly.
	var version cryptobyte.String
	var hasVersion bool
	if !tbs.ReadOptionalASN1(&version, &hasVersion, tagContextCons0) {
		return errTBSRequest
	}
	if hasVersion && !bytes.Equal(version, []byte{tagInteger, 1, 0}) {
		return errVersion
	}
	// requestorName [1] EXPLICIT GeneralName OPTIONAL.
	if tbs.PeekASN1Tag(tagContextCons1) {
		var name, generalName cryptobyte.String
		if !tbs.ReadASN1(&name, tagContextCons1) ||
			!name.ReadAnyASN1Element(&generalName, nil) || !name.Empty() {
			return errRequestorName
		}
	}
	// requestList SEQUENCE OF Request.
	var list cryptobyte.String
	if !tbs.ReadASN1(&list, asn1.SEQUENCE) {
		return errRequestList
	}
	if list.Empty() {
		return errEmptyList
	}
	for first := true; !list.Empty(); first = false {
		if err := parseSingleRequest(&list, r, first); err != nil {
			return err
		}
	}
	// requestExtensions [2] EXPLICIT Extensions OPTIONAL.
	if tbs.PeekASN1Tag(tagContextCons2) {
		var exts cryptobyte.String
		if !tbs.ReadASN1(&exts, tagContextCons2) {
			return errExtensions
		}
		if err := parseExtensions(exts, r); err != nil {
			return err
		}
	}
	if !tbs.Empty() {
		return errTrailing
	}
	return nil
}

// parseSingleRequest reads one Request from list; the first one fills r.
func parseSingleRequest(list *cryptobyte.String, r *Request, first bool) error {
	var req, certID, alg, oid, nameHash, keyHash, serial cryptobyte.String
	if !list.ReadASN1(&req, asn1.SEQUENCE) {
		return errRequest
	}
	if !req.ReadASN1(&certID, asn1.SEQUENCE) {
		return errCertID
	}
	if !certID.ReadASN1(&alg, asn1.SEQUENCE) ||
		!alg.ReadASN1(&oid, asn1.OBJECT_IDENTIFIER) {
		return errHashAlgorithm
	}
	// Parameters: absent or NULL (RFC 5754 §2).
	if !alg.Empty() && !bytes.Equal(alg, []byte{tagNull, 0}) {
		return errHashAlgorithm
	}
	if !certID.ReadASN1(&nameHash, asn1.OCTET_STRING) ||
		!certID.ReadASN1(&keyHash, asn1.OCTET_STRING) ||
		!certID.ReadASN1(&serial, asn1.INTEGER) ||
		!certID.Empty() {
		return errCertID
	}
	// singleRequestExtensions [0] EXPLICIT Extensions OPTIONAL: none is
	// known, so a critical one is an error.
	if req.PeekASN1Tag(tagContextCons0) {
		var exts cryptobyte.String
		if !req.ReadASN1(&exts, tagContextCons0) {
			return errExtensions
		}
		if err := parseExtensions(exts, nil); err != nil {
			return err
		}
	}
	if !req.Empty() {
		return errRequest
	}
	if !first {
		if !validInteger(serial) {
			return errSerial
		}
		return nil
	}

	hash := crypto.Hash(0)
	for i := range hashAlgorithms {
		if bytes.Equal(oid, hashAlgorithms[i].oid) {
			hash = hashAlgorithms[i].hash
			break
		}
	}
	if hash == 0 {
		return errUnknownHash
	}
	if len(nameHash) != hash.Size() || len(keyHash) != hash.Size() {
		return errHashLength
	}
	mag, err := serialMagnitude(serial)
	if err != nil {
		return err
	}
	r.HashAlgorithm = hash
	r.IssuerNameHash = nameHash
	r.IssuerKeyHash = keyHash
	r.Serial = mag
	return nil
}

// validInteger reports whether n is the content of a DER INTEGER: at least
// one octet, in the minimal two's complement form (X.690 §8.3.2).
func validInteger(n []byte) bool {
	return len(n) == 1 || len(n) > 1 && !(n[0] == 0 && n[1]&0x80 == 0) && !(n[0] == 0xff && n[1]&0x80 != 0)
}

// serialMagnitude checks the contents of a serialNumber INTEGER (X.690
// §8.3: minimal two's complement) and returns its magnitude.
func serialMagnitude(n []byte) ([]byte, error) {
	switch {
	case !validInteger(n):
		return nil, errSerial
	case n[0]&0x80 != 0:
		return nil, errSerialSign
	case n[0] == 0:
		n = n[1:]
	}
	if len(n) == 0 {
		return nil, errSerialSign // zero
	}
	if len(n) > MaxSerialLen {
		return nil, errSerialLength
	}
	return n, nil
}

// parseExtensions reads the contents of an [n] EXPLICIT Extensions field
// (RFC 5280 §4.1). With r nil, no extension is known; otherwise the nonce
// is stored in r.
func parseExtensions(explicit cryptobyte.String, r *Request) error {
	var exts cryptobyte.String
	if !explicit.ReadASN1(&exts, asn1.SEQUENCE) || !explicit.Empty() {
		return errExtensions
	}
	// SIZE (1..MAX), but an empty list is harmless and accepted.
	for !exts.Empty() {
		var ext, oid, value cryptobyte.String
		if !exts.ReadASN1(&ext, asn1.SEQUENCE) ||
			!ext.ReadASN1(&oid, asn1.OBJECT_IDENTIFIER) {
			return errExtensions
		}
		critical := false
		if ext.PeekASN1Tag(asn1.BOOLEAN) && !ext.ReadASN1Boolean(&critical) {
			return errExtensions
		}
		if !ext.ReadASN1(&value, asn1.OCTET_STRING) || !ext.Empty() {
			return errExtensions
		}
		if r != nil && bytes.Equal(oid, oidOCSPNonce[2:]) {
			if r.HasNonce {
				return errDuplicateNonce
			}
			// RFC 8954 §2.1: extnValue is the DER of Nonce ::= OCTET STRING.
			var nonce cryptobyte.String
			if !value.ReadASN1(&nonce, asn1.OCTET_STRING) || !value.Empty() {
				return errNonce
			}
			if len(nonce) == 0 || len(nonce) > MaxNonceLen {
				return errNonceLength
			}
			r.Nonce, r.HasNonce = nonce, true
			continue
		}
		if critical {
			return errCritical
		}
	}
	return nil
}
