package acme_test

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/zbca/zbca/enroll"
)

// TestNewAccountEABRefusals: newAccount requires a valid, unused,
// unexpired External Account Binding over the account's own key (RFC
// 8555 §7.3.4). A refusal creates no account and does not consume the
// EAB key.
func TestNewAccountEABRefusals(t *testing.T) {
	e := newTestEnv(t, enroll.Policy{})
	u := e.url("/acme/new-account")
	other := newKey(t, jose.ES256)

	cases := []struct {
		name   string
		eab    func(t testing.TB, k *key, kid string, hk []byte) json.RawMessage
		only   bool
		status int
		typ    string
	}{
		{name: "no EAB", status: 400, typ: "externalAccountRequired",
			eab: func(testing.TB, *key, string, []byte) json.RawMessage { return nil }},
		{name: "EAB null", status: 400, typ: "externalAccountRequired",
			eab: func(testing.TB, *key, string, []byte) json.RawMessage { return json.RawMessage("null") }},
		{name: "wrong HMAC key", status: 403, typ: "unauthorized",
			eab: func(t testing.TB, k *key, kid string, _ []byte) json.RawMessage {
				return eabJWS(t, jose.HS256, make([]byte, 32), kid, u, k.jwkJSON(t))
			}},
		{name: "binds another key", status: 403, typ: "unauthorized",
			eab: func(t testing.TB, k *key, kid string, hk []byte) json.RawMessage {
				return eabJWS(t, jose.HS256, hk, kid, u, other.jwkJSON(t))
			}},
		{name: "url of another resource", status: 403, typ: "unauthorized",
			eab: func(t testing.TB, k *key, kid string, hk []byte) json.RawMessage {
				return eabJWS(t, jose.HS256, hk, kid, e.url("/acme/new-order"), k.jwkJSON(t))
			}},
		{name: "unknown kid", status: 403, typ: "unauthorized",
			eab: func(t testing.TB, k *key, _ string, hk []byte) json.RawMessage {
				return eabJWS(t, jose.HS256, hk, "no-such-kid", u, k.jwkJSON(t))
			}},
		{name: "alg ES256", status: 400, typ: "badSignatureAlgorithm",
			eab: func(t testing.TB, k *key, kid string, _ []byte) json.RawMessage {
				return eabJWS(t, jose.ES256, k.signer, kid, u, k.jwkJSON(t))
			}},
		{name: "alg none", status: 400, typ: "badSignatureAlgorithm",
			eab: func(t testing.TB, k *key, kid string, hk []byte) json.RawMessage {
				return json.RawMessage(signJWS(t, jose.HS256, hk, hdr{url: u, kid: kid, extra: map[string]any{"alg": "none"}}, k.jwkJSON(t)))
			}},
		{name: "with a nonce", status: 400, typ: "malformed",
			eab: func(t testing.TB, k *key, kid string, hk []byte) json.RawMessage {
				return json.RawMessage(signJWS(t, jose.HS256, hk, hdr{url: u, kid: kid, nonce: e.nonce(t)}, k.jwkJSON(t)))
			}},
		{name: "not a JWS", status: 400, typ: "malformed",
			eab: func(testing.TB, *key, string, []byte) json.RawMessage { return json.RawMessage(`"eab"`) }},
		{name: "payload not a JWK", status: 400, typ: "malformed",
			eab: func(t testing.TB, k *key, kid string, hk []byte) json.RawMessage {
				return eabJWS(t, jose.HS256, hk, kid, u, []byte(`{"kty":"nope"}`))
			}},
		{name: "onlyReturnExisting with an unknown key", only: true, status: 400, typ: "accountDoesNotExist",
			eab: func(t testing.TB, k *key, kid string, hk []byte) json.RawMessage {
				return eabJWS(t, jose.HS256, hk, kid, u, k.jwkJSON(t))
			}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			kid, hk := e.addEAB(t, "alpha", time.Now().Add(10*time.Minute))
			k := newKey(t, jose.ES256)
			before := e.count(t)
			r := e.post(t, k, u, newAccountReq{TermsOfServiceAgreed: true, OnlyReturnExisting: tc.only, EAB: tc.eab(t, k, kid, hk)})
			wantProblem(t, r, tc.status, tc.typ)
			if r.header.Get("Location") != "" {
				t.Errorf("Location %q on a refusal", r.header.Get("Location"))
			}
			e.unchanged(t, before)
			// The refused attempt did not burn the EAB key.
			r = e.post(t, k, u, newAccountReq{TermsOfServiceAgreed: true, EAB: eabJWS(t, jose.HS256, hk, kid, u, k.jwkJSON(t))})
			wantStatus(t, r, http.StatusCreated)
		})
	}
}

// TestEABSingleUseAndExpiry: an EAB key makes one account, and an expired
// one none.
func TestEABSingleUseAndExpiry(t *testing.T) {
	e := newTestEnv(t, enroll.Policy{})
	u := e.url("/acme/new-account")

	t.Run("reused", func(t *testing.T) {
		kid, hk := e.addEAB(t, "alpha", time.Now().Add(10*time.Minute))
		k1 := newKey(t, jose.ES256)
		wantStatus(t, e.post(t, k1, u, newAccountReq{EAB: eabJWS(t, jose.HS256, hk, kid, u, k1.jwkJSON(t))}), http.StatusCreated)
		before := e.count(t)
		k2 := newKey(t, jose.ES256)
		r := e.post(t, k2, u, newAccountReq{EAB: eabJWS(t, jose.HS256, hk, kid, u, k2.jwkJSON(t))})
		wantProblem(t, r, http.StatusForbidden, "unauthorized")
		e.unchanged(t, before)
	})
	t.Run("expired", func(t *testing.T) {
		kid, hk := e.addEAB(t, "alpha", time.Now().Add(-time.Second))
		k := newKey(t, jose.ES256)
		before := e.count(t)
		r := e.post(t, k, u, newAccountReq{EAB: eabJWS(t, jose.HS256, hk, kid, u, k.jwkJSON(t))})
		wantProblem(t, r, http.StatusForbidden, "unauthorized")
		e.unchanged(t, before)
	})
	t.Run("concurrent use", func(t *testing.T) {
		kid, hk := e.addEAB(t, "alpha", time.Now().Add(10*time.Minute))
		before := e.count(t)
		const n = 8
		bodies := make([][]byte, n)
		for i := range bodies {
			k := newKey(t, jose.ES256)
			bodies[i] = e.sign(t, k, u, newAccountReq{EAB: eabJWS(t, jose.HS256, hk, kid, u, k.jwkJSON(t))})
		}
		created := e.postConcurrently(t, u, bodies, http.StatusCreated, http.StatusForbidden)
		if after := e.count(t); created != 1 || after.Accounts != before.Accounts+1 {
			t.Fatalf("one EAB key made %d accounts (%d answered 201)", after.Accounts-before.Accounts, created)
		}
	})
}

// TestAccountEnterpriseIsTheEABs: the EAB of enterprise A makes an account
// of A, which cannot order for B.
func TestAccountEnterpriseIsTheEABs(t *testing.T) {
	e := newTestEnv(t, enroll.Policy{})
	a := e.account(t, "alpha")
	before := e.count(t)
	r := e.post(t, a, "/acme/new-order", map[string]any{"identifiers": []identifier{{"enterprise", "beta"}}})
	wantProblem(t, r, http.StatusForbidden, "unauthorized")
	e.unchanged(t, before)
}

// TestAccountResource: POST-as-GET, contact update, another account's URL,
// deactivation (RFC 8555 §7.3.2, §7.3.6).
func TestAccountResource(t *testing.T) {
	e := newTestEnv(t, enroll.Policy{})
	a := e.account(t, "alpha")
	b := e.account(t, "beta")

	r := e.post(t, a, a.kid, map[string]any{"contact": []string{"mailto:ops@alpha.test"}})
	wantStatus(t, r, http.StatusOK)
	var doc struct {
		Status  string   `json:"status"`
		Contact []string `json:"contact"`
	}
	if err := json.Unmarshal(r.body, &doc); err != nil || doc.Status != "valid" || len(doc.Contact) != 1 {
		t.Fatalf("account update: %s", r.body)
	}
	// b's key cannot read or change a's account.
	r = e.post(t, b, a.kid, nil)
	wantProblem(t, r, http.StatusForbidden, "unauthorized")
	before := e.count(t)
	r = e.post(t, b, a.kid, map[string]any{"status": "deactivated"})
	wantProblem(t, r, http.StatusForbidden, "unauthorized")
	e.unchanged(t, before)
	wantStatus(t, e.post(t, a, a.kid, nil), http.StatusOK)
	// Only "deactivated" may be set.
	wantProblem(t, e.post(t, a, a.kid, map[string]any{"status": "revoked"}), http.StatusBadRequest, "malformed")

	// Deactivation, then nothing works with that account.
	r = e.post(t, a, a.kid, map[string]any{"status": "deactivated"})
	wantStatus(t, r, http.StatusOK)
	if err := json.Unmarshal(r.body, &doc); err != nil || doc.Status != "deactivated" {
		t.Fatalf("deactivation: %s", r.body)
	}
	before = e.count(t)
	// RFC 8555 §7.3.6 says 401 here; zbca, like Boulder and Pebble,
	// answers unauthorized with 403.
	wantProblem(t, e.post(t, a, "/acme/new-order", map[string]any{"identifiers": []identifier{{"enterprise", "alpha"}}}), http.StatusForbidden, "unauthorized")
	wantProblem(t, e.post(t, a, a.kid, nil), http.StatusForbidden, "unauthorized")
	wantProblem(t, e.post(t, a, a.kid, map[string]any{"status": "deactivated"}), http.StatusForbidden, "unauthorized")
	e.unchanged(t, before)
}

// TestDeactivatedAccountCannotFinalize: an order made before the
// deactivation cannot be finalized after it.
func TestDeactivatedAccountCannotFinalize(t *testing.T) {
	e := newTestEnv(t, enroll.Policy{})
	a := e.account(t, "alpha")
	o := e.order(t, a, "alpha")
	wantStatus(t, e.post(t, a, a.kid, map[string]any{"status": "deactivated"}), http.StatusOK)
	before := e.count(t)
	der, _ := csr(t)
	wantProblem(t, e.post(t, a, o.Finalize, csrPayload(der)), http.StatusForbidden, "unauthorized")
	e.unchanged(t, before)
}
