package ocspder

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"errors"
	"fmt"
	"slices"

	"golang.org/x/crypto/cryptobyte"
	"golang.org/x/crypto/cryptobyte/asn1"
)

// Signature AlgorithmIdentifiers, complete DER. ECDSA ones have absent
// parameters (RFC 5758 §3.2), RSA ones NULL (RFC 4055 §5).
var (
	algECDSAWithSHA256 = []byte{tagSequence, 10, tagOID, 8, 0x2a, 0x86, 0x48, 0xce, 0x3d, 4, 3, 2}
	algECDSAWithSHA384 = []byte{tagSequence, 10, tagOID, 8, 0x2a, 0x86, 0x48, 0xce, 0x3d, 4, 3, 3}
	algSHA256WithRSA   = []byte{tagSequence, 13, tagOID, 9, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 1, 1, 11, tagNull, 0}
)

// Signer signs responses as one responder identity. It is immutable and
// safe for concurrent use if its crypto.Signer is (software ECDSA and RSA
// keys are).
type Signer struct {
	key         crypto.Signer
	hash        crypto.Hash
	sigAlg      []byte // signatureAlgorithm TLV
	maxSig      int    // largest signature the key makes, in octets
	responderID []byte // ResponderID TLV: byKey [2] EXPLICIT OCTET STRING
	certs       []byte // certs field TLV: [0] EXPLICIT SEQUENCE OF Certificate, or nil
}

// NewSigner prepares a signer for key.
//
// The ResponderID is byKey: the SHA-1 of the value of the subjectPublicKey
// BIT STRING of responderCert (RFC 6960 §4.2.1); with responderCert nil it
// is computed from key.Public(), otherwise responderCert must hold that key.
// The signature algorithm follows the key: ecdsa-with-SHA256 for P-256,
// ecdsa-with-SHA384 for P-384, sha256WithRSAEncryption for RSA of at least
// 2048 bits. certs are the DER certificates for BasicOCSPResponse.certs,
// normally the delegated responder certificate (RFC 6960 §4.2.2.2); they
// may be empty when the issuing CA signs responses itself.
func NewSigner(key crypto.Signer, responderCert *x509.Certificate, certs ...[]byte) (*Signer, error) {
	if key == nil {
		return nil, errors.New("ocspder: nil key")
	}
	s := &Signer{key: key}
	pub := key.Public()
	switch pub := pub.(type) {
	case *ecdsa.PublicKey:
		switch pub.Curve {
		case elliptic.P256():
			s.hash, s.sigAlg = crypto.SHA256, algECDSAWithSHA256
		case elliptic.P384():
			s.hash, s.sigAlg = crypto.SHA384, algECDSAWithSHA384
		default:
			return nil, fmt.Errorf("ocspder: unsupported ECDSA curve %s", pub.Curve.Params().Name)
		}
		// ECDSA-Sig-Value ::= SEQUENCE { r INTEGER, s INTEGER }, each at
		// most the order's size plus a 0x00 sign octet.
		n := (pub.Curve.Params().N.BitLen() + 7) / 8
		s.maxSig = tlvSize(2 * tlvSize(n+1))
	case *rsa.PublicKey:
		if pub.N.BitLen() < 2048 {
			return nil, fmt.Errorf("ocspder: RSA key of %d bits, want at least 2048", pub.N.BitLen())
		}
		s.hash, s.sigAlg = crypto.SHA256, algSHA256WithRSA
		s.maxSig = pub.Size()
	default:
		return nil, fmt.Errorf("ocspder: unsupported key type %T", pub)
	}

	var spki []byte
	if responderCert != nil {
		certPub, ok := responderCert.PublicKey.(interface{ Equal(crypto.PublicKey) bool })
		if !ok || !certPub.Equal(pub) {
			return nil, errors.New("ocspder: responder certificate does not hold the signing key")
		}
		spki = responderCert.RawSubjectPublicKeyInfo
	} else {
		var err error
		if spki, err = x509.MarshalPKIXPublicKey(pub); err != nil {
			return nil, fmt.Errorf("ocspder: marshaling public key: %w", err)
		}
	}
	keyHash, err := subjectPublicKeyHash(spki)
	if err != nil {
		return nil, err
	}
	s.responderID = append([]byte{tagContextCons2, 2 + sha1.Size, tagOctetString, sha1.Size}, keyHash[:]...)

	if len(certs) > 0 {
		total := 0
		for i, c := range certs {
			in, elem := cryptobyte.String(c), cryptobyte.String(nil)
			if !in.ReadASN1Element(&elem, asn1.SEQUENCE) || !in.Empty() {
				return nil, fmt.Errorf("ocspder: certificate %d is not one DER SEQUENCE", i)
			}
			total += len(c)
		}
		s.certs = appendHeader(nil, tagContextCons0, tlvSize(total))
		s.certs = appendHeader(s.certs, tagSequence, total)
		for _, c := range certs {
			s.certs = append(s.certs, c...)
		}
	}
	return s, nil
}

// subjectPublicKeyHash returns the SHA-1 of the subjectPublicKey BIT STRING
// value (without tag, length and unused-bits octet), as openssl and
// x/crypto/ocsp compute KeyHash and the CertID issuerKeyHash.
func subjectPublicKeyHash(spki []byte) ([sha1.Size]byte, error) {
	in := cryptobyte.String(spki)
	var info cryptobyte.String
	var key []byte
	if !in.ReadASN1(&info, asn1.SEQUENCE) || !in.Empty() ||
		!info.SkipASN1(asn1.SEQUENCE) ||
		!info.ReadASN1BitStringAsBytes(&key) || !info.Empty() {
		return [sha1.Size]byte{}, errors.New("ocspder: bad SubjectPublicKeyInfo")
	}
	return sha1.Sum(key), nil
}

// SignBody validates r and returns the signed part of a BasicOCSPResponse
// without its certs: the DER of tbsResponseData || signatureAlgorithm ||
// signature (RFC 6960 §4.2.1). This is what a cache stores: about 250
// octets with a P-256 key, a SHA-1 CertID and a 16-octet serial, 28 more
// with a SHA-256 CertID. The result has no spare capacity to speak of and
// does not alias r.
func (s *Signer) SignBody(r *Response) ([]byte, error) {
	l, err := layout(r, len(s.responderID))
	if err != nil {
		return nil, err
	}
	tbsSize := l.size()
	b := make([]byte, 0, tbsSize+len(s.sigAlg)+tlvSize(s.maxSig+1))
	b = l.appendTBS(b, r, s.responderID)
	if len(b) != tbsSize {
		panic("ocspder: ResponseData layout mismatch")
	}
	sig, err := s.sign(b)
	if err != nil {
		return nil, err
	}
	return s.appendSignature(b, sig), nil
}

// Signature validates r and returns only the signature value over its
// ResponseData: about 72 octets with a P-256 key instead of the ~250 of
// SignBody. The rest of the body is a function of r and this Signer, so a
// cache that keeps the fields of r it varies (serial, status, times) and
// this signature can rebuild the response with AppendSigned, byte for byte.
func (s *Signer) Signature(r *Response) ([]byte, error) {
	l, err := layout(r, len(s.responderID))
	if err != nil {
		return nil, err
	}
	var stack [512]byte
	tbs := l.appendTBS(stack[:0], r, s.responderID)
	return s.sign(tbs)
}

// AppendSigned appends to dst the complete OCSPResponse for r, carrying
// sig, a result of Signature(r) by this Signer; r must be the same in every
// field. It allocates only to grow dst.
func (s *Signer) AppendSigned(dst []byte, r *Response, sig []byte) ([]byte, error) {
	l, err := layout(r, len(s.responderID))
	if err != nil {
		return dst, err
	}
	bodyLen := l.size() + len(s.sigAlg) + tlvSize(len(sig)+1)
	dst = s.appendHead(dst, bodyLen)
	dst = l.appendTBS(dst, r, s.responderID)
	dst = s.appendSignature(dst, sig)
	return append(dst, s.certs...), nil
}

func (s *Signer) sign(tbs []byte) ([]byte, error) {
	var sig []byte
	var err error
	switch s.hash {
	case crypto.SHA256:
		d := sha256.Sum256(tbs)
		sig, err = s.key.Sign(rand.Reader, d[:], s.hash)
	case crypto.SHA384:
		d := sha512.Sum384(tbs)
		sig, err = s.key.Sign(rand.Reader, d[:], s.hash)
	}
	if err != nil {
		return nil, fmt.Errorf("ocspder: signing response: %w", err)
	}
	return sig, nil
}

// appendSignature appends signatureAlgorithm and the signature BIT STRING.
func (s *Signer) appendSignature(b, sig []byte) []byte {
	b = append(b, s.sigAlg...)
	b = appendHeader(b, tagBitString, len(sig)+1)
	b = append(b, 0) // no unused bits
	return append(b, sig...)
}

// ResponseLen is the size of the OCSPResponse that AppendResponse makes
// from a body of bodyLen octets.
func (s *Signer) ResponseLen(bodyLen int) int {
	_, _, n := s.sizes(bodyLen)
	return n
}

// sizes returns the content sizes of the BasicOCSPResponse and of the
// ResponseBytes, and the size of the OCSPResponse TLV.
func (s *Signer) sizes(bodyLen int) (basic, respBytes, total int) {
	basic = bodyLen + len(s.certs)
	respBytes = len(oidOCSPBasic) + tlvSize(tlvSize(basic))
	outer := 3 + tlvSize(tlvSize(respBytes))
	return basic, respBytes, tlvSize(outer)
}

// AppendResponse appends to dst the complete OCSPResponse (RFC 6960
// §4.2.1) around body, a result of SignBody by this Signer: responseStatus
// successful, responseBytes of type id-pkix-ocsp-basic holding
// BasicOCSPResponse ::= SEQUENCE { body, certs }. body is not checked. It
// allocates only to grow dst; size dst with ResponseLen to avoid that.
func (s *Signer) AppendResponse(dst, body []byte) []byte {
	dst = s.appendHead(dst, len(body))
	dst = append(dst, body...)
	return append(dst, s.certs...)
}

// appendHead appends the OCSPResponse headers up to the BasicOCSPResponse
// SEQUENCE header, for a body (tbsResponseData, signatureAlgorithm,
// signature) of bodyLen octets; the body and s.certs follow.
func (s *Signer) appendHead(dst []byte, bodyLen int) []byte {
	basic, respBytes, total := s.sizes(bodyLen)
	dst = slices.Grow(dst, total)
	dst = appendHeader(dst, tagSequence, 3+tlvSize(tlvSize(respBytes)))
	dst = append(dst, tagEnumerated, 1, 0) // successful
	dst = appendHeader(dst, tagContextCons0, tlvSize(respBytes))
	dst = appendHeader(dst, tagSequence, respBytes)
	dst = append(dst, oidOCSPBasic...)
	dst = appendHeader(dst, tagOctetString, tlvSize(basic))
	return appendHeader(dst, tagSequence, basic)
}

// Sign returns the complete DER OCSPResponse for r: SignBody and
// AppendResponse.
func (s *Signer) Sign(r *Response) ([]byte, error) {
	body, err := s.SignBody(r)
	if err != nil {
		return nil, err
	}
	return s.AppendResponse(make([]byte, 0, s.ResponseLen(len(body))), body), nil
}
