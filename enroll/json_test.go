package enroll

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/zbca/zbca/internal/web"
	"github.com/zbca/zbca/store"
)

type countingAuth struct{ n atomic.Int64 }

func (c *countingAuth) Authenticate(context.Context, Attempt) (*store.Enterprise, error) {
	c.n.Add(1)
	return nil, refuse(reasonPassword)
}

// TestAPIRefusesTrailingData: a login body followed by a stray "}" or "]"
// or a second object is refused before any login is tried.
func TestAPIRefusesTrailingData(t *testing.T) {
	auth := &countingAuth{}
	e := web.New(slog.New(slog.DiscardHandler), "https")
	(&API{Auth: auth, Store: openStore(t)}).Register(e)
	const body = `{"username":"acme","password":"pw"}`
	for _, path := range []string{"/api/v1/eab", "/api/v1/certificates", "/api/v1/revoke"} {
		for _, tail := range []string{"}", "]", " {}", `{"username":"other"}`, "}]"} {
			req := httptest.NewRequest(http.MethodPost, path, strings.NewReader(body+tail))
			req.Header.Set("Content-Type", "application/json")
			rec := httptest.NewRecorder()
			e.ServeHTTP(rec, req)
			if rec.Code != http.StatusBadRequest || !strings.Contains(rec.Body.String(), "trailing data") {
				t.Errorf("%s body + %q: %d %s", path, tail, rec.Code, rec.Body)
			}
		}
	}
	if n := auth.n.Load(); n != 0 {
		t.Errorf("%d logins tried for refused bodies", n)
	}
}
