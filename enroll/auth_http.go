package enroll

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"time"

	"github.com/zbca/zbca/config"
	"github.com/zbca/zbca/internal/zerr"
	"github.com/zbca/zbca/store"
)

// HTTPOptions configures NewHTTP.
type HTTPOptions struct {
	// URL of the reporting system's login endpoint: https, or http to a
	// loopback address only (config.CheckLoginURL).
	URL string
	// Timeout of one request; default 5s.
	Timeout time.Duration
	// CAFile holds the PEM certificates the login service's TLS certificate
	// must chain to; empty: the system roots.
	CAFile string
	// Store holds the local records: a login the service accepts still
	// needs an active local enterprise, which is what certificates are
	// issued for.
	Store  EnterpriseGetter
	Logger *slog.Logger
}

// HTTPAuthenticator asks the reporting system's own login endpoint: it
// POSTs {"username":…,"password":…} as JSON, and a 2xx answer means yes.
// Any other answer (including redirects, which are not followed: the
// password must not be sent anywhere else) is a refusal; no answer (network
// error, timeout) is zerr.Internal "login service unavailable", logged
// without the password.
type HTTPAuthenticator struct {
	url     string
	service string // the URL without query and user information, for logs
	timeout time.Duration
	client  *http.Client
	store   EnterpriseGetter
	log     *slog.Logger
}

var _ Authenticator = (*HTTPAuthenticator)(nil)

// NewHTTP returns the http authenticator.
func NewHTTP(o HTTPOptions) (*HTTPAuthenticator, error) {
	if o.Store == nil {
		return nil, errors.New("enroll: http authenticator without a store")
	}
	if err := config.CheckLoginURL(o.URL); err != nil {
		return nil, fmt.Errorf("enroll: login service: %w", err)
	}
	u, _ := url.Parse(o.URL)
	if o.Timeout <= 0 {
		o.Timeout = 5 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if o.CAFile != "" {
		pem, err := os.ReadFile(o.CAFile)
		if err != nil {
			return nil, fmt.Errorf("enroll: login service CA file: %w", err)
		}
		tc.RootCAs = x509.NewCertPool()
		if !tc.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("enroll: login service CA file %s holds no PEM certificate", o.CAFile)
		}
	}
	tr := &http.Transport{
		Proxy:               nil, // never from the environment
		TLSClientConfig:     tc,
		ForceAttemptHTTP2:   true,
		MaxIdleConns:        64,
		MaxIdleConnsPerHost: 64,
		IdleConnTimeout:     90 * time.Second,
		TLSHandshakeTimeout: o.Timeout,
	}
	return &HTTPAuthenticator{
		url:     o.URL,
		service: (&url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path}).String(),
		timeout: o.Timeout,
		client: &http.Client{
			Transport:     tr,
			Timeout:       o.Timeout,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		store: o.Store,
		log:   o.Logger,
	}, nil
}

// Authenticate implements Authenticator.
func (h *HTTPAuthenticator) Authenticate(ctx context.Context, a Attempt) (*store.Enterprise, error) {
	if err := checkAttempt(a); err != nil {
		return nil, err
	}
	body, err := json.Marshal(struct {
		Username string `json:"username"`
		Password string `json:"password"`
	}{a.Username, a.Password})
	if err != nil {
		return nil, zerr.Wrap(zerr.Internal, err, "encoding login request")
	}
	rctx, cancel := context.WithTimeout(ctx, h.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, http.MethodPost, h.url, bytes.NewReader(body))
	if err != nil {
		return nil, zerr.Wrap(zerr.Internal, err, "login request")
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "zbca")
	resp, err := h.client.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, zerr.Wrap(zerr.Internal, ctx.Err(), "login abandoned")
		}
		// The password is only ever in the request body; the URL's query
		// (which may hold a key) is left out of the log too.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		h.log.Warn("login service unavailable", "service", h.service, "err", err)
		return nil, zerr.New(zerr.Internal, "login service unavailable")
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		if resp.StatusCode >= 500 {
			h.log.Warn("login service error", "service", h.service, "status", resp.StatusCode)
		} else {
			h.log.Debug("login service refused", "service", h.service, "status", resp.StatusCode)
		}
		return nil, refuse(fmt.Sprintf("%s (HTTP %d)", reasonRejected, resp.StatusCode))
	}
	e, err := h.store.GetEnterprise(ctx, a.Username)
	switch {
	case errors.Is(err, zerr.NotFound):
		// The reporting system knows this name: it is a username, not a
		// mistyped password, and the operator needs it.
		h.log.Info("login service accepted a username that has no enterprise here", "username", a.Username)
		return nil, refuse(reasonUnknown)
	case err != nil:
		return nil, zerr.Wrap(zerr.Internal, err, "reading enterprise")
	case e.Status != store.StatusActive:
		return nil, refuse(reasonDisabled)
	}
	return e, nil
}
