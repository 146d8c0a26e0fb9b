package portal_test

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/zbca/zbca/enroll"
	"github.com/zbca/zbca/enroll/portal"
	"github.com/zbca/zbca/store"
)

// failingLister is the store with ListCertificates failing, once on, with
// a text that must stay in the server.
type failingLister struct {
	*store.SQL
	on atomic.Bool
}

const storeSecret = "pq: password authentication failed for user zbca_rw"

func (f *failingLister) ListCertificates(ctx context.Context, fl store.CertFilter) ([]store.Certificate, error) {
	if f.on.Load() {
		return nil, errors.New(storeSecret)
	}
	return f.SQL.ListCertificates(ctx, fl)
}

// TestPortalNeverShowsInternalText: a store failure while the revoke form
// is read is a 500 with the generic text, not a 400 with the store's.
func TestPortalNeverShowsInternalText(t *testing.T) {
	env := newSvcEnv(t, enroll.Policy{})
	st := &failingLister{SQL: env.st}
	pe := &portalEnv{svcEnv: env, e: newPortalNode(t, env, st, portal.Options{})}
	b := pe.browser(t)
	b.login("alpha", portalPassword)
	st.on.Store(true)
	for _, path := range []string{"/revoke", "/revoke/confirm"} {
		rec := b.post(path, url.Values{"serial": {"all"}, "reason": {"keyCompromise"}})
		if rec.Code != http.StatusInternalServerError || strings.Contains(rec.Body.String(), "password authentication") {
			t.Errorf("%s: %d, body holds the store's text: %v", path, rec.Code, strings.Contains(rec.Body.String(), "password authentication"))
		}
	}
}
