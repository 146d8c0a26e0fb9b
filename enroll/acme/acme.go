// Package acme is zbca's RFC 8555 ACME server with External Account
// Binding. An account is bound to one enterprise through an EAB key that
// the enterprise got with its username and password (POST /api/v1/eab);
// the only identifier is {"type":"enterprise","value":"<username>"}, whose
// authorization is valid at creation, so an order is ready at once.
// Issuance goes through the enrollment service (enroll.Service) with the
// same policy as every other path.
package acme

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/zbca/zbca/enroll"
	"github.com/zbca/zbca/revocation"
	"github.com/zbca/zbca/store"
)

// Store is what the ACME server keeps.
type Store interface {
	store.ACMEStore
	store.CertReader
	GetEnterpriseByID(ctx context.Context, id int64) (*store.Enterprise, error)
	// NonceStore makes a nonce from one node good, once, on all.
	NonceStore
}

// Options configures New.
type Options struct {
	Store      Store
	Enroll     *enroll.Service
	Revocation *revocation.Service
	// Issuers are the issuing CAs zbca has had, the current one first: a
	// certificate is sent with the one that signed it.
	Issuers []*x509.Certificate
	// OrderLifetime of a new order (default 1h).
	OrderLifetime time.Duration
	// MaxPendingOrders bounds an account's unfinished (pending or ready,
	// unexpired) orders (default 10; negative: no limit).
	MaxPendingOrders int
	// RatePerSecond and RateBurst limit requests per client address on
	// this node (0: no limit).
	RatePerSecond float64
	RateBurst     int
	// NonceLifetime (default 10m). Nonces are good on every node sharing
	// the store.
	NonceLifetime time.Duration
	Logger        *slog.Logger
	Now           func() time.Time
}

// Server is the ACME server. Safe for concurrent use.
type Server struct {
	o          Options
	nonces     *nonces
	accounts   *accountCache
	issued     *issuedCache
	limit      *limiter          // nil: no limit
	issuingPEM map[string][]byte // by SubjectKeyId
	currentPEM []byte
}

// New checks its options.
func New(o Options) *Server {
	if o.OrderLifetime <= 0 {
		o.OrderLifetime = time.Hour
	}
	if o.MaxPendingOrders == 0 {
		o.MaxPendingOrders = 10
	}
	if o.NonceLifetime <= 0 {
		o.NonceLifetime = 10 * time.Minute
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	s := &Server{o: o, nonces: newNonces(o.Store, o.NonceLifetime, o.Now, o.Logger), issued: newIssuedCache(4096)}
	s.accounts = newAccountCache(o.Store.GetACMEAccount, 100_000)
	s.issuingPEM, s.currentPEM = issuerPEMs(o.Issuers)
	if o.RatePerSecond > 0 && o.RateBurst > 0 {
		s.limit = newLimiter(o.RatePerSecond, o.RateBurst, 100_000)
	}
	return s
}

// issuerPEMs returns the PEM of each issuing CA by SubjectKeyId, and of
// the first (current) one.
func issuerPEMs(issuers []*x509.Certificate) (map[string][]byte, []byte) {
	m := make(map[string][]byte, len(issuers))
	var cur []byte
	for i, is := range issuers {
		b := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: is.Raw})
		m[string(is.SubjectKeyId)] = b
		if i == 0 {
			cur = b
		}
	}
	return m, cur
}

// Register mounts /acme/* on e (the HTTPS listener).
func (s *Server) Register(e *echo.Echo) {
	g := e.Group("/acme", s.common, s.rateLimit)
	g.GET("/directory", s.directory)
	g.HEAD("/new-nonce", s.newNonce)
	g.GET("/new-nonce", s.newNonce)
	g.POST("/new-account", s.newAccount)
	g.POST("/acct/:id", s.account)
	g.POST("/new-order", s.newOrder)
	g.POST("/order/:id", s.getOrder)
	g.POST("/order/:id/finalize", s.finalize)
	g.POST("/authz/:id", s.getAuthz)
	g.POST("/cert/:serial", s.getCert)
	g.POST("/revoke-cert", s.revokeCert)
	g.POST("/key-change", s.keyChange)
	// GET on POST-only resources is 405 (RFC 8555 §6.3: POST-as-GET).
	notAllowed := func(c echo.Context) error {
		c.Response().Header().Set("Allow", "POST")
		return &Problem{Type: ns + "malformed", Status: http.StatusMethodNotAllowed, Detail: "use POST (POST-as-GET with an empty payload to read)"}
	}
	for _, p := range []string{"/new-account", "/acct/:id", "/new-order", "/order/:id", "/order/:id/finalize", "/authz/:id", "/cert/:serial", "/revoke-cert", "/key-change"} {
		g.GET(p, notAllowed)
		g.HEAD(p, notAllowed)
	}
	// Anything else under /acme is a 404 problem.
	g.Any("/*", func(c echo.Context) error {
		return &Problem{Type: ns + "malformed", Status: http.StatusNotFound, Detail: "no such ACME resource"}
	})
}

// common applies the rules of every ACME response: a fresh Replay-Nonce, the
// index Link, no caching, and problem documents for errors.
func (s *Server) common(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		h := c.Response().Header()
		if n, err := s.nonces.make(c.Request().Context()); err == nil {
			h.Set("Replay-Nonce", n)
		} else {
			// Only the first nonce reads the store (the key); a client
			// without a nonce asks new-nonce again.
			s.o.Logger.Error("making a nonce", "err", err)
		}
		h.Set("Cache-Control", "no-store")
		h.Add("Link", `<`+s.base(c)+`/acme/directory>;rel="index"`)
		err := next(c)
		if err == nil {
			return nil
		}
		p := toProblem(err)
		if he, ok := err.(*echo.HTTPError); ok && p == nil {
			p = &Problem{Type: ns + "malformed", Status: he.Code, Detail: http.StatusText(he.Code)}
			if he.Code == http.StatusMethodNotAllowed {
				h.Set("Allow", "POST")
			}
		}
		if p == nil {
			if c.Request().Context().Err() != nil {
				// The client went away (cancelled, timed out): nothing
				// for an operator to fix.
				s.o.Logger.Info("acme request abandoned by the client", "path", c.Request().URL.Path, "err", err)
			} else {
				s.o.Logger.Error("acme internal error", "path", c.Request().URL.Path, "err", err)
			}
			p = serverInternal()
		}
		if c.Response().Committed {
			return nil
		}
		c.Response().Header().Set("Content-Type", "application/problem+json")
		return c.JSON(p.Status, p)
	}
}

// base is the scheme and host the client used (the HTTPS listener).
func (s *Server) base(c echo.Context) string {
	return "https://" + c.Request().Host
}

// requestURL is what the JWS url header must say (RFC 8555 §6.4).
func (s *Server) requestURL(c echo.Context) string {
	return s.base(c) + c.Request().URL.Path
}

func (s *Server) directory(c echo.Context) error {
	b := s.base(c) + "/acme"
	return c.JSON(http.StatusOK, map[string]any{
		"newNonce":   b + "/new-nonce",
		"newAccount": b + "/new-account",
		"newOrder":   b + "/new-order",
		"revokeCert": b + "/revoke-cert",
		"keyChange":  b + "/key-change",
		"meta": map[string]any{
			"externalAccountRequired": true,
			"website":                 s.base(c) + "/",
		},
	})
}

func (s *Server) newNonce(c echo.Context) error {
	if c.Request().Method == http.MethodHead {
		return c.NoContent(http.StatusOK)
	}
	return c.NoContent(http.StatusNoContent)
}

func (s *Server) accountURL(c echo.Context, id string) string { return s.base(c) + "/acme/acct/" + id }
func (s *Server) orderURL(c echo.Context, id string) string   { return s.base(c) + "/acme/order/" + id }

func trimPrefix(s, p string) (string, bool) { return strings.CutPrefix(s, p) }
