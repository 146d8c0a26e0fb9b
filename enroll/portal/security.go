package portal

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"sync/atomic"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/zbca/zbca/store"
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

// sessions are short logins: a session cookie names the enterprise for
// TTL after its password was checked, so that a clerk can go from "my
// certificates" to "revoke" and confirm without typing the password again.
// They live in the database (store.SessionStore), which holds only the
// SHA-256 of each token, so every node behind a load balancer knows them
// and a logout on one node ends the session on all.
type sessions struct {
	st  store.SessionStore
	ttl time.Duration
	now func() time.Time
	log *slog.Logger
	// nextPrune is when (unix nanoseconds) create next deletes expired
	// sessions: at most once a minute per node, a bounded number each time.
	nextPrune atomic.Int64
}

const (
	sessionPruneEvery = time.Minute
	sessionPruneLimit = 1000
)

func newSessions(st store.SessionStore, ttl time.Duration, now func() time.Time, log *slog.Logger) *sessions {
	return &sessions{st: st, ttl: ttl, now: now, log: log}
}

// create starts a session for username, whose password was checked under
// credential epoch epoch, and returns its token. An error means no
// session: the caller shows an error page.
func (s *sessions) create(ctx context.Context, username string, epoch int64) (string, error) {
	token := newToken()
	now := s.now()
	if err := s.st.CreateSession(ctx, token, username, epoch, now.Add(s.ttl)); err != nil {
		return "", fmt.Errorf("starting a session: %w", err)
	}
	s.prune(ctx, now)
	return token, nil
}

// prune deletes expired sessions when it is due; a failure only delays it.
func (s *sessions) prune(ctx context.Context, now time.Time) {
	next := s.nextPrune.Load()
	if now.UnixNano() < next || !s.nextPrune.CompareAndSwap(next, now.Add(sessionPruneEvery).UnixNano()) {
		return
	}
	if _, err := s.st.PruneSessions(ctx, now, sessionPruneLimit); err != nil {
		s.log.Warn("pruning portal sessions", "err", err)
	}
}

// get returns the session's username and credential epoch, or "" when it
// is unknown, expired or ended. A store that cannot answer counts as "not
// logged in" (the login form again), with a warning, rather than an error
// page on every page.
func (s *sessions) get(ctx context.Context, token string) (string, int64) {
	if !tokenLike(token) {
		return "", 0
	}
	u, epoch, found, err := s.st.Session(ctx, token, s.now())
	if err != nil {
		s.log.Warn("reading portal session", "err", err)
		return "", 0
	}
	if !found {
		return "", 0
	}
	return u, epoch
}

// delete ends a session (logout, or a new login replacing it). A failure
// is logged: the browser drops its cookie anyway, and the session expires
// within TTL.
func (s *sessions) delete(ctx context.Context, token string) {
	if !tokenLike(token) {
		return
	}
	if err := s.st.DeleteSession(ctx, token); err != nil {
		s.log.Warn("ending portal session", "err", err)
	}
}

// user returns the logged-in enterprise's username, or "". The answer is
// kept for the rest of the request: a page asks more than once.
func (p *Portal) user(c echo.Context) string {
	const key, epochKey = "portal.user", "portal.epoch"
	if u, ok := c.Get(key).(string); ok {
		return u
	}
	u, epoch := "", int64(0)
	if ck, err := c.Cookie(sessionCookie); err == nil {
		u, epoch = p.sessions.get(c.Request().Context(), ck.Value)
	}
	c.Set(key, u)
	c.Set(epochKey, epoch)
	return u
}

// sessionEpoch is the credential epoch of the request's session (after
// user): an issuance passes it on, so that a passwd, disable or logout
// that commits while the request is in flight stops it
// (store.ErrAccessEnded).
func (p *Portal) sessionEpoch(c echo.Context) *int64 {
	p.user(c)
	e, _ := c.Get("portal.epoch").(int64)
	return &e
}
