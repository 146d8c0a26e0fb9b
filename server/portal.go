package server

import (
	"html/template"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/zbca/zbca/ca"
	"github.com/zbca/zbca/internal/web"
)

// fallback is the HTTPS listener's page when no portal is configured
// (servers built without one, as in tests): the root and its fingerprint.
var fallback = template.Must(template.New("fallback").Parse(`<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>证书在线服务系统 · Certificate service</title></head>
<body>
<h1>证书在线服务系统 · Certificate service</h1>
<ul>
<li><a href="/pki/root.crt">根证书 Root certificate (DER)</a> · <a href="/pki/root.pem">PEM</a></li>
<li><a href="/pki/chain.pem">证书链 Chain (PEM)</a></li>
</ul>
<p>根证书 SHA-256 指纹 / Root SHA-256 fingerprint:<br><code>{{.}}</code></p>
</body></html>`))

// registerPortal serves the HTTPS listener: the enrollment portal, the CA
// files, the enrollment API, ACME and verification, all with the
// listener's security headers (web.SecurityHeaders).
func (s *Server) registerPortal(e *echo.Echo) {
	e.Use(web.SecurityHeaders)
	if s.opts.Portal != nil {
		s.opts.Portal.Register(e)
	} else {
		fp := ca.ColonHex(ca.Fingerprint(s.opts.CA.Root()))
		e.GET("/", func(c echo.Context) error {
			c.Response().Header().Set(echo.HeaderContentType, echo.MIMETextHTMLCharsetUTF8)
			c.Response().WriteHeader(http.StatusOK)
			return fallback.Execute(c.Response(), fp)
		})
	}
	s.registerPKI(e)
	if s.opts.API != nil {
		s.opts.API.Register(e)
	}
	if s.opts.ACME != nil {
		s.opts.ACME.Register(e)
	}
	if s.opts.Verify != nil {
		s.opts.Verify.Register(e)
	}
}
