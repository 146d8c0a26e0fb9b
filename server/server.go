// Package server assembles zbca's three listeners (PRODUCT.md, Listeners):
// public HTTP (/pki, later /crl and /ocsp), HTTPS (portal, APIs) and admin
// (/admin/v1, /metrics, /healthz, /readyz). It holds no business logic:
// handlers call ca and store, and later enroll, revocation and verify.
package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/zbca/zbca/ca"
	"github.com/zbca/zbca/enroll"
	"github.com/zbca/zbca/enroll/acme"
	"github.com/zbca/zbca/enroll/portal"
	"github.com/zbca/zbca/internal/adminsock"
	"github.com/zbca/zbca/internal/web"
	"github.com/zbca/zbca/revocation"
	"github.com/zbca/zbca/store"
	"github.com/zbca/zbca/verify"
)

// Store is what the listeners read.
type Store interface {
	store.CertReader
	Ping(ctx context.Context) error
}

// Options configures New.
type Options struct {
	HTTPAddr, HTTPSAddr, AdminAddr string
	CA                             *ca.Authority
	Store                          Store
	// Revocation revokes (admin API); CRLs serves /crl/*.
	Revocation *revocation.Service
	CRLs       *revocation.Publisher
	// OCSP serves /ocsp when set.
	OCSP http.Handler
	// Enroll issues for the admin API with the one policy; API and ACME
	// serve enterprises on the HTTPS listener.
	Enroll *enroll.Service
	API    *enroll.API
	ACME   *acme.Server
	// Portal serves the enrollment pages at / (a bare page without it).
	Portal *portal.Portal
	// Verify serves the verification API on the HTTPS listener when set.
	Verify *verify.Handler
	// AdminToken is the bearer token of /admin/v1/*.
	AdminToken []byte
	Registry   *prometheus.Registry
	Logger     *slog.Logger
	// Now is the clock of the admin API's answers and of the CRL caching
	// headers; default time.Now.
	Now func() time.Time

	// AdminSocketDir, when set, is the directory (the data directory's
	// run directory) where the admin API is also served on a Unix socket
	// for the local CLI (internal/adminsock). The caller holds the serve
	// lock, so that a stale socket there may be replaced.
	AdminSocketDir string
}

// Server runs the listeners.
type Server struct {
	opts                  Options
	public, portal, admin *echo.Echo
	servers               []*http.Server
	listeners             []net.Listener
	socket                bool // the admin socket is bound
	wg                    sync.WaitGroup
	errs                  chan error
}

// New builds the three listeners' handlers.
func New(o Options) (*Server, error) {
	switch {
	case o.CA == nil || o.Store == nil:
		return nil, errors.New("server: CA and store are required")
	case o.Enroll == nil:
		return nil, errors.New("server: enrollment service is required")
	case o.Revocation == nil || o.CRLs == nil:
		return nil, errors.New("server: revocation service and CRL publisher are required")
	case len(o.AdminToken) < 16:
		return nil, errors.New("server: admin token missing or shorter than 16 bytes")
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Registry == nil {
		o.Registry = prometheus.NewRegistry()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	s := &Server{opts: o, errs: make(chan error, 4)}
	s.public = web.New(o.Logger, "http")
	s.registerPKI(s.public)
	s.portal = web.New(o.Logger, "https")
	s.registerPortal(s.portal)
	s.admin = web.New(o.Logger, "admin")
	s.registerAdmin(s.admin)
	return s, nil
}

// Start binds the three addresses, and the admin socket when configured,
// and serves in the background. It fails without serving anything if any
// of them cannot be bound.
func (s *Server) Start() error {
	if _, err := s.opts.CA.TLSCertificate(); err != nil {
		return err
	}
	type spec struct {
		name, addr string
		h          http.Handler
		tls        *tls.Config
	}
	var public http.Handler = s.public
	if s.opts.OCSP != nil {
		// OCSP is the hot path: straight to the responder, without the
		// router (whose path cleaning would also mangle base64 '/' runs)
		// and without per-request logging.
		ocsp, rest := s.opts.OCSP, s.public
		public = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if p := r.URL.Path; p == "/ocsp" || strings.HasPrefix(p, "/ocsp/") || strings.HasPrefix(p, "//ocsp") {
				ocsp.ServeHTTP(w, r)
				return
			}
			rest.ServeHTTP(w, r)
		})
	}
	specs := []spec{
		{"http", s.opts.HTTPAddr, public, nil},
		{"https", s.opts.HTTPSAddr, s.portal, httpsTLSConfig(s.opts.CA.TLSCertificate)},
		{"admin", s.opts.AdminAddr, s.admin, nil},
	}
	for _, sp := range specs {
		ln, err := net.Listen("tcp", sp.addr)
		if err != nil {
			s.closeListeners()
			return fmt.Errorf("listening for %s on %s: %w", sp.name, sp.addr, err)
		}
		if sp.tls != nil {
			ln = tls.NewListener(ln, sp.tls)
		}
		s.listeners = append(s.listeners, ln)
		s.servers = append(s.servers, s.httpServer(sp.h))
	}
	if s.opts.AdminSocketDir != "" {
		// The local CLI's way in: the same admin handler, on a socket only
		// the data directory's owner can reach.
		ln, err := adminsock.Listen(s.opts.AdminSocketDir)
		if err != nil {
			s.closeListeners()
			return err
		}
		s.socket = true
		s.listeners = append(s.listeners, ln)
		s.servers = append(s.servers, s.httpServer(s.admin))
		specs = append(specs, spec{name: "admin socket"})
	}
	for i, srv := range s.servers {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			if err := srv.Serve(s.listeners[i]); err != nil && !errors.Is(err, http.ErrServerClosed) {
				s.errs <- fmt.Errorf("%s listener: %w", specs[i].name, err)
			}
		}()
	}
	return nil
}

func (s *Server) httpServer(h http.Handler) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(s.opts.Logger.Handler(), slog.LevelDebug),
	}
}

// AdminSocket returns the admin socket's path, or "" when it is not bound.
func (s *Server) AdminSocket() string {
	if !s.socket {
		return ""
	}
	return adminsock.Path(s.opts.AdminSocketDir)
}

// Addrs returns the bound addresses: http, https, admin.
func (s *Server) Addrs() (httpAddr, httpsAddr, adminAddr string) {
	if len(s.listeners) < 3 {
		return "", "", ""
	}
	return s.listeners[0].Addr().String(), s.listeners[1].Addr().String(), s.listeners[2].Addr().String()
}

// Errors reports a listener that stopped on its own.
func (s *Server) Errors() <-chan error { return s.errs }

func (s *Server) closeListeners() {
	for _, ln := range s.listeners {
		ln.Close()
	}
	s.listeners = nil
	if s.socket {
		_ = adminsock.Remove(s.opts.AdminSocketDir)
		s.socket = false
	}
}

// Shutdown stops accepting and waits for requests in flight until ctx ends.
func (s *Server) Shutdown(ctx context.Context) error {
	var errs []error
	for _, srv := range s.servers {
		errs = append(errs, srv.Shutdown(ctx))
	}
	s.wg.Wait()
	if s.socket {
		errs = append(errs, adminsock.Remove(s.opts.AdminSocketDir))
	}
	return errors.Join(errs...)
}

// aeadSuites are the TLS 1.2 cipher suites the HTTPS listener offers:
// ECDHE with AES-GCM or ChaCha20-Poly1305 only. Go's defaults still
// include CBC-SHA suites for TLS 1.2 (Lucky13-style padding oracles);
// every browser and client that speaks TLS 1.2 has one of these. TLS 1.3
// suites are not configurable and all AEAD.
var aeadSuites = []uint16{
	tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
	tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
}

// httpsTLSConfig is the HTTPS listener's TLS: 1.2 or newer, AEAD suites
// only, the certificate asked per handshake (so a renewed one is used at
// once), never a client certificate.
func httpsTLSConfig(cert func() (*tls.Certificate, error)) *tls.Config {
	return &tls.Config{
		MinVersion:     tls.VersionTLS12,
		CipherSuites:   aeadSuites,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return cert() },
		ClientAuth:     tls.NoClientCert,
	}
}
