package acme_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/zbca/zbca/enroll"
	"github.com/zbca/zbca/store"
)

// TestNewOrderRefusals: the only identifier is the account's enterprise
// (RFC 8555 §7.4); anything else creates no order.
func TestNewOrderRefusals(t *testing.T) {
	e := newTestEnv(t, enroll.Policy{})
	a := e.account(t, "alpha")
	ent := identifier{"enterprise", "alpha"}
	cases := []struct {
		name    string
		payload any
		status  int
		typ     string
	}{
		{"another enterprise", map[string]any{"identifiers": []identifier{{"enterprise", "beta"}}}, 403, "unauthorized"},
		{"an enterprise that does not exist", map[string]any{"identifiers": []identifier{{"enterprise", "nobody"}}}, 403, "unauthorized"},
		{"dns identifier", map[string]any{"identifiers": []identifier{{"dns", "alpha"}}}, 400, "rejectedIdentifier"},
		{"ip identifier", map[string]any{"identifiers": []identifier{{"ip", "127.0.0.1"}}}, 400, "rejectedIdentifier"},
		{"two identifiers", map[string]any{"identifiers": []identifier{ent, ent}}, 400, "rejectedIdentifier"},
		{"enterprise and dns", map[string]any{"identifiers": []identifier{ent, {"dns", "alpha.test"}}}, 400, "rejectedIdentifier"},
		{"no identifiers", map[string]any{"identifiers": []identifier{}}, 400, "rejectedIdentifier"},
		{"identifiers missing", map[string]any{}, 400, "rejectedIdentifier"},
		{"notAfter", map[string]any{"identifiers": []identifier{ent}, "notAfter": "2030-01-01T00:00:00Z"}, 400, "malformed"},
		{"notBefore", map[string]any{"identifiers": []identifier{ent}, "notBefore": "2026-01-01T00:00:00Z"}, 400, "malformed"},
		{"POST-as-GET", nil, 400, "malformed"},
		{"not an object", []byte(`[1,2]`), 400, "malformed"},
		{"identifiers of the wrong type", map[string]any{"identifiers": "alpha"}, 400, "malformed"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := e.count(t)
			r := e.post(t, a, "/acme/new-order", tc.payload)
			wantProblem(t, r, tc.status, tc.typ)
			if r.header.Get("Location") != "" {
				t.Errorf("Location %q on a refusal", r.header.Get("Location"))
			}
			e.unchanged(t, before)
		})
	}
}

// TestFinalizeTwice: the second finalize is orderNotReady and exactly one
// certificate is issued.
func TestFinalizeTwice(t *testing.T) {
	e := newTestEnv(t, enroll.Policy{MaxActive: 5})
	a := e.account(t, "alpha")
	o := e.order(t, a, "alpha")
	before := e.count(t)
	der, _ := csr(t)
	wantStatus(t, e.post(t, a, o.Finalize, csrPayload(der)), http.StatusOK)
	for _, next := range [][]byte{der, mustCSR(t)} {
		wantProblem(t, e.post(t, a, o.Finalize, csrPayload(next)), http.StatusForbidden, "orderNotReady")
	}
	if after := e.count(t); after.Certs != before.Certs+1 {
		t.Fatalf("%d certificates issued, want 1", after.Certs-before.Certs)
	}
}

func mustCSR(t testing.TB) []byte { der, _ := csr(t); return der }

// TestFinalizeConcurrently: many finalizes of one order at once issue one
// certificate.
func TestFinalizeConcurrently(t *testing.T) {
	e := newTestEnv(t, enroll.Policy{MaxActive: 10, MaxPerDay: 100})
	a := e.account(t, "alpha")
	o := e.order(t, a, "alpha")
	const n = 8
	bodies := make([][]byte, n)
	for i := range bodies {
		bodies[i] = e.sign(t, a, o.Finalize, csrPayload(mustCSR(t)))
	}
	before := e.count(t)
	ok := e.postConcurrently(t, o.Finalize, bodies, http.StatusOK, http.StatusForbidden)
	if after := e.count(t); ok != 1 || after.Certs != before.Certs+1 {
		t.Fatalf("%d finalizes succeeded and %d certificates were issued, want 1 and 1", ok, after.Certs-before.Certs)
	}
}

// TestFinalizeBadCSR: a refused CSR is badCSR; the order stays ready and
// takes a good CSR afterwards.
func TestFinalizeBadCSR(t *testing.T) {
	e := newTestEnv(t, enroll.Policy{MaxActive: 5})
	a := e.account(t, "alpha")
	b := e.account(t, "beta")
	_, _, betaKey := e.issue(t, b, "beta")
	o := e.order(t, a, "alpha")
	p521, err := ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	good := mustCSR(t)
	badSig := append([]byte(nil), good...)
	badSig[len(badSig)-3] ^= 1
	cases := []struct {
		name    string
		payload any
	}{
		{"P-521 key", csrPayload(csrFor(t, p521))},
		{"key certified for another enterprise", csrPayload(csrFor(t, betaKey))},
		{"bad signature", csrPayload(badSig)},
		{"garbage", csrPayload([]byte("not a CSR"))},
		{"empty", map[string]string{"csr": ""}},
		{"standard base64", map[string]string{"csr": base64.StdEncoding.EncodeToString(good) + "=="}},
		{"PEM", map[string]string{"csr": base64.RawURLEncoding.EncodeToString([]byte("-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n"))}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := e.count(t)
			wantProblem(t, e.post(t, a, o.Finalize, tc.payload), http.StatusBadRequest, "badCSR")
			e.unchanged(t, before)
		})
	}
	r := e.post(t, a, o.url, nil)
	wantStatus(t, r, http.StatusOK)
	if !bytes.Contains(r.body, []byte(`"status":"ready"`)) {
		t.Fatalf("order after refused CSRs: %s", r.body)
	}
	wantStatus(t, e.post(t, a, o.Finalize, csrPayload(good)), http.StatusOK)
}

// TestOtherAccountsResources: orders, authorizations and certificates of
// another account are 404, as if they did not exist.
func TestOtherAccountsResources(t *testing.T) {
	e := newTestEnv(t, enroll.Policy{MaxActive: 5})
	a := e.account(t, "alpha")
	done, cert, _ := e.issue(t, a, "alpha")
	pending := e.order(t, a, "alpha")
	b := e.account(t, "beta")
	a2 := e.account(t, "alpha") // another account of the same enterprise

	for _, who := range []struct {
		name string
		k    *key
	}{{"other enterprise", b}, {"other account of the enterprise", a2}} {
		t.Run(who.name, func(t *testing.T) {
			before := e.count(t)
			wantProblem(t, e.post(t, who.k, done.url, nil), http.StatusNotFound, "malformed")
			wantProblem(t, e.post(t, who.k, pending.url, nil), http.StatusNotFound, "malformed")
			wantProblem(t, e.post(t, who.k, pending.Authorizations[0], nil), http.StatusNotFound, "malformed")
			wantProblem(t, e.post(t, who.k, pending.Finalize, csrPayload(mustCSR(t))), http.StatusNotFound, "malformed")
			e.unchanged(t, before)
		})
	}
	// Certificates belong to the enterprise: another enterprise's account
	// gets 404, another account of the same enterprise may download it.
	wantProblem(t, e.post(t, b, done.Certificate, nil), http.StatusNotFound, "malformed")
	if got := e.download(t, a2, done.Certificate); !got.Equal(cert) {
		t.Error("another certificate downloaded")
	}
	// Unknown and malformed ids.
	wantProblem(t, e.post(t, a, e.url("/acme/order/nope"), nil), http.StatusNotFound, "malformed")
	wantProblem(t, e.post(t, a, e.url("/acme/cert/abcdef"), nil), http.StatusNotFound, "malformed")
	wantProblem(t, e.post(t, a, e.url("/acme/cert/not-hex"), nil), http.StatusBadRequest, "malformed")
	// The owner still finalizes its pending order.
	wantStatus(t, e.post(t, a, pending.Finalize, csrPayload(mustCSR(t))), http.StatusOK)
}

// TestReissueSupersedes: a second order of the enterprise supersedes the
// first certificate (policy MaxActive 1).
func TestReissueSupersedes(t *testing.T) {
	e := newTestEnv(t, enroll.Policy{})
	a := e.account(t, "alpha")
	_, first, _ := e.issue(t, a, "alpha")
	_, second, _ := e.issue(t, a, "alpha")
	if rec := e.certStatus(t, first); rec.Status != "revoked" || rec.RevocationReason != 4 {
		t.Errorf("first certificate: %s reason %d, want revoked superseded", rec.Status, rec.RevocationReason)
	}
	if rec := e.certStatus(t, second); rec.Status != "active" {
		t.Errorf("second certificate: %s", rec.Status)
	}
}

// TestRateLimited: the daily limit answers rateLimited, and the order can
// be finalized later.
func TestRateLimited(t *testing.T) {
	e := newTestEnv(t, enroll.Policy{MaxPerDay: 1})
	a := e.account(t, "alpha")
	e.issue(t, a, "alpha")
	o := e.order(t, a, "alpha")
	before := e.count(t)
	wantProblem(t, e.post(t, a, o.Finalize, csrPayload(mustCSR(t))), http.StatusTooManyRequests, "rateLimited")
	e.unchanged(t, before)
	r := e.post(t, a, o.url, nil)
	if !strings.Contains(string(r.body), `"ready"`) {
		t.Fatalf("order after rateLimited: %s", r.body)
	}
}

// TestOrderJSON: the order object of RFC 8555 §7.1.3.
func TestOrderJSON(t *testing.T) {
	e := newTestEnv(t, enroll.Policy{})
	a := e.account(t, "alpha")
	o := e.order(t, a, "alpha")
	if len(o.Identifiers) != 1 || o.Identifiers[0] != (identifier{"enterprise", "alpha"}) || len(o.Authorizations) != 1 ||
		!strings.HasSuffix(o.Finalize, "/finalize") || o.Expires.IsZero() {
		t.Fatalf("order: %+v", o)
	}
	var authz struct {
		Status     string     `json:"status"`
		Identifier identifier `json:"identifier"`
		Challenges []any      `json:"challenges"`
	}
	r := e.post(t, a, o.Authorizations[0], nil)
	wantStatus(t, r, http.StatusOK)
	if err := json.Unmarshal(r.body, &authz); err != nil || authz.Status != "valid" || authz.Identifier.Value != "alpha" || authz.Challenges == nil {
		t.Fatalf("authorization: %s", r.body)
	}
	// A getOrder with a payload is not POST-as-GET.
	wantProblem(t, e.post(t, a, o.url, map[string]any{}), http.StatusBadRequest, "malformed")

}

// TestDailyLimitUnderConcurrentFinalize: one account finalizing several
// orders at once stays within the daily limit.
func TestDailyLimitUnderConcurrentFinalize(t *testing.T) {
	e := newTestEnv(t, enroll.Policy{MaxPerDay: 2, MaxActive: 100})
	a := e.account(t, "alpha")
	const n = 6
	bodies := make([][]byte, n)
	urls := make([]string, n)
	for i := range bodies {
		o := e.order(t, a, "alpha")
		urls[i] = o.Finalize
		bodies[i] = e.sign(t, a, o.Finalize, csrPayload(mustCSR(t)))
	}
	before := e.count(t)
	done := make(chan int, n)
	for i := range bodies {
		go func() {
			req, _ := http.NewRequest(http.MethodPost, urls[i], bytes.NewReader(bodies[i]))
			req.Header.Set("Content-Type", "application/jose+json")
			resp, err := e.hc.Do(req)
			if err != nil {
				done <- -1
				return
			}
			resp.Body.Close()
			done <- resp.StatusCode
		}()
	}
	for range n {
		<-done
	}
	if after := e.count(t); after.Certs-before.Certs > 2 {
		t.Fatalf("%d certificates issued concurrently under MaxPerDay 2", after.Certs-before.Certs)
	}
}

// TestFinalizeDisabledEnterprise: an enterprise disabled after its account
// was made gets no certificate, and its account can no longer do anything,
// not even read its order; enabling again revives nothing (the credential
// epoch moved on with disable).
func TestFinalizeDisabledEnterprise(t *testing.T) {
	e := newTestEnv(t, enroll.Policy{})
	a := e.account(t, "alpha")
	o := e.order(t, a, "alpha")
	ctx := context.Background()
	if err := e.st.SetEnterpriseStatus(ctx, "alpha", store.StatusDisabled, store.AuditEvent{Actor: "test", Action: "enterprise.disable", Subject: "alpha"}); err != nil {
		t.Fatal(err)
	}
	before := e.count(t)
	r := e.post(t, a, o.Finalize, csrPayload(mustCSR(t)))
	wantProblem(t, r, http.StatusForbidden, "unauthorized")
	if !bytes.Contains(r.body, []byte("disabled")) {
		t.Errorf("the refusal does not say the enterprise is disabled: %s", r.body)
	}
	wantProblem(t, e.post(t, a, o.url, nil), http.StatusForbidden, "unauthorized")
	if err := e.st.SetEnterpriseStatus(ctx, "alpha", store.StatusActive, store.AuditEvent{Actor: "test", Action: "enterprise.enable", Subject: "alpha"}); err != nil {
		t.Fatal(err)
	}
	r = e.post(t, a, o.Finalize, csrPayload(mustCSR(t)))
	wantProblem(t, r, http.StatusForbidden, "unauthorized")
	if !bytes.Contains(r.body, []byte("enroll again")) {
		t.Errorf("the refusal after enable does not say to enroll again: %s", r.body)
	}
	if after := e.count(t); after.Certs != before.Certs {
		t.Fatal("a certificate was issued to a disabled enterprise")
	}
}

// TestOrderExpires: an order past its expiry cannot be finalized.
func TestOrderExpires(t *testing.T) {
	e := newTestEnv(t, enroll.Policy{})
	a := e.account(t, "alpha")
	o := e.order(t, a, "alpha")
	e.clock.Add(2 * time.Hour)
	before := e.count(t)
	wantProblem(t, e.post(t, a, o.Finalize, csrPayload(mustCSR(t))), http.StatusForbidden, "orderNotReady")
	e.unchanged(t, before)
	r := e.post(t, a, o.url, nil)
	wantStatus(t, r, http.StatusOK)
	if !bytes.Contains(r.body, []byte(`"status":"invalid"`)) {
		t.Fatalf("expired order: %s", r.body)
	}
}
