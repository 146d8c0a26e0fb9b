package portal_test

import (
	"context"
	"net/url"
	"testing"

	"github.com/zbca/zbca/enroll"
	"github.com/zbca/zbca/store"
)

// passwdDuring is the enrollment service's store with an operator's
// passwd committing after the portal checked the session and before the
// serial is journaled.
type passwdDuring struct {
	enroll.PolicyStore
	st   *store.SQL
	done bool
}

func (p *passwdDuring) GetEnterprise(ctx context.Context, u string) (*store.Enterprise, error) {
	if !p.done {
		p.done = true
		if err := p.st.SetPasswordHash(ctx, u, "new", store.AuditEvent{Actor: "operator", Action: "enterprise.passwd", Subject: u}); err != nil {
			return nil, err
		}
	}
	return p.PolicyStore.GetEnterprise(ctx, u)
}

// TestPortalSessionEndsWithPassword: a session made before passwd, logout
// or disable shows the login form; and a passwd that commits while an
// application is in flight stops it (nothing issued, the login form).
func TestPortalSessionEndsWithPassword(t *testing.T) {
	ctx := context.Background()
	pe := newPortalEnv(t)
	for _, change := range []func() error{
		func() error {
			return pe.st.SetPasswordHash(ctx, "alpha", "x", store.AuditEvent{Actor: "operator", Action: "enterprise.passwd", Subject: "alpha"})
		},
		func() error {
			_, err := pe.st.EndAccess(ctx, "alpha", store.AuditEvent{Actor: "operator", Action: "enterprise.logout", Subject: "alpha"})
			return err
		},
	} {
		b := pe.browser(t)
		b.login("alpha", portalPassword)
		wantBody(t, b.do("GET", "/certificates", nil, nil), 200, "alpha")
		if err := change(); err != nil {
			t.Fatal(err)
		}
		wantBody(t, b.post("/apply", url.Values{"csr": {csrPEM(t)}}), 401, "登录已超时")
		if n := pe.certCount(t, "alpha"); n != 0 {
			t.Fatalf("%d certificates after the session ended", n)
		}
	}

	b := pe.browser(t)
	b.login("alpha", portalPassword)
	pe.svc.Store = &passwdDuring{PolicyStore: pe.st, st: pe.st}
	wantBody(t, b.post("/apply", url.Values{"csr": {csrPEM(t)}}), 401, "登录已超时")
	if n := pe.certCount(t, "alpha"); n != 0 {
		t.Fatalf("%d certificates: a passwd in flight did not stop the application", n)
	}

	// The same for server-side key generation: the login form, nothing
	// issued.
	if err := pe.st.SetServerKeygen(ctx, "alpha", true, store.AuditEvent{Actor: "test", Action: "enterprise.set"}); err != nil {
		t.Fatal(err)
	}
	b = pe.browser(t)
	b.login("alpha", portalPassword)
	pe.svc.Store = &passwdDuring{PolicyStore: pe.st, st: pe.st}
	wantBody(t, b.post("/keygen", url.Values{"os": {"windows"}, "keytype": {"EC-P256"}, "p12_password": {"Good-Passw0rd-x"}, "p12_password2": {"Good-Passw0rd-x"}}), 401, "登录已超时")
	if n := pe.certCount(t, "alpha"); n != 0 {
		t.Fatalf("%d certificates: a passwd in flight did not stop the key generation", n)
	}
}
