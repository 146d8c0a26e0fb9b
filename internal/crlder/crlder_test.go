package crlder

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
	"io"
	"math/big"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"

	"github.com/zbca/zbca/internal/zerr"
)

// testCA is a self-signed CA certificate, parsed from DER, and its key.
type testCA struct {
	cert *x509.Certificate
	key  crypto.Signer
}

var (
	caOnce  sync.Once
	caByAlg map[string]testCA
)

// issuers returns one CA per supported key type, generated once per run.
func issuers(t testing.TB) map[string]testCA {
	t.Helper()
	caOnce.Do(func() {
		caByAlg = map[string]testCA{}
		p256, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
		rsa2048, _ := rsa.GenerateKey(rand.Reader, 2048)
		for name, key := range map[string]crypto.Signer{"P-256": p256, "P-384": p384, "RSA-2048": rsa2048} {
			caByAlg[name] = testCA{cert: selfSigned(t, name, key), key: key}
		}
	})
	return caByAlg
}

func selfSigned(t testing.TB, name string, key crypto.Signer) *x509.Certificate {
	t.Helper()
	spki, err := x509.MarshalPKIXPublicKey(key.Public())
	if err != nil {
		t.Fatal(err)
	}
	ski := sha1.Sum(spki)
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "crlder test CA " + name, Organization: []string{"zbca"}},
		NotBefore:             time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC),
		NotAfter:              time.Date(2060, 1, 1, 0, 0, 0, 0, time.UTC),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		SubjectKeyId:          ski[:],
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

func params(ca testCA) Params {
	return Params{
		Issuer:     ca.cert,
		Signer:     ca.key,
		Number:     big.NewInt(42),
		ThisUpdate: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC),
		NextUpdate: time.Date(2026, 3, 8, 12, 0, 0, 0, time.UTC),
	}
}

func mustHex(s string) []byte {
	b, ok := new(big.Int).SetString(s, 16)
	if !ok {
		panic(s)
	}
	return b.Bytes()
}

// sampleEntries covers serial lengths, the high bit, every valid reason and
// both Time encodings.
func sampleEntries() []Entry {
	est := time.FixedZone("EST", -5*3600)
	return []Entry{
		{Serial: []byte{0x01}, RevokedAt: time.Date(2026, 2, 1, 10, 0, 0, 0, time.UTC), Reason: 0},
		{Serial: []byte{0x7f}, RevokedAt: time.Date(2026, 2, 1, 10, 0, 0, 0, time.UTC), Reason: 1},
		{Serial: []byte{0x80}, RevokedAt: time.Date(2026, 2, 1, 10, 0, 0, 999_999_999, time.UTC), Reason: 2},
		{Serial: []byte{0xff, 0x00}, RevokedAt: time.Date(2026, 2, 1, 5, 0, 1, 0, est), Reason: 3},
		{Serial: mustHex("0102030405060708090a0b0c0d0e0f1011121314"), RevokedAt: time.Date(2049, 12, 31, 23, 59, 59, 0, time.UTC), Reason: 4},
		{Serial: mustHex("ff02030405060708090a0b0c0d0e0f1011121314"), RevokedAt: time.Date(2050, 1, 1, 0, 0, 0, 0, time.UTC), Reason: 5},
		{Serial: mustHex("8000000000000000000000000000000000000001"), RevokedAt: time.Date(2049, 6, 1, 0, 0, 0, 0, time.UTC), Reason: 6},
		{Serial: mustHex("0a0b0c0d0e0f"), RevokedAt: time.Date(2051, 6, 1, 0, 0, 0, 0, time.UTC), Reason: 9},
		{Serial: mustHex("1a0b0c0d0e0f"), RevokedAt: time.Date(1999, 6, 1, 0, 0, 0, 0, time.UTC), Reason: 10},
		{Serial: mustHex("2a0b0c0d0e0f"), RevokedAt: time.Date(1949, 6, 1, 0, 0, 0, 0, time.UTC), Reason: 0},
	}
}

func TestBuild(t *testing.T) {
	entries := sampleEntries()
	for name, ca := range issuers(t) {
		for idpName, idp := range map[string]*IssuingDistributionPoint{
			"no-idp":    nil,
			"idp":       {URI: "http://crl.example.com/7.crl"},
			"idp-users": {URI: "http://crl.example.com/user/3.crl", OnlyContainsUserCerts: true},
		} {
			t.Run(name+"/"+idpName, func(t *testing.T) {
				p := params(ca)
				p.Number = new(big.Int).SetBytes(mustHex("7f0102030405060708090a0b0c0d0e0f10111213"))
				p.ThisUpdate = time.Date(2049, 12, 31, 0, 0, 0, 0, time.UTC)
				p.NextUpdate = time.Date(2051, 1, 1, 0, 0, 0, 0, time.UTC)
				p.IDP = idp
				der, err := Build(p, Entries(entries))
				if err != nil {
					t.Fatal(err)
				}
				crl := checkCRL(t, der, p, entries)
				checkIDP(t, crl, idp)
				// thisUpdate (2049) is UTCTime, nextUpdate (2051) GeneralizedTime.
				got := timeTags(t, crl.RawTBSRevocationList)
				want := []cbasn1.Tag{cbasn1.UTCTime, cbasn1.GeneralizedTime}
				for _, e := range entries {
					want = append(want, wantTimeTag(e.RevokedAt))
				}
				if fmt.Sprint(got) != fmt.Sprint(want) {
					t.Errorf("time tags = %v, want %v", got, want)
				}
			})
		}
	}
}

func wantTimeTag(t time.Time) cbasn1.Tag {
	if y := t.UTC().Year(); y >= 1950 && y < 2050 {
		return cbasn1.UTCTime
	}
	return cbasn1.GeneralizedTime
}

// checkCRL parses der and checks every field against p and entries.
func checkCRL(t *testing.T, der []byte, p Params, entries []Entry) *x509.RevocationList {
	t.Helper()
	crl, err := x509.ParseRevocationList(der)
	if err != nil {
		t.Fatalf("ParseRevocationList: %v", err)
	}
	if err := crl.CheckSignatureFrom(p.Issuer); err != nil {
		t.Errorf("CheckSignatureFrom: %v", err)
	}
	if !bytes.Equal(crl.RawIssuer, p.Issuer.RawSubject) {
		t.Errorf("issuer = %x, want %x", crl.RawIssuer, p.Issuer.RawSubject)
	}
	if crl.Number == nil || crl.Number.Cmp(p.Number) != 0 {
		t.Errorf("number = %v, want %v", crl.Number, p.Number)
	}
	if !crl.ThisUpdate.Equal(p.ThisUpdate.Truncate(time.Second)) {
		t.Errorf("thisUpdate = %v, want %v", crl.ThisUpdate, p.ThisUpdate)
	}
	if !crl.NextUpdate.Equal(p.NextUpdate.Truncate(time.Second)) {
		t.Errorf("nextUpdate = %v, want %v", crl.NextUpdate, p.NextUpdate)
	}
	if !bytes.Equal(crl.AuthorityKeyId, p.Issuer.SubjectKeyId) {
		t.Errorf("AKI = %x, want %x", crl.AuthorityKeyId, p.Issuer.SubjectKeyId)
	}
	wantAlg := map[string]x509.SignatureAlgorithm{"P-256": x509.ECDSAWithSHA256, "P-384": x509.ECDSAWithSHA384}
	switch k := p.Signer.Public().(type) {
	case *ecdsa.PublicKey:
		if crl.SignatureAlgorithm != wantAlg[k.Curve.Params().Name] {
			t.Errorf("signature algorithm = %v for %s", crl.SignatureAlgorithm, k.Curve.Params().Name)
		}
	case *rsa.PublicKey:
		if crl.SignatureAlgorithm != x509.SHA256WithRSA {
			t.Errorf("signature algorithm = %v for RSA", crl.SignatureAlgorithm)
		}
	}
	tbs := cryptobyte.String(crl.RawTBSRevocationList)
	var body cryptobyte.String
	var version int
	if !tbs.ReadASN1(&body, cbasn1.SEQUENCE) || !body.ReadASN1Integer(&version) || version != 1 {
		t.Errorf("version = %d, want 1 (v2)", version)
	}
	checkEntries(t, crl, entries)
	return crl
}

func checkEntries(t *testing.T, crl *x509.RevocationList, entries []Entry) {
	t.Helper()
	got := crl.RevokedCertificateEntries
	if len(got) != len(entries) {
		t.Fatalf("%d entries, want %d", len(got), len(entries))
	}
	for i, e := range entries {
		g := got[i]
		if want := new(big.Int).SetBytes(e.Serial); g.SerialNumber.Cmp(want) != 0 {
			t.Errorf("entry %d: serial %x, want %x", i, g.SerialNumber, want)
		}
		if want := e.RevokedAt.Truncate(time.Second); !g.RevocationTime.Equal(want) {
			t.Errorf("entry %d: time %v, want %v", i, g.RevocationTime, want)
		}
		if g.ReasonCode != e.Reason {
			t.Errorf("entry %d: reason %d, want %d", i, g.ReasonCode, e.Reason)
		}
		if e.Reason == 0 && len(g.Extensions) != 0 {
			t.Errorf("entry %d: reason 0 has extensions %v, want none", i, g.Extensions)
		}
		if e.Reason != 0 && (len(g.Extensions) != 1 || g.Extensions[0].Critical) {
			t.Errorf("entry %d: extensions %v, want one non-critical reasonCode", i, g.Extensions)
		}
	}
}

var oidIDPTest = asn1.ObjectIdentifier{2, 5, 29, 28}

func checkIDP(t *testing.T, crl *x509.RevocationList, idp *IssuingDistributionPoint) {
	t.Helper()
	var ext *pkix.Extension
	for i := range crl.Extensions {
		if crl.Extensions[i].Id.Equal(oidIDPTest) {
			ext = &crl.Extensions[i]
		}
	}
	if idp == nil {
		if ext != nil {
			t.Errorf("unexpected IDP extension %x", ext.Value)
		}
		if len(crl.Extensions) != 2 {
			t.Errorf("%d CRL extensions, want 2 (AKI, cRLNumber)", len(crl.Extensions))
		}
		return
	}
	if ext == nil {
		t.Fatal("no IDP extension")
	}
	if !ext.Critical {
		t.Error("IDP extension is not critical")
	}
	// Parse it the way boulder's idp package does.
	var got struct {
		DistributionPoint struct {
			FullName []asn1.RawValue `asn1:"optional,tag:0"`
		} `asn1:"optional,tag:0"`
		OnlyContainsUserCerts bool `asn1:"optional,tag:1"`
		OnlyContainsCACerts   bool `asn1:"optional,tag:2"`
	}
	rest, err := asn1.Unmarshal(ext.Value, &got)
	if err != nil || len(rest) != 0 {
		t.Fatalf("parsing IDP %x: %v (rest %x)", ext.Value, err, rest)
	}
	if n := got.DistributionPoint.FullName; len(n) != 1 || n[0].Class != asn1.ClassContextSpecific || n[0].Tag != 6 || string(n[0].Bytes) != idp.URI {
		t.Errorf("IDP fullName = %+v, want URI %q", n, idp.URI)
	}
	if got.OnlyContainsUserCerts != idp.OnlyContainsUserCerts || got.OnlyContainsCACerts {
		t.Errorf("IDP flags = %+v, want onlyContainsUserCerts=%v", got, idp.OnlyContainsUserCerts)
	}
	// And byte for byte, written out by hand.
	u := []byte(idp.URI)
	inner := append([]byte{0xa0, byte(len(u) + 4), 0xa0, byte(len(u) + 2), 0x86, byte(len(u))}, u...)
	if idp.OnlyContainsUserCerts {
		inner = append(inner, 0x81, 0x01, 0xff)
	}
	want := append([]byte{0x30, byte(len(inner))}, inner...)
	if !bytes.Equal(ext.Value, want) {
		t.Errorf("IDP DER = %x, want %x", ext.Value, want)
	}
}

// tbsFields splits a TBSCertList into its fields.
func tbsFields(t *testing.T, tbs []byte) (times []cbasn1.Tag, revoked *cryptobyte.String, hasRevoked bool, rest cryptobyte.String) {
	t.Helper()
	in := cryptobyte.String(tbs)
	var body cryptobyte.String
	var version int
	if !in.ReadASN1(&body, cbasn1.SEQUENCE) || !body.ReadASN1Integer(&version) ||
		!body.SkipASN1(cbasn1.SEQUENCE) || !body.SkipASN1(cbasn1.SEQUENCE) {
		t.Fatal("malformed TBSCertList")
	}
	for range 2 {
		var tag cbasn1.Tag
		var skip cryptobyte.String
		if !body.ReadAnyASN1(&skip, &tag) {
			t.Fatal("malformed update time")
		}
		times = append(times, tag)
	}
	var rv cryptobyte.String
	if body.PeekASN1Tag(cbasn1.SEQUENCE) {
		if !body.ReadASN1(&rv, cbasn1.SEQUENCE) {
			t.Fatal("malformed revokedCertificates")
		}
		return times, &rv, true, body
	}
	return times, nil, false, body
}

// timeTags returns the tags of thisUpdate, nextUpdate and every revocationDate.
func timeTags(t *testing.T, tbs []byte) []cbasn1.Tag {
	t.Helper()
	tags, rv, ok, _ := tbsFields(t, tbs)
	if !ok {
		return tags
	}
	for !rv.Empty() {
		var entry cryptobyte.String
		var tag cbasn1.Tag
		var skip cryptobyte.String
		if !rv.ReadASN1(&entry, cbasn1.SEQUENCE) || !entry.SkipASN1(cbasn1.INTEGER) || !entry.ReadAnyASN1(&skip, &tag) {
			t.Fatal("malformed entry")
		}
		tags = append(tags, tag)
	}
	return tags
}

func TestBuildEmpty(t *testing.T) {
	for name, ca := range issuers(t) {
		t.Run(name, func(t *testing.T) {
			p := params(ca)
			for _, build := range []func() ([]byte, error){
				func() ([]byte, error) { return BuildEmpty(p) },
				func() ([]byte, error) { return Build(p, Entries(nil)) },
			} {
				der, err := build()
				if err != nil {
					t.Fatal(err)
				}
				crl := checkCRL(t, der, p, nil)
				_, _, has, rest := tbsFields(t, crl.RawTBSRevocationList)
				if has {
					t.Error("empty CRL has a revokedCertificates field")
				}
				if !rest.PeekASN1Tag(cbasn1.Tag(0).Constructed().ContextSpecific()) {
					t.Errorf("after nextUpdate: %x, want crlExtensions [0]", []byte(rest))
				}
			}
		})
	}
}

// TestMatchesStdlib compares with x509.CreateRevocationList: the parsed
// entries must agree, and so does the whole TBSCertList, byte for byte.
func TestMatchesStdlib(t *testing.T) {
	entries := sampleEntries()
	for name, ca := range issuers(t) {
		t.Run(name, func(t *testing.T) {
			p := params(ca)
			var rcs []x509.RevocationListEntry
			for _, e := range entries {
				rcs = append(rcs, x509.RevocationListEntry{
					SerialNumber:   new(big.Int).SetBytes(e.Serial),
					RevocationTime: e.RevokedAt,
					ReasonCode:     e.Reason,
				})
			}
			stdDER, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{
				RevokedCertificateEntries: rcs,
				Number:                    p.Number,
				ThisUpdate:                p.ThisUpdate,
				NextUpdate:                p.NextUpdate,
			}, p.Issuer, p.Signer)
			if err != nil {
				t.Fatal(err)
			}
			std, err := x509.ParseRevocationList(stdDER)
			if err != nil {
				t.Fatal(err)
			}
			der, err := Build(p, Entries(entries))
			if err != nil {
				t.Fatal(err)
			}
			ours := checkCRL(t, der, p, entries)
			if len(std.RevokedCertificateEntries) != len(ours.RevokedCertificateEntries) {
				t.Fatalf("stdlib has %d entries, ours %d", len(std.RevokedCertificateEntries), len(ours.RevokedCertificateEntries))
			}
			for i, s := range std.RevokedCertificateEntries {
				o := ours.RevokedCertificateEntries[i]
				if s.SerialNumber.Cmp(o.SerialNumber) != 0 || !s.RevocationTime.Equal(o.RevocationTime) || s.ReasonCode != o.ReasonCode {
					t.Errorf("entry %d: stdlib %x %v %d, ours %x %v %d", i,
						s.SerialNumber, s.RevocationTime, s.ReasonCode, o.SerialNumber, o.RevocationTime, o.ReasonCode)
				}
			}
			if !bytes.Equal(std.RawTBSRevocationList, ours.RawTBSRevocationList) {
				t.Errorf("TBSCertList differs from stdlib's:\nstd  %x\nours %x", std.RawTBSRevocationList, ours.RawTBSRevocationList)
			}
		})
	}
}

func TestInvalid(t *testing.T) {
	cas := issuers(t)
	ca := cas["P-256"]
	ok := Entry{Serial: []byte{1}, RevokedAt: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	with := func(f func(*Entry)) []Entry {
		e := ok
		f(&e)
		return []Entry{ok, e}
	}
	noSKI := *ca.cert
	noSKI.SubjectKeyId = nil
	noRaw := *ca.cert
	noRaw.RawSubject = nil
	noCRLSign := *ca.cert
	noCRLSign.KeyUsage = x509.KeyUsageCertSign
	p521, _ := ecdsa.GenerateKey(elliptic.P521(), rand.Reader)

	tests := []struct {
		name    string
		params  func(*Params)
		entries []Entry
		want    string
	}{
		{"reason 7", nil, with(func(e *Entry) { e.Reason = 7 }), "entry 1 (serial 01): reason 7 is unassigned"},
		{"reason 8", nil, with(func(e *Entry) { e.Reason = 8 }), "removeFromCRL"},
		{"reason 11", nil, with(func(e *Entry) { e.Reason = 11 }), "reason out of range"},
		{"reason -1", nil, with(func(e *Entry) { e.Reason = -1 }), "reason out of range"},
		{"empty serial", nil, with(func(e *Entry) { e.Serial = nil }), "entry 1 (serial ): empty serial"},
		{"21-byte serial", nil, with(func(e *Entry) { e.Serial = bytes.Repeat([]byte{1}, 21) }), "serial longer than 20 bytes"},
		{"leading zero", nil, with(func(e *Entry) { e.Serial = []byte{0, 0x80} }), "leading zero byte"},
		{"zero serial", nil, with(func(e *Entry) { e.Serial = []byte{0} }), "leading zero byte"},
		{"zero time", nil, with(func(e *Entry) { e.RevokedAt = time.Time{} }), "zero revocation time"},
		{"year 10000", nil, with(func(e *Entry) { e.RevokedAt = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC) }), "outside years"},
		{"next before this", func(p *Params) { p.NextUpdate = p.ThisUpdate.Add(-time.Second) }, nil, "is before thisUpdate"},
		{"zero this", func(p *Params) { p.ThisUpdate = time.Time{} }, nil, "zero thisUpdate"},
		{"zero next", func(p *Params) { p.NextUpdate = time.Time{} }, nil, "zero nextUpdate"},
		{"nil signer", func(p *Params) { p.Signer = nil }, nil, "nil signer"},
		{"nil issuer", func(p *Params) { p.Issuer = nil }, nil, "nil issuer"},
		{"issuer without SKI", func(p *Params) { p.Issuer = &noSKI }, nil, "no subject key identifier"},
		{"issuer not parsed", func(p *Params) { p.Issuer = &noRaw }, nil, "no RawSubject"},
		{"issuer without cRLSign", func(p *Params) { p.Issuer = &noCRLSign }, nil, "cRLSign"},
		{"wrong key", func(p *Params) { p.Signer = cas["P-384"].key }, nil, "does not match"},
		{"P-521", func(p *Params) { p.Signer = p521 }, nil, "unsupported ECDSA curve P-521"},
		{"nil number", func(p *Params) { p.Number = nil }, nil, "nil CRL number"},
		{"negative number", func(p *Params) { p.Number = big.NewInt(-1) }, nil, "negative CRL number"},
		{"21-octet number", func(p *Params) { p.Number = new(big.Int).Lsh(big.NewInt(1), 159) }, nil, "longer than 20 octets"},
		{"IDP without URI", func(p *Params) { p.IDP = &IssuingDistributionPoint{OnlyContainsUserCerts: true} }, nil, "without URI"},
		{"IDP non-ASCII URI", func(p *Params) { p.IDP = &IssuingDistributionPoint{URI: "http://é.example/"} }, nil, "not printable ASCII"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := params(ca)
			if tc.params != nil {
				tc.params(&p)
			}
			_, err := Build(p, Entries(tc.entries))
			if err == nil {
				t.Fatal("no error")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q, want it to contain %q", err, tc.want)
			}
			if !errors.Is(err, zerr.BadRequest) {
				t.Errorf("error %q is not zerr.BadRequest", err)
			}
		})
	}

	t.Run("nil iterator", func(t *testing.T) {
		if _, err := Build(params(ca), nil); err == nil || !errors.Is(err, zerr.BadRequest) {
			t.Errorf("error %v, want zerr.BadRequest", err)
		}
	})
	t.Run("boundaries accepted", func(t *testing.T) {
		p := params(ca)
		p.NextUpdate = p.ThisUpdate // equal is not "before"
		p.Number = new(big.Int).SetBytes(mustHex("7fffffffffffffffffffffffffffffffffffffff"))
		es := []Entry{{Serial: bytes.Repeat([]byte{0xff}, 20), RevokedAt: time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC), Reason: 10}}
		der, err := Build(p, Entries(es))
		if err != nil {
			t.Fatal(err)
		}
		checkCRL(t, der, p, es)
		p.Number = big.NewInt(0)
		if der, err = BuildEmpty(p); err != nil {
			t.Fatal(err)
		}
		checkCRL(t, der, p, nil)
	})
	t.Run("signer failure", func(t *testing.T) {
		p := params(ca)
		p.Signer = failingSigner{ca.key}
		_, err := Build(p, Entries([]Entry{ok}))
		if !errors.Is(err, zerr.Internal) || !strings.Contains(err.Error(), "hsm offline") {
			t.Errorf("error %v, want zerr.Internal wrapping the signer's", err)
		}
		p.Signer = corruptSigner{ca.key}
		_, err = Build(p, Entries([]Entry{ok}))
		if !errors.Is(err, zerr.Internal) || !strings.Contains(err.Error(), "does not verify") {
			t.Errorf("error %v, want zerr.Internal about a bad signature", err)
		}
	})
}

type failingSigner struct{ crypto.Signer }

func (failingSigner) Sign(io.Reader, []byte, crypto.SignerOpts) ([]byte, error) {
	return nil, errors.New("hsm offline")
}

type corruptSigner struct{ crypto.Signer }

func (s corruptSigner) Sign(r io.Reader, d []byte, o crypto.SignerOpts) ([]byte, error) {
	d2 := bytes.Clone(d)
	d2[0] ^= 1
	return s.Signer.Sign(r, d2, o)
}

// TestLarge checks a CRL whose lengths need multi-byte DER lengths and several
// chunks, and whose entries share revocation seconds (the time cache).
func TestLarge(t *testing.T) {
	ca := issuers(t)["P-384"]
	p := params(ca)
	const n = 50_000
	var es []Entry
	next := genEntries(n, 3)
	for e, ok := next(); ok; e, ok = next() {
		e.Serial = bytes.Clone(e.Serial)
		es = append(es, e)
	}
	der, err := Build(p, genEntries(n, 3))
	if err != nil {
		t.Fatal(err)
	}
	checkCRL(t, der, p, es)
}

// TestEntriesHint: with a count hint the entries are written in place; the
// TBSCertList is the same octets as without it, whether the hint is right,
// too high, too low (the in-place buffer overflows into chunks) or zero
// entries arrive.
func TestEntriesHint(t *testing.T) {
	for name, ca := range issuers(t) {
		for _, tc := range []struct{ n, hint int }{{1000, 1000}, {1000, 5000}, {1000, 10}, {5000, 1}, {0, 100}, {3, 3}} {
			t.Run(fmt.Sprintf("%s/%d-entries-hint-%d", name, tc.n, tc.hint), func(t *testing.T) {
				p := params(ca)
				var es []Entry
				next := genEntries(tc.n, 3)
				for e, ok := next(); ok; e, ok = next() {
					e.Serial = bytes.Clone(e.Serial)
					es = append(es, e)
				}
				plain, err := Build(p, Entries(es))
				if err != nil {
					t.Fatal(err)
				}
				p.EntriesHint = tc.hint
				hinted, err := Build(p, Entries(es))
				if err != nil {
					t.Fatal(err)
				}
				a, b := checkCRL(t, plain, p, es), checkCRL(t, hinted, p, es)
				if !bytes.Equal(a.RawTBSRevocationList, b.RawTBSRevocationList) {
					t.Error("TBSCertList differs with the hint")
				}
				if len(hinted) != cap(hinted) {
					t.Errorf("result has %d spare octets of capacity that the caller could write into", cap(hinted)-len(hinted))
				}
			})
		}
	}
}
