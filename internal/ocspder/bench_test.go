package ocspder_test

import (
	"crypto"
	"encoding/hex"
	"testing"

	"golang.org/x/crypto/ocsp"

	"github.com/zbca/zbca/internal/ocspder"
)

func BenchmarkParseRequest(b *testing.B) {
	der, err := hex.DecodeString(opensslRequests[0]) // SHA-1 with a nonce, like openssl sends
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(der)))
	for b.Loop() {
		if _, err := ocspder.ParseRequest(der); err != nil {
			b.Fatal(err)
		}
	}
}

// benchResponse is a good response for the leaf, as pre-signed for a cache.
func benchResponse(b *testing.B) (*testPKI, *ocspder.Signer, *ocspder.Response) {
	p := pki(b)
	req, err := ocspder.ParseRequest(p.request(b, crypto.SHA1))
	if err != nil {
		b.Fatal(err)
	}
	return p, p.delegatedSigner(b), p.response(req, ocspder.Good)
}

func BenchmarkSignBody(b *testing.B) {
	_, s, r := benchResponse(b)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.SignBody(r); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSignBodyParallel measures pre-signing throughput on all CPUs
// (run with -cpu 2 for the 2-core budget).
func BenchmarkSignBodyParallel(b *testing.B) {
	_, s, r := benchResponse(b)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := s.SignBody(r); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

func BenchmarkAppendResponse(b *testing.B) {
	_, s, r := benchResponse(b)
	body, err := s.SignBody(r)
	if err != nil {
		b.Fatal(err)
	}
	dst := make([]byte, 0, s.ResponseLen(len(body)))
	b.ReportAllocs()
	b.SetBytes(int64(cap(dst)))
	for b.Loop() {
		dst = s.AppendResponse(dst[:0], body)
	}
}

// BenchmarkSignWithNonce is the live path: a nonce makes every response
// unique, so it is signed per request.
func BenchmarkSignWithNonce(b *testing.B) {
	_, s, r := benchResponse(b)
	r.Nonce = []byte("0123456789abcdef")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Sign(r); err != nil {
			b.Fatal(err)
		}
	}
}

// The x/crypto/ocsp equivalents, for comparison.

func BenchmarkXCryptoParseRequest(b *testing.B) {
	der, err := hex.DecodeString(opensslRequests[0])
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ocsp.ParseRequest(der); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkXCryptoCreateResponse(b *testing.B) {
	p, _, r := benchResponse(b)
	tmpl := ocsp.Response{
		Status: ocsp.Good, SerialNumber: p.leaf.SerialNumber, IssuerHash: crypto.SHA1,
		ThisUpdate: r.ThisUpdate, NextUpdate: r.NextUpdate, Certificate: p.responder,
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ocsp.CreateResponse(p.issuer, p.responder, tmpl, p.responderKey); err != nil {
			b.Fatal(err)
		}
	}
}
