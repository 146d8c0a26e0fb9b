package client_test

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/zbca/zbca/verify/client"
)

// TestMiddleware runs the middleware in a TLS site against a real zbca
// verification handler.
func TestMiddleware(t *testing.T) {
	z, err := newZBCA()
	if err != nil {
		t.Fatal(err)
	}
	defer z.Close()
	vc := client.New(z.URL, z.Key, z.HTTP)
	var clock time.Time = time.Now()
	vc.Now = func() time.Time { return clock }
	mw := &client.Middleware{Client: vc, Username: func(r *http.Request) string { return r.Header.Get("X-Login") }}
	site := newSite(mw.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		res := client.FromContext(r.Context())
		fmt.Fprintf(w, "%s %s %d", res.Result, res.Enterprise.Username, *res.DaysLeft)
	})))
	defer site.Close()

	get := func(cert tls.Certificate, login string) (int, string, string) {
		t.Helper()
		req, _ := http.NewRequest("GET", site.URL+"/report", nil)
		req.Header.Set("X-Login", login)
		resp, err := userClient(site, cert).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header.Get("X-ZBCA-Result"), string(b)
	}
	acme, serial, err := z.issue("acme", 0)
	if err != nil {
		t.Fatal(err)
	}
	expired, _, err := z.issue("acme", -4*365*24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if code, _, body := get(acme, "acme"); code != 200 || !strings.HasPrefix(body, "valid acme ") {
		t.Fatalf("valid: %d %q", code, body)
	}
	if code, res, body := get(acme, "beta"); code != 403 || res != "mismatch" || !strings.Contains(body, "该证书与用户名不匹配") {
		t.Errorf("mismatch: %d %s %q", code, res, body)
	}
	if code, res, body := get(expired, "acme"); code != 403 || res != "expired" || !strings.Contains(body, "证书已过期") {
		t.Errorf("expired: %d %s %q", code, res, body)
	}
	// A revocation reaches the site when its cached answer runs out.
	if err := z.revoke(serial); err != nil {
		t.Fatal(err)
	}
	if code, _, _ := get(acme, "acme"); code != 200 {
		t.Errorf("within the client's cache time: %d, want the cached 200", code)
	}
	clock = clock.Add(10 * time.Second)
	if code, res, body := get(acme, "acme"); code != 403 || res != "revoked" || !strings.Contains(body, "证书已废除") {
		t.Errorf("revoked: %d %s %q", code, res, body)
	}
	// A wrong key is an API error: the site fails closed (503).
	bad := &client.Middleware{Client: client.New(z.URL, "zbca_wrong", z.HTTP)}
	site2 := newSite(bad.Wrap(http.NotFoundHandler()))
	defer site2.Close()
	resp, err := userClient(site2, acme).Get(site2.URL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 503 {
		t.Errorf("wrong API key: site answered %d, want 503", resp.StatusCode)
	}
	_, err = client.New(z.URL, "zbca_wrong", z.HTTP).Verify(t.Context(), []*x509.Certificate{acme.Leaf}, "")
	var ae *client.APIError
	if !errors.As(err, &ae) || ae.Status != 401 {
		t.Errorf("Verify with a wrong key: %v", err)
	}
}
