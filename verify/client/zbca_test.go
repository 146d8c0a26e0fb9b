package client_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/zbca/zbca/ca"
	"github.com/zbca/zbca/config"
	"github.com/zbca/zbca/internal/web"
	"github.com/zbca/zbca/store"
	"github.com/zbca/zbca/verify"
)

// zbcaEnv is a real zbca verification API (SQLite store, CA, verify
// service and its HTTP handler) on an httptest TLS server.
type zbcaEnv struct {
	URL    string       // base URL of the HTTPS listener
	Key    string       // an API key
	HTTP   *http.Client // trusts the server
	st     *store.SQL
	ca     *ca.Authority
	srv    *httptest.Server
	dir    string
	mu     sync.Mutex
	offset time.Duration // added to the clock of the CA and the service
}

func (z *zbcaEnv) now() time.Time { z.mu.Lock(); defer z.mu.Unlock(); return time.Now().Add(z.offset) }

// newZBCA starts the API with the enterprises acme and beta.
func newZBCA() (*zbcaEnv, error) {
	dir, err := os.MkdirTemp("", "zbca-client-test-")
	if err != nil {
		return nil, err
	}
	z := &zbcaEnv{dir: dir}
	ctx := context.Background()
	if z.st, err = store.Open(ctx, store.Options{Path: filepath.Join(dir, "zbca.db"), Now: z.now}); err != nil {
		return nil, err
	}
	c := config.Default()
	c.DataDir = dir
	c.Resolve()
	if z.ca, err = ca.Init(ctx, ca.Options{Dir: filepath.Join(dir, "ca"), Config: c.CA, PublicURL: "http://pki.test", TLSHosts: c.HTTPS.Hosts, Store: z.st, Now: z.now}); err != nil {
		return nil, err
	}
	for _, e := range []store.Enterprise{{Username: "acme", Name: "某某科技有限公司", Code: "91350100M000100Y43"}, {Username: "beta", Name: "Beta Ltd"}} {
		e.PasswordHash = "x"
		if err := z.st.AddEnterprise(ctx, &e, store.AuditEvent{Actor: "test", Action: "enterprise.add", Subject: e.Username}); err != nil {
			return nil, err
		}
	}
	svc, err := verify.New(verify.Options{Root: z.ca.Root(), Issuers: []*x509.Certificate{z.ca.Issuing()}, Store: z.st, Keys: z.st, ExpiringDays: 30, Now: z.now})
	if err != nil {
		return nil, err
	}
	key, rec, err := verify.NewAPIKey("site")
	if err != nil {
		return nil, err
	}
	if err := z.st.AddAPIKey(ctx, rec, store.AuditEvent{Actor: "test", Action: "apikey.add", Subject: "site"}); err != nil {
		return nil, err
	}
	e := web.New(slog.New(slog.DiscardHandler), "https")
	verify.NewHandler(svc, verify.HandlerOptions{}).Register(e)
	z.srv = httptest.NewTLSServer(e)
	z.URL, z.Key, z.HTTP = z.srv.URL, key, z.srv.Client()
	return z, nil
}

func (z *zbcaEnv) Close() {
	if z.srv != nil {
		z.srv.Close()
	}
	if z.ca != nil {
		z.ca.Close()
	}
	if z.st != nil {
		z.st.Close()
	}
	os.RemoveAll(z.dir)
}

// issue returns a TLS client certificate (with its chain) for username,
// issued with the clock moved by shift.
func (z *zbcaEnv) issue(username string, shift time.Duration) (tls.Certificate, string, error) {
	z.mu.Lock()
	saved := z.offset
	z.offset = shift
	z.mu.Unlock()
	defer func() { z.mu.Lock(); z.offset = saved; z.mu.Unlock() }()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, "", err
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, k)
	if err != nil {
		return tls.Certificate{}, "", err
	}
	csr, err := ca.ParseCSR(der)
	if err != nil {
		return tls.Certificate{}, "", err
	}
	iss, err := z.ca.Issue(context.Background(), ca.IssueRequest{CSR: csr, Username: username, Actor: "test"})
	if err != nil {
		return tls.Certificate{}, "", err
	}
	return tls.Certificate{Certificate: [][]byte{iss.Certificate.Raw, z.ca.Issuing().Raw}, PrivateKey: k, Leaf: iss.Certificate}, iss.Record.Serial, nil
}

func (z *zbcaEnv) revoke(serial string) error {
	_, err := z.st.Revoke(context.Background(), store.RevokeRequest{Serial: serial, Reason: 1, Actor: "test"})
	return err
}

// newSite starts a submission site that asks for any client certificate
// (zbca judges it) and serves h; it returns the site's URL.
func newSite(h http.Handler) *httptest.Server {
	s := httptest.NewUnstartedServer(h)
	s.TLS = &tls.Config{ClientAuth: tls.RequireAnyClientCert}
	s.StartTLS()
	return s
}

// userClient is a browser with a client certificate.
func userClient(site *httptest.Server, cert tls.Certificate) *http.Client {
	tr := site.Client().Transport.(*http.Transport).Clone()
	tr.TLSClientConfig.Certificates = []tls.Certificate{cert}
	tr.DisableKeepAlives = true
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}
