package zbcert

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/ocsp"
)

// doctorEnv is a submission site (httptest TLS) that asks for
// certificates of a test CA, an OCSP responder for that CA, and a config
// directory.
type doctorEnv struct {
	ca      *testCA
	h       Home
	revoked map[string]bool // serials the responder calls revoked
	date    time.Duration   // shift of the site's Date header
	roots   *x509.CertPool  // the sites' own certificates (--ca-file)
}

func newDoctorEnv(t *testing.T) *doctorEnv {
	e := &doctorEnv{ca: newTestCA(t, "Test Reporting CA"), h: Home{Dir: t.TempDir()}, revoked: map[string]bool{}, roots: x509.NewCertPool()}
	resp := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		req, err := ocsp.ParseRequest(body)
		if err != nil {
			http.Error(w, "bad", 400)
			return
		}
		tmpl := ocsp.Response{Status: ocsp.Good, SerialNumber: req.SerialNumber, ThisUpdate: time.Now(), NextUpdate: time.Now().Add(time.Hour)}
		if e.revoked[req.SerialNumber.Text(16)] {
			tmpl.Status, tmpl.RevokedAt, tmpl.RevocationReason = ocsp.Revoked, time.Now().Add(-time.Minute), ocsp.KeyCompromise
		}
		der, _ := ocsp.CreateResponse(e.ca.cert, e.ca.cert, tmpl, e.ca.key)
		w.Header().Set("Content-Type", "application/ocsp-response")
		w.Write(der)
	}))
	t.Cleanup(resp.Close)
	e.ca.ocsp = resp.URL
	return e
}

// site starts a TLS server with cfg; its handler sets a shifted Date.
func (e *doctorEnv) site(t *testing.T, cfg *tls.Config) string {
	s := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if e.date != 0 {
			w.Header().Set("Date", time.Now().Add(e.date).UTC().Format(http.TimeFormat))
		}
		if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
			http.Error(w, "no certificate", 400)
			return
		}
		w.Write([]byte("ok"))
	}))
	s.TLS = cfg
	s.Config.ErrorLog = log.New(io.Discard, "", 0) // the doctor's probes hang up on purpose
	s.StartTLS()
	t.Cleanup(s.Close)
	e.roots.AddCert(s.Certificate())
	return s.URL
}

func (e *doctorEnv) mtlsSite(t *testing.T) string {
	pool := x509.NewCertPool()
	pool.AddCert(e.ca.cert)
	return e.site(t, &tls.Config{ClientAuth: tls.VerifyClientCertIfGiven, ClientCAs: pool})
}

func (e *doctorEnv) add(t *testing.T, cn string, nb, na time.Time) *Entry {
	k := newKeyT(t)
	en, err := e.h.SaveCert(k, []*x509.Certificate{e.ca.issue(t, cn, k, nb, na), e.ca.cert})
	if err != nil {
		t.Fatal(err)
	}
	return en
}

func (e *doctorEnv) run(t *testing.T, url, user string, lang Lang) *Report {
	t.Helper()
	r, err := e.h.Doctor(context.Background(), DoctorOptions{URL: url, User: user, Lang: lang, Timeout: 2 * time.Second, Roots: e.roots,
		RootInstalled: func(*x509.Certificate, []*x509.Certificate) (bool, string) { return true, "test" }})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func status(t *testing.T, r *Report, id string) Check {
	t.Helper()
	c, ok := r.Find(id)
	if !ok {
		t.Fatalf("no check %s", id)
	}
	return c
}

func TestDoctorFaults(t *testing.T) {
	now := time.Now()
	for _, tc := range []struct {
		name   string
		setup  func(t *testing.T, e *doctorEnv) (url, user string)
		id     string
		want   Status
		advice string
	}{
		{"all good", func(t *testing.T, e *doctorEnv) (string, string) {
			e.add(t, "acme", now.Add(-time.Hour), now.AddDate(3, 0, 0))
			return e.mtlsSite(t), "acme"
		}, CheckLogin, OK, ""},
		{"expired", func(t *testing.T, e *doctorEnv) (string, string) {
			e.add(t, "acme", now.AddDate(-3, 0, -1), now.Add(-24*time.Hour))
			return e.mtlsSite(t), "acme"
		}, CheckValidity, Fail, "zbcert reissue --user acme"},
		{"not yet valid", func(t *testing.T, e *doctorEnv) (string, string) {
			e.add(t, "acme", now.Add(48*time.Hour), now.AddDate(3, 0, 0))
			return e.mtlsSite(t), "acme"
		}, CheckValidity, Fail, "date, time and time zone"},
		{"expiring", func(t *testing.T, e *doctorEnv) (string, string) {
			e.add(t, "acme", now.AddDate(-3, 0, 10), now.AddDate(0, 0, 10))
			return e.mtlsSite(t), "acme"
		}, CheckValidity, Warn, "zbcert renew"},
		{"revoked", func(t *testing.T, e *doctorEnv) (string, string) {
			en := e.add(t, "acme", now.Add(-time.Hour), now.AddDate(3, 0, 0))
			e.revoked[en.Serial] = true
			return e.mtlsSite(t), "acme"
		}, CheckRevoked, Fail, "zbcert reissue --user acme"},
		{"wrong user", func(t *testing.T, e *doctorEnv) (string, string) {
			e.add(t, "acme", now.Add(-time.Hour), now.AddDate(3, 0, 0))
			return e.mtlsSite(t), "beta"
		}, CheckUser, Fail, "zbcert enroll --user beta"},
		{"two candidates", func(t *testing.T, e *doctorEnv) (string, string) {
			e.add(t, "acme", now.Add(-2*time.Hour), now.AddDate(3, 0, 0))
			e.add(t, "acme", now.Add(-time.Hour), now.AddDate(3, 0, 0))
			return e.mtlsSite(t), "acme"
		}, CheckMultiple, Fail, "wrong one"},
		{"clock skew", func(t *testing.T, e *doctorEnv) (string, string) {
			e.add(t, "acme", now.Add(-time.Hour), now.AddDate(3, 0, 0))
			e.date = 20 * time.Minute
			return e.mtlsSite(t), "acme"
		}, CheckClock, Fail, "time"},
		{"no client certificate asked", func(t *testing.T, e *doctorEnv) (string, string) {
			e.add(t, "acme", now.Add(-time.Hour), now.AddDate(3, 0, 0))
			return e.site(t, &tls.Config{}), "acme"
		}, CheckRequested, Fail, "ssl_verify_client"},
		{"another CA only", func(t *testing.T, e *doctorEnv) (string, string) {
			e.add(t, "acme", now.Add(-time.Hour), now.AddDate(3, 0, 0))
			pool := x509.NewCertPool()
			pool.AddCert(newTestCA(t, "Other CA").cert)
			return e.site(t, &tls.Config{ClientAuth: tls.VerifyClientCertIfGiven, ClientCAs: pool}), "acme"
		}, CheckAccepted, Fail, "zbcert setup"},
		{"no local certificate", func(t *testing.T, e *doctorEnv) (string, string) {
			return e.mtlsSite(t), "acme"
		}, CheckAccepted, Fail, "zbcert enroll"},
		{"closed port", func(t *testing.T, e *doctorEnv) (string, string) {
			ln, _ := net.Listen("tcp", "127.0.0.1:0")
			addr := ln.Addr().String()
			ln.Close()
			return "https://" + addr, "acme"
		}, CheckPort, Fail, "TCP port"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newDoctorEnv(t)
			url, user := tc.setup(t, e)
			r := e.run(t, url, user, En)
			c := status(t, r, tc.id)
			if c.Status != tc.want || !strings.Contains(c.Advice, tc.advice) {
				t.Errorf("%s: %s %q advice %q; want %s with %q", tc.id, c.Status, c.Detail, c.Advice, tc.want, tc.advice)
			}
			if r.OK != (tc.want != Fail) {
				t.Errorf("report ok=%v", r.OK)
			}
			if tc.want == OK {
				for _, c := range r.Checks {
					if c.Status != OK {
						t.Errorf("all good: %s is %s %q", c.ID, c.Status, c.Detail)
					}
				}
			}
		})
	}
}

// TestDoctorJSON: the --json shape, and Chinese titles and advice.
func TestDoctorJSON(t *testing.T) {
	e := newDoctorEnv(t)
	e.add(t, "acme", time.Now().Add(-time.Hour), time.Now().AddDate(3, 0, 0))
	r := e.run(t, e.mtlsSite(t), "beta", Zh)
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	var v struct {
		URL    string           `json:"url"`
		User   string           `json:"user"`
		OK     *bool            `json:"ok"`
		Checks []map[string]any `json:"checks"`
	}
	if err := json.Unmarshal(b, &v); err != nil || v.OK == nil || *v.OK || v.User != "beta" || len(v.Checks) != 15 {
		t.Fatalf("%s", b)
	}
	for _, c := range v.Checks {
		for _, k := range []string{"id", "status", "title"} {
			if _, ok := c[k].(string); !ok {
				t.Errorf("check without %s: %v", k, c)
			}
		}
	}
	u := status(t, r, CheckUser)
	if u.Title != "证书与用户名匹配" || !strings.Contains(u.Detail, "该证书与用户名不匹配") || !strings.Contains(u.Advice, "zbcert enroll --user beta") {
		t.Errorf("zh user check: %+v", u)
	}
	if Fail.Mark() != "✗" || OK.Mark() != "✓" {
		t.Error("marks")
	}
}

// TestDoctorKeepsKeyFromUntrustedSite: when the site's own certificate does
// not verify (a spoofed name, an intercepting proxy), doctor reports it and
// never presents the enterprise's certificate or uses its key there.
func TestDoctorKeepsKeyFromUntrustedSite(t *testing.T) {
	e := newDoctorEnv(t)
	now := time.Now()
	e.add(t, "acme", now.Add(-time.Hour), now.AddDate(3, 0, 0))
	pool := x509.NewCertPool()
	pool.AddCert(e.ca.cert)
	var presented atomic.Bool
	url := e.site(t, &tls.Config{ClientAuth: tls.VerifyClientCertIfGiven, ClientCAs: pool,
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			if len(raw) > 0 {
				presented.Store(true)
			}
			return nil
		}})
	e.roots = x509.NewCertPool() // the site's certificate is not trusted
	r := e.run(t, url, "acme", En)
	if c := status(t, r, CheckServer); c.Status != Fail {
		t.Errorf("server check %s %q, want a failure", c.Status, c.Detail)
	}
	if c := status(t, r, CheckLogin); c.Status != Skip || !strings.Contains(c.Detail, "not tried") {
		t.Errorf("login check %s %q, want skipped as not tried", c.Status, c.Detail)
	}
	if presented.Load() {
		t.Error("the enterprise certificate was presented to a site whose certificate did not verify")
	}
}
