package web

import (
	"strings"

	"github.com/labstack/echo/v4"
)

// SecurityHeaders sets the security headers of every answer of the HTTPS
// listener. Pages (the portal, the CA files) get HSTS, no framing, no
// sniffing, no referrer to other sites, and a Content-Security-Policy that
// allows scripts and styles from this origin only (no inline script). The
// JSON APIs under /api/ get the set of OWASP's REST Security Cheat Sheet:
// HSTS, nosniff, no framing and a policy that allows nothing; the
// page-only headers would only lengthen every answer of the verification
// API, which a login waits for.
func SecurityHeaders(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		// Assigned with canonical keys and shared values (net/http only
		// reads them; each has len == cap, so an Add copies): this runs
		// on every request of the HTTPS listener.
		set := pageHeaders[:]
		if strings.HasPrefix(c.Request().URL.Path, "/api/") {
			set = apiHeaders[:]
		}
		h := c.Response().Header()
		for _, kv := range set {
			h[kv.k] = kv.v
		}
		return next(c)
	}
}

type headerValue struct {
	k string
	v []string
}

var pageHeaders = [...]headerValue{
	{"Strict-Transport-Security", []string{"max-age=31536000"}},
	{"X-Frame-Options", []string{"DENY"}},
	{"X-Content-Type-Options", []string{"nosniff"}},
	{"Content-Security-Policy", []string{"default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"}},
	// same-origin, not no-referrer: with no-referrer browsers send
	// "Origin: null" on the portal's own form posts.
	{"Referrer-Policy", []string{"same-origin"}},
	{"Cross-Origin-Opener-Policy", []string{"same-origin"}},
}

var apiHeaders = [...]headerValue{
	{"Strict-Transport-Security", []string{"max-age=31536000"}},
	{"X-Frame-Options", []string{"DENY"}},
	{"X-Content-Type-Options", []string{"nosniff"}},
	{"Content-Security-Policy", []string{"default-src 'none'; frame-ancestors 'none'"}},
}
