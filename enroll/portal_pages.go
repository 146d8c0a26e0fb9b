package enroll

import (
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/zbca/zbca/ca"
	"github.com/zbca/zbca/internal/zerr"
)

func (p *Portal) home(c echo.Context) error {
	return p.render(c, http.StatusOK, "home", &view{})
}

func (p *Portal) help(c echo.Context) error {
	return p.render(c, http.StatusOK, "help", &view{})
}

type toolFile struct {
	Name   string
	Size   int64
	SHA256 string
}

// tools lists the regular files of the downloads directory (zbcert
// binaries, their checksums), read at each visit so that an operator can
// drop in a release without a restart.
func (p *Portal) tools() []toolFile {
	if p.o.DownloadsDir == "" {
		return nil
	}
	entries, err := os.ReadDir(p.o.DownloadsDir)
	if err != nil {
		return nil
	}
	var out []toolFile
	for _, e := range entries {
		if !e.Type().IsRegular() || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		f, err := os.Open(filepath.Join(p.o.DownloadsDir, e.Name()))
		if err != nil {
			continue
		}
		h := sha256.New()
		n, err := io.Copy(h, f)
		f.Close()
		if err != nil {
			continue
		}
		out = append(out, toolFile{Name: e.Name(), Size: n, SHA256: hex.EncodeToString(h.Sum(nil))})
	}
	return out
}

func (p *Portal) download(c echo.Context) error {
	return p.render(c, http.StatusOK, "download", &view{Data: map[string]any{
		"RootName": p.root.Subject.CommonName, "RootFP": ca.ColonHex(ca.Fingerprint(p.root)),
		"IssuingName": p.issuing.Subject.CommonName, "IssuingFP": ca.ColonHex(ca.Fingerprint(p.issuing)),
		"Tools": p.tools(),
	}})
}

// downloadFile serves one file of the downloads directory, by a name
// listed there (never a path).
func (p *Portal) downloadFile(c echo.Context) error {
	name := c.Param("name")
	i := slices.IndexFunc(p.tools(), func(t toolFile) bool { return t.Name == name })
	if i < 0 {
		return echo.ErrNotFound
	}
	c.Response().Header().Set("Cache-Control", "no-cache")
	return c.Attachment(filepath.Join(p.o.DownloadsDir, name), name)
}

// loginNext are the pages a login may lead to.
var loginNext = []string{"apply", "reissue", "keygen", "certificates", "revoke"}

// requireLogin returns the logged-in enterprise, or renders the login form
// leading back to page and returns "".
func (p *Portal) requireLogin(c echo.Context, page string) (string, error) {
	if u := p.user(c); u != "" {
		return u, nil
	}
	return "", p.render(c, http.StatusOK, "login", &view{Page: page, Data: map[string]string{"Next": page}})
}

// login checks the username and password with the enrollment service's
// authenticator (its lockout, rate limit and one generic error) and
// starts a session.
func (p *Portal) login(c echo.Context) error {
	next := c.FormValue("next")
	if !slices.Contains(loginNext, next) {
		next = "certificates"
	}
	e, err := p.o.Auth.Authenticate(c.Request().Context(), Attempt{Username: strings.TrimSpace(c.FormValue("username")), Password: c.FormValue("password"), IP: c.RealIP()})
	if err != nil {
		if zerr.KindOf(err) != zerr.Unauthorized {
			return err
		}
		status, msg := p.errorText(c, err)
		return p.render(c, status, "login", &view{Page: next, Error: msg, Data: map[string]string{"Next": next}})
	}
	if ck, err := c.Cookie(sessionCookie); err == nil {
		p.sessions.delete(ck.Value)
	}
	c.SetCookie(strictCookie(sessionCookie, p.sessions.create(e.Username), int(p.o.SessionTTL.Seconds())))
	return c.Redirect(http.StatusSeeOther, "/"+next)
}

func (p *Portal) logout(c echo.Context) error {
	if ck, err := c.Cookie(sessionCookie); err == nil {
		p.sessions.delete(ck.Value)
	}
	c.SetCookie(strictCookie(sessionCookie, "", -1))
	return c.Redirect(http.StatusSeeOther, "/")
}
