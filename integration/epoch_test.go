//go:build integration

package integration

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/acme"
)

// TestAccessEndsWithPassword (issue 15, point 2) against zbca serve with
// golang.org/x/crypto/acme and a portal session: after the operator's
// passwd, the ACME account made with the old password orders nothing
// (unauthorized, saying in Chinese and English to enroll again), the
// portal session shows the login form, an EAB key obtained before makes
// no account, `zbca enterprise accounts` says "ended"; proving the new
// password works. logout and disable/enable do the same.
func TestAccessEndsWithPassword(t *testing.T) {
	in := newInstance(t, "")
	in.start()
	in.mustRun(testPassword+"\n", "enterprise", "add", "acme", "--name", "ACME Ltd", "--password-stdin")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	register := func(password string) *acme.Client {
		t.Helper()
		eab, code, body := in.eab(t, "acme", password)
		if eab == nil {
			t.Fatalf("EAB: %d %s", code, body)
		}
		cl, _ := in.acmeClient(t)
		if _, err := cl.Register(ctx, &acme.Account{ExternalAccountBinding: eab}, acme.AcceptTOS); err != nil {
			t.Fatalf("register: %v", err)
		}
		return cl
	}
	order := func(cl *acme.Client) error {
		o, err := cl.AuthorizeOrder(ctx, []acme.AuthzID{{Type: "enterprise", Value: "acme"}})
		if err != nil {
			return err
		}
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		_, _, err = cl.CreateOrderCert(ctx, o.FinalizeURL, acmeCSR(t, key), true)
		return err
	}
	wantEnded := func(cl *acme.Client, what string) {
		t.Helper()
		err := order(cl)
		var ae *acme.Error
		if !errors.As(err, &ae) || ae.StatusCode != http.StatusForbidden || ae.ProblemType != "urn:ietf:params:acme:error:unauthorized" ||
			!strings.Contains(ae.Detail, "重新申请") || !strings.Contains(ae.Detail, "enroll again") {
			t.Fatalf("%s: an old account's order: %v", what, err)
		}
	}
	accounts := func() map[string]int {
		t.Helper()
		out := in.mustRun("", "enterprise", "accounts", "acme", "--json")
		var v struct {
			Accounts []struct {
				Status string `json:"status"`
			} `json:"accounts"`
		}
		if err := json.Unmarshal([]byte(out), &v); err != nil {
			t.Fatalf("accounts --json: %v\n%s", err, out)
		}
		m := map[string]int{}
		for _, a := range v.Accounts {
			m[a.Status]++
		}
		return m
	}

	// A portal session, logged in with the password.
	jar, _ := cookiejar.New(nil)
	pc := in.httpsClient(t)
	pc.Jar = jar
	base := in.httpsURL()
	page := func(path string) string {
		t.Helper()
		resp, err := pc.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	login := func() {
		t.Helper()
		page("/certificates")
		u, _ := url.Parse(base)
		csrf := ""
		for _, c := range jar.Cookies(u) {
			if c.Name == "__Host-zbca-csrf" {
				csrf = c.Value
			}
		}
		resp, err := pc.PostForm(base+"/login", url.Values{"username": {"acme"}, "password": {testPassword}, "next": {"certificates"}, "csrf": {csrf}})
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("portal login: %d", resp.StatusCode)
		}
	}
	loggedIn := func() bool { return !strings.Contains(page("/certificates"), `name="password"`) }

	cl := register(testPassword)
	if err := order(cl); err != nil {
		t.Fatalf("first certificate: %v", err)
	}
	staleEAB, _, _ := in.eab(t, "acme", testPassword)
	login()
	if !loggedIn() {
		t.Fatal("the portal session does not work")
	}

	// passwd ends them all, at once.
	const newPassword = "a-new-passw0rd-2026"
	out := in.mustRun(newPassword+"\n", "enterprise", "passwd", "acme", "--password-stdin")
	if !strings.Contains(out, "ended") {
		t.Errorf("passwd does not say what it ended: %s", out)
	}
	wantEnded(cl, "passwd")
	if loggedIn() {
		t.Error("the portal session outlived the password change")
	}
	stranger, _ := in.acmeClient(t)
	if _, err := stranger.Register(ctx, &acme.Account{ExternalAccountBinding: staleEAB}, acme.AcceptTOS); err == nil {
		t.Error("an EAB key obtained with the old password made an account")
	}
	if _, code, _ := in.eab(t, "acme", testPassword); code != http.StatusUnauthorized {
		t.Errorf("EAB with the old password: %d", code)
	}
	if m := accounts(); m["ended"] != 1 || m["valid"] != 0 {
		t.Errorf("accounts after passwd: %v", m)
	}

	// The new password works; then logout ends that account too.
	cl2 := register(newPassword)
	if err := order(cl2); err != nil {
		t.Fatalf("with the new password: %v", err)
	}
	in.mustRun("", "enterprise", "logout", "acme")
	wantEnded(cl2, "logout")

	// disable then enable revives nothing.
	cl3 := register(newPassword)
	in.mustRun("", "enterprise", "disable", "acme")
	in.mustRun("", "enterprise", "enable", "acme")
	wantEnded(cl3, "disable and enable")
	if m := accounts(); m["ended"] != 3 || m["valid"] != 0 {
		t.Errorf("accounts at the end: %v", m)
	}
}
