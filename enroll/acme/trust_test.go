package acme_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/labstack/echo/v4"

	"github.com/zbca/zbca/enroll"
	"github.com/zbca/zbca/enroll/acme"
	"github.com/zbca/zbca/store"
)

// The attacker's tests of issue 15: a captured request replayed with
// members the signature does not cover, a request that does not prove its
// key, an account that outlived the password.

// forge adds members to a captured flattened JWS body, as text (so that a
// member may repeat one already there).
func forge(body []byte, members ...string) []byte {
	s := strings.TrimSuffix(strings.TrimSpace(string(body)), "}")
	for _, m := range members {
		s += "," + m
	}
	return []byte(s + "}")
}

// header64 is a protected header an attacker writes: any nonce, any url,
// the victim's kid. Nobody signs it.
func header64(t *testing.T, alg, nonce, url, kid string) string {
	t.Helper()
	b, err := json.Marshal(map[string]string{"alg": alg, "nonce": nonce, "url": url, "kid": kid})
	if err != nil {
		t.Fatal(err)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

func (e *testEnv) usedNonces(t *testing.T) int {
	t.Helper()
	var n int
	if err := e.db.QueryRow(`SELECT COUNT(*) FROM acme_used_nonces`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestReplayWithUnsignedHeader: a captured, used new-order or finalize
// body, replayed with an extra "Protected" member (or a second
// "protected", an unprotected header, any unknown member) that names a
// fresh nonce and another URL, is malformed; it creates nothing, issues
// nothing, and does not even spend the fresh nonce. On the old decoder
// (encoding/json, case-insensitive, last member wins) the replay made a
// new order and a certificate that superseded the victim's.
func TestReplayWithUnsignedHeader(t *testing.T) {
	e := newTestEnv(t, enroll.Policy{MaxActive: 1, MaxPerDay: 100})
	victim := e.account(t, "alpha")
	newOrder := e.url("/acme/new-order")
	captured := e.sign(t, victim, newOrder, map[string]any{"identifiers": []identifier{{"enterprise", "alpha"}}})
	wantStatus(t, e.postJOSE(t, newOrder, captured), http.StatusCreated)
	done, _, _ := e.issue(t, victim, "alpha")
	der, _ := csr(t)
	o2 := e.order(t, victim, "alpha")
	capturedFinalize := e.sign(t, victim, o2.Finalize, csrPayload(der))
	// The victim's next order: the target of the replayed finalize.
	o3 := e.order(t, victim, "alpha")
	_ = done

	for _, tc := range []struct {
		name, url string
		body      func(fresh string) []byte
	}{
		{"Protected member to new-order", newOrder, func(n string) []byte {
			return forge(captured, `"Protected":"`+header64(t, "ES256", n, newOrder, victim.kid)+`"`)
		}},
		{"PROTECTED member to new-order", newOrder, func(n string) []byte {
			return forge(captured, `"PROTECTED":"`+header64(t, "ES256", n, newOrder, victim.kid)+`"`)
		}},
		{"second protected member", newOrder, func(n string) []byte {
			return forge(captured, `"protected":"`+header64(t, "ES256", n, newOrder, victim.kid)+`"`)
		}},
		{"unprotected header", newOrder, func(n string) []byte {
			return forge(captured, `"header":{"nonce":"`+n+`"}`)
		}},
		{"unknown member", newOrder, func(n string) []byte {
			return forge(captured, `"nonce":"`+n+`"`)
		}},
		{"Protected member to another order's finalize", o3.Finalize, func(n string) []byte {
			return forge(capturedFinalize, `"Protected":"`+header64(t, "ES256", n, o3.Finalize, victim.kid)+`"`)
		}},
		{"trailing data", newOrder, func(n string) []byte {
			return append(append([]byte{}, captured...), '}')
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fresh := e.nonce(t)
			before, nonces := e.count(t), e.usedNonces(t)
			wantProblem(t, e.postJOSE(t, tc.url, tc.body(fresh)), http.StatusBadRequest, "malformed")
			e.unchanged(t, before)
			if n := e.usedNonces(t); n != nonces {
				t.Errorf("a refused replay spent a nonce (%d → %d used)", nonces, n)
			}
			// The fresh nonce is still good for its owner.
			r := e.postJOSE(t, newOrder, signJWS(t, victim.alg, victim.signer, hdr{nonce: fresh, url: newOrder, kid: victim.kid},
				marshalPayload(t, map[string]any{"identifiers": []identifier{{"enterprise", "alpha"}}})))
			wantStatus(t, r, http.StatusCreated)
		})
	}
	// The victim's certificate is still the one active.
	var active int
	if err := e.db.QueryRow(`SELECT COUNT(*) FROM certificates WHERE profile = 'client' AND status = 'active'`).Scan(&active); err != nil || active != 1 {
		t.Fatalf("%d active certificates (%v), want the victim's one", active, err)
	}
}

// TestSignatureBeforeNonce: a request whose signature does not verify,
// or that names no key of an account, writes nothing: its nonce stays
// unspent, no account or order is made.
func TestSignatureBeforeNonce(t *testing.T) {
	e := newTestEnv(t, enroll.Policy{})
	victim := e.account(t, "alpha")
	stranger := newKey(t, jose.ES256)
	newOrder, newAccount, revokeURL := e.url("/acme/new-order"), e.url("/acme/new-account"), e.url("/acme/revoke-cert")
	order := marshalPayload(t, map[string]any{"identifiers": []identifier{{"enterprise", "alpha"}}})
	_, cert, _ := e.issue(t, victim, "alpha")
	certB64 := base64.RawURLEncoding.EncodeToString(cert.Raw)
	// An EAB key already spent on an account.
	usedKID, usedHK := e.addEAB(t, "alpha", time.Now().Add(10*time.Minute))
	spender := newKey(t, jose.ES256)
	wantStatus(t, e.post(t, spender, newAccount, newAccountReq{TermsOfServiceAgreed: true, EAB: eabJWS(t, jose.HS256, usedHK, usedKID, newAccount, spender.jwkJSON(t))}), http.StatusCreated)
	for _, tc := range []struct {
		name, url, typ string
		status         int
		body           func(n string) []byte
	}{
		{"victim's kid, stranger's signature", newOrder, "malformed", http.StatusBadRequest, func(n string) []byte {
			return signJWS(t, stranger.alg, stranger.signer, hdr{nonce: n, url: newOrder, kid: victim.kid}, order)
		}},
		{"signature cut off", newOrder, "malformed", http.StatusBadRequest, func(n string) []byte {
			b := signJWS(t, victim.alg, victim.signer, hdr{nonce: n, url: newOrder, kid: victim.kid}, order)
			var m map[string]string
			_ = json.Unmarshal(b, &m)
			m["signature"] = m["signature"][:20]
			b, _ = json.Marshal(m)
			return b
		}},
		{"unknown account", newOrder, "accountDoesNotExist", http.StatusBadRequest, func(n string) []byte {
			return signJWS(t, stranger.alg, stranger.signer, hdr{nonce: n, url: newOrder, kid: e.url("/acme/acct/nobody")}, order)
		}},
		{"newAccount, jwk of one key, signed by another", newAccount, "malformed", http.StatusBadRequest, func(n string) []byte {
			jwk := string(stranger.jwkJSON(t))
			return rawJWS(`{"alg":"ES256","nonce":"`+n+`","url":"`+newAccount+`","jwk":`+jwk+`}`, []byte(`{"termsOfServiceAgreed":true}`), make([]byte, 64))
		}},
		{"right key, wrong url", newOrder, "unauthorized", http.StatusForbidden, func(n string) []byte {
			return signJWS(t, victim.alg, victim.signer, hdr{nonce: n, url: e.url("/acme/new-account"), kid: victim.kid}, order)
		}},
		// Signed, but by a key that proves nothing: a fresh key with no
		// usable EAB key, a stranger revoking someone's certificate.
		{"newAccount without EAB", newAccount, "externalAccountRequired", http.StatusBadRequest, func(n string) []byte {
			return signJWS(t, stranger.alg, stranger.signer, hdr{nonce: n, url: newAccount, jwk: true}, marshalPayload(t, newAccountReq{TermsOfServiceAgreed: true}))
		}},
		{"newAccount with an unknown EAB key", newAccount, "unauthorized", http.StatusForbidden, func(n string) []byte {
			return signJWS(t, stranger.alg, stranger.signer, hdr{nonce: n, url: newAccount, jwk: true}, marshalPayload(t, newAccountReq{TermsOfServiceAgreed: true,
				EAB: eabJWS(t, jose.HS256, make([]byte, 32), "bogus-kid", newAccount, stranger.jwkJSON(t))}))
		}},
		{"newAccount with a used EAB key", newAccount, "unauthorized", http.StatusForbidden, func(n string) []byte {
			return signJWS(t, stranger.alg, stranger.signer, hdr{nonce: n, url: newAccount, jwk: true}, marshalPayload(t, newAccountReq{TermsOfServiceAgreed: true,
				EAB: eabJWS(t, jose.HS256, usedHK, usedKID, newAccount, stranger.jwkJSON(t))}))
		}},
		{"revokeCert by a stranger's key", revokeURL, "unauthorized", http.StatusForbidden, func(n string) []byte {
			return signJWS(t, stranger.alg, stranger.signer, hdr{nonce: n, url: revokeURL, jwk: true}, marshalPayload(t, map[string]any{"certificate": certB64}))
		}},
		{"revokeCert with a reason a subscriber may not use", revokeURL, "badRevocationReason", http.StatusBadRequest, func(n string) []byte {
			return signJWS(t, victim.alg, victim.signer, hdr{nonce: n, url: revokeURL, kid: victim.kid}, marshalPayload(t, map[string]any{"certificate": certB64, "reason": 6}))
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fresh := e.nonce(t)
			before, nonces := e.count(t), e.usedNonces(t)
			wantProblem(t, e.postJOSE(t, tc.url, tc.body(fresh)), tc.status, tc.typ)
			e.unchanged(t, before)
			if n := e.usedNonces(t); n != nonces {
				t.Errorf("an unauthenticated request spent a nonce (%d → %d used)", nonces, n)
			}
		})
	}
}

// TestEABUnsignedHeader: the inner JWS of an external account binding is
// read the same way: an unsigned "Protected" member naming another EAB
// key is malformed, and neither key is spent.
func TestEABUnsignedHeader(t *testing.T) {
	e := newTestEnv(t, enroll.Policy{})
	k := newKey(t, jose.ES256)
	u := e.url("/acme/new-account")
	kid, hk := e.addEAB(t, "alpha", time.Now().Add(10*time.Minute))
	other, _ := e.addEAB(t, "beta", time.Now().Add(10*time.Minute))
	inner := eabJWS(t, jose.HS256, hk, kid, u, k.jwkJSON(t))
	fakeHdr, _ := json.Marshal(map[string]string{"alg": "HS256", "kid": other, "url": u})
	forged := forge(inner, `"Protected":"`+base64.RawURLEncoding.EncodeToString(fakeHdr)+`"`)
	before := e.count(t)
	p := wantProblem(t, e.post(t, k, u, newAccountReq{TermsOfServiceAgreed: true, EAB: forged}), http.StatusBadRequest, "malformed")
	if !strings.Contains(p.Detail, "externalAccountBinding") {
		t.Errorf("detail %q does not name the binding", p.Detail)
	}
	e.unchanged(t, before)
}

// TestAccountOutlivesPassword: an account made before passwd, disable
// or EndAccess orders and finalizes nothing after it, with a zh/en detail
// that says to enroll again; an EAB key obtained with the old password
// makes no account; a new one does.
func TestAccountOutlivesPassword(t *testing.T) {
	ctx := context.Background()
	for _, change := range []struct {
		name string
		do   func(st *store.SQL) error
	}{
		{"passwd", func(st *store.SQL) error {
			return st.SetPasswordHash(ctx, "alpha", "new", store.AuditEvent{Actor: "operator", Action: "enterprise.passwd", Subject: "alpha"})
		}},
		{"logout", func(st *store.SQL) error {
			_, err := st.EndAccess(ctx, "alpha", store.AuditEvent{Actor: "operator", Action: "enterprise.logout", Subject: "alpha"})
			return err
		}},
	} {
		t.Run(change.name, func(t *testing.T) {
			e := newTestEnv(t, enroll.Policy{MaxActive: 1, MaxPerDay: 100})
			old := e.account(t, "alpha")
			o := e.order(t, old, "alpha")
			oldKID, oldHK := e.addEAB(t, "alpha", time.Now().Add(10*time.Minute))
			if err := change.do(e.st); err != nil {
				t.Fatal(err)
			}
			before := e.count(t)
			for _, r := range []*result{
				e.post(t, old, "/acme/new-order", map[string]any{"identifiers": []identifier{{"enterprise", "alpha"}}}),
				e.post(t, old, o.Finalize, csrPayload(mustCSR(t))),
			} {
				p := wantProblem(t, r, http.StatusForbidden, "unauthorized")
				if !strings.Contains(p.Detail, "重新申请") || !strings.Contains(p.Detail, "enroll again") {
					t.Errorf("detail %q does not say, in Chinese and English, to enroll again", p.Detail)
				}
			}
			e.unchanged(t, before)
			// The old key is not reported as a valid account either.
			wantProblem(t, e.postJOSE(t, e.url("/acme/new-account"), signJWS(t, old.alg, old.signer,
				hdr{nonce: e.nonce(t), url: e.url("/acme/new-account"), jwk: true}, []byte(`{"onlyReturnExisting":true}`))), http.StatusForbidden, "unauthorized")
			// The EAB key from before the change makes nothing.
			k := newKey(t, jose.ES256)
			u := e.url("/acme/new-account")
			wantProblem(t, e.post(t, k, u, newAccountReq{TermsOfServiceAgreed: true, EAB: eabJWS(t, jose.HS256, oldHK, oldKID, u, k.jwkJSON(t))}),
				http.StatusForbidden, "unauthorized")
			e.unchanged(t, before)
			// Proving the password again (a new EAB key) works.
			fresh := e.account(t, "alpha")
			e.issue(t, fresh, "alpha")
		})
	}
}

// TestAccountChangeOnOtherNode: two ACME servers on one database; an
// account deactivated, or an enterprise's access ended, through one is
// refused by the other at its next request (there was a one-minute
// cache).
func TestAccountChangeOnOtherNode(t *testing.T) {
	e := newTestEnv(t, enroll.Policy{MaxActive: 1, MaxPerDay: 100})
	b := echo.New()
	acme.New(acme.Options{Store: e.st, Enroll: e.es, Revocation: e.revocation, Issuers: e.auth.IssuingCerts(), Now: e.clock.Now}).Register(b)
	srvB := httptest.NewTLSServer(b)
	t.Cleanup(srvB.Close)
	// A request to node B, signed with k's key under its account URL there.
	onB := func(k *key, path string, payload any) *result {
		kb := *k
		kb.kid = srvB.URL + strings.TrimPrefix(k.kid, e.base)
		u := srvB.URL + path
		body := signJWS(t, kb.alg, kb.signer, hdr{nonce: e.nonce(t), url: u, kid: kb.kid}, marshalPayload(t, payload))
		return e.do(t, http.MethodPost, u, "application/jose+json", body)
	}
	order := map[string]any{"identifiers": []identifier{{"enterprise", "alpha"}}}

	a1 := e.account(t, "alpha")
	wantStatus(t, onB(a1, "/acme/new-order", order), http.StatusCreated) // B has read it
	wantStatus(t, e.post(t, a1, strings.TrimPrefix(a1.kid, e.base), map[string]string{"status": "deactivated"}), http.StatusOK)
	wantProblem(t, onB(a1, "/acme/new-order", order), http.StatusForbidden, "unauthorized")

	a2 := e.account(t, "alpha")
	wantStatus(t, onB(a2, "/acme/new-order", order), http.StatusCreated)
	if _, err := e.st.EndAccess(context.Background(), "alpha", store.AuditEvent{Actor: "operator", Action: "enterprise.logout", Subject: "alpha"}); err != nil {
		t.Fatal(err)
	}
	wantProblem(t, onB(a2, "/acme/new-order", order), http.StatusForbidden, "unauthorized")
}

// TestPendingOrderLimit: one account cannot pile up orders; an order that
// is finished (or expired) makes room.
func TestPendingOrderLimit(t *testing.T) {
	e := newTestEnv(t, enroll.Policy{MaxActive: 1, MaxPerDay: 100})
	a := e.account(t, "alpha")
	var last *orderDoc
	for range 10 {
		last = e.order(t, a, "alpha")
	}
	before := e.count(t)
	wantProblem(t, e.post(t, a, "/acme/new-order", map[string]any{"identifiers": []identifier{{"enterprise", "alpha"}}}), http.StatusTooManyRequests, "rateLimited")
	e.unchanged(t, before)
	wantStatus(t, e.post(t, a, last.Finalize, csrPayload(mustCSR(t))), http.StatusOK)
	e.order(t, a, "alpha")
	// Expired orders make room too, and the janitor deletes them a day on.
	e.clock.Add(2 * time.Hour)
	e.order(t, a, "alpha")
	e.clock.Add(25 * time.Hour)
	if _, err := e.acme.Prune(context.Background(), e.st); err != nil {
		t.Fatal(err)
	}
	var left int
	if err := e.db.QueryRow(`SELECT COUNT(*) FROM acme_orders`).Scan(&left); err != nil || left != 0 {
		t.Errorf("%d orders left after pruning (%v), want 0", left, err)
	}
}

// TestRateLimit: one address gets Burst requests, then rateLimited with
// Retry-After, and tokens come back with time.
func TestRateLimit(t *testing.T) {
	e := newTestEnv(t, enroll.Policy{})
	ec := echo.New()
	acme.New(acme.Options{Store: e.st, Enroll: e.es, Revocation: e.revocation, Issuers: e.auth.IssuingCerts(), Now: e.clock.Now,
		RatePerSecond: 1, RateBurst: 3}).Register(ec)
	get := func() *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodGet, "https://"+fuzzHost+"/acme/directory", nil)
		req.RemoteAddr = "192.0.2.7:4711"
		rec := httptest.NewRecorder()
		ec.ServeHTTP(rec, req)
		return rec
	}
	for i := range 3 {
		if r := get(); r.Code != http.StatusOK {
			t.Fatalf("request %d: %d", i, r.Code)
		}
	}
	r := get()
	if r.Code != http.StatusTooManyRequests || r.Header().Get("Retry-After") != "1" || !strings.Contains(r.Body.String(), "rateLimited") {
		t.Fatalf("fourth request: %d Retry-After %q %s", r.Code, r.Header().Get("Retry-After"), r.Body)
	}
	e.clock.Add(1100 * time.Millisecond)
	if r := get(); r.Code != http.StatusOK {
		t.Fatalf("after a second: %d", r.Code)
	}
}

// changeDuringFinalize is the store as the enrollment service sees it,
// with an operator's change committing between the account's check and
// the journaling of the serial: the race of a passwd with a finalize in
// flight.
type changeDuringFinalize struct {
	enroll.PolicyStore
	change func()
}

func (s *changeDuringFinalize) GetEnterprise(ctx context.Context, u string) (*store.Enterprise, error) {
	if s.change != nil {
		s.change()
		s.change = nil
	}
	return s.PolicyStore.GetEnterprise(ctx, u)
}

// TestPasswdDuringFinalize: a passwd that commits after the finalize
// request was verified, and before its serial is journaled, stops it: no
// serial, no certificate, the same refusal as for an old account.
func TestPasswdDuringFinalize(t *testing.T) {
	e := newTestEnv(t, enroll.Policy{MaxActive: 1, MaxPerDay: 100})
	a := e.account(t, "alpha")
	o := e.order(t, a, "alpha")
	e.es.Store = &changeDuringFinalize{PolicyStore: e.st, change: func() {
		if err := e.st.SetPasswordHash(context.Background(), "alpha", "new", store.AuditEvent{Actor: "operator", Action: "enterprise.passwd", Subject: "alpha"}); err != nil {
			t.Error(err)
		}
	}}
	before := e.count(t)
	var journal int
	if err := e.db.QueryRow(`SELECT COUNT(*) FROM issuance_journal`).Scan(&journal); err != nil {
		t.Fatal(err)
	}
	p := wantProblem(t, e.post(t, a, o.Finalize, csrPayload(mustCSR(t))), http.StatusForbidden, "unauthorized")
	if !strings.Contains(p.Detail, "enroll again") {
		t.Errorf("detail %q", p.Detail)
	}
	if after := e.count(t); after.Certs != before.Certs {
		t.Fatal("a certificate was issued after the password changed")
	}
	var journal2 int
	if err := e.db.QueryRow(`SELECT COUNT(*) FROM issuance_journal`).Scan(&journal2); err != nil || journal2 != journal {
		t.Fatalf("a serial was journaled (%d → %d, %v)", journal, journal2, err)
	}
}

// TestDeactivateDuringFinalize: the account deactivated (as zbcert does
// with the account it replaces) while a finalize is in flight: nothing is
// issued.
func TestDeactivateDuringFinalize(t *testing.T) {
	e := newTestEnv(t, enroll.Policy{MaxActive: 1, MaxPerDay: 100})
	a := e.account(t, "alpha")
	o := e.order(t, a, "alpha")
	id := strings.TrimPrefix(a.kid, e.url("/acme/acct/"))
	e.es.Store = &changeDuringFinalize{PolicyStore: e.st, change: func() {
		acct, err := e.st.GetACMEAccount(context.Background(), id)
		if err != nil {
			t.Error(err)
			return
		}
		acct.Status = "deactivated"
		if err := e.st.UpdateACMEAccount(context.Background(), acct, store.AuditEvent{Actor: "acme:" + id, Action: "acme.account.update", Subject: id}); err != nil {
			t.Error(err)
		}
	}}
	before := e.count(t)
	wantProblem(t, e.post(t, a, o.Finalize, csrPayload(mustCSR(t))), http.StatusForbidden, "unauthorized")
	if after := e.count(t); after.Certs != before.Certs {
		t.Fatal("a certificate was issued to a deactivated account")
	}
}

// TestConcurrentNewAccountSameKey: a client that sends its newAccount
// twice at once (same key, same EAB key) gets one account and two
// successes (201 and 200), not a false refusal.
func TestConcurrentNewAccountSameKey(t *testing.T) {
	e := newTestEnv(t, enroll.Policy{})
	for range 3 {
		k := newKey(t, jose.ES256)
		u := e.url("/acme/new-account")
		kid, hk := e.addEAB(t, "alpha", time.Now().Add(10*time.Minute))
		payload := newAccountReq{TermsOfServiceAgreed: true, EAB: eabJWS(t, jose.HS256, hk, kid, u, k.jwkJSON(t))}
		bodies := [][]byte{e.sign(t, k, u, payload), e.sign(t, k, u, payload)}
		before := e.count(t)
		if n := e.postConcurrently(t, u, bodies, http.StatusCreated, http.StatusOK); n != 1 {
			t.Fatalf("%d creations, want 1 (and one 200)", n)
		}
		if after := e.count(t); after.Accounts != before.Accounts+1 {
			t.Fatalf("%d accounts made", after.Accounts-before.Accounts)
		}
	}
}

// TestReplayOfEndedAccount: a captured request of an account since ended,
// replayed, gets badNonce like any replay: it tells its holder nothing of
// the enterprise's state.
func TestReplayOfEndedAccount(t *testing.T) {
	e := newTestEnv(t, enroll.Policy{})
	a := e.account(t, "alpha")
	newOrder := e.url("/acme/new-order")
	captured := e.sign(t, a, newOrder, map[string]any{"identifiers": []identifier{{"enterprise", "alpha"}}})
	wantStatus(t, e.postJOSE(t, newOrder, captured), http.StatusCreated)
	if _, err := e.st.EndAccess(context.Background(), "alpha", store.AuditEvent{Actor: "operator", Action: "enterprise.logout", Subject: "alpha"}); err != nil {
		t.Fatal(err)
	}
	wantProblem(t, e.postJOSE(t, newOrder, captured), http.StatusBadRequest, "badNonce")
}
