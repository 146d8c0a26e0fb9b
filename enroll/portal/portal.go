// Package portal is the enrollment portal: server-rendered pages on the
// HTTPS listener where an enterprise's clerk downloads the root, applies
// for and reissues a certificate (the key pair, the CSR and the PKCS#12
// file are made in the browser), lists and revokes its certificates, and
// reads the help. It holds its templates and browser code (templates/,
// static/) and issues, lists and revokes through package enroll, as the
// API and ACME do. The files are: portal.go (options, routes), view.go
// (templates, languages, error pages), text.go (the short texts),
// security.go (CSRF, sessions), pages.go (home, download, help, login),
// issue.go (apply, reissue, pasted CSR), keygen.go (server-side keys),
// owner.go (my certificates, revoke).
package portal

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

	"github.com/zbca/zbca/enroll"
	"github.com/zbca/zbca/internal/web"
	"github.com/zbca/zbca/revocation"
	"github.com/zbca/zbca/store"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Store is what the portal reads, and its login sessions.
type Store interface {
	enroll.CertLister
	// ServerKeygen reports whether an enterprise may have the server make
	// its key (store.KeygenStore).
	ServerKeygen(ctx context.Context, username string) (bool, error)
	store.SessionStore
}

// Options configures New.
type Options struct {
	Auth       enroll.Authenticator
	Enroll     *enroll.Service // issues; its CA gives the root and the chain
	Store      Store
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
	o        Options
	pages    map[string]*template.Template
	static   map[string]*staticFile
	sessions *sessions
	root     *x509.Certificate
	issuing  *x509.Certificate
	log      *slog.Logger
	toolSums fileSums
}

// New checks the options and parses the templates.
func New(o Options) (*Portal, error) {
	switch {
	case o.Auth == nil || o.Enroll == nil || o.Enroll.CA == nil || o.Store == nil || o.Revocation == nil:
		return nil, errors.New("portal: needs an authenticator, the enrollment service with its CA, a store and the revocation service")
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
	sub, err := fs.Sub(staticFS, "static")
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
	mw := []echo.MiddlewareFunc{p.htmlErrors, web.SecurityHeaders, bodyLimit(96 << 10), p.language, p.csrf}
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
