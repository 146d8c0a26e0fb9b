package zbcert

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Client talks to the zbca HTTPS listener: /pki, the password API and ACME.
type Client struct {
	Base string // https://host:port, no trailing slash
	HTTP *http.Client
}

// NewClient trusts the system roots and zbca's root (the HTTPS listener's
// certificate is issued by zbca). Each request is bounded by
// DefaultStepTimeout; SetTimeout changes that.
func NewClient(server string, root *x509.Certificate) *Client {
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		pool = x509.NewCertPool()
	}
	if root != nil {
		pool.AddCert(root)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	// Every request is bounded as a whole (connect, TLS, headers, body): a
	// server that never answers gives an error, not a hang.
	tr.TLSHandshakeTimeout = 10 * time.Second
	tr.ResponseHeaderTimeout = DefaultStepTimeout
	return &Client{Base: strings.TrimRight(server, "/"), HTTP: &http.Client{Transport: tr, Timeout: DefaultStepTimeout}}
}

// SetTimeout bounds each request to d (and its response headers).
func (c *Client) SetTimeout(d time.Duration) {
	if d <= 0 {
		return
	}
	c.HTTP.Timeout = d
	if tr, ok := c.HTTP.Transport.(*http.Transport); ok {
		tr.ResponseHeaderTimeout = d
	}
}

// CheckServerURL accepts https://host[:port] (a path is ignored).
func CheckServerURL(s string) (string, error) {
	u, err := url.Parse(strings.TrimSpace(s))
	if err != nil || u.Host == "" {
		return "", fmt.Errorf("server %q: want https://host[:port]", s)
	}
	if u.Scheme != "https" {
		return "", fmt.Errorf("server %q: the enrollment server is reached over https", s)
	}
	return "https://" + u.Host, nil
}

// ServerCA is what setup fetched: the root, the chain and the certificates
// the HTTPS listener presented.
type ServerCA struct {
	Root     *x509.Certificate
	ChainPEM []byte
}

// FetchCA downloads /pki/root.crt and /pki/chain.pem before the root is
// trusted (trust on first use: the caller shows the fingerprint and wants
// a confirmation or a matching --fingerprint). The HTTPS listener's own
// certificate must then chain to the root fetched, or to a system root,
// so the confirmed fingerprint also vouches for the connection.
func FetchCA(ctx context.Context, server string) (*ServerCA, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	var peer []*x509.Certificate
	tr.TLSClientConfig = &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12,
		VerifyConnection: func(cs tls.ConnectionState) error { peer = cs.PeerCertificates; return nil }}
	hc := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	defer tr.CloseIdleConnections()
	rootDER, err := fetch(ctx, hc, server+"/pki/root.crt")
	if err != nil {
		return nil, err
	}
	root, err := x509.ParseCertificate(rootDER)
	if err != nil {
		return nil, fmt.Errorf("%s/pki/root.crt: %w", server, err)
	}
	if !root.IsCA || root.CheckSignatureFrom(root) != nil {
		return nil, fmt.Errorf("%s/pki/root.crt is not a self-signed CA certificate", server)
	}
	chainPEM, err := fetch(ctx, hc, server+"/pki/chain.pem")
	if err != nil {
		return nil, err
	}
	chain, err := parseCerts(chainPEM)
	if err != nil {
		return nil, fmt.Errorf("%s/pki/chain.pem: %w", server, err)
	}
	if err := checkChain(chain, root); err != nil {
		return nil, fmt.Errorf("%s/pki/chain.pem: %w", server, err)
	}
	if len(peer) == 0 {
		return nil, errors.New("no TLS certificate from the server")
	}
	roots, err := x509.SystemCertPool()
	if err != nil || roots == nil {
		roots = x509.NewCertPool()
	}
	roots.AddCert(root)
	inter := x509.NewCertPool()
	for _, c := range append(chain, peer[1:]...) {
		inter.AddCert(c)
	}
	u, _ := url.Parse(server)
	if _, err := peer[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, DNSName: u.Hostname()}); err != nil {
		return nil, fmt.Errorf("the server's TLS certificate does not chain to the root it serves: %w", err)
	}
	return &ServerCA{Root: root, ChainPEM: chainPEM}, nil
}

func fetch(ctx context.Context, hc *http.Client, u string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", u, resp.Status)
	}
	return b, nil
}

// APIError is a JSON problem from zbca's API.
type APIError struct {
	Status int
	Detail string
}

func (e *APIError) Error() string {
	if e.Detail != "" {
		return e.Detail
	}
	return http.StatusText(e.Status)
}

func (c *Client) post(ctx context.Context, path string, body, out any) error {
	b, _ := json.Marshal(body)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.Base+path, bytes.NewReader(b))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return c.timeoutError(err)
	}
	defer resp.Body.Close()
	rb, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return c.timeoutError(err)
	}
	if resp.StatusCode/100 != 2 {
		var p struct {
			Detail string `json:"detail"`
			Error  string `json:"error"`
		}
		_ = json.Unmarshal(rb, &p)
		if p.Detail == "" {
			p.Detail = p.Error
		}
		return &APIError{Status: resp.StatusCode, Detail: p.Detail}
	}
	return json.Unmarshal(rb, out)
}

// timeoutError names the bound a request ran out of.
func (c *Client) timeoutError(err error) error {
	if isTimeout(err) {
		return &StepError{Timeout: c.HTTP.Timeout, Err: err}
	}
	return err
}

// EAB is an External Account Binding key from POST /api/v1/eab.
type EAB struct {
	KID       string
	Key       []byte
	Directory string
}

// NewEAB trades the enterprise's username and password for a single-use
// EAB key.
func (c *Client) NewEAB(ctx context.Context, user, password string) (*EAB, error) {
	var r struct {
		KID       string `json:"kid"`
		HMACKey   string `json:"hmac_key"`
		Directory string `json:"directory"`
	}
	if err := c.post(ctx, "/api/v1/eab", map[string]string{"username": user, "password": password}, &r); err != nil {
		return nil, err
	}
	key, err := base64.RawURLEncoding.DecodeString(r.HMACKey)
	if err != nil || r.KID == "" {
		return nil, fmt.Errorf("bad EAB answer from the server")
	}
	if r.Directory == "" {
		r.Directory = c.Base + "/acme/directory"
	}
	return &EAB{KID: r.KID, Key: key, Directory: r.Directory}, nil
}

// RemoteCert is one certificate as POST /api/v1/certificates lists it.
type RemoteCert struct {
	Serial            string     `json:"serial"`
	Status            string     `json:"status"`
	FingerprintSHA256 string     `json:"sha256_fingerprint"`
	NotBefore         time.Time  `json:"not_before"`
	NotAfter          time.Time  `json:"not_after"`
	DaysLeft          int        `json:"days_left"`
	RevokedAt         *time.Time `json:"revoked_at,omitempty"`
	RevocationReason  string     `json:"revocation_reason,omitempty"`
}

// Certificates lists the enterprise's certificates on the server.
func (c *Client) Certificates(ctx context.Context, user, password string) ([]RemoteCert, error) {
	var r struct {
		Certificates []RemoteCert `json:"certificates"`
	}
	err := c.post(ctx, "/api/v1/certificates", map[string]string{"username": user, "password": password}, &r)
	return r.Certificates, err
}

// Revoke revokes serial, or every active certificate for "all", with the
// password alone; it returns the serials revoked.
func (c *Client) Revoke(ctx context.Context, user, password, serial, reason string) ([]string, error) {
	var r struct {
		Revoked []string `json:"revoked"`
	}
	err := c.post(ctx, "/api/v1/revoke", map[string]string{"username": user, "password": password, "serial": serial, "reason": reason}, &r)
	return r.Revoked, err
}

// checkChain accepts a chain.pem only of CA certificates that chain to the
// confirmed root (the root itself included): an intercepting proxy that
// leaves root.crt alone but swaps chain.pem must not get its certificates
// into the user's exports.
func checkChain(chain []*x509.Certificate, root *x509.Certificate) error {
	if len(chain) == 0 {
		return errors.New("no certificate")
	}
	roots := x509.NewCertPool()
	roots.AddCert(root)
	inter := x509.NewCertPool()
	for _, c := range chain {
		inter.AddCert(c)
	}
	for _, c := range chain {
		if !c.IsCA {
			return fmt.Errorf("%q is not a CA certificate", c.Subject.CommonName)
		}
		if _, err := c.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
			return fmt.Errorf("%q does not chain to the root: %w", c.Subject.CommonName, err)
		}
	}
	return nil
}
