package revocation

import (
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
)

// RegisterCRL serves /crl/<name>.crl (DER, application/pkix-crl) and
// /crl/<name>.pem, with ETag, Last-Modified, 304 and Cache-Control.
func RegisterCRL(e *echo.Echo, p *Publisher, now func() time.Time) {
	h := func(c echo.Context) error {
		file := c.Param("file")
		name, ext := file, ""
		if i := strings.LastIndexByte(file, '.'); i > 0 {
			name, ext = file[:i], file[i+1:]
		}
		if ext != "crl" && ext != "pem" {
			return echo.NewHTTPError(http.StatusNotFound, "no such CRL; try /crl/root.crl or /crl/<issuing CA>.crl")
		}
		pub := p.Get(name)
		if pub == nil {
			return echo.NewHTTPError(http.StatusNotFound, "no such CRL")
		}
		hd := c.Response().Header()
		etag := pub.ETag
		if ext == "pem" {
			etag = strings.TrimSuffix(etag, `"`) + `-pem"`
		}
		hd.Set("ETag", etag)
		hd.Set("Last-Modified", pub.ThisUpdate.UTC().Format(http.TimeFormat))
		hd.Set("Expires", pub.NextUpdate.UTC().Format(http.TimeFormat))
		// A new CRL can appear within a minute of a revocation: caches may
		// keep one for a few minutes at most, and never past nextUpdate.
		maxAge := min(300*time.Second, pub.NextUpdate.Sub(now()))
		hd.Set("Cache-Control", "public, max-age="+strconv.Itoa(max(0, int(maxAge.Seconds())))+", no-transform, must-revalidate")
		hd.Set("X-Content-Type-Options", "nosniff")
		req := c.Request()
		if inm := req.Header.Get("If-None-Match"); inm != "" {
			if inm == etag || inm == "*" {
				return c.NoContent(http.StatusNotModified)
			}
		} else if ims, err := http.ParseTime(req.Header.Get("If-Modified-Since")); err == nil && !pub.ThisUpdate.After(ims) {
			return c.NoContent(http.StatusNotModified)
		}
		if ext == "pem" {
			// 64 base64 characters and a newline per 48 octets, and the
			// BEGIN/END lines.
			n := len(pub.DER)
			hd.Set("Content-Length", strconv.Itoa(n/48*65+pemTail(n%48)+len("-----BEGIN X509 CRL-----\n-----END X509 CRL-----\n")))
			hd.Set("Content-Type", "application/x-pem-file")
			c.Response().WriteHeader(http.StatusOK)
			if req.Method == http.MethodHead {
				return nil
			}
			return pub.WritePEM(c.Response())
		}
		return c.Blob(http.StatusOK, "application/pkix-crl", pub.DER)
	}
	e.GET("/crl/:file", h)
	e.HEAD("/crl/:file", h)
}

// pemTail is the size of the last PEM line for r (< 48) remaining octets.
func pemTail(r int) int {
	if r == 0 {
		return 0
	}
	return (r+2)/3*4 + 1
}
