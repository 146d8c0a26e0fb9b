package server

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"net/http"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/zbca/zbca/revocation"
)

// blob is a fixed response with its validators, served with caching
// headers and conditional GET.
type blob struct {
	body     []byte
	ctype    string
	etag     string
	modified time.Time
	maxAge   int
}

func newBlob(body []byte, ctype string, modified time.Time, maxAge int) *blob {
	sum := sha256.Sum256(body)
	return &blob{body: body, ctype: ctype, etag: `"` + hex.EncodeToString(sum[:16]) + `"`, modified: modified.UTC().Truncate(time.Second), maxAge: maxAge}
}

func (b *blob) serve(c echo.Context) error {
	h := c.Response().Header()
	h.Set("ETag", b.etag)
	h.Set("Last-Modified", b.modified.Format(http.TimeFormat))
	h.Set("Cache-Control", "public, max-age="+strconv.Itoa(b.maxAge))
	h.Set("X-Content-Type-Options", "nosniff")
	req := c.Request()
	if inm := req.Header.Get("If-None-Match"); inm != "" {
		if inm == b.etag || inm == "*" {
			return c.NoContent(http.StatusNotModified)
		}
	} else if ims, err := http.ParseTime(req.Header.Get("If-Modified-Since")); err == nil && !b.modified.After(ims) {
		return c.NoContent(http.StatusNotModified)
	}
	return c.Blob(http.StatusOK, b.ctype, b.body)
}

func pemOf(c *x509.Certificate) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
}

// registerPKI serves the CA certificates (PRODUCT.md, Listeners):
// DER as application/pkix-cert (RFC 2585), PEM as application/x-pem-file.
// Every issuing CA zbca has had stays at /pki/<name>.crt, the caIssuers URL
// of the certificates it signed; issuers.pem holds them all and the root,
// for relying parties (nginx's ssl_client_certificate) that must accept
// certificates of an issuing CA since rolled over.
func (s *Server) registerPKI(e *echo.Echo) {
	a := s.opts.CA
	root, iss := a.Root(), a.Issuing()
	const day = 86400
	files := map[string]*blob{
		"root.crt":    newBlob(root.Raw, "application/pkix-cert", root.NotBefore, day),
		"root.pem":    newBlob(pemOf(root), "application/x-pem-file", root.NotBefore, day),
		"issuing.crt": newBlob(iss.Raw, "application/pkix-cert", iss.NotBefore, 3600),
		"issuing.pem": newBlob(pemOf(iss), "application/x-pem-file", iss.NotBefore, 3600),
		"chain.pem":   newBlob(a.ChainPEM(), "application/x-pem-file", iss.NotBefore, 3600),
	}
	var all []byte
	for _, is := range a.IssuingCAs() {
		files[is.Name+".crt"] = newBlob(is.Cert.Raw, "application/pkix-cert", is.Cert.NotBefore, day)
		all = append(all, pemOf(is.Cert)...)
	}
	files["issuers.pem"] = newBlob(append(all, pemOf(root)...), "application/x-pem-file", iss.NotBefore, 3600)
	handler := func(c echo.Context) error {
		b, ok := files[c.Param("name")]
		if !ok {
			return echo.NewHTTPError(http.StatusNotFound, "no such file; try /pki/root.crt, /pki/root.pem, /pki/issuing.crt, /pki/chain.pem or /pki/issuers.pem")
		}
		return b.serve(c)
	}
	e.GET("/pki/:name", handler)
	e.HEAD("/pki/:name", handler)
	revocation.RegisterCRL(e, s.opts.CRLs, s.opts.Now)
}
