package crlder

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	encasn1 "encoding/asn1"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"

	"github.com/zbca/zbca/internal/zerr"
)

var (
	oidAuthorityKeyID = encasn1.ObjectIdentifier{2, 5, 29, 35}
	oidCRLNumber      = encasn1.ObjectIdentifier{2, 5, 29, 20}
	oidIDP            = encasn1.ObjectIdentifier{2, 5, 29, 28}

	// AlgorithmIdentifier DER (RFC 5758 §3.2: ECDSA parameters absent;
	// RFC 4055 §5: RSA parameters NULL).
	algECDSASHA256 = []byte{0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02}
	algECDSASHA384 = []byte{0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x03}
	algSHA256RSA   = []byte{0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0b, 0x05, 0x00}
)

// header holds the encoded CRL-wide parts of the TBSCertList:
//
//	TBSCertList ::= SEQUENCE {
//	    version, signature, issuer, thisUpdate, nextUpdate,   -- prefix
//	    revokedCertificates SEQUENCE OF ... OPTIONAL,         -- chunks
//	    crlExtensions [0] EXPLICIT Extensions OPTIONAL }      -- suffix
type header struct {
	signer crypto.Signer
	hash   crypto.Hash
	alg    []byte // signature AlgorithmIdentifier
	prefix []byte
	suffix []byte
}

func newHeader(p Params) (*header, error) {
	h := &header{signer: p.Signer}
	if p.Issuer == nil {
		return nil, badParam("nil issuer certificate")
	}
	if len(p.Issuer.RawSubject) == 0 {
		return nil, badParam("issuer certificate has no RawSubject (parse it from DER)")
	}
	if len(p.Issuer.SubjectKeyId) == 0 {
		return nil, badParam("issuer certificate has no subject key identifier")
	}
	if p.Issuer.KeyUsage != 0 && p.Issuer.KeyUsage&x509.KeyUsageCRLSign == 0 {
		return nil, badParam("issuer certificate lacks the cRLSign key usage")
	}
	if p.Signer == nil {
		return nil, badParam("nil signer")
	}
	pub := p.Signer.Public()
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256():
			h.hash, h.alg = crypto.SHA256, algECDSASHA256
		case elliptic.P384():
			h.hash, h.alg = crypto.SHA384, algECDSASHA384
		default:
			return nil, badParam("unsupported ECDSA curve %s", k.Curve.Params().Name)
		}
	case *rsa.PublicKey:
		h.hash, h.alg = crypto.SHA256, algSHA256RSA
	default:
		return nil, badParam("unsupported signer key type %T", pub)
	}
	if eq, ok := pub.(interface{ Equal(crypto.PublicKey) bool }); !ok || !eq.Equal(p.Issuer.PublicKey) {
		return nil, badParam("signer key does not match the issuer certificate's public key")
	}
	if p.Number == nil {
		return nil, badParam("nil CRL number")
	}
	if p.Number.Sign() < 0 {
		return nil, badParam("negative CRL number")
	}
	if nb := p.Number.Bytes(); len(nb) > 20 || len(nb) == 20 && nb[0]&0x80 != 0 {
		return nil, badParam("CRL number longer than 20 octets (RFC 5280 §5.2.3)")
	}
	if p.ThisUpdate.IsZero() {
		return nil, badParam("zero thisUpdate")
	}
	if p.NextUpdate.IsZero() {
		return nil, badParam("zero nextUpdate")
	}
	if p.NextUpdate.Before(p.ThisUpdate) {
		return nil, badParam("nextUpdate %s is before thisUpdate %s", p.NextUpdate, p.ThisUpdate)
	}
	if idp := p.IDP; idp != nil {
		if idp.URI == "" {
			// A distributionPoint is what partitions the CRL; without it the
			// extension could be an empty SEQUENCE, which §5.2.5 forbids.
			return nil, badParam("issuing distribution point without URI")
		}
		for i := 0; i < len(idp.URI); i++ {
			if c := idp.URI[i]; c <= ' ' || c >= 0x7f {
				return nil, badParam("issuing distribution point URI %q is not printable ASCII (IA5String)", idp.URI)
			}
		}
	}

	// version v2, signature, issuer, thisUpdate, nextUpdate
	pre := append([]byte{tagInteger, 1, 1}, h.alg...)
	pre = append(pre, p.Issuer.RawSubject...)
	var err error
	if pre, err = appendTime(pre, p.ThisUpdate); err != nil {
		return nil, badParam("thisUpdate: %s", err)
	}
	if pre, err = appendTime(pre, p.NextUpdate); err != nil {
		return nil, badParam("nextUpdate: %s", err)
	}
	h.prefix = pre

	if h.suffix, err = crlExtensions(p); err != nil {
		return nil, zerr.Wrap(zerr.Internal, err, "crl: encoding extensions")
	}
	return h, nil
}

// crlExtensions encodes crlExtensions (RFC 5280 §5.2): authorityKeyIdentifier,
// cRLNumber and, when set, the critical issuingDistributionPoint.
func crlExtensions(p Params) ([]byte, error) {
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.Tag(0).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) {
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
			// §5.2.1: AuthorityKeyIdentifier ::= SEQUENCE { keyIdentifier [0] IMPLICIT OCTET STRING }
			addExtension(b, oidAuthorityKeyID, false, func(b *cryptobyte.Builder) {
				b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
					b.AddASN1(cbasn1.Tag(0).ContextSpecific(), func(b *cryptobyte.Builder) {
						b.AddBytes(p.Issuer.SubjectKeyId)
					})
				})
			})
			// §5.2.3: CRLNumber ::= INTEGER (0..MAX)
			addExtension(b, oidCRLNumber, false, func(b *cryptobyte.Builder) {
				b.AddASN1BigInt(p.Number)
			})
			if p.IDP != nil {
				addExtension(b, oidIDP, true, func(b *cryptobyte.Builder) {
					addIDP(b, p.IDP)
				})
			}
		})
	})
	return b.Bytes()
}

// addIDP encodes (RFC 5280 §5.2.5, implicit tags):
//
//	IssuingDistributionPoint ::= SEQUENCE {
//	    distributionPoint     [0] DistributionPointName OPTIONAL,  -- a CHOICE, so tagged explicitly
//	    onlyContainsUserCerts [1] BOOLEAN DEFAULT FALSE, ... }
//	DistributionPointName ::= CHOICE { fullName [0] GeneralNames, ... }
//	GeneralName ::= CHOICE { ..., uniformResourceIdentifier [6] IA5String, ... }
func addIDP(b *cryptobyte.Builder, idp *IssuingDistributionPoint) {
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1(cbasn1.Tag(0).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) {
			b.AddASN1(cbasn1.Tag(0).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) {
				b.AddASN1(cbasn1.Tag(6).ContextSpecific(), func(b *cryptobyte.Builder) {
					b.AddBytes([]byte(idp.URI))
				})
			})
		})
		if idp.OnlyContainsUserCerts { // DER omits DEFAULT values
			b.AddASN1(cbasn1.Tag(1).ContextSpecific(), func(b *cryptobyte.Builder) {
				b.AddUint8(0xff)
			})
		}
	})
}

// addExtension encodes Extension ::= SEQUENCE { extnID, critical DEFAULT
// FALSE, extnValue OCTET STRING } with value written by f.
func addExtension(b *cryptobyte.Builder, oid encasn1.ObjectIdentifier, critical bool, f cryptobyte.BuilderContinuation) {
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1ObjectIdentifier(oid)
		if critical {
			b.AddASN1Boolean(true)
		}
		b.AddASN1(cbasn1.OCTET_STRING, f)
	})
}

// tbsLayout holds the TBSCertList headers, which depend on the entries' size.
type tbsLayout struct {
	seqHdr     []byte // TBSCertList SEQUENCE header
	revokedHdr []byte // revokedCertificates SEQUENCE header; empty when there are no entries
	n          int    // TBSCertList size, header included
}

func (h *header) tbsLayout(entries int) tbsLayout {
	var l tbsLayout
	if entries > 0 {
		l.revokedHdr = appendHeader(nil, tagSequence, entries)
	}
	content := len(h.prefix) + len(l.revokedHdr) + entries + len(h.suffix)
	l.seqHdr = appendHeader(nil, tagSequence, content)
	l.n = len(l.seqHdr) + content
	return l
}

// eachTBS calls f on the TBSCertList, part by part.
func (h *header) eachTBS(l tbsLayout, ents *chunks, f func([]byte)) {
	f(l.seqHdr)
	f(h.prefix)
	f(l.revokedHdr)
	ents.each(f)
	f(h.suffix)
}

func (h *header) digest(l tbsLayout, ents *chunks) []byte {
	hf := h.hash.New()
	h.eachTBS(l, ents, func(b []byte) { hf.Write(b) })
	return hf.Sum(nil)
}

// sign signs digest and checks the signature against the signer's public key,
// so that a faulty signer (an HSM, a remote KMS) cannot publish a CRL that
// nobody can verify.
func (h *header) sign(digest []byte) ([]byte, error) {
	sig, err := h.signer.Sign(randReader, digest, h.hash)
	if err != nil {
		return nil, zerr.Wrap(zerr.Internal, err, "crl: signing")
	}
	ok := false
	switch k := h.signer.Public().(type) {
	case *ecdsa.PublicKey:
		ok = ecdsa.VerifyASN1(k, digest, sig)
	case *rsa.PublicKey:
		ok = rsa.VerifyPKCS1v15(k, h.hash, digest, sig) == nil
	}
	if !ok {
		return nil, zerr.New(zerr.Internal, "crl: signer returned a signature that does not verify")
	}
	return sig, nil
}

// lead is the most the CertificateList and TBSCertList headers, the prefix
// and the revokedCertificates header can take before the first entry.
func (h *header) lead() int { return 3*maxHeaderLen + len(h.prefix) }

// tail is the most the suffix, the signature algorithm and the signature
// BIT STRING can take after the last entry.
func (h *header) tail() int { return len(h.suffix) + len(h.alg) + maxHeaderLen + 1 + maxSigLen }

const (
	maxHeaderLen = 6    // tag and a length of up to 4 octets
	maxSigLen    = 1024 // RSA-8192, more than any key zbca accepts
)

// assemble writes CertificateList ::= SEQUENCE { tbsCertList,
// signatureAlgorithm, signatureValue BIT STRING } (RFC 5280 §5.1.1).
func (h *header) assemble(l tbsLayout, ents *chunks, sig []byte) ([]byte, error) {
	bitsLen := 1 + len(sig)
	content := l.n + len(h.alg) + headerLen(bitsLen) + bitsLen
	total := headerLen(content) + content
	if buf, ok := ents.whole(); ok && len(sig) <= maxSigLen {
		// In place: the headers go into the lead, right before the
		// entries, and the rest after them.
		var head []byte
		head = appendHeader(head, tagSequence, content)
		head = append(head, l.seqHdr...)
		head = append(head, h.prefix...)
		head = append(head, l.revokedHdr...)
		start := ents.lead - len(head)
		copy(buf[start:], head)
		out := append(buf, h.suffix...)
		out = append(out, h.alg...)
		out = appendHeader(out, tagBitString, bitsLen)
		out = append(out, 0)
		out = append(out, sig...)
		out = out[start:]
		if len(out) != total {
			return nil, zerr.New(zerr.Internal, "crl: encoded %d bytes, expected %d", len(out), total)
		}
		return out[:total:total], nil
	}
	out := make([]byte, 0, total)
	out = appendHeader(out, tagSequence, content)
	h.eachTBS(l, ents, func(b []byte) { out = append(out, b...) })
	out = append(out, h.alg...)
	out = appendHeader(out, tagBitString, bitsLen)
	out = append(out, 0) // no unused bits
	out = append(out, sig...)
	if len(out) != total || cap(out) != total {
		return nil, zerr.New(zerr.Internal, "crl: encoded %d bytes, expected %d", len(out), total)
	}
	return out, nil
}
