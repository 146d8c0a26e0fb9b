package portal

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/zbca/zbca/enroll"
	"github.com/zbca/zbca/internal/zerr"
)

// view is what every page template gets. Page-specific values are in Data.
type view struct {
	Lang  string // "zh" or "en"
	Page  string // the page's name, for the navigation
	CSRF  string
	User  string // the logged-in enterprise, or ""
	Path  string // the current path, for the language links
	Error string
	Data  any
}

// EN reports whether the page is in English.
func (v *view) EN() bool { return v.Lang == "en" }

// HTMLLang is the page's lang attribute.
func (v *view) HTMLLang() string {
	if v.EN() {
		return "en"
	}
	return "zh-CN"
}

// T returns the text of key in the page's language.
func (v *view) T(key string) string { return text(v.Lang, key) }

// Tf formats the text of key with args.
func (v *view) Tf(key string, args ...any) string { return fmt.Sprintf(text(v.Lang, key), args...) }

// navPages are the navigation's entries: page name and path.
var navPages = [][2]string{{"home", "/"}, {"download", "/download"}, {"apply", "/apply"}, {"reissue", "/reissue"},
	{"certificates", "/certificates"}, {"revoke", "/revoke"}, {"help", "/help"}}

var pageFuncs = template.FuncMap{
	"pages": func() [][2]string { return navPages },
	"date":  func(t time.Time) string { return t.Local().Format("2006-01-02") },
	"colon": func(h string) string {
		h = strings.ToUpper(h)
		var b strings.Builder
		for i := 0; i+1 < len(h); i += 2 {
			if i > 0 {
				b.WriteByte(':')
			}
			b.WriteString(h[i : i+2])
		}
		return b.String()
	},
}

// parsePages parses each page template with the layout and the partials.
func parsePages() (map[string]*template.Template, error) {
	names, err := fs.Glob(templateFS, "templates/*.html")
	if err != nil {
		return nil, err
	}
	pages := map[string]*template.Template{}
	for _, n := range names {
		base := strings.TrimSuffix(path.Base(n), ".html")
		if base == "layout" || base == "partials" {
			continue
		}
		t, err := template.New(base).Funcs(pageFuncs).ParseFS(templateFS, "templates/layout.html", "templates/partials.html", n)
		if err != nil {
			return nil, fmt.Errorf("portal template %s: %w", base, err)
		}
		pages[base] = t
	}
	return pages, nil
}

// render writes page with v. Pages are never cached: they may show an
// enterprise's certificates.
func (p *Portal) render(c echo.Context, status int, page string, v *view) error {
	t, ok := p.pages[page]
	if !ok {
		return fmt.Errorf("portal: no page %q", page)
	}
	v.Lang, _ = c.Get("lang").(string)
	v.CSRF, _ = c.Get(csrfField).(string)
	if v.Page == "" {
		v.Page = page
	}
	v.Path = c.Request().URL.Path
	if v.User == "" {
		v.User = p.user(c)
	}
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, "layout", v); err != nil {
		return fmt.Errorf("rendering %s: %w", page, err)
	}
	c.Response().Header().Set("Cache-Control", "no-store")
	return c.HTMLBlob(status, buf.Bytes())
}

// localize picks one language out of a bilingual text "中文 / English".
func localize(s, lang string) string {
	zh, en, ok := strings.Cut(s, " / ")
	if !ok {
		return s
	}
	if lang == "en" {
		return en
	}
	return zh
}

// errorText is what the portal shows for err: the login refusals in the
// page's language, the detail of a refused CSR or request, a generic text
// for internal errors (logged with their cause).
func (p *Portal) errorText(c echo.Context, err error) (int, string) {
	lang, _ := c.Get("lang").(string)
	var he *echo.HTTPError
	if errors.As(err, &he) {
		switch {
		case he == errCSRF:
			return http.StatusForbidden, text(lang, "err.csrf")
		case he.Code == http.StatusRequestEntityTooLarge:
			return he.Code, text(lang, "err.too_large")
		case he.Code == http.StatusNotFound:
			return he.Code, text(lang, "err.not_found")
		case he.Code == http.StatusMethodNotAllowed:
			return he.Code, text(lang, "err.not_found")
		}
		return he.Code, http.StatusText(he.Code)
	}
	switch zerr.KindOf(err) {
	case zerr.Unauthorized:
		return http.StatusUnauthorized, localize(zerr.Public(err), lang)
	case zerr.BadCSR:
		return http.StatusBadRequest, text(lang, "err.bad_csr") + " " + zerr.Public(err)
	case zerr.Policy:
		return http.StatusForbidden, text(lang, "err.policy") + " " + zerr.Public(err)
	case zerr.Disabled:
		return http.StatusForbidden, localize(enroll.GenericLoginError, lang)
	case zerr.BadRequest, zerr.NotFound, zerr.Conflict:
		return statusOfKind(err), zerr.Public(err)
	}
	p.log.Error("portal internal error", "method", c.Request().Method, "path", c.Request().URL.Path, "err", err)
	return http.StatusInternalServerError, text(lang, "err.internal")
}

func statusOfKind(err error) int {
	switch zerr.KindOf(err) {
	case zerr.NotFound:
		return http.StatusNotFound
	case zerr.Conflict:
		return http.StatusConflict
	}
	return http.StatusBadRequest
}

// htmlErrors turns an error of a portal handler into an error page, or a
// JSON {"error"} for the page script's requests.
func (p *Portal) htmlErrors(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		err := next(c)
		if err == nil || c.Response().Committed {
			return err
		}
		if _, ok := c.Get("lang").(string); !ok {
			c.Set("lang", "zh")
			if ck, e := c.Cookie(langCookie); e == nil && ck.Value == "en" {
				c.Set("lang", "en")
			}
		}
		status, msg := p.errorText(c, err)
		if wantsJSON(c) {
			return c.JSON(status, map[string]string{"error": msg})
		}
		return p.render(c, status, "error", &view{Error: msg})
	}
}

func wantsJSON(c echo.Context) bool {
	return strings.Contains(c.Request().Header.Get("Accept"), "application/json")
}

// staticFile is an embedded asset with its validator.
type staticFile struct {
	body  []byte
	ctype string
	etag  string
}

func loadStatic(fsys fs.FS) (map[string]*staticFile, error) {
	out := map[string]*staticFile{}
	err := fs.WalkDir(fsys, ".", func(name string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(fsys, name)
		if err != nil {
			return err
		}
		ct := mime.TypeByExtension(path.Ext(name))
		switch path.Ext(name) {
		case ".js":
			ct = "text/javascript; charset=utf-8"
		case ".css":
			ct = "text/css; charset=utf-8"
		case ".txt":
			ct = "text/plain; charset=utf-8"
		}
		sum := sha256.Sum256(b)
		out[path.Base(name)] = &staticFile{body: b, ctype: ct, etag: `"` + hex.EncodeToString(sum[:12]) + `"`}
		return nil
	})
	return out, err
}

// staticFile serves /static/NAME, revalidated by ETag on every use so
// that a new release's script is never mixed with an old page.
func (p *Portal) staticFile(c echo.Context) error {
	f, ok := p.static[c.Param("name")]
	if !ok {
		return echo.ErrNotFound
	}
	h := c.Response().Header()
	h.Set("ETag", f.etag)
	h.Set("Cache-Control", "no-cache")
	if c.Request().Header.Get("If-None-Match") == f.etag {
		return c.NoContent(http.StatusNotModified)
	}
	return c.Blob(http.StatusOK, f.ctype, f.body)
}
