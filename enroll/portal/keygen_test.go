package portal_test

import (
	"context"
	"net/http"
	"net/url"
	"sync/atomic"
	"testing"

	"github.com/zbca/zbca/enroll"
	"github.com/zbca/zbca/enroll/portal"
	"github.com/zbca/zbca/store"
)

// TestPortalKeygenPolicyBeforeKey: a logged-in user past the daily limit,
// or whose account was disabled, is refused before the server spends any
// CPU on a key (RSA-2048: tens of milliseconds each).
func TestPortalKeygenPolicyBeforeKey(t *testing.T) {
	env := newSvcEnv(t, enroll.Policy{MaxPerDay: 1})
	pe := &portalEnv{svcEnv: env, e: newPortalNode(t, env, env.st, portal.Options{})}
	var keys atomic.Int64
	defer portal.CountKeygens(func() { keys.Add(1) })()
	ctx := context.Background()
	for _, u := range []string{"alpha", "beta"} {
		if err := pe.st.SetServerKeygen(ctx, u, true, store.AuditEvent{Actor: "test", Action: "enterprise.set"}); err != nil {
			t.Fatal(err)
		}
	}
	form := url.Values{"os": {"windows"}, "keytype": {"RSA-2048"}, "p12_password": {"Good-Passw0rd-x"}, "p12_password2": {"Good-Passw0rd-x"}}

	b := pe.browser(t)
	b.login("alpha", portalPassword)
	if rec := b.post("/keygen", form); rec.Code != http.StatusOK {
		t.Fatalf("first keygen: %d %s", rec.Code, rec.Body)
	}
	if n := keys.Load(); n != 1 {
		t.Fatalf("%d keys for one issuance", n)
	}
	for range 5 {
		wantBody(t, b.post("/keygen", form), http.StatusForbidden, "24")
	}
	if n := keys.Load(); n != 1 {
		t.Errorf("%d keys made past the daily limit, want none", n-1)
	}

	// Disabled while logged in: refused, no key.
	b2 := pe.browser(t)
	b2.login("beta", portalPassword)
	if err := pe.st.SetEnterpriseStatus(ctx, "beta", store.StatusDisabled, store.AuditEvent{Actor: "test", Action: "enterprise.disable", Subject: "beta"}); err != nil {
		t.Fatal(err)
	}
	if rec := b2.post("/keygen", form); rec.Code == http.StatusOK {
		t.Fatalf("disabled account got a key: %d", rec.Code)
	}
	if n := keys.Load(); n != 1 {
		t.Errorf("%d keys made for a disabled account, want none", n-1)
	}
	if n := pe.certCount(t, "alpha") + pe.certCount(t, "beta"); n != 1 {
		t.Errorf("%d certificates, want 1", n)
	}
}
