package web

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/labstack/echo/v4"
)

// TestSecurityHeadersAPI: the JSON APIs get the REST set (nothing may be
// loaded, no framing, no sniffing, HSTS), pages the document set.
func TestSecurityHeadersAPI(t *testing.T) {
	e := New(slog.New(slog.DiscardHandler), "https")
	e.Use(SecurityHeaders)
	ok := func(c echo.Context) error { return c.String(http.StatusOK, "ok") }
	e.POST("/api/v1/verify", ok)
	e.GET("/apikeys", ok) // a page whose name starts like the API's
	for path, want := range map[string]struct{ csp, referrer string }{
		"/api/v1/verify": {"default-src 'none'; frame-ancestors 'none'", ""},
		"/apikeys":       {"", "same-origin"},
	} {
		method := http.MethodGet
		if strings.HasPrefix(path, "/api/") {
			method = http.MethodPost
		}
		rec := httptest.NewRecorder()
		e.ServeHTTP(rec, httptest.NewRequest(method, path, nil))
		h := rec.Header()
		if rec.Code != 200 || h.Get("Strict-Transport-Security") == "" || h.Get("X-Frame-Options") != "DENY" || h.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("%s: %d %v", path, rec.Code, h)
		}
		csp := h.Get("Content-Security-Policy")
		if want.csp != "" && csp != want.csp || want.csp == "" && !strings.Contains(csp, "script-src 'self'") {
			t.Errorf("%s: CSP %q", path, csp)
		}
		if h.Get("Referrer-Policy") != want.referrer {
			t.Errorf("%s: Referrer-Policy %q, want %q", path, h.Get("Referrer-Policy"), want.referrer)
		}
	}
}
