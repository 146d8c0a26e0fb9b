package acme

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"testing"

	"github.com/go-jose/go-jose/v4"
)

// FuzzJWSHeaders is the differential target of issue 15: the fuzzer
// writes a protected header (which is signed, with ES256, by a fixed key)
// and any text of further members placed before or after the three signed
// ones. Whenever parseJWS accepts the body and its signature verifies, the
// header values the server reads (alg, nonce, url, kid, jwk) must be
// exactly those of the bytes the signature covers, decoded on their own
// with encoding/json, and those of go-jose's verified protected header.
// Anything an attacker adds without the key must be refused or ignored,
// never read.
func FuzzJWSHeaders(f *testing.F) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range []struct{ header, before, after string }{
		{`{"alg":"ES256","nonce":"n1","url":"https://x/acme/new-order","kid":"https://x/acme/acct/a"}`, "", ""},
		{`{"alg":"ES256","nonce":"n1","url":"https://x/acme/new-order","kid":"k"}`, "", `"Protected":"eyJhbGciOiJFUzI1NiIsIm5vbmNlIjoibjIiLCJ1cmwiOiJodHRwczovL3gvYWNtZS9maW5hbGl6ZSIsImtpZCI6ImsifQ"`},
		{`{"alg":"ES256","nonce":"n1","url":"u","kid":"k"}`, `"protected":"eyJhbGciOiJFUzI1NiJ9"`, ""},
		{`{"alg":"ES256","nonce":"n1","url":"u","kid":"k","URL":"v"}`, "", ""},
		{`{"alg":"ES256","nonce":"n1","url":"u","kid":"k","url":"v"}`, "", ""},
		{`{"alg":"ES256","nonce":"n1","url":"u","kid":"k"}`, "", `"header":{"url":"v"}`},
		{`{"alg":"ES256","nonce":"n1","url":"u","kid":"k"}`, "", `"Payload":"e30"`},
		{`{"alg":"ES256","nonce":"n1","url":"u","jwk":{"kty":"EC","crv":"P-256","x":"AA","y":"AA"}}`, "", ""},
		{`{"alg":"ES256","url":"u","kid":"k","b64":false,"crit":["b64"]}`, "", ""},
		{`{"alg":"ES256","nonce":"n\u0031","url":"u","kid":"k"}`, "", ""},
	} {
		f.Add(s.header, s.before, s.after, []byte(`{"identifiers":[]}`))
	}
	f.Fuzz(func(t *testing.T, header, before, after string, payload []byte) {
		p64 := base64.RawURLEncoding.EncodeToString([]byte(header))
		pl64 := base64.RawURLEncoding.EncodeToString(payload)
		sig := es256Sign(t, key, p64+"."+pl64)
		var body bytes.Buffer
		body.WriteString("{")
		if before != "" {
			body.WriteString(before + ",")
		}
		body.WriteString(`"protected":"` + p64 + `","payload":"` + pl64 + `","signature":"` + base64.RawURLEncoding.EncodeToString(sig) + `"`)
		if after != "" {
			body.WriteString("," + after)
		}
		body.WriteString("}")

		jws, h, err := parseJWS(body.Bytes(), accountAlgs)
		if err != nil {
			return
		}
		got, err := jws.Verify(&key.PublicKey)
		if err != nil {
			return // a body the server refuses at the signature
		}
		if before != "" || after != "" {
			t.Fatalf("a body with unsigned members was accepted: %s", body.Bytes())
		}
		if !bytes.Equal(got, payload) {
			t.Fatalf("payload %q, signed %q", got, payload)
		}
		// The signed header on its own, case-exact keys.
		var signed map[string]json.RawMessage
		if err := json.Unmarshal([]byte(header), &signed); err != nil {
			t.Fatalf("accepted a header that is not a JSON object: %q", header)
		}
		str := func(k string) string {
			var s string
			if v, ok := signed[k]; ok {
				if err := json.Unmarshal(v, &s); err != nil {
					return "\x00not a string"
				}
			}
			return s
		}
		url, _ := h.ExtraHeaders[jose.HeaderKey("url")].(string)
		for _, c := range []struct{ name, server, signed string }{
			{"alg", h.Algorithm, str("alg")},
			{"nonce", h.Nonce, str("nonce")},
			{"url", url, str("url")},
			{"kid", h.KeyID, str("kid")},
		} {
			if c.server != c.signed {
				t.Fatalf("%s: the server reads %q, the signature covers %q (header %s)", c.name, c.server, c.signed, header)
			}
		}
		if (h.JSONWebKey != nil) != (signed["jwk"] != nil && string(signed["jwk"]) != "null") {
			t.Fatalf("jwk: the server reads %v, the signed header has %s", h.JSONWebKey != nil, signed["jwk"])
		}
		// And go-jose's own verified header of the same body.
		ref, err := jose.ParseSignedJSON(body.String(), accountAlgs)
		if err != nil {
			t.Fatalf("go-jose refuses a body the server accepts: %v", err)
		}
		if _, err := ref.Verify(&key.PublicKey); err != nil {
			t.Fatalf("go-jose does not verify a body the server accepts: %v", err)
		}
		rh := ref.Signatures[0].Protected
		rurl, _ := rh.ExtraHeaders[jose.HeaderKey("url")].(string)
		if rh.Algorithm != h.Algorithm || rh.Nonce != h.Nonce || rh.KeyID != h.KeyID || rurl != url {
			t.Fatalf("go-jose's verified header %+v differs from the server's %+v", rh, h)
		}
	})
}

// FuzzParseJWS: any bytes; never a panic, and an accepted body has exactly
// the three members, spelled exactly.
func FuzzParseJWS(f *testing.F) {
	for _, s := range []string{
		`{"protected":"eyJhbGciOiJFUzI1NiJ9","payload":"","signature":"AA"}`,
		`{"protected":"eyJhbGciOiJFUzI1NiJ9","payload":"","signature":"AA","Protected":"e30"}`,
		`{"protected":"eyJhbGciOiJFUzI1NiIsImFsZyI6IkVTMjU2In0","payload":"","signature":"AA"}`,
		`{"protected":"eyJhbGciOiJFUzI1NiJ9","payload":"","signature":"AA"}}`,
		`[]`, `{}`, ``, `{"protected":1,"payload":2,"signature":3}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if _, _, err := parseJWS(b, accountAlgs); err != nil {
			return
		}
		m, err := objectMembers(b)
		if err != nil || len(m) != 3 || m["protected"] == nil || m["payload"] == nil || m["signature"] == nil {
			t.Fatalf("accepted %q with members %v (%v)", b, m, err)
		}
	})
}

// es256Sign is a raw JWS ES256 signature (RFC 7518 §3.4: r || s, 32
// bytes each).
func es256Sign(t *testing.T, k *ecdsa.PrivateKey, input string) []byte {
	t.Helper()
	sum := sha256.Sum256([]byte(input))
	r, s, err := ecdsa.Sign(rand.Reader, k, sum[:])
	if err != nil {
		t.Fatal(err)
	}
	out := make([]byte, 64)
	r.FillBytes(out[:32])
	s.FillBytes(out[32:])
	return out
}
