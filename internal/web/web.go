// Package web holds what zbca's HTTP listeners share: the Echo instance
// settings, the one error handler that turns zerr kinds into HTTP answers,
// the request log, and the security headers of the HTTPS listener.
package web

import (
	"errors"
	"log/slog"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/zbca/zbca/internal/zerr"
)

// New returns an Echo instance with zbca's error handler and request log.
func New(log *slog.Logger, name string) *echo.Echo {
	e := echo.New()
	e.HideBanner = true
	e.HidePort = true
	e.HTTPErrorHandler = ErrorHandler(log)
	// The peer's address, not X-Forwarded-For, which anyone can send;
	// rate limits and logs must not be spoofable.
	e.IPExtractor = echo.ExtractIPDirect()
	e.Use(RequestLog(log, name))
	return e
}

// Problem is the JSON error body of zbca's own APIs.
type Problem struct {
	Status int    `json:"status"`
	Error  string `json:"error"`
	Detail string `json:"detail,omitempty"`
}

// Status maps an error kind to an HTTP status.
func Status(err error) int {
	switch zerr.KindOf(err) {
	case zerr.BadRequest, zerr.BadCSR:
		return http.StatusBadRequest
	case zerr.NotFound:
		return http.StatusNotFound
	case zerr.Conflict:
		return http.StatusConflict
	case zerr.Unauthorized:
		return http.StatusUnauthorized
	case zerr.Disabled, zerr.Policy:
		return http.StatusForbidden
	}
	return http.StatusInternalServerError
}

// ErrorHandler maps errors to JSON problems by their outermost kind.
// Internal errors are logged with their cause and answered with a generic
// text; the others show zerr.Public, which leaves out any internal cause
// they wrap.
func ErrorHandler(log *slog.Logger) echo.HTTPErrorHandler {
	return func(err error, c echo.Context) {
		if c.Response().Committed {
			return
		}
		var he *echo.HTTPError
		p := Problem{}
		if errors.As(err, &he) {
			p.Status = he.Code
			p.Error = http.StatusText(he.Code)
			if m, ok := he.Message.(string); ok && he.Code < 500 {
				p.Detail = m
			}
		} else {
			p.Status = Status(err)
			p.Error = http.StatusText(p.Status)
			if p.Status >= 500 {
				log.Error("internal error", "method", c.Request().Method, "path", c.Request().URL.Path, "err", err)
				p.Detail = "internal error; the cause is in the server log"
			} else {
				p.Detail = zerr.Public(err)
			}
		}
		if c.Request().Method == http.MethodHead {
			_ = c.NoContent(p.Status)
			return
		}
		_ = c.JSON(p.Status, p)
	}
}

// RequestLog writes one line per request; at debug level for 2xx/3xx so
// that hot paths cost nothing in production, at info for errors.
func RequestLog(log *slog.Logger, listener string) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			start := time.Now()
			err := next(c)
			if err != nil {
				c.Error(err)
			}
			status := c.Response().Status
			level := slog.LevelDebug
			if status >= 400 {
				level = slog.LevelInfo
			}
			if log.Enabled(c.Request().Context(), level) {
				log.Log(c.Request().Context(), level, "request", "listener", listener, "method", c.Request().Method,
					"path", c.Request().URL.Path, "status", status, "bytes", c.Response().Size,
					"duration", time.Since(start), "remote", c.RealIP())
			}
			return nil
		}
	}
}
