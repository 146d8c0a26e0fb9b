// Package crlder encodes and signs very large X.509 CRLs (RFC 5280 §5)
// without encoding/asn1 reflection.
//
// Entries are pulled from an iterator and append-encoded into a list of
// chunks; the TBSCertList is hashed straight from those chunks, the digest is
// signed, and the CertificateList is then written into one allocation of its
// exact size. Peak memory is therefore about twice the encoded size of the
// entries (about 37 bytes each for 16-byte serials, 10% with a reason),
// instead of the per-entry structs and reflection garbage of
// x509.CreateRevocationList. The TBSCertList is byte-identical to the one
// x509.CreateRevocationList writes for the same input.
package crlder

import (
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"math/big"
	"time"

	"github.com/zbca/zbca/internal/zerr"
)

// Entry is one revoked certificate.
type Entry struct {
	// Serial is the big-endian magnitude of the positive serial, without
	// leading zero bytes (1..20 bytes). A serial whose first byte has the high
	// bit set is encoded with a leading 0x00 octet, as DER requires.
	Serial []byte
	// RevokedAt is the revocationDate, encoded in UTC to the second as UTCTime
	// for 1950 through 2049 and as GeneralizedTime otherwise
	// (RFC 5280 §5.1.2.6, §4.1.2.5). Fractional seconds are dropped.
	RevokedAt time.Time
	// Reason is the CRLReason (RFC 5280 §5.3.1). 0 (unspecified) omits the
	// reasonCode entry extension, as RFC 5280 recommends. 7 is unassigned and
	// 8 (removeFromCRL) belongs to delta CRLs only, which this package does not
	// produce: both are refused.
	Reason int
}

// IssuingDistributionPoint is the critical IDP extension (RFC 5280 §5.2.5) of
// a partitioned CRL.
type IssuingDistributionPoint struct {
	URI                   string // distributionPoint fullName uniformResourceIdentifier
	OnlyContainsUserCerts bool
}

// Params are the CRL-wide fields.
type Params struct {
	// Issuer is the CRL issuer's certificate, parsed from DER: its RawSubject
	// is the CRL issuer name and its SubjectKeyId goes into the
	// authorityKeyIdentifier extension (RFC 5280 §5.2.1).
	Issuer *x509.Certificate
	// Signer is the issuer's key: ECDSA P-256 (ecdsa-with-SHA256), ECDSA
	// P-384 (ecdsa-with-SHA384) or RSA (sha256WithRSAEncryption). Its public
	// key must be Issuer's.
	Signer crypto.Signer
	// Number is the cRLNumber (RFC 5280 §5.2.3): non-negative and at most 20
	// octets once DER-encoded.
	Number     *big.Int
	ThisUpdate time.Time // RFC 5280 §5.1.2.4
	NextUpdate time.Time // RFC 5280 §5.1.2.5; not before ThisUpdate
	// IDP, when set, adds a critical issuingDistributionPoint extension.
	IDP *IssuingDistributionPoint
	// EntriesHint, when positive, is about how many entries next yields
	// (a count taken just before). Build then writes the entries straight
	// into the buffer it returns, with room for the headers before them and
	// the signature after, instead of copying them once more at the end:
	// the peak memory of a large CRL is one copy of it instead of two. A
	// wrong hint costs memory or that copy, never correctness.
	EntriesHint int
}

// Build encodes and signs a CRL v2 with the entries yielded by next (called
// until it returns false) and returns its DER.
//
// Build consumes each Entry before calling next again, so next may reuse the
// Serial slice between calls. When next yields no entry, the
// revokedCertificates field is omitted (RFC 5280 §5.1.2.6). Invalid
// parameters or entries return an error of kind zerr.BadRequest that names the
// offending entry by its position (0-based); a signer failure returns
// zerr.Internal. Build keeps no state and may run concurrently if Signer
// allows it.
func Build(p Params, next func() (Entry, bool)) ([]byte, error) {
	if next == nil {
		return nil, zerr.New(zerr.BadRequest, "crl: nil entry iterator (use BuildEmpty for an empty CRL)")
	}
	b, err := NewBuilder(p)
	if err != nil {
		return nil, err
	}
	for {
		e, ok := next()
		if !ok {
			break
		}
		if err := b.Add(&e); err != nil {
			return nil, err
		}
	}
	return b.Finish()
}

// Builder is Build turned around, for a caller that pushes entries: one
// pass over the revoked certificates can then feed several CRLs (a full CRL
// and its partitions). Add the entries in order, then call Finish once. A
// Builder is not safe for concurrent use; distinct Builders are
// independent.
type Builder struct {
	h    *header
	ents chunks
	n    int // entries added
}

// NewBuilder checks the parameters and encodes the CRL-wide fields, so that
// a bad parameter fails before any entry is read. Errors are as Build's.
func NewBuilder(p Params) (*Builder, error) {
	h, err := newHeader(p)
	if err != nil {
		return nil, err
	}
	b := &Builder{h: h}
	if p.EntriesHint > 0 {
		b.ents.reserve(h.lead(), p.EntriesHint+p.EntriesHint/64+64, h.tail())
	}
	return b, nil
}

// Add encodes one entry; it does not keep e or its Serial slice. An invalid
// entry returns a zerr.BadRequest error naming its position and adds
// nothing.
func (b *Builder) Add(e *Entry) error {
	if err := b.ents.appendEntry(e); err != nil {
		return zerr.New(zerr.BadRequest, "crl entry %d (serial %x): %s", b.n, e.Serial, err)
	}
	b.n++
	return nil
}

// Len is the number of entries added.
func (b *Builder) Len() int { return b.n }

// Finish hashes the TBSCertList from its parts, signs it, checks the
// signature and writes the CertificateList in one allocation. The Builder
// must not be used afterwards.
func (b *Builder) Finish() ([]byte, error) {
	tbs := b.h.tbsLayout(b.ents.n)
	digest := b.h.digest(tbs, &b.ents)
	sig, err := b.h.sign(digest)
	if err != nil {
		return nil, err
	}
	return b.h.assemble(tbs, &b.ents, sig)
}

// BuildEmpty encodes and signs a CRL without entries: its revokedCertificates
// field is absent, as RFC 5280 §5.1.2.6 requires.
func BuildEmpty(p Params) ([]byte, error) {
	return Build(p, func() (Entry, bool) { return Entry{}, false })
}

// Entries returns an iterator over es for Build.
func Entries(es []Entry) func() (Entry, bool) {
	i := 0
	return func() (Entry, bool) {
		if i >= len(es) {
			return Entry{}, false
		}
		i++
		return es[i-1], true
	}
}

// badParam returns a zerr.BadRequest error about Params.
func badParam(format string, args ...any) error {
	return zerr.New(zerr.BadRequest, "crl: "+format, args...)
}

// errString is a constant error, so that checking an entry never allocates;
// Build adds the entry's position and serial only when one fails.
type errString string

func (e errString) Error() string { return string(e) }

// randReader is the randomness given to Signer.Sign.
var randReader = rand.Reader
