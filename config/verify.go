package config

import (
	"net/http"
	"strings"
)

// Verify configures the verification API for submission sites
// (POST /api/v1/verify and its nginx auth_request form).
type Verify struct {
	// ExpiringDays: a valid certificate with at most this many days left is
	// answered "expiring" (您的证书即将到期).
	ExpiringDays int `yaml:"expiring_days"`
	// CacheSize bounds the parsed and verified certificates kept in memory
	// (by SHA-256 fingerprint); about 300 bytes each.
	CacheSize int `yaml:"cache_size"`
	// NginxCertHeader carries nginx's $ssl_client_escaped_cert (the
	// URL-escaped PEM of the client certificate) to GET /api/v1/verify/nginx.
	NginxCertHeader string `yaml:"nginx_cert_header"`
	// NginxUserHeader carries the username the user logs in with; empty or
	// absent: no username check.
	NginxUserHeader string `yaml:"nginx_user_header"`
}

// DefaultVerify returns the defaults of the verify section.
func DefaultVerify() Verify {
	return Verify{ExpiringDays: 30, CacheSize: 100000, NginxCertHeader: "X-SSL-Client-Cert", NginxUserHeader: "X-ZBCA-Username"}
}

func (v *Verify) validate(bad func(field, format string, args ...any)) {
	if n := v.ExpiringDays; n < 0 || n > 365 {
		bad("verify.expiring_days", "%d is outside 0–365", n)
	}
	if n := v.CacheSize; n < 1 || n > 10000000 {
		bad("verify.cache_size", "%d is outside 1–10000000", n)
	}
	for _, h := range []struct{ field, v string }{{"verify.nginx_cert_header", v.NginxCertHeader}, {"verify.nginx_user_header", v.NginxUserHeader}} {
		switch c := http.CanonicalHeaderKey(h.v); {
		case !isToken(h.v):
			bad(h.field, "%q is not an HTTP header name", h.v)
		case c == "Authorization" || c == "X-Api-Key" || c == "Host" || c == "Content-Length" || c == "Cookie":
			bad(h.field, "%q is a header with another meaning", h.v)
		}
	}
	if strings.EqualFold(v.NginxCertHeader, v.NginxUserHeader) {
		bad("verify.nginx_user_header", "must differ from verify.nginx_cert_header")
	}
}

// isToken reports whether s is an HTTP token (RFC 9110 §5.6.2), as header
// names must be.
func isToken(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}
