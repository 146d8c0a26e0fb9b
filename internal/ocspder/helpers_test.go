package ocspder_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	encasn1 "encoding/asn1"
	"math/big"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/cryptobyte"
	"golang.org/x/crypto/cryptobyte/asn1"
	"golang.org/x/crypto/ocsp"

	"github.com/zbca/zbca/internal/ocspder"
)

// testPKI is root → issuing CA → {leaf, delegated OCSP responder}.
type testPKI struct {
	rootKey, issuerKey, responderKey *ecdsa.PrivateKey
	root, issuer, leaf, responder    *x509.Certificate
}

// now is the wall clock, because openssl checks times against it; it has
// nanoseconds, which responses must drop.
var now = time.Now()

var getPKI = sync.OnceValues(func() (*testPKI, error) {
	p := new(testPKI)
	var err error
	for _, k := range []**ecdsa.PrivateKey{&p.rootKey, &p.issuerKey, &p.responderKey} {
		if *k, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
			return nil, err
		}
	}
	leafKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	mk := func(tmpl, parent *x509.Certificate, pub crypto.PublicKey, priv crypto.Signer) (*x509.Certificate, error) {
		tmpl.NotBefore = now.Add(-24 * time.Hour)
		tmpl.NotAfter = now.AddDate(1, 0, 0)
		if parent == nil {
			parent = tmpl
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, priv)
		if err != nil {
			return nil, err
		}
		return x509.ParseCertificate(der)
	}
	if p.root, err = mk(&x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "Test Root"},
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}, nil, p.rootKey.Public(), p.rootKey); err != nil {
		return nil, err
	}
	if p.issuer, err = mk(&x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "Test Issuing CA"},
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}, p.root, p.issuerKey.Public(), p.rootKey); err != nil {
		return nil, err
	}
	// A serial whose top bit is set, to exercise the INTEGER sign octet.
	serial := new(big.Int).SetBytes([]byte{0x8f, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15})
	if p.leaf, err = mk(&x509.Certificate{
		SerialNumber: serial, Subject: pkix.Name{CommonName: "leaf.example"},
		DNSNames: []string{"leaf.example"}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}, p.issuer, leafKey.Public(), p.issuerKey); err != nil {
		return nil, err
	}
	if p.responder, err = mk(&x509.Certificate{
		SerialNumber: big.NewInt(3), Subject: pkix.Name{CommonName: "Test OCSP Responder"},
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageOCSPSigning},
		// id-pkix-ocsp-nocheck, RFC 6960 §4.2.2.2.1.
		ExtraExtensions: []pkix.Extension{{Id: encasn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 48, 1, 5}, Value: []byte{5, 0}}},
	}, p.issuer, p.responderKey.Public(), p.issuerKey); err != nil {
		return nil, err
	}
	return p, nil
})

func pki(tb testing.TB) *testPKI {
	tb.Helper()
	p, err := getPKI()
	if err != nil {
		tb.Fatalf("making test PKI: %v", err)
	}
	return p
}

// delegatedSigner signs as the delegated responder and ships its certificate.
func (p *testPKI) delegatedSigner(tb testing.TB) *ocspder.Signer {
	tb.Helper()
	s, err := ocspder.NewSigner(p.responderKey, p.responder, p.responder.Raw)
	if err != nil {
		tb.Fatalf("NewSigner: %v", err)
	}
	return s
}

// request builds a request for the leaf with x/crypto/ocsp.
func (p *testPKI) request(tb testing.TB, h crypto.Hash) []byte {
	tb.Helper()
	der, err := ocsp.CreateRequest(p.leaf, p.issuer, &ocsp.RequestOptions{Hash: h})
	if err != nil {
		tb.Fatalf("ocsp.CreateRequest: %v", err)
	}
	return der
}

// response returns a Response for the leaf answering req.
func (p *testPKI) response(req *ocspder.Request, status int) *ocspder.Response {
	return &ocspder.Response{
		Status:         status,
		HashAlgorithm:  req.HashAlgorithm,
		IssuerNameHash: req.IssuerNameHash,
		IssuerKeyHash:  req.IssuerKeyHash,
		Serial:         req.Serial,
		Reason:         ocspder.NoReason,
		ThisUpdate:     now.Add(-time.Hour),
		NextUpdate:     now.Add(3 * 24 * time.Hour),
		ProducedAt:     now,
	}
}

// Request assembly with cryptobyte, independent of the package under test.

var (
	oidNonce  = encasn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 48, 1, 2}
	oidSHA1   = encasn1.ObjectIdentifier{1, 3, 14, 3, 2, 26}
	oidSHA256 = encasn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 1}
	oidSHA384 = encasn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 2}
	oidSHA512 = encasn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 3}
)

func hashOID(h crypto.Hash) encasn1.ObjectIdentifier {
	return map[crypto.Hash]encasn1.ObjectIdentifier{
		crypto.SHA1: oidSHA1, crypto.SHA256: oidSHA256, crypto.SHA384: oidSHA384, crypto.SHA512: oidSHA512,
	}[h]
}

// certID is a CertID; serial is the raw INTEGER content.
type certID struct {
	oid               encasn1.ObjectIdentifier
	params            []byte // DER of the parameters, nil for absent
	nameHash, keyHash []byte
	serial            []byte
}

func (c certID) add(b *cryptobyte.Builder) {
	b.AddASN1(asn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1(asn1.SEQUENCE, func(b *cryptobyte.Builder) {
			b.AddASN1ObjectIdentifier(c.oid)
			b.AddBytes(c.params)
		})
		b.AddASN1OctetString(c.nameHash)
		b.AddASN1OctetString(c.keyHash)
		b.AddASN1(asn1.INTEGER, func(b *cryptobyte.Builder) { b.AddBytes(c.serial) })
	})
}

// ext is an Extension with a raw extnValue.
type ext struct {
	oid      encasn1.ObjectIdentifier
	critical bool
	value    []byte
}

func (e ext) add(b *cryptobyte.Builder) {
	b.AddASN1(asn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1ObjectIdentifier(e.oid)
		if e.critical {
			b.AddASN1Boolean(true)
		}
		b.AddASN1OctetString(e.value)
	})
}

// nonceExt is the RFC 8954 nonce extension.
func nonceExt(nonce []byte) ext {
	var b cryptobyte.Builder
	b.AddASN1OctetString(nonce)
	return ext{oid: oidNonce, value: b.BytesOrPanic()}
}

// reqSpec describes an OCSPRequest; the raw fields are inserted as given.
type reqSpec struct {
	version       []byte // raw [0] content, nil to omit
	requestorName []byte // raw [1] content, nil to omit
	certIDs       []certID
	singleExts    []ext  // on the first Request
	exts          []ext  // requestExtensions, nil to omit
	signature     []byte // raw [0] content, nil to omit
}

func (r reqSpec) der() []byte {
	var b cryptobyte.Builder
	b.AddASN1(asn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1(asn1.SEQUENCE, func(b *cryptobyte.Builder) {
			if r.version != nil {
				b.AddASN1(asn1.Tag(0).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) { b.AddBytes(r.version) })
			}
			if r.requestorName != nil {
				b.AddASN1(asn1.Tag(1).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) { b.AddBytes(r.requestorName) })
			}
			b.AddASN1(asn1.SEQUENCE, func(b *cryptobyte.Builder) {
				for i, c := range r.certIDs {
					b.AddASN1(asn1.SEQUENCE, func(b *cryptobyte.Builder) {
						c.add(b)
						if i == 0 && r.singleExts != nil {
							b.AddASN1(asn1.Tag(0).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) {
								b.AddASN1(asn1.SEQUENCE, func(b *cryptobyte.Builder) {
									for _, e := range r.singleExts {
										e.add(b)
									}
								})
							})
						}
					})
				}
			})
			if r.exts != nil {
				b.AddASN1(asn1.Tag(2).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) {
					b.AddASN1(asn1.SEQUENCE, func(b *cryptobyte.Builder) {
						for _, e := range r.exts {
							e.add(b)
						}
					})
				})
			}
		})
		if r.signature != nil {
			b.AddASN1(asn1.Tag(0).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) { b.AddBytes(r.signature) })
		}
	})
	return b.BytesOrPanic()
}

// leafCertID is the CertID x/crypto/ocsp would make for the leaf.
func (p *testPKI) leafCertID(tb testing.TB, h crypto.Hash) certID {
	tb.Helper()
	req, err := ocsp.ParseRequest(p.request(tb, h))
	if err != nil {
		tb.Fatalf("ocsp.ParseRequest: %v", err)
	}
	return certID{
		oid: hashOID(h), params: []byte{5, 0},
		nameHash: req.IssuerNameHash, keyHash: req.IssuerKeyHash,
		serial: intContent(p.leaf.SerialNumber),
	}
}

// intContent is the DER INTEGER content of a non-negative n.
func intContent(n *big.Int) []byte {
	b := n.Bytes()
	if len(b) == 0 || b[0]&0x80 != 0 {
		b = append([]byte{0}, b...)
	}
	return b
}

// decodedResponse is what the tests read back from a response themselves,
// for the parts x/crypto/ocsp does not expose.
type decodedResponse struct {
	responseExts        []ext
	certStatus          []byte // the complete certStatus TLV
	certs               int    // number of certificates in certs
	certIDHashAlgParams []byte
}

// decodeResponse walks a successful OCSPResponse with cryptobyte.
func decodeResponse(tb testing.TB, der []byte) decodedResponse {
	tb.Helper()
	var d decodedResponse
	in := cryptobyte.String(der)
	var resp, status, explicit, rb, oid, basicOctets, basic, tbs, responses, single, cid, alg, algOID cryptobyte.String
	ok := in.ReadASN1(&resp, asn1.SEQUENCE) && in.Empty() &&
		resp.ReadASN1(&status, asn1.ENUM) &&
		resp.ReadASN1(&explicit, asn1.Tag(0).Constructed().ContextSpecific()) && resp.Empty() &&
		explicit.ReadASN1(&rb, asn1.SEQUENCE) && explicit.Empty() &&
		rb.ReadASN1(&oid, asn1.OBJECT_IDENTIFIER) &&
		rb.ReadASN1(&basicOctets, asn1.OCTET_STRING) && rb.Empty() &&
		basicOctets.ReadASN1(&basic, asn1.SEQUENCE) && basicOctets.Empty() &&
		basic.ReadASN1(&tbs, asn1.SEQUENCE) &&
		tbs.SkipASN1(asn1.Tag(2).Constructed().ContextSpecific()) && // byKey
		tbs.SkipASN1(asn1.GeneralizedTime) &&
		tbs.ReadASN1(&responses, asn1.SEQUENCE) &&
		responses.ReadASN1(&single, asn1.SEQUENCE) && responses.Empty() &&
		single.ReadASN1(&cid, asn1.SEQUENCE) &&
		cid.ReadASN1(&alg, asn1.SEQUENCE) && alg.ReadASN1(&algOID, asn1.OBJECT_IDENTIFIER)
	if !ok {
		tb.Fatalf("cannot decode response %x", der)
	}
	d.certIDHashAlgParams = alg
	var tag asn1.Tag
	var st cryptobyte.String
	if !single.ReadAnyASN1Element(&st, &tag) {
		tb.Fatal("no certStatus")
	}
	d.certStatus = st
	if tbs.PeekASN1Tag(asn1.Tag(1).Constructed().ContextSpecific()) {
		var e1, list cryptobyte.String
		if !tbs.ReadASN1(&e1, asn1.Tag(1).Constructed().ContextSpecific()) || !e1.ReadASN1(&list, asn1.SEQUENCE) || !e1.Empty() {
			tb.Fatal("bad responseExtensions")
		}
		for !list.Empty() {
			var e, value cryptobyte.String
			var x ext
			if !list.ReadASN1(&e, asn1.SEQUENCE) || !e.ReadASN1ObjectIdentifier(&x.oid) ||
				!e.ReadOptionalASN1Boolean(&x.critical, asn1.BOOLEAN, false) ||
				!e.ReadASN1(&value, asn1.OCTET_STRING) || !e.Empty() {
				tb.Fatal("bad extension")
			}
			x.value = value
			d.responseExts = append(d.responseExts, x)
		}
	}
	if !tbs.Empty() {
		tb.Fatal("trailing data in ResponseData")
	}
	if !basic.SkipASN1(asn1.SEQUENCE) || !basic.SkipASN1(asn1.BIT_STRING) {
		tb.Fatal("bad signature")
	}
	if !basic.Empty() {
		var certs, list cryptobyte.String
		if !basic.ReadASN1(&certs, asn1.Tag(0).Constructed().ContextSpecific()) || !certs.ReadASN1(&list, asn1.SEQUENCE) || !certs.Empty() || !basic.Empty() {
			tb.Fatal("bad certs")
		}
		for !list.Empty() {
			if !list.SkipASN1(asn1.SEQUENCE) {
				tb.Fatal("bad certificate")
			}
			d.certs++
		}
	}
	return d
}
