package ocspder

import (
	"crypto"
	"errors"
	"time"
)

// Certificate statuses, the CertStatus CHOICE of RFC 6960 §4.2.1.
const (
	Good    = 0
	Revoked = 1
	Unknown = 2
)

// NoReason in Response.Reason omits the revocationReason field.
const NoReason = -1

// ReasonCertificateHold is the CRLReason for a serial that was never issued
// (RFC 6960 §2.2).
const ReasonCertificateHold = 6

// NotIssuedRevokedAt is the revocationTime of a serial that was never
// issued (RFC 6960 §2.2): 1970-01-01T00:00:00Z.
var NotIssuedRevokedAt = time.Unix(0, 0).UTC()

// Response describes one SingleResponse and the ResponseData around it
// (RFC 6960 §4.2.1).
type Response struct {
	// Status is Good, Revoked or Unknown.
	Status int
	// HashAlgorithm, IssuerNameHash, IssuerKeyHash and Serial form the
	// CertID; they echo the request. Serial is a big-endian magnitude
	// (leading zeros are dropped), 1..MaxSerialLen octets.
	HashAlgorithm                 crypto.Hash
	IssuerNameHash, IssuerKeyHash []byte
	Serial                        []byte
	// RevokedAt and Reason are used for Revoked only. Reason is NoReason
	// (-1) to omit revocationReason, otherwise a CRLReason: 0..10 but not 7
	// (RFC 5280 §5.3.1). Mind the zero value: it writes unspecified (0),
	// which RFC 5280 §5.3.1 says SHOULD rather be absent.
	RevokedAt time.Time
	Reason    int
	// ThisUpdate, NextUpdate and ProducedAt are written as GeneralizedTime
	// in UTC with whole seconds (RFC 5280 §4.1.2.5.2); fractions are
	// dropped. All three are required: RFC 5019 §2.2.4 responses always
	// carry nextUpdate.
	ThisUpdate, NextUpdate, ProducedAt time.Time
	// Nonce, if non-nil, is echoed in an id-pkix-ocsp-nonce
	// responseExtension (RFC 8954 §2.1): 1..MaxNonceLen octets.
	Nonce []byte
	// ExtendedRevoke adds the id-pkix-ocsp-extended-revoke
	// responseExtension (RFC 6960 §4.4.8).
	ExtendedRevoke bool
}

// MarkNotIssued turns r into the answer for a serial that was never issued:
// revoked at NotIssuedRevokedAt for certificateHold, with the extended
// revoke extension (RFC 6960 §2.2, §4.4.8).
func (r *Response) MarkNotIssued() {
	r.Status = Revoked
	r.RevokedAt = NotIssuedRevokedAt
	r.Reason = ReasonCertificateHold
	r.ExtendedRevoke = true
}

// ErrInvalidResponse is wrapped by the errors SignBody returns for invalid
// Response fields, as opposed to failures of the key.
var ErrInvalidResponse = errors.New("ocspder: invalid response")

func invalid(reason string) error { return &invalidError{reason} }

type invalidError struct{ reason string }

func (e *invalidError) Error() string { return "ocspder: invalid response: " + e.reason }
func (e *invalidError) Unwrap() error { return ErrInvalidResponse }

// tbsLayout holds the content sizes of a ResponseData, computed before
// writing so that every header is written once, in order.
type tbsLayout struct {
	algID       []byte
	serial      []byte // magnitude
	serialPad   bool   // a 0x00 octet keeps the INTEGER positive
	certID      int    // CertID content size
	revoked     int    // RevokedInfo content size (Revoked only)
	single      int    // SingleResponse content size
	extList     int    // Extensions SEQUENCE content size, 0 if none
	tbs         int    // ResponseData content size
	nonceExtLen int    // Extension content size for the nonce
}

// Sizes of fixed parts.
const (
	generalizedTimeTLV = 2 + generalizedTimeSize
	// extended revoke: SEQUENCE { OID, OCTET STRING { NULL } }
	extendedRevokeContent = 11 + 4
)

// layout validates r and computes the ResponseData sizes.
func layout(r *Response, responderIDLen int) (tbsLayout, error) {
	var l tbsLayout
	l.algID = hashAlgID(r.HashAlgorithm)
	if l.algID == nil {
		return l, invalid("unsupported hash algorithm")
	}
	if len(r.IssuerNameHash) != r.HashAlgorithm.Size() || len(r.IssuerKeyHash) != r.HashAlgorithm.Size() {
		return l, invalid("issuer hash length does not match the hash algorithm")
	}
	l.serial = r.Serial
	for len(l.serial) > 0 && l.serial[0] == 0 {
		l.serial = l.serial[1:]
	}
	if len(l.serial) == 0 {
		return l, invalid("zero or empty serial")
	}
	if len(l.serial) > MaxSerialLen {
		return l, invalid("serial longer than 20 octets")
	}
	l.serialPad = l.serial[0]&0x80 != 0
	serialLen := len(l.serial)
	if l.serialPad {
		serialLen++
	}
	l.certID = len(l.algID) + 2*tlvSize(r.HashAlgorithm.Size()) + tlvSize(serialLen)

	var status int
	switch r.Status {
	case Good, Unknown:
		status = 2 // [0] or [2] IMPLICIT NULL
	case Revoked:
		if !validTime(r.RevokedAt) {
			return l, invalid("bad revocation time")
		}
		l.revoked = generalizedTimeTLV
		switch {
		case r.Reason == NoReason:
		case r.Reason >= 0 && r.Reason <= 10 && r.Reason != 7:
			l.revoked += 5 // [0] EXPLICIT ENUMERATED
		default:
			return l, invalid("bad revocation reason")
		}
		status = tlvSize(l.revoked)
	default:
		return l, invalid("bad status")
	}
	if !validTime(r.ThisUpdate) || !validTime(r.NextUpdate) || !validTime(r.ProducedAt) {
		return l, invalid("missing or out of range thisUpdate, nextUpdate or producedAt")
	}
	if r.NextUpdate.Before(r.ThisUpdate) {
		return l, invalid("nextUpdate before thisUpdate")
	}
	l.single = tlvSize(l.certID) + status + generalizedTimeTLV + tlvSize(generalizedTimeTLV)

	if r.Nonce != nil {
		if len(r.Nonce) == 0 || len(r.Nonce) > MaxNonceLen {
			return l, invalid("nonce length not in 1..32 octets")
		}
		l.nonceExtLen = len(oidOCSPNonce) + tlvSize(tlvSize(len(r.Nonce)))
		l.extList += tlvSize(l.nonceExtLen)
	}
	if r.ExtendedRevoke {
		l.extList += tlvSize(extendedRevokeContent)
	}
	l.tbs = responderIDLen + generalizedTimeTLV + tlvSize(tlvSize(l.single))
	if l.extList > 0 {
		l.tbs += tlvSize(tlvSize(l.extList))
	}
	return l, nil
}

// size is the size of the complete ResponseData TLV.
func (l *tbsLayout) size() int { return tlvSize(l.tbs) }

// appendTBS appends the ResponseData (RFC 6960 §4.2.1) laid out by l.
// responderID is the complete ResponderID TLV.
func (l *tbsLayout) appendTBS(b []byte, r *Response, responderID []byte) []byte {
	b = appendHeader(b, tagSequence, l.tbs)
	// version v1 is the DEFAULT and is omitted.
	b = append(b, responderID...)
	b = appendGeneralizedTime(b, r.ProducedAt)
	b = appendHeader(b, tagSequence, tlvSize(l.single)) // responses
	b = appendHeader(b, tagSequence, l.single)

	// CertID (RFC 6960 §4.1.1).
	b = appendHeader(b, tagSequence, l.certID)
	b = append(b, l.algID...)
	b = appendHeader(b, tagOctetString, len(r.IssuerNameHash))
	b = append(b, r.IssuerNameHash...)
	b = appendHeader(b, tagOctetString, len(r.IssuerKeyHash))
	b = append(b, r.IssuerKeyHash...)
	if l.serialPad {
		b = appendHeader(b, tagInteger, len(l.serial)+1)
		b = append(b, 0)
	} else {
		b = appendHeader(b, tagInteger, len(l.serial))
	}
	b = append(b, l.serial...)

	// certStatus: the module uses IMPLICIT tags for the CHOICE arms.
	switch r.Status {
	case Good:
		b = append(b, tagContext0, 0)
	case Unknown:
		b = append(b, tagContext2, 0)
	case Revoked:
		b = appendHeader(b, tagContextCons1, l.revoked)
		b = appendGeneralizedTime(b, r.RevokedAt)
		if r.Reason != NoReason {
			b = append(b, tagContextCons0, 3, tagEnumerated, 1, byte(r.Reason))
		}
	}
	b = appendGeneralizedTime(b, r.ThisUpdate)
	b = append(b, tagContextCons0, generalizedTimeTLV)
	b = appendGeneralizedTime(b, r.NextUpdate)

	// responseExtensions [1] EXPLICIT Extensions OPTIONAL.
	if l.extList > 0 {
		b = appendHeader(b, tagContextCons1, tlvSize(l.extList))
		b = appendHeader(b, tagSequence, l.extList)
		if r.Nonce != nil {
			// RFC 8954 §2.1: extnValue OCTET STRING wraps Nonce ::= OCTET STRING.
			b = appendHeader(b, tagSequence, l.nonceExtLen)
			b = append(b, oidOCSPNonce...)
			b = appendHeader(b, tagOctetString, tlvSize(len(r.Nonce)))
			b = appendHeader(b, tagOctetString, len(r.Nonce))
			b = append(b, r.Nonce...)
		}
		if r.ExtendedRevoke {
			b = append(b, tagSequence, extendedRevokeContent)
			b = append(b, oidOCSPExtendedRevoke...)
			b = append(b, tagOctetString, 2, tagNull, 0)
		}
	}
	return b
}
