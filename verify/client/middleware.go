package client

import (
	"context"
	"log/slog"
	"net/http"
)

// Middleware lets a request through only when zbca answers valid or
// expiring for its TLS client certificate (r.TLS.PeerCertificates); the
// answer is in the request's context (FromContext). The site's TLS
// listener must ask for a client certificate (tls.Config.ClientAuth
// RequireAnyClientCert or stronger).
type Middleware struct {
	Client *Client
	// Username returns the username the request logs in as ("" for none:
	// no username check), e.g. from a form field or the session.
	Username func(*http.Request) string
	// Denied answers a refused certificate; default: 403 with the
	// message in Chinese and English.
	Denied func(w http.ResponseWriter, r *http.Request, res *Result)
	// Failed answers when zbca cannot be asked; default: 503. The request
	// is never let through without an answer.
	Failed func(w http.ResponseWriter, r *http.Request, err error)
	// Logger, when set, records the failures to ask zbca.
	Logger *slog.Logger
}

type ctxKey struct{}

// FromContext returns zbca's answer for the request's certificate, or nil
// outside the middleware.
func FromContext(ctx context.Context) *Result {
	r, _ := ctx.Value(ctxKey{}).(*Result)
	return r
}

// Wrap returns next behind the check.
func (m *Middleware) Wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
			res := &Result{Result: "malformed"}
			res.Message.ZH = "未提交证书：请选择向联网直报系统报送数据的证书"
			res.Message.EN = "No client certificate was presented: choose the certificate for the reporting system."
			m.denied(w, r, res)
			return
		}
		user := ""
		if m.Username != nil {
			user = m.Username(r)
		}
		res, err := m.Client.Verify(r.Context(), r.TLS.PeerCertificates, user)
		if err != nil {
			if m.Failed != nil {
				m.Failed(w, r, err)
				return
			}
			if m.Logger != nil {
				m.Logger.Error("zbca verification failed", "err", err)
			}
			http.Error(w, "证书验证服务暂时不可用，请稍后再试\nThe certificate check is unavailable: try again later.", http.StatusServiceUnavailable)
			return
		}
		if !res.Valid {
			m.denied(w, r, res)
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), ctxKey{}, res)))
	})
}

func (m *Middleware) denied(w http.ResponseWriter, r *http.Request, res *Result) {
	if m.Denied != nil {
		m.Denied(w, r, res)
		return
	}
	w.Header().Set("X-ZBCA-Result", res.Result)
	http.Error(w, res.Message.ZH+"\n"+res.Message.EN, http.StatusForbidden)
}
