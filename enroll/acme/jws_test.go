package acme_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/zbca/zbca/enroll"
	"github.com/zbca/zbca/enroll/acme"
)

// es256 signs a JWS signing input the way RFC 7518 §3.4 says (r‖s).
func es256(t testing.TB, k crypto.Signer, input string) []byte {
	t.Helper()
	h := sha256.Sum256([]byte(input))
	r, s, err := ecdsa.Sign(rand.Reader, k.(*ecdsa.PrivateKey), h[:])
	if err != nil {
		t.Fatal(err)
	}
	sig := make([]byte, 64)
	r.FillBytes(sig[:32])
	s.FillBytes(sig[32:])
	return sig
}

// signRaw signs a protected header given as JSON text with an ES256 key.
func signRaw(t testing.TB, k crypto.Signer, protected string, payload []byte) []byte {
	t.Helper()
	p := base64.RawURLEncoding.EncodeToString([]byte(protected))
	pl := base64.RawURLEncoding.EncodeToString(payload)
	b, _ := json.Marshal(map[string]string{"protected": p, "payload": pl, "signature": base64.RawURLEncoding.EncodeToString(es256(t, k, p+"."+pl))})
	return b
}

func jsonString(s string) string { b, _ := json.Marshal(s); return string(b) }

// TestVerifyRefusals sends hostile JWS to newOrder (and newAccount): each
// gets its problem, with a fresh nonce, and creates nothing.
func TestVerifyRefusals(t *testing.T) {
	e := newTestEnv(t, enroll.Policy{})
	acct := e.account(t, "alpha")
	orderURL, acctURL := e.url("/acme/new-order"), e.url("/acme/new-account")
	order := marshalPayload(t, map[string]any{"identifiers": []identifier{{"enterprise", "alpha"}}})
	stranger := newKey(t, jose.ES256)
	newAcct := marshalPayload(t, newAccountReq{TermsOfServiceAgreed: true})
	hmacKey := make([]byte, 32)

	type reqFunc func(t testing.TB) (url, contentType string, body []byte)
	signed := func(url string, h func(n string) hdr, k *key, payload []byte) reqFunc {
		return func(t testing.TB) (string, string, []byte) {
			return url, "application/jose+json", signJWS(t, k.alg, k.signer, h(e.nonce(t)), payload)
		}
	}
	byKID := func(n string) hdr { return hdr{nonce: n, url: orderURL, kid: acct.kid} }
	flip := func(body []byte) []byte {
		var f map[string]string
		_ = json.Unmarshal(body, &f)
		sig, _ := base64.RawURLEncoding.DecodeString(f["signature"])
		sig[len(sig)/2] ^= 0x40
		f["signature"] = base64.RawURLEncoding.EncodeToString(sig)
		b, _ := json.Marshal(f)
		return b
	}

	cases := []struct {
		name   string
		req    reqFunc
		status int
		typ    string
	}{
		{name: "unknown nonce", status: 400, typ: "badNonce",
			req: signed(orderURL, func(string) hdr { return hdr{nonce: "AAAAAAAAAAAAAAAAAAAAAA", url: orderURL, kid: acct.kid} }, acct, order)},
		{name: "no nonce", status: 400, typ: "badNonce",
			req: signed(orderURL, func(string) hdr { return hdr{url: orderURL, kid: acct.kid} }, acct, order)},
		{name: "url of another resource", status: 403, typ: "unauthorized",
			req: signed(orderURL, func(n string) hdr { return hdr{nonce: n, url: acctURL, kid: acct.kid} }, acct, order)},
		{name: "url of another host", status: 403, typ: "unauthorized",
			req: signed(orderURL, func(n string) hdr { return hdr{nonce: n, url: "https://evil.test/acme/new-order", kid: acct.kid} }, acct, order)},
		{name: "no url", status: 403, typ: "unauthorized",
			req: signed(orderURL, func(n string) hdr { return hdr{nonce: n, kid: acct.kid} }, acct, order)},
		{name: "flipped signature byte", status: 400, typ: "malformed",
			req: func(t testing.TB) (string, string, []byte) {
				return orderURL, "application/jose+json", flip(signJWS(t, acct.alg, acct.signer, byKID(e.nonce(t)), order))
			}},
		{name: "payload changed after signing", status: 400, typ: "malformed",
			req: func(t testing.TB) (string, string, []byte) {
				var f map[string]string
				_ = json.Unmarshal(signJWS(t, acct.alg, acct.signer, byKID(e.nonce(t)), order), &f)
				f["payload"] = base64.RawURLEncoding.EncodeToString(marshalPayload(t, map[string]any{"identifiers": []identifier{{"enterprise", "beta"}}}))
				b, _ := json.Marshal(f)
				return orderURL, "application/jose+json", b
			}},
		{name: "alg none with a signature", status: 400, typ: "badSignatureAlgorithm",
			req: signed(orderURL, func(n string) hdr { h := byKID(n); h.extra = map[string]any{"alg": "none"}; return h }, acct, order)},
		{name: "alg none, empty signature (RFC 7518 §3.6)", status: 400, typ: "badSignatureAlgorithm",
			req: func(t testing.TB) (string, string, []byte) {
				h := `{"alg":"none","nonce":` + jsonString(e.nonce(t)) + `,"url":` + jsonString(orderURL) + `,"kid":` + jsonString(acct.kid) + `}`
				return orderURL, "application/jose+json", rawJWS(h, order, nil)
			}},
		{name: "alg HS256 by kid", status: 400, typ: "badSignatureAlgorithm",
			req: func(t testing.TB) (string, string, []byte) {
				return orderURL, "application/jose+json", signJWS(t, jose.HS256, hmacKey, byKID(e.nonce(t)), order)
			}},
		{name: "alg HS256 with a jwk on newAccount", status: 400, typ: "badSignatureAlgorithm",
			req: func(t testing.TB) (string, string, []byte) {
				h := hdr{nonce: e.nonce(t), url: acctURL, extra: map[string]any{"jwk": json.RawMessage(stranger.jwkJSON(t))}}
				return acctURL, "application/jose+json", signJWS(t, jose.HS256, hmacKey, h, newAcct)
			}},
		{name: "alg RS256 over an EC key", status: 400, typ: "malformed",
			req: signed(orderURL, func(n string) hdr { h := byKID(n); h.extra = map[string]any{"alg": "RS256"}; return h }, acct, order)},
		{name: "alg missing", status: 400, typ: "badSignatureAlgorithm",
			req: func(t testing.TB) (string, string, []byte) {
				h := `{"nonce":` + jsonString(e.nonce(t)) + `,"url":` + jsonString(orderURL) + `,"kid":` + jsonString(acct.kid) + `}`
				return orderURL, "application/jose+json", signRaw(t, acct.signer, h, order)
			}},
		{name: "both jwk and kid", status: 400, typ: "malformed",
			req: signed(orderURL, func(n string) hdr { h := byKID(n); h.jwk = true; return h }, acct, order)},
		{name: "neither jwk nor kid", status: 400, typ: "malformed",
			req: signed(orderURL, func(n string) hdr { return hdr{nonce: n, url: orderURL} }, acct, order)},
		{name: "jwk null and no kid", status: 400, typ: "malformed",
			req: signed(orderURL, func(n string) hdr { return hdr{nonce: n, url: orderURL, extra: map[string]any{"jwk": nil}} }, acct, order)},
		{name: "kid for newAccount", status: 400, typ: "malformed",
			req: signed(acctURL, func(n string) hdr { return hdr{nonce: n, url: acctURL, kid: acct.kid} }, acct, newAcct)},
		{name: "jwk for newOrder", status: 400, typ: "malformed",
			req: signed(orderURL, func(n string) hdr { return hdr{nonce: n, url: orderURL, jwk: true} }, acct, order)},
		{name: "kid of an unknown account", status: 400, typ: "accountDoesNotExist",
			req: signed(orderURL, func(n string) hdr { return hdr{nonce: n, url: orderURL, kid: e.url("/acme/acct/nope")} }, acct, order)},
		{name: "kid of another server", status: 400, typ: "accountDoesNotExist",
			req: signed(orderURL, func(n string) hdr {
				return hdr{nonce: n, url: orderURL, kid: strings.Replace(acct.kid, e.base, "https://evil.test", 1)}
			}, acct, order)},
		{name: "kid of the account, signed by a stranger", status: 400, typ: "malformed",
			req: signed(orderURL, byKID, stranger, order)},
		{name: "private jwk", status: 400, typ: "malformed",
			req: func(t testing.TB) (string, string, []byte) {
				priv, _ := (&jose.JSONWebKey{Key: stranger.signer}).MarshalJSON()
				h := hdr{nonce: e.nonce(t), url: acctURL, extra: map[string]any{"jwk": json.RawMessage(priv)}}
				return acctURL, "application/jose+json", signJWS(t, stranger.alg, stranger.signer, h, newAcct)
			}},
		{name: "symmetric jwk", status: 400, typ: "malformed",
			req: func(t testing.TB) (string, string, []byte) {
				h := hdr{nonce: e.nonce(t), url: acctURL, extra: map[string]any{"jwk": map[string]string{"kty": "oct", "k": "AAAA"}}}
				return acctURL, "application/jose+json", signJWS(t, stranger.alg, stranger.signer, h, newAcct)
			}},
		{name: "body over acme.MaxBody", status: 413, typ: "malformed",
			req: func(t testing.TB) (string, string, []byte) {
				big := marshalPayload(t, map[string]any{"identifiers": []identifier{{"enterprise", "alpha"}}, "pad": strings.Repeat("x", acme.MaxBody)})
				return orderURL, "application/jose+json", signJWS(t, acct.alg, acct.signer, byKID(e.nonce(t)), big)
			}},
		{name: "Content-Type application/json", status: 415, typ: "malformed",
			req: func(t testing.TB) (string, string, []byte) {
				return orderURL, "application/json", signJWS(t, acct.alg, acct.signer, byKID(e.nonce(t)), order)
			}},
		{name: "no Content-Type", status: 415, typ: "malformed",
			req: func(t testing.TB) (string, string, []byte) {
				return orderURL, "", signJWS(t, acct.alg, acct.signer, byKID(e.nonce(t)), order)
			}},
		{name: "general serialization", status: 400, typ: "malformed",
			req: func(t testing.TB) (string, string, []byte) {
				var f map[string]string
				_ = json.Unmarshal(signJWS(t, acct.alg, acct.signer, byKID(e.nonce(t)), order), &f)
				b, _ := json.Marshal(map[string]any{"payload": f["payload"], "signatures": []map[string]string{{"protected": f["protected"], "signature": f["signature"]}}})
				return orderURL, "application/jose+json", b
			}},
		{name: "flattened plus signatures", status: 400, typ: "malformed",
			req: func(t testing.TB) (string, string, []byte) {
				var f map[string]any
				_ = json.Unmarshal(signJWS(t, acct.alg, acct.signer, byKID(e.nonce(t)), order), &f)
				f["signatures"] = []map[string]any{{"protected": f["protected"], "signature": f["signature"]}}
				b, _ := json.Marshal(f)
				return orderURL, "application/jose+json", b
			}},
		{name: "unprotected header", status: 400, typ: "malformed",
			req: func(t testing.TB) (string, string, []byte) {
				var f map[string]any
				_ = json.Unmarshal(signJWS(t, acct.alg, acct.signer, byKID(e.nonce(t)), order), &f)
				f["header"] = map[string]string{"kid": acct.kid}
				b, _ := json.Marshal(f)
				return orderURL, "application/jose+json", b
			}},
		{name: "compact serialization", status: 400, typ: "malformed",
			req: func(t testing.TB) (string, string, []byte) {
				var f map[string]string
				_ = json.Unmarshal(signJWS(t, acct.alg, acct.signer, byKID(e.nonce(t)), order), &f)
				return orderURL, "application/jose+json", []byte(f["protected"] + "." + f["payload"] + "." + f["signature"])
			}},
		{name: "trailing data", status: 400, typ: "malformed",
			req: func(t testing.TB) (string, string, []byte) {
				return orderURL, "application/jose+json", append(signJWS(t, acct.alg, acct.signer, byKID(e.nonce(t)), order), []byte(`{}`)...)
			}},
		{name: "protected header not base64url", status: 400, typ: "malformed",
			req: func(t testing.TB) (string, string, []byte) {
				return orderURL, "application/jose+json", []byte(`{"protected":"!!!","payload":"","signature":"AAAA"}`)
			}},
		{name: "payload missing", status: 400, typ: "malformed",
			req: func(t testing.TB) (string, string, []byte) {
				var f map[string]string
				_ = json.Unmarshal(signJWS(t, acct.alg, acct.signer, byKID(e.nonce(t)), order), &f)
				delete(f, "payload")
				b, _ := json.Marshal(f)
				return orderURL, "application/jose+json", b
			}},
		{name: "RSA account key of 1024 bits", status: 400, typ: "badSignatureAlgorithm",
			req: func(t testing.TB) (string, string, []byte) {
				weak, err := rsa.GenerateKey(rand.Reader, 1024)
				if err != nil {
					t.Fatal(err)
				}
				return acctURL, "application/jose+json", signJWS(t, jose.RS256, weak, hdr{nonce: e.nonce(t), url: acctURL, jwk: true}, newAcct)
			}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := e.count(t)
			url, ct, body := tc.req(t)
			r := e.do(t, http.MethodPost, url, ct, body)
			wantProblem(t, r, tc.status, tc.typ)
			e.unchanged(t, before)
		})
	}
	// The account still works after all of this.
	e.order(t, acct, "alpha")
}

// TestReplayedNonce: a nonce is good once; the badNonce answer carries a
// fresh nonce that works (RFC 8555 §6.5).
func TestReplayedNonce(t *testing.T) {
	e := newTestEnv(t, enroll.Policy{})
	acct := e.account(t, "alpha")
	u := e.url("/acme/new-order")
	n := e.nonce(t)
	order := marshalPayload(t, map[string]any{"identifiers": []identifier{{"enterprise", "alpha"}}})
	first := signJWS(t, acct.alg, acct.signer, hdr{nonce: n, url: u, kid: acct.kid}, order)
	wantStatus(t, e.postJOSE(t, u, first), http.StatusCreated)

	before := e.count(t)
	// The same request again, and a new request with the used nonce.
	for _, body := range [][]byte{first, signJWS(t, acct.alg, acct.signer, hdr{nonce: n, url: u, kid: acct.kid}, order)} {
		r := e.postJOSE(t, u, body)
		wantProblem(t, r, http.StatusBadRequest, "badNonce")
		fresh := r.header.Get("Replay-Nonce")
		if fresh == n {
			t.Fatal("the badNonce answer repeats the used nonce")
		}
		e.unchanged(t, before)
		// The client retries with the nonce of the error.
		retry := signJWS(t, acct.alg, acct.signer, hdr{nonce: fresh, url: u, kid: acct.kid}, order)
		wantStatus(t, e.postJOSE(t, u, retry), http.StatusCreated)
		before = e.count(t)
	}
}

// TestNonceFromAnyResponse: every answer's Replay-Nonce is usable, and
// nonces expire.
func TestNonceExpires(t *testing.T) {
	e := newTestEnv(t, enroll.Policy{})
	acct := e.account(t, "alpha")
	u := e.url("/acme/new-order")
	order := marshalPayload(t, map[string]any{"identifiers": []identifier{{"enterprise", "alpha"}}})
	n := e.nonce(t)
	e.clock.Add(11 * time.Minute)
	before := e.count(t)
	r := e.postJOSE(t, u, signJWS(t, acct.alg, acct.signer, hdr{nonce: n, url: u, kid: acct.kid}, order))
	wantProblem(t, r, http.StatusBadRequest, "badNonce")
	e.unchanged(t, before)
	// The nonce of the error answer is fresh by the moved clock.
	r = e.postJOSE(t, u, signJWS(t, acct.alg, acct.signer, hdr{nonce: r.header.Get("Replay-Nonce"), url: u, kid: acct.kid}, order))
	wantStatus(t, r, http.StatusCreated)
}

// TestNoncesAreSingleUseUnderConcurrency: many requests with one nonce,
// at once: exactly one gets through.
func TestNoncesAreSingleUseUnderConcurrency(t *testing.T) {
	e := newTestEnv(t, enroll.Policy{})
	acct := e.account(t, "alpha")
	u := e.url("/acme/new-order")
	body := signJWS(t, acct.alg, acct.signer, hdr{nonce: e.nonce(t), url: u, kid: acct.kid},
		marshalPayload(t, map[string]any{"identifiers": []identifier{{"enterprise", "alpha"}}}))
	before := e.count(t)
	const n = 16
	bodies := make([][]byte, n)
	for i := range bodies {
		bodies[i] = body
	}
	created := e.postConcurrently(t, u, bodies, http.StatusCreated, http.StatusBadRequest)
	if created != 1 {
		t.Fatalf("%d requests with one nonce succeeded, want 1", created)
	}
	if after := e.count(t); after.Orders != before.Orders+1 {
		t.Fatalf("%d orders made, want 1", after.Orders-before.Orders)
	}
}

// TestMethodNotAllowed: GET on a POST-only resource is 405 with Allow:
// POST (RFC 8555 §6.3; the comment at acme.go:85-86 promises it).
func TestMethodNotAllowed(t *testing.T) {
	e := newTestEnv(t, enroll.Policy{})
	for _, p := range []string{"/acme/new-order", "/acme/new-account", "/acme/revoke-cert"} {
		r := e.do(t, http.MethodGet, e.url(p), "", nil)
		wantCommon(t, r)
		if r.status/100 != 4 || r.header.Get("Content-Type") != "application/problem+json" {
			t.Errorf("GET %s: %d %s", p, r.status, r.header.Get("Content-Type"))
		}
	}
	for _, p := range []string{"/acme/new-order", "/acme/new-account", "/acme/revoke-cert"} {
		r := e.do(t, http.MethodGet, e.url(p), "", nil)
		wantProblem(t, r, http.StatusMethodNotAllowed, "malformed")
		if r.header.Get("Allow") != "POST" {
			t.Errorf("GET %s: Allow %q", p, r.header.Get("Allow"))
		}
	}
}
