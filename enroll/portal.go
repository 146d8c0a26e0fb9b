package enroll

import (
	"context"
	"crypto/x509"
	"embed"
	"errors"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/zbca/zbca/internal/web"
	"github.com/zbca/zbca/revocation"
	"github.com/zbca/zbca/store"
)

// The enrollment portal: server-rendered pages on the HTTPS listener where
// an enterprise's clerk downloads the root, applies for and reissues a
// certificate (the key pair, the CSR and the PKCS#12 file are made in the
// browser), lists and revokes its certificates, and reads the help. The
// files are: portal.go (options, routes), portal_view.go (templates,
// languages), portal_security.go (headers, CSRF, sessions),
// portal_pages.go (home, download, help), portal_issue.go (apply,
// reissue, pasted CSR), portal_keygen.go (server-side keys),
// portal_owner.go (my certificates, revoke).

//go:embed portal/templates/*.html
var portalTemplates embed.FS

//go:embed portal/static
var portalStatic embed.FS

// PortalStore is what the portal reads, and its login sessions.
type PortalStore interface {
	CertLister
	// ServerKeygen reports whether an enterprise may have the server make
	// its key (store.KeygenStore).
	ServerKeygen(ctx context.Context, username string) (bool, error)
	store.SessionStore
}

// PortalOptions configures NewPortal.
type PortalOptions struct {
	Auth       Authenticator
	Enroll     *Service // issues; its CA gives the root and the chain
	Store      PortalStore
	Revocation *revocation.Service
	// DownloadsDir holds the zbcert binaries offered on the download page
	// (<data_dir>/downloads); missing or empty means none are offered.
	DownloadsDir string
	// SessionTTL is how long a login lasts (default 10 minutes).
	SessionTTL time.Duration
	Logger     *slog.Logger
	Now        func() time.Time
}

// Portal serves the enrollment pages. Safe for concurrent use.
type Portal struct {
	o        PortalOptions
	pages    map[string]*template.Template
	static   map[string]*staticFile
	sessions *sessions
	root     *x509.Certificate
	issuing  *x509.Certificate
	log      *slog.Logger
	toolSums fileSums
}

// NewPortal checks the options and parses the templates.
func NewPortal(o PortalOptions) (*Portal, error) {
	switch {
	case o.Auth == nil || o.Enroll == nil || o.Enroll.CA == nil || o.Store == nil || o.Revocation == nil:
		return nil, errors.New("enroll: portal needs an authenticator, the enrollment service with its CA, a store and the revocation service")
	}
	if o.SessionTTL <= 0 {
		o.SessionTTL = 10 * time.Minute
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	pages, err := parsePages()
	if err != nil {
		return nil, err
	}
	sub, err := fs.Sub(portalStatic, "portal/static")
	if err != nil {
		return nil, err
	}
	static, err := loadStatic(sub)
	if err != nil {
		return nil, err
	}
	return &Portal{o: o, pages: pages, static: static, sessions: newSessions(o.Store, o.SessionTTL, o.Now, o.Logger),
		root: o.Enroll.CA.Root(), issuing: o.Enroll.CA.Issuing(), log: o.Logger}, nil
}

// Register mounts the portal's pages on e: /, /download, /help, /apply,
// /reissue, /keygen, /certificates, /revoke, /login, /logout and
// /static/*. Other routes of e (the API, ACME, /pki) are not touched.
func (p *Portal) Register(e *echo.Echo) {
	// Outermost first: errors become pages, then the headers, the body
	// limit (a pasted CSR is at most ca.MaxCSRSize), the language, CSRF.
	// Route middleware, not a group's: a group would add a catch-all
	// route and turn every 404 of the listener into a portal page.
	mw := []echo.MiddlewareFunc{p.htmlErrors, SecurityHeaders, bodyLimit(96 << 10), p.language, p.csrf}
	get := func(path string, h echo.HandlerFunc) { e.GET(path, h, mw...) }
	post := func(path string, h echo.HandlerFunc) { e.POST(path, h, mw...) }
	get("/", p.home)
	get("/download", p.download)
	get("/download/zbcert/:name", p.downloadFile)
	get("/help", p.help)
	get("/static/:name", p.staticFile)
	post("/login", p.login)
	post("/logout", p.logout)
	get("/apply", p.applyPage)
	get("/reissue", p.applyPage)
	post("/apply", p.apply)
	get("/keygen", p.keygenPage)
	post("/keygen", p.keygen)
	get("/certificates", p.certificatesPage)
	get("/revoke", p.revokePage)
	post("/revoke", p.revokeConfirm)
	post("/revoke/confirm", p.revoke)
	// Unknown paths get the portal's 404 page, except under the API's
	// prefixes, which keep their JSON answers.
	e.RouteNotFound("/*", p.notFound, mw...)
}

func (p *Portal) notFound(c echo.Context) error {
	for _, prefix := range []string{"/api/", "/acme/", "/pki/", "/crl/", "/ocsp"} {
		if strings.HasPrefix(c.Request().URL.Path, prefix) {
			return c.JSON(http.StatusNotFound, web.Problem{Status: http.StatusNotFound, Error: "Not Found", Detail: "Not Found"})
		}
	}
	return echo.ErrNotFound
}

// SecurityHeaders sets the headers of every HTTPS answer. Pages (the
// portal, the CA files) get HSTS, no framing, no sniffing, no referrer,
// and a Content-Security-Policy that allows scripts and styles from this
// origin only (no inline script). The JSON APIs under /api/ get the set
// of OWASP's REST Security Cheat Sheet: HSTS, nosniff, no framing and a
// policy that allows nothing; the page-only headers would only lengthen
// every answer of the verification API, which a login waits for.
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

// bodyLimit refuses request bodies over n bytes with 413. (Echo's
// middleware package would bring a dependency for this alone.)
func bodyLimit(n int64) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			r := c.Request()
			if r.ContentLength > n {
				return echo.ErrStatusRequestEntityTooLarge
			}
			r.Body = http.MaxBytesReader(c.Response(), r.Body, n)
			return next(c)
		}
	}
}
