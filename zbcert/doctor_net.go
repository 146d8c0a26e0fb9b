package zbcert

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"
)

func (d *doctor) checkDNS(ctx context.Context) bool {
	if ip := net.ParseIP(d.host); ip != nil {
		d.add(CheckDNS, OK, d.l.T("dns.ip", d.host), "")
		return true
	}
	ctx, cancel := context.WithTimeout(ctx, d.o.Timeout)
	defer cancel()
	addrs, err := d.o.Resolver.LookupHost(ctx, d.host)
	if err != nil || len(addrs) == 0 {
		d.add(CheckDNS, Fail, d.l.T("dns.fail", d.host, errText(err)), d.l.T("dns.advice", d.host))
		return false
	}
	d.add(CheckDNS, OK, d.l.T("dns.ok", d.host, strings.Join(addrs, ", ")), "")
	return true
}

func (d *doctor) checkProxyThenPort(ctx context.Context) bool {
	d.checkProxy()
	return d.checkPort(ctx)
}

// checkProxy reports the proxy variables that would apply to the site.
// A proxy that inspects HTTPS cannot pass a client certificate through.
func (d *doctor) checkProxy() {
	proxy := ""
	for _, k := range []string{"HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"} {
		if v := d.o.Getenv(k); v != "" {
			proxy = k + "=" + v
			break
		}
	}
	if proxy == "" {
		d.add(CheckProxy, OK, d.l.T("proxy.none"), "")
		return
	}
	noProxy := d.o.Getenv("NO_PROXY")
	if noProxy == "" {
		noProxy = d.o.Getenv("no_proxy")
	}
	if bypassed(d.host, noProxy) {
		d.add(CheckProxy, OK, d.l.T("proxy.bypassed", proxy, d.host), "")
		return
	}
	d.add(CheckProxy, Warn, d.l.T("proxy.used", proxy), d.l.T("proxy.advice", d.host))
}

// bypassed reads NO_PROXY as curl and Go do: comma-separated names, a
// leading dot or none for a domain and its subdomains, "*" for all.
func bypassed(host, noProxy string) bool {
	host = strings.ToLower(host)
	for _, p := range strings.Split(noProxy, ",") {
		p = strings.ToLower(strings.TrimSpace(p))
		if h, _, err := net.SplitHostPort(p); err == nil {
			p = h
		}
		switch {
		case p == "":
		case p == "*", p == host:
			return true
		case strings.HasSuffix(host, "."+strings.TrimPrefix(p, ".")):
			return true
		}
	}
	return false
}

func (d *doctor) checkPort(ctx context.Context) bool {
	start := time.Now()
	var dl net.Dialer
	ctx, cancel := context.WithTimeout(ctx, d.o.Timeout)
	defer cancel()
	c, err := dl.DialContext(ctx, "tcp", d.addr)
	if err != nil {
		d.add(CheckPort, Fail, d.l.T("port.fail", d.addr, errText(err)), d.l.T("port.advice", portOf(d.u)))
		return false
	}
	c.Close()
	d.add(CheckPort, OK, d.l.T("port.ok", d.addr, time.Since(start).Round(time.Millisecond)), "")
	return true
}

// probeResult is what one handshake (and one HTTP request on it) showed.
type probeResult struct {
	state     tls.ConnectionState
	requested *tls.CertificateRequestInfo // nil: no client certificate asked for
	date      time.Time                   // the server's Date header, zero if none
	status    int                         // HTTP status, 0 if no answer
	err       error                       // handshake error
	readErr   error                       // error after the handshake (TLS 1.3 refusals arrive here)
}

// handshake connects, offers cert (nil: none) when asked, and sends
// GET / over HTTP/1.1 to read the status and the Date header.
func (d *doctor) handshake(ctx context.Context, cert *tls.Certificate) *probeResult {
	r := &probeResult{}
	ctx, cancel := context.WithTimeout(ctx, 3*d.o.Timeout)
	defer cancel()
	cfg := &tls.Config{
		ServerName: d.host,
		NextProtos: []string{"http/1.1"},
		// The site's certificate is judged by checkServerCert, not here:
		// a doctor must see past it to the client-certificate steps.
		InsecureSkipVerify: true,
		GetClientCertificate: func(cri *tls.CertificateRequestInfo) (*tls.Certificate, error) {
			r.requested = cri
			if cert != nil {
				return cert, nil
			}
			return &tls.Certificate{}, nil
		},
	}
	var dl net.Dialer
	raw, err := dl.DialContext(ctx, "tcp", d.addr)
	if err != nil {
		r.err = err
		return r
	}
	defer raw.Close()
	if dl, ok := ctx.Deadline(); ok {
		raw.SetDeadline(dl)
	}
	c := tls.Client(raw, cfg)
	if err := c.HandshakeContext(ctx); err != nil {
		r.err = err
		return r
	}
	r.state = c.ConnectionState()
	req := fmt.Sprintf("GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: zbcert-doctor\r\nConnection: close\r\n\r\n", requestPath(d.u.RequestURI()), d.u.Host)
	if _, err := c.Write([]byte(req)); err != nil {
		r.readErr = err
		return r
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		r.readErr = err
		return r
	}
	resp.Body.Close()
	r.status = resp.StatusCode
	if t, err := http.ParseTime(resp.Header.Get("Date")); err == nil {
		r.date = t
	}
	return r
}

func requestPath(p string) string {
	if p == "" {
		return "/"
	}
	return p
}

func (d *doctor) checkTLS(ctx context.Context) bool {
	d.probe = d.handshake(ctx, nil)
	if err := d.probe.err; err != nil {
		d.add(CheckTLS, Fail, d.l.T("tls.fail", errText(err)), d.l.T("tls.advice"))
		return false
	}
	v := tls.VersionName(d.probe.state.Version)
	if d.probe.state.Version < tls.VersionTLS12 {
		d.add(CheckTLS, Warn, d.l.T("tls.old", v), d.l.T("tls.old.advice"))
		return true
	}
	d.add(CheckTLS, OK, d.l.T("tls.ok", v, tls.CipherSuiteName(d.probe.state.CipherSuite)), "")
	return true
}

func (d *doctor) checkServerCert() {
	peer := d.probe.state.PeerCertificates
	if len(peer) == 0 {
		d.add(CheckServer, Fail, d.l.T("server.none"), d.l.T("server.advice"))
		return
	}
	roots, err := x509.SystemCertPool()
	if err != nil || roots == nil {
		roots = x509.NewCertPool()
	}
	if d.o.Roots != nil {
		roots = d.o.Roots
	}
	inter := x509.NewCertPool()
	for _, c := range peer[1:] {
		inter.AddCert(c)
	}
	_, err = peer[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, DNSName: d.host, CurrentTime: d.o.Now()})
	if err != nil {
		d.add(CheckServer, Fail, d.l.T("server.fail", peer[0].Subject.CommonName, errText(err)), d.l.T("server.advice"))
		return
	}
	d.serverTrusted = true
	d.add(CheckServer, OK, d.l.T("server.ok", peer[0].Subject.String(), peer[0].Issuer.CommonName), "")
}

func (d *doctor) checkRequested() {
	cri := d.probe.requested
	if cri == nil {
		d.add(CheckRequested, Fail, d.l.T("requested.no", d.addr), d.l.T("requested.advice"))
		return
	}
	d.add(CheckRequested, OK, d.l.T("requested.ok", caNames(cri.AcceptableCAs, d.l)), "")
}

// caNames prints the distinguished names a server sent in its
// CertificateRequest (RFC 8446 §4.2.4, RFC 5246 §7.4.4).
func caNames(raw [][]byte, l Lang) string {
	if len(raw) == 0 {
		return l.T("requested.anyca")
	}
	var names []string
	for _, r := range raw {
		names = append(names, dnString(r))
	}
	return strings.Join(names, "; ")
}

func errText(err error) string {
	if err == nil {
		return "-"
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return "timeout"
	}
	return err.Error()
}
