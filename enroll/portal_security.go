package enroll

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/labstack/echo/v4"
)

// Cookies of the portal. The __Host- prefix makes browsers insist on
// Secure, Path=/ and no Domain, so no other host can plant them.
const (
	csrfCookie    = "__Host-zbca-csrf"
	sessionCookie = "__Host-zbca-session"
	langCookie    = "zbca-lang"
	csrfField     = "csrf"
	csrfHeader    = "X-CSRF-Token"
)

// errCSRF refuses a form without its token, or with another one.
var errCSRF = echo.NewHTTPError(http.StatusForbidden, "csrf")

func newToken() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// tokenLike accepts what newToken makes, so a planted cookie of another
// shape is replaced.
func tokenLike(s string) bool {
	b, err := base64.RawURLEncoding.DecodeString(s)
	return err == nil && len(b) == 32
}

func strictCookie(name, value string, maxAge int) *http.Cookie {
	return &http.Cookie{Name: name, Value: value, Path: "/", MaxAge: maxAge, HttpOnly: true, Secure: true, SameSite: http.SameSiteStrictMode}
}

// csrf is the double-submit check: every POST carries, in its csrf form
// field or X-CSRF-Token header, the random token of the browser's CSRF
// cookie (HttpOnly, SameSite=Strict, set on the first page). A POST whose
// Origin is another site's is refused too. Refusals are 403.
func (p *Portal) csrf(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		token := ""
		if ck, err := c.Cookie(csrfCookie); err == nil && tokenLike(ck.Value) {
			token = ck.Value
		}
		if c.Request().Method == http.MethodPost {
			if _, err := c.FormParams(); err != nil {
				if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
					return echo.ErrStatusRequestEntityTooLarge
				}
				return echo.NewHTTPError(http.StatusBadRequest, "malformed form")
			}
			if o := c.Request().Header.Get("Origin"); o != "" && o != "null" {
				if u, err := url.Parse(o); err != nil || u.Host != c.Request().Host {
					return errCSRF
				}
			}
			sent := c.Request().Header.Get(csrfHeader)
			if sent == "" {
				sent = c.FormValue(csrfField)
			}
			if token == "" || subtle.ConstantTimeCompare([]byte(sent), []byte(token)) != 1 {
				return errCSRF
			}
		}
		if token == "" {
			token = newToken()
			c.SetCookie(strictCookie(csrfCookie, token, 0))
		}
		c.Set(csrfField, token)
		return next(c)
	}
}

// language picks the page language: ?lang=en or ?lang=zh (remembered in a
// cookie for a year), else the cookie, else Chinese.
func (p *Portal) language(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		lang := "zh"
		if ck, err := c.Cookie(langCookie); err == nil && ck.Value == "en" {
			lang = "en"
		}
		if q := c.QueryParam("lang"); q == "en" || q == "zh" {
			lang = q
			c.SetCookie(&http.Cookie{Name: langCookie, Value: q, Path: "/", MaxAge: 365 * 86400, Secure: true, HttpOnly: true, SameSite: http.SameSiteLaxMode})
		}
		c.Set("lang", lang)
		return next(c)
	}
}

// sessions are short logins kept in memory: a session cookie names the
// enterprise for TTL after its password was checked, so that a clerk can
// go from "my certificates" to "revoke" and confirm without typing the
// password again. Behind a load balancer, route a client to one node
// (sticky sessions); a session lost to another node only asks for the
// password again.
type sessions struct {
	mu  sync.Mutex
	m   map[string]session
	ttl time.Duration
	max int
	now func() time.Time
}

type session struct {
	username string
	expires  time.Time
}

func newSessions(ttl time.Duration, max int, now func() time.Time) *sessions {
	return &sessions{m: map[string]session{}, ttl: ttl, max: max, now: now}
}

// create starts a session for username and returns its token. At max
// sessions the expired ones are dropped first, then arbitrary ones.
func (s *sessions) create(username string) string {
	token := newToken()
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.m) >= s.max {
		for k, v := range s.m {
			if !now.Before(v.expires) {
				delete(s.m, k)
			}
		}
		for k := range s.m {
			if len(s.m) < s.max {
				break
			}
			delete(s.m, k)
		}
	}
	s.m[token] = session{username: username, expires: now.Add(s.ttl)}
	return token
}

// get returns the session's username, or "" when it is unknown or expired.
func (s *sessions) get(token string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.m[token]
	if !ok {
		return ""
	}
	if !s.now().Before(v.expires) {
		delete(s.m, token)
		return ""
	}
	return v.username
}

func (s *sessions) delete(token string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, token)
}

// user returns the logged-in enterprise's username, or "".
func (p *Portal) user(c echo.Context) string {
	ck, err := c.Cookie(sessionCookie)
	if err != nil {
		return ""
	}
	return p.sessions.get(ck.Value)
}
