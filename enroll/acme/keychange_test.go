package acme_test

import (
	"encoding/json"
	"net/http"
	"testing"

	"github.com/go-jose/go-jose/v4"

	"github.com/zbca/zbca/enroll"
)

// keyChangeInner is the inner JWS of RFC 8555 §7.3.5, signed by the new
// key with its jwk.
func keyChangeInner(t testing.TB, newKey *key, url, account string, oldJWK []byte, extra map[string]any) []byte {
	t.Helper()
	payload := marshalPayload(t, map[string]any{"account": account, "oldKey": json.RawMessage(oldJWK)})
	return signJWS(t, newKey.alg, newKey.signer, hdr{url: url, jwk: true, extra: extra}, payload)
}

func TestKeyChange(t *testing.T) {
	e := newTestEnv(t, enroll.Policy{})
	u := e.url("/acme/key-change")
	order := map[string]any{"identifiers": []identifier{{"enterprise", "alpha"}}}

	t.Run("success", func(t *testing.T) {
		old := e.account(t, "alpha")
		next := newKey(t, jose.EdDSA)
		r := e.post(t, old, u, json.RawMessage(keyChangeInner(t, next, u, old.kid, old.jwkJSON(t), nil)))
		wantStatus(t, r, http.StatusOK)
		if r.header.Get("Location") != old.kid {
			t.Errorf("Location %q, want %q", r.header.Get("Location"), old.kid)
		}
		// The old key no longer works, by kid or by jwk.
		before := e.count(t)
		wantProblem(t, e.post(t, old, "/acme/new-order", order), http.StatusBadRequest, "malformed")
		wantProblem(t, e.post(t, &key{signer: old.signer, alg: old.alg}, "/acme/new-account", newAccountReq{OnlyReturnExisting: true}), http.StatusBadRequest, "accountDoesNotExist")
		e.unchanged(t, before)
		// The new key does.
		next.kid = old.kid
		e.order(t, next, "alpha")
		r = e.post(t, &key{signer: next.signer, alg: next.alg}, "/acme/new-account", newAccountReq{OnlyReturnExisting: true})
		wantStatus(t, r, http.StatusOK)
		if r.header.Get("Location") != old.kid {
			t.Errorf("newAccount with the new key: Location %q, want %q", r.header.Get("Location"), old.kid)
		}
	})

	t.Run("new key of another account", func(t *testing.T) {
		a := e.account(t, "alpha")
		b := e.account(t, "beta")
		r := e.post(t, a, u, json.RawMessage(keyChangeInner(t, b, u, a.kid, a.jwkJSON(t), nil)))
		wantProblem(t, r, http.StatusConflict, "malformed")
		if r.header.Get("Location") != b.kid {
			t.Errorf("409 Location %q, want the other account %q", r.header.Get("Location"), b.kid)
		}
		// Both keys still work for their own accounts.
		e.order(t, a, "alpha")
		e.order(t, b, "beta")
	})

	t.Run("refusals", func(t *testing.T) {
		a := e.account(t, "alpha")
		other := e.account(t, "alpha")
		next := newKey(t, jose.ES256)
		stranger := newKey(t, jose.ES256)
		cases := []struct {
			name   string
			inner  func() any
			status int
			typ    string
		}{
			{"inner url differs", func() any {
				return json.RawMessage(keyChangeInner(t, next, e.url("/acme/new-order"), a.kid, a.jwkJSON(t), nil))
			}, 400, "malformed"},
			{"inner nonce", func() any {
				return json.RawMessage(keyChangeInner(t, next, u, a.kid, a.jwkJSON(t), map[string]any{"nonce": e.nonce(t)}))
			}, 400, "malformed"},
			{"another account named", func() any {
				return json.RawMessage(keyChangeInner(t, next, u, other.kid, a.jwkJSON(t), nil))
			}, 400, "malformed"},
			{"oldKey is not the account key", func() any {
				return json.RawMessage(keyChangeInner(t, next, u, a.kid, stranger.jwkJSON(t), nil))
			}, 400, "malformed"},
			{"inner signed by another key than its jwk", func() any {
				payload := marshalPayload(t, map[string]any{"account": a.kid, "oldKey": json.RawMessage(a.jwkJSON(t))})
				return json.RawMessage(signJWS(t, stranger.alg, stranger.signer, hdr{url: u, extra: map[string]any{"jwk": json.RawMessage(next.jwkJSON(t))}}, payload))
			}, 400, "malformed"},
			{"inner by kid", func() any {
				payload := marshalPayload(t, map[string]any{"account": a.kid, "oldKey": json.RawMessage(a.jwkJSON(t))})
				return json.RawMessage(signJWS(t, next.alg, next.signer, hdr{url: u, kid: a.kid}, payload))
			}, 400, "malformed"},
			{"inner HS256", func() any {
				payload := marshalPayload(t, map[string]any{"account": a.kid, "oldKey": json.RawMessage(a.jwkJSON(t))})
				return json.RawMessage(signJWS(t, jose.HS256, make([]byte, 32), hdr{url: u, extra: map[string]any{"jwk": json.RawMessage(next.jwkJSON(t))}}, payload))
			}, 400, "badSignatureAlgorithm"},
			{"inner JWS with an unsigned member", func() any {
				payload := marshalPayload(t, map[string]any{"account": a.kid, "oldKey": json.RawMessage(a.jwkJSON(t))})
				inner := signJWS(t, next.alg, next.signer, hdr{url: u, jwk: true}, payload)
				return json.RawMessage(forge(inner, `"Protected":"e30"`))
			}, 400, "malformed"},
			{"payload not a JWS", func() any { return map[string]any{"account": a.kid} }, 400, "malformed"},
			{"POST-as-GET", func() any { return nil }, 400, "malformed"},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				r := e.post(t, a, u, tc.inner())
				wantProblem(t, r, tc.status, tc.typ)
				// The account key is unchanged.
				wantStatus(t, e.post(t, a, a.kid, nil), http.StatusOK)
			})
		}
		// next was never installed: newAccount with it finds nothing.
		wantProblem(t, e.post(t, next, "/acme/new-account", newAccountReq{OnlyReturnExisting: true}), http.StatusBadRequest, "accountDoesNotExist")
	})
}
