package portal

import (
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/zbca/zbca/ca"
	"github.com/zbca/zbca/enroll"
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
	var out []toolFile
	for _, e := range p.toolEntries() {
		info, err := e.Info()
		if err != nil {
			continue
		}
		sum, ok := p.toolSums.get(filepath.Join(p.o.DownloadsDir, e.Name()), info)
		if !ok {
			continue
		}
		out = append(out, toolFile{Name: e.Name(), Size: info.Size(), SHA256: sum})
	}
	return out
}

// toolEntries lists the regular, visible files of the downloads directory.
func (p *Portal) toolEntries() []os.DirEntry {
	if p.o.DownloadsDir == "" {
		return nil
	}
	entries, err := os.ReadDir(p.o.DownloadsDir)
	if err != nil {
		return nil
	}
	return slices.DeleteFunc(entries, func(e os.DirEntry) bool {
		return !e.Type().IsRegular() || strings.HasPrefix(e.Name(), ".")
	})
}

// fileSums remembers the SHA-256 of the downloads by path, size and
// modification time, so that an anonymous page view does not read and hash
// every binary again (tens of megabytes each).
type fileSums struct {
	mu sync.Mutex
	m  map[string]fileSum
}

type fileSum struct {
	size  int64
	mtime time.Time
	sum   string
}

func (f *fileSums) get(path string, info os.FileInfo) (string, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if c, ok := f.m[path]; ok && c.size == info.Size() && c.mtime.Equal(info.ModTime()) {
		return c.sum, true
	}
	fh, err := os.Open(path)
	if err != nil {
		return "", false
	}
	defer fh.Close()
	h := sha256.New()
	if _, err := io.Copy(h, fh); err != nil {
		return "", false
	}
	if f.m == nil {
		f.m = map[string]fileSum{}
	}
	sum := hex.EncodeToString(h.Sum(nil))
	f.m[path] = fileSum{size: info.Size(), mtime: info.ModTime(), sum: sum}
	return sum, true
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
	i := slices.IndexFunc(p.toolEntries(), func(e os.DirEntry) bool { return e.Name() == name })
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
	e, err := p.o.Auth.Authenticate(c.Request().Context(), enroll.Attempt{Username: strings.TrimSpace(c.FormValue("username")), Password: c.FormValue("password"), IP: c.RealIP()})
	if err != nil {
		if zerr.KindOf(err) != zerr.Unauthorized {
			return err
		}
		status, msg := p.errorText(c, err)
		return p.render(c, status, "login", &view{Page: next, Error: msg, Data: map[string]string{"Next": next}})
	}
	ctx := c.Request().Context()
	if ck, err := c.Cookie(sessionCookie); err == nil {
		p.sessions.delete(ctx, ck.Value)
	}
	token, err := p.sessions.create(ctx, e.Username, e.CredentialEpoch)
	if err != nil {
		return err
	}
	c.SetCookie(strictCookie(sessionCookie, token, int(p.o.SessionTTL.Seconds())))
	return c.Redirect(http.StatusSeeOther, "/"+next)
}

func (p *Portal) logout(c echo.Context) error {
	if ck, err := c.Cookie(sessionCookie); err == nil {
		p.sessions.delete(c.Request().Context(), ck.Value)
	}
	c.SetCookie(strictCookie(sessionCookie, "", -1))
	return c.Redirect(http.StatusSeeOther, "/")
}
