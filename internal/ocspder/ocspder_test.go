package ocspder_test

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/x509"
	encasn1 "encoding/asn1"
	"errors"
	"io"
	"math/big"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/cryptobyte"
	"golang.org/x/crypto/cryptobyte/asn1"
	"golang.org/x/crypto/ocsp"

	"github.com/zbca/zbca/internal/ocspder"
)

func TestParseRequestFromXCrypto(t *testing.T) {
	p := pki(t)
	for _, h := range []crypto.Hash{crypto.SHA1, crypto.SHA256, crypto.SHA384, crypto.SHA512} {
		t.Run(h.String(), func(t *testing.T) {
			der := p.request(t, h)
			want, err := ocsp.ParseRequest(der)
			if err != nil {
				t.Fatal(err)
			}
			got, err := ocspder.ParseRequest(der)
			if err != nil {
				t.Fatalf("ParseRequest: %v", err)
			}
			if got.HashAlgorithm != h ||
				!bytes.Equal(got.IssuerNameHash, want.IssuerNameHash) ||
				!bytes.Equal(got.IssuerKeyHash, want.IssuerKeyHash) ||
				!bytes.Equal(got.Serial, p.leaf.SerialNumber.Bytes()) ||
				got.HasNonce || got.Nonce != nil {
				t.Errorf("ParseRequest = %+v, want %+v", got, want)
			}
		})
	}
}

func TestParseRequestShapes(t *testing.T) {
	p := pki(t)
	cid := p.leafCertID(t, crypto.SHA1)
	noParams := cid
	noParams.params = nil
	other := p.leafCertID(t, crypto.SHA256)
	other.serial = []byte{1}
	nonce := bytes.Repeat([]byte{0xa5}, 32)
	unknown := encasn1.ObjectIdentifier{1, 2, 3, 4}
	criticalNonce := nonceExt([]byte{1})
	criticalNonce.critical = true

	tests := []struct {
		name      string
		req       reqSpec
		wantNonce []byte
	}{
		{"minimal", reqSpec{certIDs: []certID{cid}}, nil},
		{"absent hash parameters", reqSpec{certIDs: []certID{noParams}}, nil},
		{"explicit v1", reqSpec{version: []byte{2, 1, 0}, certIDs: []certID{cid}}, nil},
		{"requestorName", reqSpec{requestorName: []byte{0x82, 3, 'a', '.', 'b'}, certIDs: []certID{cid}}, nil},
		{"several CertIDs", reqSpec{certIDs: []certID{cid, other, other}}, nil},
		// Only the first CertID is answered, so only its contents matter.
		{"second CertID of unknown hash", reqSpec{certIDs: []certID{cid, {
			oid: encasn1.ObjectIdentifier{1, 2, 3}, nameHash: []byte{}, keyHash: []byte{}, serial: []byte{0xff},
		}}}, nil},
		{"nonce", reqSpec{certIDs: []certID{cid}, exts: []ext{nonceExt(nonce)}}, nonce},
		{"one-octet nonce", reqSpec{certIDs: []certID{cid}, exts: []ext{nonceExt([]byte{0})}}, []byte{0}},
		{"critical nonce", reqSpec{certIDs: []certID{cid}, exts: []ext{criticalNonce}}, []byte{1}},
		{"unknown non-critical extensions", reqSpec{
			certIDs:    []certID{cid},
			singleExts: []ext{{oid: unknown, value: []byte{5, 0}}},
			exts:       []ext{{oid: unknown, value: []byte{5, 0}}, nonceExt(nonce)},
		}, nonce},
		{"empty extensions", reqSpec{certIDs: []certID{cid}, exts: []ext{}}, nil},
		{"signed", reqSpec{certIDs: []certID{cid}, signature: []byte{0x30, 3, 0x30, 1, 0}}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ocspder.ParseRequest(tt.req.der())
			if err != nil {
				t.Fatalf("ParseRequest: %v", err)
			}
			if got.HashAlgorithm != crypto.SHA1 || !bytes.Equal(got.IssuerNameHash, cid.nameHash) ||
				!bytes.Equal(got.IssuerKeyHash, cid.keyHash) || !bytes.Equal(got.Serial, p.leaf.SerialNumber.Bytes()) {
				t.Errorf("CertID = %+v, want the leaf's", got)
			}
			if got.HasNonce != (tt.wantNonce != nil) || !bytes.Equal(got.Nonce, tt.wantNonce) {
				t.Errorf("nonce = %x (%v), want %x", got.Nonce, got.HasNonce, tt.wantNonce)
			}
		})
	}
}

func TestParseRequestNonceAddedToXCryptoRequest(t *testing.T) {
	p := pki(t)
	for _, h := range []crypto.Hash{crypto.SHA1, crypto.SHA256} {
		t.Run(h.String(), func(t *testing.T) {
			nonce := []byte("0123456789abcdef")
			der := withExtensions(t, p.request(t, h), nonceExt(nonce))
			got, err := ocspder.ParseRequest(der)
			if err != nil {
				t.Fatalf("ParseRequest: %v", err)
			}
			if !got.HasNonce || !bytes.Equal(got.Nonce, nonce) || !bytes.Equal(got.Serial, p.leaf.SerialNumber.Bytes()) {
				t.Errorf("ParseRequest = %+v", got)
			}
		})
	}
}

// withExtensions adds requestExtensions to a DER request that has none.
func withExtensions(t *testing.T, der []byte, exts ...ext) []byte {
	t.Helper()
	var req struct {
		TBS struct {
			RequestList encasn1.RawValue
		}
	}
	if rest, err := encasn1.Unmarshal(der, &req); err != nil || len(rest) > 0 {
		t.Fatalf("unmarshal request: %v", err)
	}
	var spec reqSpec
	list := req.TBS.RequestList.Bytes
	for len(list) > 0 {
		var r struct{ CertID encasn1.RawValue }
		var err error
		if list, err = encasn1.Unmarshal(list, &r); err != nil {
			t.Fatal(err)
		}
		var c struct {
			Alg struct {
				OID    encasn1.ObjectIdentifier
				Params encasn1.RawValue `asn1:"optional"`
			}
			NameHash, KeyHash []byte
			Serial            encasn1.RawValue
		}
		if _, err := encasn1.Unmarshal(r.CertID.FullBytes, &c); err != nil {
			t.Fatal(err)
		}
		spec.certIDs = append(spec.certIDs, certID{
			oid: c.Alg.OID, params: c.Alg.Params.FullBytes,
			nameHash: c.NameHash, keyHash: c.KeyHash, serial: c.Serial.Bytes,
		})
	}
	spec.exts = exts
	return spec.der()
}

func TestParseRequestHostile(t *testing.T) {
	p := pki(t)
	good := reqSpec{certIDs: []certID{p.leafCertID(t, crypto.SHA1)}, exts: []ext{nonceExt([]byte("nonce"))}}
	valid := good.der()
	if _, err := ocspder.ParseRequest(valid); err != nil {
		t.Fatalf("baseline request rejected: %v", err)
	}
	with := func(f func(*reqSpec)) []byte {
		s := good
		s.certIDs = append([]certID(nil), good.certIDs...)
		f(&s)
		return s.der()
	}
	withCertID := func(f func(*certID)) []byte {
		return with(func(s *reqSpec) { f(&s.certIDs[0]) })
	}
	// indefinite length: the outer SEQUENCE as 30 80 ... 00 00.
	indefinite := append(append([]byte{0x30, 0x80}, valid[2:]...), 0, 0)
	// non-minimal length: 30 81 xx for a short body.
	longForm := append([]byte{0x30, 0x81, valid[1]}, valid[2:]...)
	// an outer length larger than the input.
	oversized := append([]byte{0x30, 0x84, 0x7f, 0xff, 0xff, 0xff}, valid[2:]...)
	// indefinite length inside: tbsRequest as 30 80 ... 00 00.
	var inner cryptobyte.Builder
	inner.AddASN1(asn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddBytes([]byte{0x30, 0x80})
		b.AddBytes(valid[4:]) // valid is 30 L 30 L' with short lengths
		b.AddBytes([]byte{0, 0})
	})
	if valid[1] >= 0x80 || valid[3] >= 0x80 {
		t.Fatal("baseline request needs short lengths")
	}
	wrongTag := bytes.Clone(valid)
	wrongTag[0] = 0x31 // SET instead of SEQUENCE
	unknown := encasn1.ObjectIdentifier{1, 2, 3, 4}

	tests := []struct {
		name string
		der  []byte
	}{
		{"empty", nil},
		{"one byte", []byte{0x30}},
		{"truncated", valid[:len(valid)-1]},
		{"truncated header", valid[:3]},
		{"trailing data", append(bytes.Clone(valid), 0)},
		{"trailing element", append(bytes.Clone(valid), 5, 0)},
		{"indefinite length", indefinite},
		{"indefinite length inside", inner.BytesOrPanic()},
		{"non-minimal length", longForm},
		{"oversized length", oversized},
		{"five-octet length", append([]byte{0x30, 0x85, 0, 0, 0, 0, byte(len(valid) - 2)}, valid[2:]...)},
		{"wrong outer tag", wrongTag},
		{"not DER at all", []byte("GET / HTTP/1.1\r\n\r\n")},
		{"empty requestList", with(func(s *reqSpec) { s.certIDs = nil })},
		{"version v2", with(func(s *reqSpec) { s.version = []byte{2, 1, 1} })},
		{"bad version", with(func(s *reqSpec) { s.version = []byte{4, 1, 0} })},
		{"requestorName of two elements", with(func(s *reqSpec) { s.requestorName = []byte{0x82, 0, 0x82, 0} })},
		{"nonce of 33 octets", with(func(s *reqSpec) { s.exts = []ext{nonceExt(make([]byte, 33))} })},
		{"empty nonce", with(func(s *reqSpec) { s.exts = []ext{nonceExt(nil)} })},
		{"unwrapped nonce", with(func(s *reqSpec) { s.exts = []ext{{oid: oidNonce, value: []byte("0123456789abcdef")}} })},
		{"nonce with trailing data", with(func(s *reqSpec) { s.exts = []ext{{oid: oidNonce, value: []byte{4, 1, 1, 0}}} })},
		{"two nonces", with(func(s *reqSpec) { s.exts = []ext{nonceExt([]byte{1}), nonceExt([]byte{2})} })},
		{"unknown critical extension", with(func(s *reqSpec) { s.exts = []ext{{oid: unknown, critical: true, value: []byte{5, 0}}} })},
		{"unknown critical single extension", with(func(s *reqSpec) { s.singleExts = []ext{{oid: unknown, critical: true, value: []byte{5, 0}}} })},
		{"unknown hash OID", withCertID(func(c *certID) { c.oid = encasn1.ObjectIdentifier{1, 2, 840, 113549, 2, 5} })}, // MD5
		{"hash parameters not NULL", withCertID(func(c *certID) { c.params = []byte{4, 0} })},
		{"short issuerNameHash", withCertID(func(c *certID) { c.nameHash = c.nameHash[:19] })},
		{"SHA-256 OID with SHA-1 hashes", withCertID(func(c *certID) { c.oid = oidSHA256 })},
		{"negative serial", withCertID(func(c *certID) { c.serial = []byte{0xff, 0x01} })},
		{"zero serial", withCertID(func(c *certID) { c.serial = []byte{0} })},
		{"empty serial", withCertID(func(c *certID) { c.serial = []byte{} })},
		{"non-minimal serial", withCertID(func(c *certID) { c.serial = []byte{0, 1} })},
		{"21-octet serial", withCertID(func(c *certID) { c.serial = bytes.Repeat([]byte{1}, 21) })},
		{"huge serial", withCertID(func(c *certID) { c.serial = bytes.Repeat([]byte{1}, 4000) })},
		{"second CertID with empty serial", with(func(s *reqSpec) {
			s.certIDs = append(s.certIDs, certID{oid: oidSHA1, nameHash: []byte{1}, keyHash: []byte{1}, serial: []byte{}})
		})},
		{"second CertID with non-minimal serial", with(func(s *reqSpec) {
			s.certIDs = append(s.certIDs, certID{oid: oidSHA1, nameHash: []byte{1}, keyHash: []byte{1}, serial: []byte{0xff, 0x80}})
		})},
		{"bad signature", with(func(s *reqSpec) { s.signature = []byte{5, 0} })},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := ocspder.ParseRequest(tt.der)
			if !errors.Is(err, ocspder.ErrMalformed) {
				t.Fatalf("ParseRequest(%x) = %+v, %v; want ErrMalformed", tt.der, r, err)
			}
		})
	}
}

func TestParseRequestAcceptsLongestSerial(t *testing.T) {
	p := pki(t)
	c := p.leafCertID(t, crypto.SHA256)
	c.serial = append([]byte{0}, bytes.Repeat([]byte{0xff}, 20)...) // 20-octet magnitude, sign octet
	r, err := ocspder.ParseRequest(reqSpec{certIDs: []certID{c}}.der())
	if err != nil {
		t.Fatalf("ParseRequest: %v", err)
	}
	if !bytes.Equal(r.Serial, c.serial[1:]) {
		t.Errorf("Serial = %x, want %x", r.Serial, c.serial[1:])
	}
}

// responseCase is a Response variant, applied to a base response.
type responseCase struct {
	name       string
	edit       func(*ocspder.Response)
	wantStatus int
	wantReason int // as x/crypto reports it
}

var responseCases = []responseCase{
	{"good", func(*ocspder.Response) {}, ocsp.Good, 0},
	{"unknown", func(r *ocspder.Response) { r.Status = ocspder.Unknown }, ocsp.Unknown, 0},
	{"revoked with reason", func(r *ocspder.Response) {
		r.Status, r.RevokedAt, r.Reason = ocspder.Revoked, now.Add(-2*time.Hour), ocsp.KeyCompromise
	}, ocsp.Revoked, ocsp.KeyCompromise},
	{"revoked with reason aACompromise", func(r *ocspder.Response) {
		r.Status, r.RevokedAt, r.Reason = ocspder.Revoked, now.Add(-2*time.Hour), ocsp.AACompromise
	}, ocsp.Revoked, ocsp.AACompromise},
	{"revoked without reason", func(r *ocspder.Response) {
		r.Status, r.RevokedAt = ocspder.Revoked, now.Add(-2*time.Hour)
	}, ocsp.Revoked, ocsp.Unspecified},
	{"not issued", (*ocspder.Response).MarkNotIssued, ocsp.Revoked, ocsp.CertificateHold},
	{"good with nonce", func(r *ocspder.Response) { r.Nonce = bytes.Repeat([]byte{7}, 32) }, ocsp.Good, 0},
	{"revoked with nonce and extended revoke", func(r *ocspder.Response) {
		r.MarkNotIssued()
		r.Nonce = []byte{1}
	}, ocsp.Revoked, ocsp.CertificateHold},
}

func TestSignParsedByXCrypto(t *testing.T) {
	p := pki(t)
	s := p.delegatedSigner(t)
	point, err := p.responderKey.PublicKey.Bytes() // uncompressed point: the BIT STRING value
	if err != nil {
		t.Fatal(err)
	}
	wantKeyHash := sha1.Sum(point)
	for _, h := range []crypto.Hash{crypto.SHA1, crypto.SHA256} {
		req, err := ocspder.ParseRequest(p.request(t, h))
		if err != nil {
			t.Fatal(err)
		}
		for _, tt := range responseCases {
			t.Run(h.String()+"/"+tt.name, func(t *testing.T) {
				r := p.response(req, ocspder.Good)
				tt.edit(r)
				der, err := s.Sign(r)
				if err != nil {
					t.Fatalf("Sign: %v", err)
				}
				got, err := ocsp.ParseResponseForCert(der, p.leaf, p.issuer)
				if err != nil {
					t.Fatalf("ocsp.ParseResponseForCert: %v", err)
				}
				sec := func(t time.Time) time.Time { return t.Truncate(time.Second) }
				if got.Status != tt.wantStatus ||
					got.SerialNumber.Cmp(p.leaf.SerialNumber) != 0 ||
					got.IssuerHash != h ||
					!got.ProducedAt.Equal(sec(r.ProducedAt)) ||
					!got.ThisUpdate.Equal(sec(r.ThisUpdate)) ||
					!got.NextUpdate.Equal(sec(r.NextUpdate)) ||
					!bytes.Equal(got.ResponderKeyHash, wantKeyHash[:]) ||
					got.Certificate == nil || !got.Certificate.Equal(p.responder) ||
					got.SignatureAlgorithm != x509.ECDSAWithSHA256 {
					t.Errorf("parsed response = %+v", got)
				}
				if tt.wantStatus == ocsp.Revoked &&
					(!got.RevokedAt.Equal(sec(r.RevokedAt)) || got.RevocationReason != tt.wantReason) {
					t.Errorf("revoked at %v for %d, want %v for %d", got.RevokedAt, got.RevocationReason, r.RevokedAt, tt.wantReason)
				}
				// ParseResponseForCert verified the signature with the
				// responder certificate it found; check it once more.
				if err := got.CheckSignatureFrom(p.responder); err != nil {
					t.Errorf("signature: %v", err)
				}
				checkRawResponse(t, der, r)
			})
		}
	}
}

// checkRawResponse checks what x/crypto/ocsp does not expose.
func checkRawResponse(t *testing.T, der []byte, r *ocspder.Response) {
	t.Helper()
	d := decodeResponse(t, der)
	if !bytes.Equal(d.certIDHashAlgParams, []byte{5, 0}) {
		t.Errorf("CertID hash parameters = %x, want NULL", d.certIDHashAlgParams)
	}
	if d.certs != 1 {
		t.Errorf("%d certificates, want 1", d.certs)
	}
	if r.Status == ocspder.Revoked {
		hasReason := len(d.certStatus) > 2+17
		if hasReason != (r.Reason != ocspder.NoReason) {
			t.Errorf("revokedInfo %x: reason present = %v, want %v", d.certStatus, hasReason, r.Reason != ocspder.NoReason)
		}
	}
	var gotNonce []byte
	var extendedRevoke bool
	for _, e := range d.responseExts {
		switch {
		case e.critical:
			t.Errorf("extension %v is critical", e.oid)
		case e.oid.Equal(oidNonce):
			var n []byte
			if rest, err := encasn1.Unmarshal(e.value, &n); err != nil || len(rest) > 0 {
				t.Errorf("nonce extnValue %x is not an OCTET STRING", e.value)
			}
			gotNonce = n
		case e.oid.Equal(encasn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 48, 1, 9}):
			if !bytes.Equal(e.value, []byte{5, 0}) {
				t.Errorf("extended revoke value %x, want NULL", e.value)
			}
			extendedRevoke = true
		default:
			t.Errorf("unexpected extension %v", e.oid)
		}
	}
	if !bytes.Equal(gotNonce, r.Nonce) {
		t.Errorf("nonce %x, want %x", gotNonce, r.Nonce)
	}
	if extendedRevoke != r.ExtendedRevoke {
		t.Errorf("extended revoke %v, want %v", extendedRevoke, r.ExtendedRevoke)
	}
}

func TestSignerKeys(t *testing.T) {
	p := pki(t)
	req, err := ocspder.ParseRequest(p.request(t, crypto.SHA256))
	if err != nil {
		t.Fatal(err)
	}
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		key  crypto.Signer
		alg  x509.SignatureAlgorithm
	}{
		{"P-256", p.issuerKey, x509.ECDSAWithSHA256},
		{"P-384", p384, x509.ECDSAWithSHA384},
		{"RSA-2048", rsaKey, x509.SHA256WithRSA},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// The issuing CA answering itself: no certificate, no responderCert.
			s, err := ocspder.NewSigner(tt.key, nil)
			if err != nil {
				t.Fatalf("NewSigner: %v", err)
			}
			der, err := s.Sign(p.response(req, ocspder.Good))
			if err != nil {
				t.Fatalf("Sign: %v", err)
			}
			got, err := ocsp.ParseResponse(der, nil)
			if err != nil {
				t.Fatalf("ocsp.ParseResponse: %v", err)
			}
			if got.SignatureAlgorithm != tt.alg || got.Certificate != nil {
				t.Errorf("algorithm %v, certificate %v", got.SignatureAlgorithm, got.Certificate)
			}
			spki, _ := x509.MarshalPKIXPublicKey(tt.key.Public())
			var info struct {
				Alg encasn1.RawValue
				Key encasn1.BitString
			}
			if _, err := encasn1.Unmarshal(spki, &info); err != nil {
				t.Fatal(err)
			}
			if want := sha1.Sum(info.Key.Bytes); !bytes.Equal(got.ResponderKeyHash, want[:]) {
				t.Errorf("ResponderKeyHash = %x, want %x", got.ResponderKeyHash, want)
			}
			if err := got.CheckSignatureFrom(&x509.Certificate{PublicKey: tt.key.Public(), PublicKeyAlgorithm: publicKeyAlgorithm(tt.key)}); err != nil {
				t.Errorf("signature: %v", err)
			}
		})
	}
	// The issuing CA as responder: x/crypto checks the signature with the issuer.
	s, err := ocspder.NewSigner(p.issuerKey, p.issuer)
	if err != nil {
		t.Fatal(err)
	}
	der, err := s.Sign(p.response(req, ocspder.Good))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ocsp.ParseResponseForCert(der, p.leaf, p.issuer); err != nil {
		t.Errorf("issuer-signed response: %v", err)
	}
}

func publicKeyAlgorithm(k crypto.Signer) x509.PublicKeyAlgorithm {
	if _, ok := k.(*rsa.PrivateKey); ok {
		return x509.RSA
	}
	return x509.ECDSA
}

func TestNewSignerRejects(t *testing.T) {
	p := pki(t)
	p521, err := ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		key   crypto.Signer
		cert  *x509.Certificate
		certs [][]byte
	}{
		{"nil key", nil, nil, nil},
		{"P-521", p521, nil, nil},
		{"RSA-1024", small, nil, nil},
		{"certificate of another key", p.responderKey, p.issuer, nil},
		{"certs not DER", p.responderKey, p.responder, [][]byte{[]byte("PEM?")}},
		{"certs with trailing data", p.responderKey, p.responder, [][]byte{append(bytes.Clone(p.responder.Raw), 0)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := ocspder.NewSigner(tt.key, tt.cert, tt.certs...); err == nil {
				t.Error("NewSigner succeeded")
			}
		})
	}
}

func TestSignBodyRejects(t *testing.T) {
	p := pki(t)
	s := p.delegatedSigner(t)
	req, err := ocspder.ParseRequest(p.request(t, crypto.SHA1))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		edit func(*ocspder.Response)
	}{
		{"bad status", func(r *ocspder.Response) { r.Status = 3 }},
		{"MD5 CertID", func(r *ocspder.Response) { r.HashAlgorithm = crypto.MD5 }},
		{"hash length mismatch", func(r *ocspder.Response) { r.HashAlgorithm = crypto.SHA256 }},
		{"zero serial", func(r *ocspder.Response) { r.Serial = []byte{0, 0} }},
		{"empty serial", func(r *ocspder.Response) { r.Serial = nil }},
		{"21-octet serial", func(r *ocspder.Response) { r.Serial = bytes.Repeat([]byte{1}, 21) }},
		{"reason 7", func(r *ocspder.Response) { r.Status, r.RevokedAt, r.Reason = ocspder.Revoked, now, 7 }},
		{"reason 11", func(r *ocspder.Response) { r.Status, r.RevokedAt, r.Reason = ocspder.Revoked, now, 11 }},
		{"reason -2", func(r *ocspder.Response) { r.Status, r.RevokedAt, r.Reason = ocspder.Revoked, now, -2 }},
		{"no revocation time", func(r *ocspder.Response) { r.Status = ocspder.Revoked }},
		{"no thisUpdate", func(r *ocspder.Response) { r.ThisUpdate = time.Time{} }},
		{"no nextUpdate", func(r *ocspder.Response) { r.NextUpdate = time.Time{} }},
		{"no producedAt", func(r *ocspder.Response) { r.ProducedAt = time.Time{} }},
		{"year 10000", func(r *ocspder.Response) { r.NextUpdate = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC) }},
		{"nextUpdate before thisUpdate", func(r *ocspder.Response) { r.NextUpdate = r.ThisUpdate.Add(-time.Second) }},
		{"empty nonce", func(r *ocspder.Response) { r.Nonce = []byte{} }},
		{"nonce of 33 octets", func(r *ocspder.Response) { r.Nonce = make([]byte, 33) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := p.response(req, ocspder.Good)
			tt.edit(r)
			if body, err := s.SignBody(r); !errors.Is(err, ocspder.ErrInvalidResponse) {
				t.Errorf("SignBody = %x, %v; want ErrInvalidResponse", body, err)
			}
		})
	}
}

func TestSignTimes(t *testing.T) {
	p := pki(t)
	s := p.delegatedSigner(t)
	req, err := ocspder.ParseRequest(p.request(t, crypto.SHA1))
	if err != nil {
		t.Fatal(err)
	}
	r := p.response(req, ocspder.Revoked)
	r.RevokedAt = time.Date(1949, 12, 31, 23, 59, 59, 999, time.FixedZone("X", 3600))
	r.ProducedAt = time.Date(2026, 1, 2, 3, 4, 5, 999999999, time.FixedZone("Y", -5*3600))
	r.ThisUpdate = r.ProducedAt
	r.NextUpdate = time.Date(2049, 12, 31, 23, 59, 59, 0, time.UTC)
	der, err := s.Sign(r)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"19491231225959Z", "20260102080405Z", "20491231235959Z"} {
		if !bytes.Contains(der, append([]byte{0x18, 15}, want...)) {
			t.Errorf("response lacks GeneralizedTime %s", want)
		}
	}
	got, err := ocsp.ParseResponseForCert(der, p.leaf, p.issuer)
	if err != nil {
		t.Fatal(err)
	}
	if !got.RevokedAt.Equal(r.RevokedAt.Truncate(time.Second)) || !got.ProducedAt.Equal(r.ProducedAt.Truncate(time.Second)) {
		t.Errorf("times %v, %v", got.RevokedAt, got.ProducedAt)
	}
}

func TestSignSerials(t *testing.T) {
	p := pki(t)
	s := p.delegatedSigner(t)
	req, err := ocspder.ParseRequest(p.request(t, crypto.SHA1))
	if err != nil {
		t.Fatal(err)
	}
	for _, serial := range [][]byte{{1}, {0x7f}, {0x80}, {0, 0, 0x80, 1}, bytes.Repeat([]byte{0xff}, 20)} {
		r := p.response(req, ocspder.Good)
		r.Serial = serial
		der, err := s.Sign(r)
		if err != nil {
			t.Fatalf("Sign(serial %x): %v", serial, err)
		}
		got, err := ocsp.ParseResponse(der, p.issuer)
		if err != nil {
			t.Fatalf("serial %x: %v", serial, err)
		}
		if want := new(big.Int).SetBytes(serial); got.SerialNumber.Cmp(want) != 0 {
			t.Errorf("serial %v, want %v", got.SerialNumber, want)
		}
	}
}

func TestAppendResponse(t *testing.T) {
	p := pki(t)
	s := p.delegatedSigner(t)
	req, err := ocspder.ParseRequest(p.request(t, crypto.SHA1))
	if err != nil {
		t.Fatal(err)
	}
	r := p.response(req, ocspder.Good)
	body, err := s.SignBody(r)
	if err != nil {
		t.Fatal(err)
	}
	req256, err := ocspder.ParseRequest(p.request(t, crypto.SHA256))
	if err != nil {
		t.Fatal(err)
	}
	body256, err := s.SignBody(p.response(req256, ocspder.Good))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("P-256 good body, 16-octet serial: %d octets with a SHA-1 CertID, %d with SHA-256; full response with the responder certificate: %d octets",
		len(body), len(body256), s.ResponseLen(len(body)))
	for _, b := range [][]byte{body, body256} {
		if len(b) > 280 || cap(b)-len(b) > 2 {
			t.Errorf("body is %d octets with capacity %d; want at most 280 and 2 spare", len(b), cap(b))
		}
	}

	prefix := []byte("prefix")
	out := s.AppendResponse(bytes.Clone(prefix), body)
	if !bytes.HasPrefix(out, prefix) || len(out)-len(prefix) != s.ResponseLen(len(body)) {
		t.Fatalf("AppendResponse wrote %d octets after the prefix, ResponseLen says %d", len(out)-len(prefix), s.ResponseLen(len(body)))
	}
	if _, err := ocsp.ParseResponseForCert(out[len(prefix):], p.leaf, p.issuer); err != nil {
		t.Fatalf("appended response: %v", err)
	}

	// A body as large as the long-form lengths allow still wraps correctly.
	noCerts, err := ocspder.NewSigner(p.responderKey, p.responder)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []int{0, 1, 100, 127, 128, 255, 256, 65535, 65536, 1 << 24} {
		out := noCerts.AppendResponse(nil, make([]byte, n))
		if len(out) != noCerts.ResponseLen(n) {
			t.Errorf("body of %d: %d octets, ResponseLen says %d", n, len(out), noCerts.ResponseLen(n))
		}
		var resp struct {
			Status asn1Enumerated
			Bytes  struct {
				Type     encasn1.ObjectIdentifier
				Response []byte
			} `asn1:"explicit,tag:0"`
		}
		if rest, err := encasn1.Unmarshal(out, &resp); err != nil || len(rest) > 0 {
			t.Errorf("body of %d: %v", n, err)
		} else if len(resp.Bytes.Response) != tlvLen(n) {
			t.Errorf("body of %d: BasicOCSPResponse of %d octets", n, len(resp.Bytes.Response))
		}
	}

	dst := make([]byte, 0, s.ResponseLen(len(body)))
	if allocs := testing.AllocsPerRun(100, func() { s.AppendResponse(dst[:0], body) }); allocs != 0 {
		t.Errorf("AppendResponse allocates %v times with a pre-sized dst", allocs)
	}
}

type asn1Enumerated = encasn1.Enumerated

// tlvLen is the size of a SEQUENCE TLV with n content octets.
func tlvLen(n int) int {
	switch {
	case n < 0x80:
		return 2 + n
	case n < 0x100:
		return 3 + n
	case n < 0x10000:
		return 4 + n
	case n < 0x1000000:
		return 5 + n
	}
	return 6 + n
}

func TestErrorResponses(t *testing.T) {
	tests := []struct {
		der  []byte
		want ocsp.ResponseStatus
	}{
		{ocspder.MalformedRequest, ocsp.Malformed},
		{ocspder.InternalError, ocsp.InternalError},
		{ocspder.TryLater, ocsp.TryLater},
		{ocspder.SigRequired, ocsp.SignatureRequired},
		{ocspder.Unauthorized, ocsp.Unauthorized},
	}
	for _, tt := range tests {
		t.Run(tt.want.String(), func(t *testing.T) {
			_, err := ocsp.ParseResponse(tt.der, nil)
			var re ocsp.ResponseError
			if !errors.As(err, &re) || re.Status != tt.want {
				t.Errorf("ocsp.ParseResponse(%x) = %v, want status %v", tt.der, err, tt.want)
			}
		})
	}
	// The x/crypto precomputed answers are byte for byte the same.
	if !bytes.Equal(ocspder.MalformedRequest, ocsp.MalformedRequestErrorResponse) ||
		!bytes.Equal(ocspder.InternalError, ocsp.InternalErrorErrorResponse) ||
		!bytes.Equal(ocspder.TryLater, ocsp.TryLaterErrorResponse) ||
		!bytes.Equal(ocspder.SigRequired, ocsp.SigRequredErrorResponse) ||
		!bytes.Equal(ocspder.Unauthorized, ocsp.UnauthorizedErrorResponse) {
		t.Error("error responses differ from x/crypto/ocsp's")
	}
}

// failingKey is a key whose signatures fail, like an unreachable HSM.
type failingKey struct{ crypto.Signer }

var errHSM = errors.New("hsm unreachable")

func (failingKey) Sign(io.Reader, []byte, crypto.SignerOpts) ([]byte, error) { return nil, errHSM }

func TestSignBodyKeyFailure(t *testing.T) {
	p := pki(t)
	s, err := ocspder.NewSigner(failingKey{p.responderKey}, p.responder, p.responder.Raw)
	if err != nil {
		t.Fatal(err)
	}
	req, err := ocspder.ParseRequest(p.request(t, crypto.SHA1))
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.Sign(p.response(req, ocspder.Good))
	if !errors.Is(err, errHSM) || errors.Is(err, ocspder.ErrInvalidResponse) {
		t.Errorf("Sign = %v, want the key's error", err)
	}
}

func TestSignerConcurrentUse(t *testing.T) {
	p := pki(t)
	s := p.delegatedSigner(t)
	req, err := ocspder.ParseRequest(p.request(t, crypto.SHA256))
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			r := p.response(req, ocspder.Good)
			r.Nonce = []byte{byte(i)}
			der, err := s.Sign(r)
			if err != nil {
				t.Error(err)
				return
			}
			if _, err := ocsp.ParseResponseForCert(der, p.leaf, p.issuer); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
}

// TestSignatureAppendSigned: a cache that keeps only the signature rebuilds
// the very response SignBody and AppendResponse make, and x/crypto/ocsp
// verifies it; a changed field breaks the signature.
func TestSignatureAppendSigned(t *testing.T) {
	p := pki(t)
	s := p.delegatedSigner(t)
	req, err := ocspder.ParseRequest(p.request(t, crypto.SHA1))
	if err != nil {
		t.Fatal(err)
	}
	for _, status := range []int{ocspder.Good, ocspder.Revoked} {
		r := p.response(req, status)
		if status == ocspder.Revoked {
			r.RevokedAt, r.Reason = r.ThisUpdate.Add(-time.Hour), 1
		}
		sig, err := s.Signature(r)
		if err != nil {
			t.Fatal(err)
		}
		if len(sig) > 72 {
			t.Errorf("P-256 signature of %d octets", len(sig))
		}
		out, err := s.AppendSigned([]byte("x"), r, sig)
		if err != nil {
			t.Fatal(err)
		}
		if out[0] != 'x' {
			t.Fatal("AppendSigned overwrote dst")
		}
		got, err := ocsp.ParseResponseForCert(out[1:], p.leaf, p.issuer)
		if err != nil {
			t.Fatalf("status %d: rebuilt response: %v", status, err)
		}
		if got.Status != status {
			t.Errorf("status %d, want %d", got.Status, status)
		}
		// The same signature inside SignBody's layout gives the same octets.
		body, err := s.SignBody(r)
		if err != nil {
			t.Fatal(err)
		}
		want := s.AppendResponse(nil, body)
		parsed, err := ocsp.ParseResponse(want, p.issuer)
		if err != nil {
			t.Fatal(err)
		}
		again, _ := s.AppendSigned(nil, r, parsed.Signature)
		if !bytes.Equal(again, want) {
			t.Errorf("status %d: AppendSigned with SignBody's signature differs from AppendResponse", status)
		}
		// Any other field: the signature no longer verifies.
		r2 := *r
		r2.ThisUpdate = r.ThisUpdate.Add(time.Second)
		bad, _ := s.AppendSigned(nil, &r2, sig)
		if _, err := ocsp.ParseResponseForCert(bad, p.leaf, p.issuer); err == nil {
			t.Errorf("status %d: a response with another thisUpdate verified with the old signature", status)
		}
	}
	if _, err := s.AppendSigned(nil, &ocspder.Response{}, nil); err == nil {
		t.Error("AppendSigned accepted an empty response")
	}
}
