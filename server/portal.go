package server

import (
	"html/template"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/zbca/zbca/ca"
)

var landing = template.Must(template.New("landing").Parse(`<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>证书在线服务系统 · Certificate service</title>
<style>body{font-family:system-ui,sans-serif;max-width:46rem;margin:2rem auto;padding:0 1rem;line-height:1.6}code{word-break:break-all}</style></head>
<body>
<h1>证书在线服务系统</h1>
<p>本系统为联网直报企业签发客户端证书。证书申请页面即将开放；请先下载并安装根证书。</p>
<h2>Certificate service</h2>
<p>This service issues client certificates to reporting enterprises. The application pages are coming; first download and install the root certificate.</p>
<ul>
<li><a href="/pki/root.crt">根证书 Root certificate (DER)</a> · <a href="/pki/root.pem">PEM</a></li>
<li><a href="/pki/chain.pem">证书链 Chain (PEM)</a></li>
</ul>
<p>根证书 SHA-256 指纹 / Root SHA-256 fingerprint:<br><code>{{.}}</code></p>
</body></html>`))

// registerPortal serves the HTTPS listener: a landing page until the
// portal arrives, and the CA files for convenience.
func (s *Server) registerPortal(e *echo.Echo) {
	fp := ca.ColonHex(ca.Fingerprint(s.opts.CA.Root()))
	e.Use(securityHeaders)
	e.GET("/", func(c echo.Context) error {
		c.Response().Header().Set(echo.HeaderContentType, echo.MIMETextHTMLCharsetUTF8)
		c.Response().WriteHeader(http.StatusOK)
		return landing.Execute(c.Response(), fp)
	})
	s.registerPKI(e)
	if s.opts.API != nil {
		s.opts.API.Register(e)
	}
	if s.opts.ACME != nil {
		s.opts.ACME.Register(e)
	}
}

func securityHeaders(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		h := c.Response().Header()
		h.Set("Strict-Transport-Security", "max-age=31536000")
		h.Set("X-Frame-Options", "DENY")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Content-Security-Policy", "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; frame-ancestors 'none'")
		h.Set("Referrer-Policy", "no-referrer")
		return next(c)
	}
}
