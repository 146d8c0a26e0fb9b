package zbcert

import (
	"context"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Status of one doctor check.
type Status string

const (
	OK   Status = "ok"
	Warn Status = "warn"
	Fail Status = "fail"
	Skip Status = "skip"
)

// Mark is the sign printed before a check.
func (s Status) Mark() string {
	switch s {
	case OK:
		return "✓"
	case Warn:
		return "!"
	case Fail:
		return "✗"
	}
	return "-"
}

// Check is one line of the doctor's report. ID is stable (tests and
// scripts match on it); Title, Detail and Advice are in the chosen
// language.
type Check struct {
	ID     string `json:"id"`
	Status Status `json:"status"`
	Title  string `json:"title"`
	Detail string `json:"detail,omitempty"`
	Advice string `json:"advice,omitempty"`
}

// Report is the doctor's answer; its JSON form is `doctor --json`.
type Report struct {
	URL    string  `json:"url"`
	User   string  `json:"user,omitempty"`
	OK     bool    `json:"ok"`
	Checks []Check `json:"checks"`
}

// Find returns the check with that ID.
func (r *Report) Find(id string) (Check, bool) {
	for _, c := range r.Checks {
		if c.ID == id {
			return c, true
		}
	}
	return Check{}, false
}

// The checks, in the order they run and print. Each replaces a step of
// the legacy help page (section 2 and 4.3).
const (
	CheckDNS       = "dns"                   // the name resolves
	CheckProxy     = "proxy"                 // HTTPS_PROXY and friends
	CheckPort      = "port"                  // `telnet host 443`
	CheckTLS       = "tls"                   // handshake, version
	CheckServer    = "server_cert"           // the site's own certificate is trusted
	CheckRequested = "client_cert_requested" // the site asks for a client certificate
	CheckAccepted  = "accepted_ca"           // a local certificate from a CA the site accepts
	CheckMultiple  = "candidates"            // more than one candidate: the wrong one may be auto-selected
	CheckValidity  = "validity"              // not expired, not yet valid, expiring soon
	CheckRevoked   = "revocation"            // OCSP
	CheckUser      = "user"                  // issued to the expected enterprise
	CheckChain     = "chain"                 // chain complete up to the root
	CheckRoot      = "root_installed"        // root in the OS store or NSS
	CheckClock     = "clock"                 // local clock within 5 minutes of the server's Date
	CheckLogin     = "login"                 // a handshake with the certificate is accepted
)

// MaxClockSkew is the legacy help page's "the computer's time is the
// current time", made a number.
const MaxClockSkew = 5 * time.Minute

// DoctorOptions are the inputs of `zbcert doctor`.
type DoctorOptions struct {
	URL     string
	User    string
	Lang    Lang
	Timeout time.Duration  // per network step; default 5 s
	Roots   *x509.CertPool // extra roots for the site's own certificate (--ca-file)
	Getenv  func(string) string
	Now     func() time.Time
	// Resolver resolves the site's name; default net.DefaultResolver.
	Resolver interface {
		LookupHost(ctx context.Context, host string) ([]string, error)
	}
	// OCSPClient asks the certificate's responder; default a client with
	// Timeout.
	OCSPClient *http.Client
	// RootInstalled overrides the root-installed check (tests); default
	// the system pool, then NSS.
	RootInstalled func(root *x509.Certificate, chain []*x509.Certificate) (bool, string)
}

type doctor struct {
	// serverTrusted: the site's certificate verified (CheckServer OK); only
	// then is the enterprise's key used in a handshake with it.
	serverTrusted bool
	o             DoctorOptions
	h             Home
	l             Lang
	u             *url.URL
	host          string
	addr          string
	report        *Report
	// filled as the checks go
	probe      *probeResult
	candidates []*Entry
	chosen     *Entry
	root       *x509.Certificate
}

func (d *doctor) add(id string, st Status, detail, advice string) {
	d.report.Checks = append(d.report.Checks, Check{ID: id, Status: st, Title: d.l.T("title." + id), Detail: detail, Advice: advice})
}

func (d *doctor) skip(ids ...string) {
	for _, id := range ids {
		d.add(id, Skip, d.l.T("skipped"), "")
	}
}

// Doctor runs every check against the submission site at o.URL with the
// certificates of this config directory.
func (h Home) Doctor(ctx context.Context, o DoctorOptions) (*Report, error) {
	if o.Timeout <= 0 {
		o.Timeout = 5 * time.Second
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Resolver == nil {
		o.Resolver = net.DefaultResolver
	}
	if o.OCSPClient == nil {
		o.OCSPClient = &http.Client{Timeout: 2 * o.Timeout}
	}
	if o.Getenv == nil {
		o.Getenv = func(string) string { return "" }
	}
	u, err := parseSiteURL(o.URL)
	if err != nil {
		return nil, err
	}
	d := &doctor{o: o, h: h, l: o.Lang, u: u, host: u.Hostname(), addr: net.JoinHostPort(u.Hostname(), portOf(u)),
		report: &Report{URL: u.String(), User: o.User}}
	if _, root, err := h.LoadConfig(); err == nil {
		d.root = root
	}
	switch {
	case !d.checkDNS(ctx):
		d.checkProxy()
		d.skip(CheckPort, CheckTLS, CheckServer, CheckRequested)
	case !d.checkProxyThenPort(ctx):
		d.skip(CheckTLS, CheckServer, CheckRequested)
	case !d.checkTLS(ctx):
		d.skip(CheckServer, CheckRequested)
	default:
		d.checkServerCert()
		d.checkRequested()
	}
	d.checkCandidates()
	d.checkChosen(ctx)
	d.checkClockAndLogin(ctx)
	d.report.OK = true
	for _, c := range d.report.Checks {
		if c.Status == Fail {
			d.report.OK = false
		}
	}
	return d.report, nil
}

func parseSiteURL(s string) (*url.URL, error) {
	if !strings.Contains(s, "://") {
		s = "https://" + s
	}
	u, err := url.Parse(s)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("--url %q: want https://host[:port]", s)
	}
	if u.Scheme != "https" {
		return nil, fmt.Errorf("--url %q: certificate login needs https", s)
	}
	return u, nil
}

func portOf(u *url.URL) string {
	if p := u.Port(); p != "" {
		return p
	}
	return "443"
}
