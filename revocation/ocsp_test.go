package revocation

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/base64"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ocsp"

	"github.com/zbca/zbca/ca"
	"github.com/zbca/zbca/internal/ocspder"
	"github.com/zbca/zbca/store"
)

func ocspRequest(t testing.TB, leaf, issuer *x509.Certificate, h crypto.Hash) []byte {
	t.Helper()
	der, err := ocsp.CreateRequest(leaf, issuer, &ocsp.RequestOptions{Hash: h})
	if err != nil {
		t.Fatal(err)
	}
	return der
}

// withNonce adds an RFC 8954 nonce extension to an x/crypto request.
func withNonce(t testing.TB, der, nonce []byte) []byte {
	t.Helper()
	var req struct {
		TBS struct {
			Version       int           `asn1:"explicit,tag:0,default:0,optional"`
			RequestorName asn1.RawValue `asn1:"explicit,tag:1,optional"`
			RequestList   []asn1.RawValue
			Extensions    []pkix.Extension `asn1:"explicit,tag:2,optional"`
		}
	}
	if _, err := asn1.Unmarshal(der, &req); err != nil {
		t.Fatal(err)
	}
	val, _ := asn1.Marshal(nonce)
	req.TBS.Extensions = []pkix.Extension{{Id: asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 48, 1, 2}, Value: val}}
	out, err := asn1.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func get(t testing.TB, h http.Handler, path string) *httptest.ResponseRecorder {
	t.Helper()
	r := httptest.NewRequest("GET", "/", nil)
	r.URL = &url.URL{Path: "/placeholder", RawPath: path}
	r.URL.Path, _ = url.PathUnescape(path)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, r)
	return rec
}

func post(t testing.TB, h http.Handler, body []byte) *httptest.ResponseRecorder {
	r := httptest.NewRequest("POST", "/ocsp", bytes.NewReader(body))
	r.Header.Set("Content-Type", "application/ocsp-request")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, r)
	return rec
}

func TestOCSPGoodRevokedNotIssued(t *testing.T) {
	f := newFixture(t, nil)
	leaf := f.issue(t)
	iss := f.a.Issuing()
	for _, h := range []crypto.Hash{crypto.SHA1, crypto.SHA256} {
		req := ocspRequest(t, leaf, iss, h)
		rec := get(t, f.resp, "/ocsp/"+base64.StdEncoding.EncodeToString(req))
		if rec.Code != 200 || rec.Header().Get("Content-Type") != "application/ocsp-response" {
			t.Fatalf("GET: %d %q", rec.Code, rec.Header().Get("Content-Type"))
		}
		r, err := ocsp.ParseResponseForCert(rec.Body.Bytes(), leaf, iss)
		if err != nil {
			t.Fatalf("hash %v: %v", h, err)
		}
		if r.Status != ocsp.Good || r.SerialNumber.Cmp(leaf.SerialNumber) != 0 {
			t.Errorf("hash %v: status %d", h, r.Status)
		}
		if d := r.NextUpdate.Sub(r.ThisUpdate); d != time.Hour {
			t.Errorf("validity %s", d)
		}
		if r.Certificate == nil || r.Certificate.ExtKeyUsage[0] != x509.ExtKeyUsageOCSPSigning {
			t.Error("delegated signer certificate not included")
		}
		// Caching headers (RFC 5019 §6).
		cc := rec.Header().Get("Cache-Control")
		maxAge, _ := strconv.Atoi(strings.TrimPrefix(strings.Split(cc, ",")[0], "max-age="))
		if !strings.Contains(cc, "public") || !strings.Contains(cc, "must-revalidate") || maxAge <= 0 || time.Duration(maxAge)*time.Second > time.Until(r.NextUpdate)+time.Second {
			t.Errorf("Cache-Control %q against nextUpdate %s", cc, r.NextUpdate)
		}
		for _, hd := range []string{"Last-Modified", "Expires", "ETag"} {
			if rec.Header().Get(hd) == "" {
				t.Errorf("no %s", hd)
			}
		}
	}
	// Revoked: the answer changes before Revoke returns.
	serial := leaf.SerialNumber.Text(16)
	if _, err := f.svc.Revoke(context.Background(), serial, KeyCompromise, "test", ByOperator); err != nil {
		t.Fatal(err)
	}
	rec := post(t, f.resp, ocspRequest(t, leaf, iss, crypto.SHA1))
	r, err := ocsp.ParseResponseForCert(rec.Body.Bytes(), leaf, iss)
	if err != nil || r.Status != ocsp.Revoked || r.RevocationReason != ocsp.KeyCompromise {
		t.Fatalf("after revocation: %v %+v", err, r)
	}
	// A serial we never issued is never "good" (RFC 6960 §2.2).
	fake := *leaf
	fake.SerialNumber = big.NewInt(0x1234567)
	rec = post(t, f.resp, ocspRequest(t, &fake, iss, crypto.SHA1))
	r, err = ocsp.ParseResponse(rec.Body.Bytes(), iss)
	if err != nil || r.Status != ocsp.Revoked || r.RevocationReason != ocsp.CertificateHold || r.RevokedAt.Unix() != 0 {
		t.Fatalf("never issued: %v %+v", err, r)
	}
	if !bytes.Contains(rec.Body.Bytes(), []byte{0x06, 0x09, 0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x30, 0x01, 0x09}) {
		t.Error("no extended-revoke extension")
	}
	// The issuing CA itself, asked of the root, is good and root-signed.
	rec = post(t, f.resp, ocspRequest(t, iss, f.a.Root(), crypto.SHA1))
	r, err = ocsp.ParseResponseForCert(rec.Body.Bytes(), iss, f.a.Root())
	if err != nil || r.Status != ocsp.Good {
		t.Fatalf("issuing CA status: %v %+v", err, r)
	}
}

func TestOCSPRefusals(t *testing.T) {
	f := newFixture(t, nil)
	leaf := f.issue(t)
	// Another CA entirely.
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "other"}, NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, _ := x509.CreateCertificate(rand.Reader, tmpl, tmpl, k.Public(), k)
	other, _ := x509.ParseCertificate(der)
	rec := post(t, f.resp, ocspRequest(t, leaf, other, crypto.SHA1))
	if !bytes.Equal(rec.Body.Bytes(), ocspder.Unauthorized) {
		t.Errorf("foreign issuer: %x", rec.Body.Bytes())
	}
	for name, body := range map[string][]byte{"empty": nil, "garbage": []byte("hello"), "truncated": ocspRequest(t, leaf, f.a.Issuing(), crypto.SHA1)[:20]} {
		rec := post(t, f.resp, body)
		if !bytes.Equal(rec.Body.Bytes(), ocspder.MalformedRequest) {
			t.Errorf("%s: %x", name, rec.Body.Bytes())
		}
	}
	if rec := post(t, f.resp, make([]byte, MaxOCSPRequest+1)); !bytes.Equal(rec.Body.Bytes(), ocspder.MalformedRequest) {
		t.Error("oversized POST")
	}
	r := httptest.NewRequest("POST", "/ocsp", strings.NewReader("x"))
	r.Header.Set("Content-Type", "text/plain")
	rec = httptest.NewRecorder()
	f.resp.ServeHTTP(rec, r)
	if rec.Code != http.StatusUnsupportedMediaType {
		t.Errorf("wrong content type: %d", rec.Code)
	}
	r = httptest.NewRequest("PUT", "/ocsp", nil)
	rec = httptest.NewRecorder()
	f.resp.ServeHTTP(rec, r)
	if rec.Code != http.StatusMethodNotAllowed {
		t.Errorf("PUT: %d", rec.Code)
	}
}

func TestOCSPNonce(t *testing.T) {
	f := newFixture(t, nil)
	leaf := f.issue(t)
	nonce := []byte("0123456789abcdef")
	req := withNonce(t, ocspRequest(t, leaf, f.a.Issuing(), crypto.SHA1), nonce)
	rec := post(t, f.resp, req)
	if _, err := ocsp.ParseResponseForCert(rec.Body.Bytes(), leaf, f.a.Issuing()); err != nil {
		t.Fatal(err)
	}
	val, _ := asn1.Marshal(nonce)
	if !bytes.Contains(rec.Body.Bytes(), val) {
		t.Error("nonce not echoed")
	}
	if cc := rec.Header().Get("Cache-Control"); !strings.Contains(cc, "no-store") {
		t.Errorf("nonce answer cacheable: %q", cc)
	}
}

func TestOCSPTryLater(t *testing.T) {
	f := newFixture(t, func(o *ResponderOptions) { o.LiveWorkers = 1; o.LiveWait = 20 * time.Millisecond })
	leaf := f.issue(t)
	f.resp.live <- struct{}{} // the only worker is busy
	req := withNonce(t, ocspRequest(t, leaf, f.a.Issuing(), crypto.SHA1), []byte("nonce-nonce-1234"))
	start := time.Now()
	rec := post(t, f.resp, req)
	// A sanity bound only (timing is for benchmarks): the answer comes
	// after LiveWait, not after the busy worker.
	if d := time.Since(start); d > time.Second {
		t.Errorf("tryLater took %s", d)
	}
	if !bytes.Equal(rec.Body.Bytes(), ocspder.TryLater) {
		t.Fatalf("saturated: %x", rec.Body.Bytes())
	}
	// Pre-signed answers do not need a worker.
	rec = post(t, f.resp, ocspRequest(t, leaf, f.a.Issuing(), crypto.SHA1))
	if r, err := ocsp.ParseResponseForCert(rec.Body.Bytes(), leaf, f.a.Issuing()); err != nil || r.Status != ocsp.Good {
		t.Fatalf("cached answer while saturated: %v", err)
	}
	<-f.resp.live
	if rec := post(t, f.resp, req); bytes.Equal(rec.Body.Bytes(), ocspder.TryLater) {
		t.Error("still tryLater with a free worker")
	}
}

func TestDecodeGETPath(t *testing.T) {
	// Bytes whose base64 has '+', '/' and '=' in it ("+/+/+/8=").
	der := []byte{0xfb, 0xff, 0xbf, 0xfb, 0xff}
	b := base64.StdEncoding.EncodeToString(der)
	for name, path := range map[string]string{
		"plain":         "/ocsp/" + b,
		"escaped":       "/ocsp/" + strings.NewReplacer("+", "%2B", "/", "%2F", "=", "%3D").Replace(b),
		"lower escapes": "/ocsp/" + strings.NewReplacer("+", "%2b", "/", "%2f", "=", "%3d").Replace(b),
		"plus as space": "/ocsp/" + strings.ReplaceAll(b, "+", "%20"),
		"leading //":    "/ocsp//" + b,
		"double slash":  "//ocsp/" + b,
		"no padding":    "/ocsp/" + strings.TrimRight(b, "="),
		"url alphabet":  "/ocsp/" + base64.RawURLEncoding.EncodeToString(der),
	} {
		got, ok := decodeGETPath(path)
		if !ok || !bytes.Equal(got, der) {
			t.Errorf("%s: not decoded", name)
		}
	}
	for _, path := range []string{"/ocsp", "/ocsp/", "/ocsp/%zz", "/ocsp/abc%", "/ocsp/!!!!", "/other/" + b, "/ocsp/" + strings.Repeat("A", 3*MaxOCSPRequest)} {
		if _, ok := decodeGETPath(path); ok {
			t.Errorf("%q accepted", path)
		}
	}
}

// TestOCSPHostile: 10,000 random, truncated and oversized requests over real
// HTTP each get malformedRequest (or a 4xx), and a valid request right after
// is answered.
func TestOCSPHostile(t *testing.T) {
	f := newFixture(t, nil)
	leaf := f.issue(t)
	srv := httptest.NewServer(f.resp)
	defer srv.Close()
	good := ocspRequest(t, leaf, f.a.Issuing(), crypto.SHA1)
	client := srv.Client()
	for i := range 10000 {
		var body []byte
		switch i % 4 {
		case 0:
			body = make([]byte, 1+i%700)
			rand.Read(body)
		case 1:
			body = good[:i%len(good)]
		case 2:
			body = append(append([]byte{}, good...), byte(i))
		case 3:
			body = make([]byte, MaxOCSPRequest+1+i%100)
		}
		var resp *http.Response
		var err error
		if i%2 == 0 {
			resp, err = client.Post(srv.URL+"/ocsp", "application/ocsp-request", bytes.NewReader(body))
		} else {
			resp, err = client.Get(srv.URL + "/ocsp/" + url.PathEscape(base64.StdEncoding.EncodeToString(body)))
		}
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode >= 500 || (resp.StatusCode == 200 && !bytes.Equal(b, ocspder.MalformedRequest)) {
			if _, perr := ocsp.ParseResponse(b, nil); perr == nil {
				continue // a random body that happened to be a valid request
			}
			t.Fatalf("request %d (%d bytes): status %d, body %x", i, len(body), resp.StatusCode, b[:min(len(b), 16)])
		}
	}
	resp, err := client.Post(srv.URL+"/ocsp", "application/ocsp-request", bytes.NewReader(good))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if r, err := ocsp.ParseResponseForCert(b, leaf, f.a.Issuing()); err != nil || r.Status != ocsp.Good {
		t.Fatalf("valid request after the storm: %v", err)
	}
}

func FuzzDecodeGETPath(f *testing.F) {
	f.Add("/ocsp/MEIwQDA+MDwwOjAJBgUrDgMCGgUABBQ=")
	f.Add("/ocsp//MEIw%2BA%3D")
	f.Add("//ocsp/a b")
	f.Fuzz(func(t *testing.T, p string) {
		der, ok := decodeGETPath(p)
		if ok && (len(der) == 0 || len(der) > MaxOCSPRequest) {
			t.Fatalf("accepted %d bytes", len(der))
		}
	})
}

func FuzzServeOCSP(f *testing.F) {
	fx := newFixture(f, nil)
	leaf := fx.issue(f)
	f.Add(ocspRequest(f, leaf, fx.a.Issuing(), crypto.SHA1))
	f.Add(ocspRequest(f, leaf, fx.a.Issuing(), crypto.SHA256))
	f.Fuzz(func(t *testing.T, body []byte) {
		rec := post(t, fx.resp, body)
		if rec.Code != 200 {
			t.Fatalf("status %d", rec.Code)
		}
		b := rec.Body.Bytes()
		if bytes.Equal(b, ocspder.MalformedRequest) || bytes.Equal(b, ocspder.Unauthorized) || bytes.Equal(b, ocspder.TryLater) {
			return
		}
		r, err := ocsp.ParseResponse(b, nil)
		if err != nil {
			t.Fatalf("unparsable answer to %x: %v", body, err)
		}
		if r.Status == ocsp.Good && r.SerialNumber.Cmp(leaf.SerialNumber) != 0 {
			t.Fatalf("good for a serial we did not issue: %x", r.SerialNumber)
		}
	})
}

// TestOCSPIssuingKeySigns: with ocsp.signer "issuing" the issuing CA key
// signs and no responder certificate is included.
func TestOCSPIssuingKeySigns(t *testing.T) {
	f := newFixture(t, func(o *ResponderOptions) { o.Delegated = nil })
	leaf := f.issue(t)
	rec := post(t, f.resp, ocspRequest(t, leaf, f.a.Issuing(), crypto.SHA1))
	r, err := ocsp.ParseResponseForCert(rec.Body.Bytes(), leaf, f.a.Issuing())
	if err != nil || r.Status != ocsp.Good {
		t.Fatalf("%v %+v", err, r)
	}
	if r.Certificate != nil {
		t.Error("a responder certificate was included")
	}
}

// TestOCSPIssuedElsewhere: a certificate stored by another process (not
// yet applied from the feed: here the feed is stopped) is answered from
// the store, not as never issued; a serial that is really unknown gets a
// short-lived, non-cacheable answer.
func TestOCSPIssuedElsewhere(t *testing.T) {
	var lookups int
	var fx *fixture
	fx = newFixture(t, func(o *ResponderOptions) {
		o.Lookup = func(ctx context.Context, serial string) (*store.CertStatus, error) {
			lookups++
			return fx.st.CertStatus(ctx, serial)
		}
	})
	fx.tasks.Stop(5 * time.Second)
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, k)
	csr, _ := x509.ParseCertificateRequest(der)
	iss, err := fx.a.Issue(context.Background(), ca.IssueRequest{CSR: csr, Username: "acme", Actor: "elsewhere"})
	if err != nil {
		t.Fatal(err)
	}
	rec := post(t, fx.resp, ocspRequest(t, iss.Certificate, fx.a.Issuing(), crypto.SHA1))
	r, err := ocsp.ParseResponseForCert(rec.Body.Bytes(), iss.Certificate, fx.a.Issuing())
	if err != nil || r.Status != ocsp.Good || lookups != 1 {
		t.Fatalf("issued elsewhere: %v %+v (lookups %d)", err, r, lookups)
	}
	fake := *iss.Certificate
	fake.SerialNumber = big.NewInt(0xabcdef)
	rec = post(t, fx.resp, ocspRequest(t, &fake, fx.a.Issuing(), crypto.SHA1))
	r, err = ocsp.ParseResponse(rec.Body.Bytes(), fx.a.Issuing())
	if err != nil || r.Status != ocsp.Revoked || r.NextUpdate.Sub(r.ThisUpdate) > time.Minute {
		t.Fatalf("never issued: %v %+v", err, r)
	}
	if cc := rec.Header().Get("Cache-Control"); !strings.Contains(cc, "no-store") {
		t.Errorf("never-issued answer is cacheable: %q", cc)
	}
}

// TestOCSPUnspecifiedReasonOmitted: a certificate revoked for reason
// unspecified is answered without a revocationReason, as the CRL lists it
// (RFC 5280 §5.3.1), on the pre-signed (SHA-1) and the live (SHA-256)
// paths alike.
func TestOCSPUnspecifiedReasonOmitted(t *testing.T) {
	f := newFixture(t, nil)
	leaf := f.issue(t)
	iss := f.a.Issuing()
	if _, err := f.svc.Revoke(context.Background(), leaf.SerialNumber.Text(16), Unspecified, "test", ByOperator); err != nil {
		t.Fatal(err)
	}
	for _, h := range []crypto.Hash{crypto.SHA1, crypto.SHA256} {
		rec := post(t, f.resp, ocspRequest(t, leaf, iss, h))
		r, err := ocsp.ParseResponseForCert(rec.Body.Bytes(), leaf, iss)
		if err != nil || r.Status != ocsp.Revoked {
			t.Fatalf("%v: %v %+v", h, err, r)
		}
		// x/crypto/ocsp reports an absent reason as 0 too: look at the
		// bytes. revocationReason is [0] EXPLICIT CRLReason inside
		// RevokedInfo: A0 03 0A 01 00.
		if bytes.Contains(rec.Body.Bytes(), []byte{0xa0, 0x03, 0x0a, 0x01, 0x00}) {
			t.Errorf("%v: revocationReason unspecified (0) written; it must be omitted", h)
		}
	}
}

// TestOCSPCarriesThePath: a delegated answer carries the certificates
// from the responder to the root (RFC 6960 §4.2.1), the delegated signer
// and the issuing CA, so that a relying party that trusts only the root
// (Apache mod_ssl) can verify it; the root's answers about the issuing
// CAs carry none. Sizes stay far below nginx's 16 KiB. (With signer
// "issuing" nothing is added yet: see ocsp.go.)
func TestOCSPCarriesThePath(t *testing.T) {
	for _, delegated := range []bool{true} {
		f := newFixture(t, func(o *ResponderOptions) {
			if !delegated {
				o.Delegated = nil
			}
		})
		leaf := f.issue(t)
		iss, root := f.a.Issuing(), f.a.Root()
		for _, h := range []crypto.Hash{crypto.SHA1, crypto.SHA256} {
			der := post(t, f.resp, ocspRequest(t, leaf, iss, h)).Body.Bytes()
			if !bytes.Contains(der, iss.Raw) {
				t.Errorf("delegated=%v %v: the issuing CA is not in the answer", delegated, h)
			}
			if delegated && !bytes.Contains(der, f.a.OCSPSigner().Raw) {
				t.Errorf("delegated=%v %v: the delegated signer is not in the answer", delegated, h)
			}
			if len(der) > 4096 {
				t.Errorf("delegated=%v %v: %d bytes", delegated, h, len(der))
			}
			// openssl's check, done by hand: the path verifies to the root.
			pool := x509.NewCertPool()
			pool.AddCert(root)
			r, err := ocsp.ParseResponse(der, nil)
			if err != nil {
				t.Fatal(err)
			}
			inter := x509.NewCertPool()
			inter.AddCert(iss)
			if _, err := r.Certificate.Verify(x509.VerifyOptions{Roots: pool, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); r.Certificate != nil && err != nil {
				t.Errorf("delegated=%v: the responder does not chain to the root: %v", delegated, err)
			}
			t.Logf("delegated=%v %v: %d bytes", delegated, h, len(der))
		}
		der := post(t, f.resp, ocspRequest(t, iss, root, crypto.SHA1)).Body.Bytes()
		if bytes.Contains(der, iss.Raw) || bytes.Contains(der, root.Raw) {
			t.Errorf("delegated=%v: the root's answer carries certificates", delegated)
		}
	}
}
