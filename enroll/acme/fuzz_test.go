package acme_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/zbca/zbca/enroll"
)

// The fuzz targets call the echo instance directly, not through the TLS
// test server: a panic in a handler then fails the target instead of
// being recovered by net/http, and inputs run much faster. The server
// builds its URLs from the Host header, so requests name fuzzHost.
const fuzzHost = "zbca.test"

func serve(e *testEnv, method, url, contentType string, body []byte) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, url, bytes.NewReader(body))
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	rec := httptest.NewRecorder()
	e.e.ServeHTTP(rec, req)
	return rec
}

func serveNonce(t testing.TB, e *testEnv) string {
	t.Helper()
	rec := serve(e, http.MethodHead, "https://"+fuzzHost+"/acme/new-nonce", "", nil)
	n := rec.Header().Get("Replay-Nonce")
	if n == "" {
		t.Fatal("no nonce")
	}
	return n
}

// FuzzVerify posts arbitrary bytes as application/jose+json to newOrder
// and newAccount: never a 5xx or a panic, never a success, never a new
// account or order (an arbitrary body cannot hold a live nonce).
func FuzzVerify(f *testing.F) {
	e := newTestEnv(f, enroll.Policy{})
	acct := e.account(f, "alpha")
	kid := "https://" + fuzzHost + strings.TrimPrefix(acct.kid, e.base)
	orderURL, acctURL := "https://"+fuzzHost+"/acme/new-order", "https://"+fuzzHost+"/acme/new-account"

	// Seeds of the right shape, with a nonce that is already used.
	used := serveNonce(f, e)
	if rec := serve(e, http.MethodPost, "https://"+fuzzHost+strings.TrimPrefix(acct.kid, e.base), "application/jose+json",
		signJWS(f, acct.alg, acct.signer, hdr{nonce: used, url: "https://" + fuzzHost + strings.TrimPrefix(acct.kid, e.base), kid: kid}, nil)); rec.Code != http.StatusOK {
		f.Fatalf("POST-as-GET account: %d %s", rec.Code, rec.Body)
	}
	order := marshalPayload(f, map[string]any{"identifiers": []identifier{{"enterprise", "alpha"}}})
	fresh := newKey(f, jose.ES256)
	ekid, hk := e.addEAB(f, "alpha", time.Now().Add(time.Hour))
	seeds := [][]byte{
		signJWS(f, acct.alg, acct.signer, hdr{nonce: used, url: orderURL, kid: kid}, order),
		signJWS(f, acct.alg, acct.signer, hdr{nonce: used, url: orderURL, jwk: true}, order),
		signJWS(f, fresh.alg, fresh.signer, hdr{nonce: used, url: acctURL, jwk: true},
			marshalPayload(f, newAccountReq{TermsOfServiceAgreed: true, EAB: eabJWS(f, jose.HS256, hk, ekid, acctURL, fresh.jwkJSON(f))})),
		signJWS(f, jose.HS256, hk, hdr{nonce: used, url: orderURL, kid: kid}, order),
		rawJWS(`{"alg":"none","nonce":"`+used+`","url":"`+orderURL+`"}`, order, nil),
		rawJWS(`{"alg":"ES256","nonce":"`+used+`","url":"`+orderURL+`","jwk":{"kty":"EC","crv":"P-256","x":"","y":""}}`, order, []byte{1}),
		rawJWS(`{"alg":"RS256","nonce":"`+used+`","url":"`+orderURL+`","jwk":{"kty":"RSA","n":"AQAB","e":"AQAB"}}`, order, []byte{1}),
		[]byte(`{"protected":"","payload":"","signature":""}`),
		[]byte(`{"payload":"","signatures":[{"protected":"e30","signature":"AA"}]}`),
		[]byte(`{"protected":"e30","payload":null,"signature":"AA","header":{}}`),
		[]byte(`null`), []byte(`[]`), []byte(`"x"`), []byte(`{}`), []byte(``), []byte("\x00\xff"),
	}
	for _, s := range seeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		before := e.count(t)
		for _, u := range []string{orderURL, acctURL} {
			rec := serve(e, http.MethodPost, u, "application/jose+json", body)
			if rec.Code >= 500 || rec.Code < 400 {
				t.Fatalf("POST %s: %d %s", u, rec.Code, rec.Body)
			}
			if rec.Header().Get("Content-Type") != "application/problem+json" || rec.Header().Get("Replay-Nonce") == "" {
				t.Fatalf("POST %s: %d without a problem document or a nonce: %v", u, rec.Code, rec.Header())
			}
			var p problemDoc
			if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil || !strings.HasPrefix(p.Type, errNS) || p.Status != rec.Code {
				t.Fatalf("POST %s: %d body %q", u, rec.Code, rec.Body)
			}
		}
		if after := e.count(t); after != before {
			t.Fatalf("the store changed: %+v → %+v", before, after)
		}
	})
}

// FuzzSignedRequest reaches past the nonce: the fuzzer writes the
// protected header (with $NONCE, $URL, $KID and $JWK replaced by a live
// nonce, the request URL, the account URL and the signing key) and the
// payload ($EAB is a valid binding for the signing key); the request is
// signed with ES256. Never a 5xx or a panic, and an account or order is
// made exactly when the answer is 201.
func FuzzSignedRequest(f *testing.F) {
	e := newTestEnv(f, enroll.Policy{MaxActive: 1 << 20, MaxPerDay: 1 << 20})
	acct := e.account(f, "alpha")
	base := "https://" + fuzzHost
	kid := base + strings.TrimPrefix(acct.kid, e.base)
	paths := []string{"/acme/new-order", "/acme/new-account", "/acme/key-change", "/acme/revoke-cert"}

	for _, h := range []string{
		`{"alg":"ES256","nonce":"$NONCE","url":"$URL","kid":"$KID"}`,
		`{"alg":"ES256","nonce":"$NONCE","url":"$URL","jwk":$JWK}`,
		`{"alg":"ES256","nonce":"$NONCE","url":"$URL","jwk":$JWK,"kid":"$KID"}`,
		`{"alg":"ES256","nonce":"$NONCE","url":"$URL","kid":"$KID","b64":false,"crit":["b64"]}`,
		`{"alg":"ES256","nonce":"$NONCE","url":"$URL","jwk":{"kty":"EC","crv":"P-521","x":"AA","y":"AA"}}`,
		`{"alg":"ES256","nonce":"$NONCE","url":"$URL","jwk":{"kty":"RSA","n":"AQAB","e":"AQAB"}}`,
		`{"alg":"ES256","nonce":"$NONCE","url":"$URL","jwk":{"kty":"OKP","crv":"Ed25519","x":"AA"}}`,
	} {
		for i, p := range []string{
			`{"identifiers":[{"type":"enterprise","value":"alpha"}]}`,
			`{"termsOfServiceAgreed":true,"externalAccountBinding":$EAB}`,
			`{"onlyReturnExisting":true}`,
			`{"certificate":"MAA","reason":1}`,
			``,
		} {
			f.Add(uint8(i), h, []byte(p))
		}
	}
	f.Fuzz(func(t *testing.T, which uint8, tmpl string, payload []byte) {
		path := paths[int(which)%len(paths)]
		u := base + path
		k := acct // the account's key, so kid requests verify
		if path == "/acme/new-account" {
			// A key without an account, so newAccount gets to the EAB.
			signer, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
			if err != nil {
				t.Fatal(err)
			}
			k = &key{signer: signer, alg: jose.ES256}
		}
		if bytes.Contains(payload, []byte("$EAB")) {
			ekid, hk := e.addEAB(t, "alpha", time.Now().Add(time.Hour))
			payload = bytes.ReplaceAll(payload, []byte("$EAB"), eabJWS(t, jose.HS256, hk, ekid, u, k.jwkJSON(t)))
		}
		protected := strings.NewReplacer("$NONCE", serveNonce(t, e), "$URL", u, "$KID", kid, "$JWK", string(k.jwkJSON(t))).Replace(tmpl)
		p64 := base64.RawURLEncoding.EncodeToString([]byte(protected))
		pl64 := base64.RawURLEncoding.EncodeToString(payload)
		body, _ := json.Marshal(map[string]string{"protected": p64, "payload": pl64,
			"signature": base64.RawURLEncoding.EncodeToString(es256(t, k.signer, p64+"."+pl64))})

		before := e.count(t)
		rec := serve(e, http.MethodPost, u, "application/jose+json", body)
		if rec.Code >= 500 {
			t.Fatalf("POST %s: %d %s", path, rec.Code, rec.Body)
		}
		if rec.Header().Get("Replay-Nonce") == "" {
			t.Fatalf("POST %s: %d without a nonce", path, rec.Code)
		}
		after := e.count(t)
		created := rec.Code == http.StatusCreated
		if want := b2i(created && path == "/acme/new-account"); after.Accounts-before.Accounts != want {
			t.Fatalf("POST %s answered %d and made %d accounts", path, rec.Code, after.Accounts-before.Accounts)
		}
		if want := b2i(created && path == "/acme/new-order"); after.Orders-before.Orders != want {
			t.Fatalf("POST %s answered %d and made %d orders", path, rec.Code, after.Orders-before.Orders)
		}
		if after.Certs != before.Certs {
			t.Fatalf("POST %s issued a certificate", path)
		}
	})
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}
