package revocation

import (
	"context"
	"crypto"
	"crypto/x509"
	"encoding/binary"
	"math/big"
	"net/http"
	"reflect"
	"strconv"
	"testing"

	"golang.org/x/crypto/ocsp"

	"github.com/zbca/zbca/ca"
	"github.com/zbca/zbca/internal/ocspder"
)

// TestTableHoldsNoPointers: a million entries must give the garbage
// collector nothing to trace.
func TestTableHoldsNoPointers(t *testing.T) {
	var check func(reflect.Type, string)
	check = func(ty reflect.Type, path string) {
		switch ty.Kind() {
		case reflect.Pointer, reflect.Slice, reflect.Map, reflect.String, reflect.Interface, reflect.Chan, reflect.Func, reflect.UnsafePointer:
			t.Errorf("%s is a %s", path, ty.Kind())
		case reflect.Struct:
			for i := range ty.NumField() {
				check(ty.Field(i).Type, path+"."+ty.Field(i).Name)
			}
		case reflect.Array:
			check(ty.Elem(), path+"[]")
		}
	}
	check(reflect.TypeFor[entry](), "entry")
	check(reflect.TypeFor[serialKey](), "serialKey")
	if s := reflect.TypeFor[entry]().Size(); s > 48 {
		t.Errorf("entry is %d octets, want at most 48", s)
	}
}

func TestKeyOf(t *testing.T) {
	for _, tc := range []struct {
		in   []byte
		want []byte
		ok   bool
	}{
		{[]byte{1}, []byte{1}, true},
		{[]byte{0, 0, 7, 0}, []byte{7, 0}, true},
		{nil, nil, false},
		{[]byte{0, 0}, nil, false},
		{make([]byte, 21), nil, false},
		{append([]byte{1}, make([]byte, 19)...), append([]byte{1}, make([]byte, 19)...), true},
		{append([]byte{1}, make([]byte, 20)...), nil, false},
	} {
		k, ok := keyOf(tc.in)
		if ok != tc.ok || (ok && string(k.bytes()) != string(tc.want)) {
			t.Errorf("keyOf(%x) = %x, %v; want %x, %v", tc.in, k.bytes(), ok, tc.want, tc.ok)
		}
	}
}

// TestReSignInPlace: re-signing reuses the signature's slot, a status
// change leaves the entry unsigned at once, and a re-signature made from a
// copy older than a revocation is not stored over it.
func TestReSignInPlace(t *testing.T) {
	f := newFixture(t, nil)
	leaf := f.issue(t)
	k, _ := keyOf(leaf.SerialNumber.Bytes())
	sh := f.resp.shardOf(&k)
	before, ok := f.resp.get(k)
	if !ok || before.sigLen == 0 {
		t.Fatalf("issued certificate not signed: %+v", before)
	}
	chunks := len(sh.chunks)
	for range 50 {
		e, _ := f.resp.get(k)
		if ok, err := f.resp.signKeep(k, e); !ok || err != nil {
			t.Fatalf("signKeep: %v %v", ok, err)
		}
	}
	after, _ := f.resp.get(k)
	if after.sigChunk != before.sigChunk || after.sigOff != before.sigOff || len(sh.chunks) != chunks {
		t.Errorf("re-signing moved the signature: %+v -> %+v, %d -> %d chunks", before, after, chunks, len(sh.chunks))
	}

	// A refresh copies the entry, a revocation lands, the refresh stores.
	stale, _ := f.resp.get(k)
	if _, err := f.svc.Revoke(context.Background(), leaf.SerialNumber.Text(16), KeyCompromise, "test", ByOperator); err != nil {
		t.Fatal(err)
	}
	if ok, err := f.resp.signKeep(k, stale); ok || err != nil {
		t.Fatalf("a stale re-signature was stored (%v, %v)", ok, err)
	}
	resp, etag := askOCSP(t, f, leaf)
	if resp.Status != ocsp.Revoked {
		t.Fatalf("status %d after revocation and a stale refresh, want revoked", resp.Status)
	}

	// A status change made elsewhere (the feed: here another reason)
	// unsigns the entry: no answer with the old status is served
	// meanwhile. (Back to good it cannot go: TestRevokedStaysRevoked.)
	e, _ := f.resp.get(k)
	if !f.resp.setStatus(k, e.issuer, ocspder.Revoked, int8(CessationOfOperation), e.revokedAt, e.notAfter) {
		t.Fatal("setStatus reported no change")
	}
	if e, _ := f.resp.get(k); e.sigLen != 0 {
		t.Fatal("entry still signed after a status change")
	}
	if _, ok := f.resp.cached(&k, int(e.issuer), nil); ok {
		t.Fatal("an unsigned entry was answered from the cache")
	}
	resp2, etag2 := askOCSP(t, f, leaf)
	if resp2.Status != ocsp.Revoked || resp2.RevocationReason != ocsp.CessationOfOperation {
		t.Fatalf("status %d reason %d, want the status set last", resp2.Status, resp2.RevocationReason)
	}
	if etag2 == etag {
		t.Errorf("ETag %s unchanged for a new response", etag)
	}
	if e, _ := f.resp.get(k); e.sigLen == 0 {
		t.Error("a live answer for a known certificate was not kept for the next request")
	}
	if _, again := askOCSP(t, f, leaf); again != etag2 {
		t.Errorf("ETag %s then %s for the same pre-signed response", etag2, again)
	}
}

// askOCSP posts a SHA-1 request for leaf and returns the verified answer
// and its ETag, after checking Last-Modified and Expires against it.
func askOCSP(t *testing.T, f *fixture, leaf *x509.Certificate) (*ocsp.Response, string) {
	t.Helper()
	iss := f.a.IssuingCAs()[0].Cert
	rec := post(t, f.resp, ocspRequest(t, leaf, iss, crypto.SHA1))
	r, err := ocsp.ParseResponseForCert(rec.Body.Bytes(), leaf, iss)
	if err != nil {
		t.Fatal(err)
	}
	if lm := rec.Header().Get("Last-Modified"); lm != r.ThisUpdate.UTC().Format(http.TimeFormat) {
		t.Errorf("Last-Modified %q, thisUpdate %s", lm, r.ThisUpdate)
	}
	if ex := rec.Header().Get("Expires"); ex != r.NextUpdate.UTC().Format(http.TimeFormat) {
		t.Errorf("Expires %q, nextUpdate %s", ex, r.NextUpdate)
	}
	if cl := rec.Header().Get("Content-Length"); cl != strconv.Itoa(rec.Body.Len()) {
		t.Errorf("Content-Length %q for %d octets", cl, rec.Body.Len())
	}
	return r, rec.Header().Get("ETag")
}

// TestCachedAnswerAllocatesNothing: the hot path copies a pre-signed
// answer into the caller's buffer without allocating.
func TestCachedAnswerAllocatesNothing(t *testing.T) {
	f := newFixture(t, nil)
	leaf := f.issue(t)
	req, err := ocspder.ParseRequest(ocspRequest(t, leaf, f.a.Issuing(), crypto.SHA1))
	if err != nil {
		t.Fatal(err)
	}
	dst := make([]byte, 0, 4096)
	if a := f.resp.Respond(req, dst); !a.Cacheable || a.ETag == 0 {
		t.Fatalf("not a cached answer: %+v", a)
	}
	if n := testing.AllocsPerRun(200, func() { f.resp.Respond(req, dst) }); n != 0 {
		t.Errorf("Respond allocates %v times per cached answer", n)
	}
}

// TestRevokedStaysRevoked: a "good" status read before a revocation and
// applied after it (a live lookup racing the feed applying this node's own
// revocation) does not bring the certificate back.
func TestRevokedStaysRevoked(t *testing.T) {
	f := newFixture(t, nil)
	leaf := f.issue(t)
	serial := leaf.SerialNumber.Text(16)
	before, err := f.st.CertStatus(context.Background(), serial)
	if err != nil || before == nil {
		t.Fatal(before, err)
	}
	if _, err := f.svc.Revoke(context.Background(), serial, KeyCompromise, "test", ByOperator); err != nil {
		t.Fatal(err)
	}
	var buf []byte
	if f.resp.apply(*before, &buf) {
		t.Error("a stale good status was applied over the revocation")
	}
	rec := post(t, f.resp, ocspRequest(t, leaf, f.a.Issuing(), crypto.SHA1))
	if r, err := ocsp.ParseResponseForCert(rec.Body.Bytes(), leaf, f.a.Issuing()); err != nil || r.Status != ocsp.Revoked {
		t.Fatalf("after a stale good: %v %+v", err, r)
	}
}

// TestHexSerialIsTheStoreText: the responder asks the store for a serial
// in the CA's canonical text, including the one serial in sixteen whose
// first byte is below 0x10 (its hex has no leading zero).
func TestHexSerialIsTheStoreText(t *testing.T) {
	for i := range 4096 {
		b := make([]byte, 16)
		binary.BigEndian.PutUint64(b, uint64(i)*0x9e3779b97f4a7c15)
		binary.BigEndian.PutUint64(b[8:], uint64(i))
		b[0] = byte(i) // every first byte, 0x00–0x0f included
		if got, want := hexSerial(b), ca.SerialHex(new(big.Int).SetBytes(b)); got != want {
			t.Fatalf("hexSerial(%x) = %s, store text %s", b, got, want)
		}
	}
}
