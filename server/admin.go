package server

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/pprof"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/zbca/zbca/ca"
	"github.com/zbca/zbca/enroll"
	"github.com/zbca/zbca/internal/expiry"
	"github.com/zbca/zbca/internal/zerr"
	"github.com/zbca/zbca/revocation"
	"github.com/zbca/zbca/store"
)

// registerAdmin serves the admin listener.
func (s *Server) registerAdmin(e *echo.Echo) {
	e.GET("/healthz", func(c echo.Context) error { return c.String(http.StatusOK, "ok\n") })
	e.GET("/readyz", s.readyz)
	e.GET("/metrics", echo.WrapHandler(promhttp.HandlerFor(s.opts.Registry, promhttp.HandlerOpts{})))
	// Profiles for operators chasing a slowdown; behind the admin token.
	dbg := e.Group("/debug/pprof", s.bearer)
	dbg.GET("/*", echo.WrapHandler(http.HandlerFunc(pprof.Index)))
	dbg.GET("/profile", echo.WrapHandler(http.HandlerFunc(pprof.Profile)))
	dbg.GET("/trace", echo.WrapHandler(http.HandlerFunc(pprof.Trace)))
	g := e.Group("/admin/v1", s.bearer)
	g.POST("/certificates", s.adminIssue)
	g.GET("/certificates/:serial", s.adminGetCert)
	g.POST("/certificates/:serial/revoke", s.adminRevoke)
}

func (s *Server) readyz(c echo.Context) error {
	// A load balancer's probe must get an answer even when the database
	// hangs rather than refuses.
	ctx, cancel := context.WithTimeout(c.Request().Context(), 2*time.Second)
	defer cancel()
	if err := s.opts.Store.Ping(ctx); err != nil {
		s.opts.Logger.Warn("not ready: database unreachable", "err", err)
		return c.String(http.StatusServiceUnavailable, "database unreachable\n")
	}
	body := "ready\n"
	// With the root offline: how long its pre-signed material lasts (the
	// node stays ready: issuance and the leaves' status do not need it).
	if s.opts.CA != nil {
		if left, ok := s.opts.CA.RootMaterialLeft(); ok {
			body += fmt.Sprintf("root: offline; pre-signed root material: %d days left\n", int(left.Hours()/24))
		}
		if w := s.opts.CA.RootMaterialWarning(); w != "" {
			body += "WARNING: " + w + "\n"
		}
	}
	return c.String(http.StatusOK, body)
}

// bearer checks "Authorization: Bearer <admin token>" in constant time.
func (s *Server) bearer(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		auth := c.Request().Header.Get("Authorization")
		tok, ok := strings.CutPrefix(auth, "Bearer ")
		if !ok || subtle.ConstantTimeCompare([]byte(tok), s.opts.AdminToken) != 1 {
			c.Response().Header().Set("WWW-Authenticate", `Bearer realm="zbca-admin"`)
			return echo.NewHTTPError(http.StatusUnauthorized, "missing or wrong admin bearer token")
		}
		return next(c)
	}
}

type issueRequest struct {
	Enterprise string `json:"enterprise"`
	CSR        string `json:"csr"` // PEM
}

// CertificateJSON is how the admin API and `zbca cert ... --json` describe a
// certificate.
type CertificateJSON struct {
	Serial            string    `json:"serial"`
	Enterprise        string    `json:"enterprise,omitempty"`
	Profile           string    `json:"profile"`
	Subject           string    `json:"subject"`
	NotBefore         time.Time `json:"not_before"`
	NotAfter          time.Time `json:"not_after"`
	Status            string    `json:"status"`
	FingerprintSHA256 string    `json:"sha256_fingerprint"`
	PEM               string    `json:"pem,omitempty"`
	ChainPEM          string    `json:"chain_pem,omitempty"`
}

// adminIssue: POST /admin/v1/certificates {"enterprise": "...", "csr": "PEM"}.
// The certificate is in the store before this answers.
func (s *Server) adminIssue(c echo.Context) error {
	body, err := io.ReadAll(io.LimitReader(c.Request().Body, ca.MaxCSRSize+4096))
	if err != nil {
		return zerr.Wrap(zerr.BadRequest, err, "reading body")
	}
	if len(body) > ca.MaxCSRSize+4000 {
		return echo.NewHTTPError(http.StatusRequestEntityTooLarge, "request body too large")
	}
	var req issueRequest
	if err := decodeStrict(body, &req); err != nil {
		return err
	}
	if req.Enterprise == "" || req.CSR == "" {
		return zerr.New(zerr.BadRequest, `"enterprise" and "csr" are required`)
	}
	csr, err := ca.ParseCSR([]byte(req.CSR))
	if err != nil {
		return err
	}
	iss, err := s.opts.Enroll.Issue(c.Request().Context(), enroll.Request{CSR: csr, Username: req.Enterprise, Actor: "admin-api"})
	if err != nil {
		return err
	}
	r := iss.Record
	return c.JSON(http.StatusCreated, CertificateJSON{
		Serial: r.Serial, Enterprise: req.Enterprise, Profile: r.Profile, Subject: r.Subject,
		NotBefore: r.NotBefore, NotAfter: r.NotAfter, Status: r.Status, FingerprintSHA256: r.FingerprintSHA256,
		PEM: string(pemOf(iss.Certificate)), ChainPEM: string(iss.PEMChain()),
	})
}

func (s *Server) adminGetCert(c echo.Context) error {
	serial, err := ca.NormalizeSerial(c.Param("serial"))
	if err != nil {
		return err
	}
	r, err := s.opts.Store.GetCertificate(c.Request().Context(), serial)
	if err != nil {
		return err
	}
	status := r.Status
	if status == store.CertActive && expiry.Expired(r.NotAfter, s.opts.Now()) {
		status = "expired"
	}
	return c.JSON(http.StatusOK, CertificateJSON{
		Serial: r.Serial, Enterprise: r.Username, Profile: r.Profile, Subject: r.Subject, NotBefore: r.NotBefore,
		NotAfter: r.NotAfter, Status: status, FingerprintSHA256: r.FingerprintSHA256,
		PEM: string(pemDER(r.DER)),
	})
}

var errEmptyBody = errors.New("empty body")

// adminRevoke: POST /admin/v1/certificates/{serial}/revoke {"reason": "keyCompromise"}.
// It answers once the revocation is committed and the OCSP response re-signed.
func (s *Server) adminRevoke(c echo.Context) error {
	serial, err := ca.NormalizeSerial(c.Param("serial"))
	if err != nil {
		return err
	}
	body, err := io.ReadAll(io.LimitReader(c.Request().Body, 4097))
	if err != nil {
		return zerr.Wrap(zerr.BadRequest, err, "reading body")
	}
	if len(body) > 4096 {
		return echo.NewHTTPError(http.StatusRequestEntityTooLarge, "request body too large")
	}
	var req struct {
		Reason string `json:"reason"`
	}
	if err := decodeStrict(body, &req); err != nil {
		return err
	}
	if req.Reason == "" {
		return zerr.New(zerr.BadRequest, `"reason" is required`)
	}
	reason, err := revocation.ParseReason(req.Reason)
	if err != nil {
		return err
	}
	rec, err := s.opts.Revocation.Revoke(c.Request().Context(), serial, reason, "admin-api", revocation.ByOperator)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{
		"serial": rec.Serial, "status": rec.Status, "revoked_at": rec.RevokedAt, "reason": revocation.Reason(rec.RevocationReason).String(),
	})
}
