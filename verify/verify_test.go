package verify

import (
	"context"
	"crypto/x509"
	"encoding/base64"
	"strings"
	"testing"
	"time"

	"github.com/zbca/zbca/revocation"
)

// TestResults covers every result, with its message and fields.
func TestResults(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	valid := f.issueAt(t, "acme", t0.AddDate(-1, 0, 0))
	expiring := f.issueAt(t, "acme", t0.AddDate(-3, 0, 10)) // 10 days minus the 5-minute backdate left
	expired := f.issueAt(t, "acme", t0.AddDate(-4, 0, 0))
	future := f.issueAt(t, "beta", t0.AddDate(0, 0, 10))
	revoked := f.issueAt(t, "beta", t0.AddDate(-1, 0, 0))
	f.revoke(t, revoked.Record.Serial)
	other := newForeignCA(t, f.ca.Issuing().Subject, nil) // same name as zbca's issuing CA, another key
	forged := other.issue(t, "acme", nil)
	stranger := newForeignCA(t, pkixName("Other CA"), nil).issue(t, "acme", nil)

	cases := []struct {
		name     string
		cert     []byte
		username string
		want     Result
		zh, en   string // substrings of the message
		check    func(t *testing.T, a *Answer)
	}{
		{"valid", pemOf(valid.Certificate), "acme", Valid, "证书有效", "is valid", func(t *testing.T, a *Answer) {
			if a.Enterprise == nil || *a.Enterprise != (Enterprise{Username: "acme", Name: "某某科技有限公司", ID: "91350100M000100Y43"}) {
				t.Errorf("enterprise %+v", a.Enterprise)
			}
			if a.Serial != valid.Record.Serial || !a.NotAfter.Equal(valid.Certificate.NotAfter) || *a.DaysLeft != int(valid.Certificate.NotAfter.Sub(t0).Hours()/24) {
				t.Errorf("serial %s not_after %s days %d", a.Serial, a.NotAfter, *a.DaysLeft)
			}
		}},
		{"valid without username", pemOf(valid.Certificate, f.ca.Issuing(), f.ca.Root()), "", Valid, "证书有效", "is valid", nil},
		{"expiring", pemOf(expiring.Certificate), "acme", Expiring, "您的证书即将到期", "about to expire", func(t *testing.T, a *Answer) {
			if *a.DaysLeft != 9 || !strings.Contains(a.Message.ZH, "还剩 9 天") {
				t.Errorf("days left %d, message %q", *a.DaysLeft, a.Message.ZH)
			}
		}},
		{"expired", pemOf(expired.Certificate), "acme", Expired, "证书已过期", "has expired", func(t *testing.T, a *Answer) {
			if *a.DaysLeft >= 0 {
				t.Errorf("days left %d for an expired certificate", *a.DaysLeft)
			}
		}},
		{"not yet valid", pemOf(future.Certificate), "beta", NotYetValid, "证书尚未生效", "not valid before", nil},
		{"revoked", pemOf(revoked.Certificate), "beta", Revoked, "证书已废除", "was revoked", func(t *testing.T, a *Answer) {
			if a.RevocationReason != "keyCompromise" || a.RevokedAt.IsZero() || a.Enterprise.Username != "beta" {
				t.Errorf("revocation %q at %s, enterprise %+v", a.RevocationReason, a.RevokedAt, a.Enterprise)
			}
		}},
		{"revoked beats mismatch", pemOf(revoked.Certificate), "acme", Revoked, "证书已废除", "revoked", nil},
		{"mismatch", pemOf(valid.Certificate), "beta", Mismatch, "该证书与用户名不匹配", "does not match the user name", func(t *testing.T, a *Answer) {
			if a.ClaimedUsername != "beta" || a.Enterprise.Username != "acme" {
				t.Errorf("claimed %q, enterprise %+v", a.ClaimedUsername, a.Enterprise)
			}
			for _, s := range []string{"acme", "某某科技有限公司", "beta"} {
				if !strings.Contains(a.Message.ZH, s) || !strings.Contains(a.Message.EN, s) {
					t.Errorf("the mismatch message does not name %q: %+v", s, a.Message)
				}
			}
		}},
		{"mismatch beats expired", pemOf(expired.Certificate), "beta", Mismatch, "不匹配", "does not match", nil},
		{"untrusted: another CA", pemOf(stranger), "acme", Untrusted, "不是本系统签发的证书", "not issued by this CA", func(t *testing.T, a *Answer) {
			if a.Enterprise != nil || a.DaysLeft != nil || !strings.Contains(a.Detail, "not issued by zbca") {
				t.Errorf("untrusted answer %+v", a)
			}
		}},
		{"untrusted: issuer name forged", pemOf(forged), "acme", Untrusted, "不是本系统签发的证书", "not issued by this CA", func(t *testing.T, a *Answer) {
			if !strings.Contains(a.Detail, "signature does not verify") {
				t.Errorf("detail %q", a.Detail)
			}
		}},
		{"untrusted: the issuing CA itself", pemOf(f.ca.Issuing()), "", Untrusted, "不是本系统签发的证书", "not issued", nil},
		{"malformed: garbage", []byte("-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n"), "", Malformed, "无法识别该证书", "cannot be read", nil},
		{"malformed: text", []byte("hello"), "", Malformed, "无法识别该证书", "cannot be read", nil},
		{"malformed: empty", nil, "", Malformed, "无法识别该证书", "cannot be read", nil},
		{"malformed: a key", []byte("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"), "", Malformed, "无法识别", "cannot be read", func(t *testing.T, a *Answer) {
			if !strings.Contains(a.Detail, "not a CERTIFICATE") {
				t.Errorf("detail %q", a.Detail)
			}
		}},
	}
	seen := map[Result]bool{}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a, err := f.svc.Verify(ctx, Request{Certificate: tc.cert, Username: tc.username})
			if err != nil {
				t.Fatal(err)
			}
			if a.Result != tc.want || a.Valid != tc.want.OK() {
				t.Fatalf("result %s valid %v, want %s (detail %q)", a.Result, a.Valid, tc.want, a.Detail)
			}
			if !strings.Contains(a.Message.ZH, tc.zh) || !strings.Contains(a.Message.EN, tc.en) {
				t.Errorf("message %+v, want %q / %q", a.Message, tc.zh, tc.en)
			}
			if tc.check != nil {
				tc.check(t, a)
			}
			seen[a.Result] = true
		})
	}
	for _, r := range Results {
		if !seen[r] {
			t.Errorf("no case answered %s", r)
		}
		if f.svc.Count(r) == 0 {
			t.Errorf("Count(%s) = 0", r)
		}
	}
}

// TestInputForms: the same certificate as PEM with its chain, base64 DER
// (standard and URL alphabets, wrapped), and DER with the chain appended.
func TestInputForms(t *testing.T) {
	f := newFixture(t)
	iss := f.issueAt(t, "acme", t0.AddDate(-1, 0, 0))
	der := iss.Certificate.Raw
	chain := append(append(append([]byte{}, der...), f.ca.Issuing().Raw...), f.ca.Root().Raw...)
	std := base64.StdEncoding.EncodeToString(der)
	var wrapped strings.Builder
	for i := 0; i < len(std); i += 64 {
		wrapped.WriteString(std[i:min(i+64, len(std))] + "\n")
	}
	forms := map[string]string{
		"pem chain":      string(iss.PEMChain()),
		"pem with noise": "subject=CN = acme\n" + string(iss.PEMChain()) + "\n",
		"base64":         std,
		"base64 wrapped": wrapped.String(),
		"base64url":      base64.RawURLEncoding.EncodeToString(der),
		"base64 chain":   base64.StdEncoding.EncodeToString(chain),
	}
	for name, in := range forms {
		a, err := f.svc.Verify(context.Background(), Request{Certificate: []byte(in), Username: "acme"})
		if err != nil || a.Result != Valid {
			t.Errorf("%s: %+v %v", name, a, err)
		}
	}
	// One entry by fingerprint, one per distinct text.
	if n := f.svc.CacheLen(); n != 1+len(forms) {
		t.Errorf("cache holds %d entries after verifying one certificate in %d forms", n, len(forms))
	}
}

// TestRevocationCountsAtOnce: a certificate in the cache is answered
// revoked by the next verification after the revocation. Reading the
// store, that is any revocation; from the node's status feed (memory, as
// serve does), a revocation acknowledged by this node (revocation.Service)
// counts at the next verification, and one made directly in the store (as
// by another process) within the feed's poll — without a store read.
func TestRevocationCountsAtOnce(t *testing.T) {
	for _, memory := range []bool{false, true} {
		name := map[bool]string{false: "store", true: "memory"}[memory]
		t.Run(name, func(t *testing.T) {
			f := newFixture(t)
			if memory {
				f.withFeed(t)
			}
			ask := func(c *x509.Certificate) *Answer {
				a, err := f.svc.Verify(context.Background(), Request{Certificate: pemOf(c)})
				if err != nil {
					t.Fatal(err)
				}
				return a
			}
			iss := f.issueAt(t, "acme", t0.AddDate(-1, 0, 0))
			other := f.issueAt(t, "acme", t0.AddDate(-1, 0, 0))
			if memory {
				// Issued behind the feed's back (the fixture's CA has no
				// feed to wait for): let it apply them.
				if err := f.feed.Wait(context.Background(), max(iss.Record.FeedSeq, other.Record.FeedSeq)); err != nil {
					t.Fatal(err)
				}
			}
			if r := ask(iss.Certificate).Result; r != Valid {
				t.Fatalf("before: %s", r)
			}
			if r := ask(iss.Certificate).Result; r != Valid || f.svc.CacheLen() != 2 { // by fingerprint and by text
				t.Fatalf("cached: %s, cache %d", r, f.svc.CacheLen())
			}
			if memory {
				svc := &revocation.Service{Store: f.st, Feed: f.feed}
				if _, err := svc.Revoke(context.Background(), other.Record.Serial, revocation.KeyCompromise, "test", revocation.ByOperator); err != nil {
					t.Fatal(err)
				}
				if a := ask(other.Certificate); a.Result != Revoked {
					t.Fatalf("the verification right after this node's revocation: %s", a.Result)
				}
			}
			f.revoke(t, iss.Record.Serial)
			deadline := time.Now().Add(time.Second)
			a := ask(iss.Certificate)
			for memory && a.Result != Revoked && time.Now().Before(deadline) {
				time.Sleep(2 * time.Millisecond)
				a = ask(iss.Certificate)
			}
			if a.Result != Revoked || a.RevocationReason != "keyCompromise" || !a.RevokedAt.Equal(t0) {
				t.Fatalf("after revocation: %s %s %s", a.Result, a.RevocationReason, a.RevokedAt)
			}
			if memory && f.reads.n.Load() != 0 {
				t.Errorf("%d status reads reached the store; the feed was trusted throughout", f.reads.n.Load())
			}
		})
	}
}

// TestTimeMovesOn: the same cached certificate turns expiring, then
// expired, as the clock moves.
func TestTimeMovesOn(t *testing.T) {
	f := newFixture(t)
	iss := f.issueAt(t, "acme", t0)
	na := iss.Certificate.NotAfter
	for _, tc := range []struct {
		at   time.Time
		want Result
	}{
		{iss.Certificate.NotBefore.Add(-time.Second), NotYetValid},
		{iss.Certificate.NotBefore, Valid},
		{na.AddDate(0, 0, -31), Valid},
		{na.AddDate(0, 0, -30), Expiring},
		{na, Expiring},
		{na.Add(time.Second), Expired},
	} {
		f.clock.Set(tc.at)
		a, err := f.svc.Verify(context.Background(), Request{Certificate: pemOf(iss.Certificate), Username: "acme"})
		if err != nil || a.Result != tc.want {
			t.Errorf("at %s: %+v %v, want %s", tc.at, a, err, tc.want)
		}
	}
}

func TestBoundedCache(t *testing.T) {
	c := newCertCache(4)
	for i := range 100 {
		c.put([32]byte{byte(i)}, &cert{serial: "x"})
		if n := c.len(); n > 4 {
			t.Fatalf("%d entries with a bound of 4", n)
		}
	}
	// A certificate in use survives.
	c = newCertCache(4)
	hot := [32]byte{0xff}
	c.put(hot, &cert{serial: "hot"})
	for i := range 100 {
		c.put([32]byte{byte(i)}, &cert{})
		if c.get(hot) == nil {
			t.Fatalf("the certificate in use was evicted after %d others", i+1)
		}
	}
}

func TestNewChecksIssuers(t *testing.T) {
	f := newFixture(t)
	other := newForeignCA(t, pkixName("Other"), nil)
	if _, err := New(Options{Root: f.ca.Root(), Issuers: []*x509.Certificate{other.cert}, Store: f.st, Keys: f.st}); err == nil {
		t.Error("New accepted an issuing CA the root did not sign")
	}
	if _, err := New(Options{Root: f.ca.Root(), Store: f.st, Keys: f.st}); err == nil {
		t.Error("New accepted no issuing CA")
	}
}
