package revocation

import (
	"context"
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"math/big"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/labstack/echo/v4"
	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"

	"github.com/zbca/zbca/ca"
	"github.com/zbca/zbca/internal/zerr"
	"github.com/zbca/zbca/store"
)

var oidIDP = asn1.ObjectIdentifier{2, 5, 29, 28}

// idpOf returns the issuing distribution point of a CRL: its fullName URI,
// onlyContainsUserCerts and criticality; found false when there is none.
func idpOf(t *testing.T, crl *x509.RevocationList) (uri string, userOnly, critical, found bool) {
	t.Helper()
	for _, ext := range crl.Extensions {
		if !ext.Id.Equal(oidIDP) {
			continue
		}
		in := cryptobyte.String(ext.Value)
		var seq, dpName, full, u cryptobyte.String
		if !in.ReadASN1(&seq, cbasn1.SEQUENCE) || !in.Empty() ||
			!seq.ReadASN1(&dpName, cbasn1.Tag(0).Constructed().ContextSpecific()) ||
			!dpName.ReadASN1(&full, cbasn1.Tag(0).Constructed().ContextSpecific()) ||
			!full.ReadASN1(&u, cbasn1.Tag(6).ContextSpecific()) || !full.Empty() {
			t.Fatalf("IDP %x does not parse as one fullName URI", ext.Value)
		}
		var flag cryptobyte.String
		if seq.ReadOptionalASN1(&flag, &userOnly, cbasn1.Tag(1).ContextSpecific()); userOnly {
			userOnly = len(flag) == 1 && flag[0] == 0xff
		}
		return string(u), userOnly, ext.Critical, true
	}
	return "", false, false, false
}

// parseCRL parses a published CRL and checks its signature by f's issuing
// CA.
func (f *fixture) parseCRL(t *testing.T, name string) *x509.RevocationList {
	t.Helper()
	pub := f.pub.Get(name)
	if pub == nil {
		t.Fatalf("no CRL %s", name)
	}
	crl, err := x509.ParseRevocationList(pub.DER)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	if err := crl.CheckSignatureFrom(f.a.Issuing()); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	if crl.Number.Int64() != pub.Number || len(crl.RevokedCertificateEntries) != pub.Entries {
		t.Fatalf("%s: number %d entries %d, served as %d with %d", name, crl.Number, len(crl.RevokedCertificateEntries), pub.Number, pub.Entries)
	}
	return crl
}

func listed(crl *x509.RevocationList, serial *big.Int) bool {
	for _, e := range crl.RevokedCertificateEntries {
		if e.SerialNumber.Cmp(serial) == 0 {
			return true
		}
	}
	return false
}

// TestShardedPublisher: with 4 shards, Load publishes the full CRL and
// four shard CRLs, each with a critical IDP naming the URL written into
// its certificates; a revoked certificate is in the full CRL and in its
// own shard only; every CRL has its own rising number.
func TestShardedPublisher(t *testing.T) {
	const n = 4
	f := newShardedFixture(t, n, nil)
	ctx := context.Background()
	shards := f.pub.Shards("issuing-1")
	if len(shards) != n || shards[0] != "issuing-1-0" || shards[3] != "issuing-1-3" {
		t.Fatalf("shards %v", shards)
	}
	if got := f.pub.Names(); len(got) != 2 {
		t.Errorf("Names() %v, want the root and the full CRL", got)
	}
	before := map[string]int64{}
	for _, name := range append([]string{"issuing-1"}, shards...) {
		crl := f.parseCRL(t, name)
		before[name] = crl.Number.Int64()
		uri, userOnly, critical, found := idpOf(t, crl)
		if name == "issuing-1" {
			if found {
				t.Errorf("the full CRL has an IDP (%s): it must stay complete", uri)
			}
			continue
		}
		if want := testPublicURL + "/crl/" + name + ".crl"; !found || !critical || !userOnly || uri != want {
			t.Errorf("%s: IDP %q user-only %v critical %v found %v, want critical %q user-only", name, uri, userOnly, critical, found, want)
		}
	}

	// Enough certificates that several shards get one.
	var revoked, kept, all []*x509.Certificate
	for range 16 {
		all = append(all, f.issue(t))
	}
	// Only the publications below: the node's tasks (the publisher's
	// Run among them) stop.
	f.tasks.Stop(5 * time.Second)
	for i, c := range all {
		if i%2 == 1 {
			kept = append(kept, c)
			continue
		}
		if _, err := f.st.Revoke(ctx, store.RevokeRequest{Serial: c.SerialNumber.Text(16), Reason: int(KeyCompromise), Actor: "test"}); err != nil {
			t.Fatal(err)
		}
		revoked = append(revoked, c)
	}
	if _, err := f.pub.Publish(ctx, "issuing-1"); err != nil {
		t.Fatal(err)
	}
	full := f.parseCRL(t, "issuing-1")
	crls := make([]*x509.RevocationList, n)
	sum := 0
	for k, name := range shards {
		crls[k] = f.parseCRL(t, name)
		sum += len(crls[k].RevokedCertificateEntries)
		if got := crls[k].Number.Int64(); got != before[name]+1 {
			t.Errorf("%s: number %d after %d", name, got, before[name])
		}
	}
	if got := full.Number.Int64(); got != before["issuing-1"]+1 || len(full.RevokedCertificateEntries) != len(revoked) || sum != len(revoked) {
		t.Fatalf("full CRL #%d with %d entries, shards %d entries, for %d revocations", got, len(full.RevokedCertificateEntries), sum, len(revoked))
	}
	for _, c := range revoked {
		k := int(new(big.Int).Mod(c.SerialNumber, big.NewInt(n)).Int64())
		if !listed(full, c.SerialNumber) {
			t.Errorf("%x missing from the full CRL", c.SerialNumber)
		}
		if dp := c.CRLDistributionPoints; len(dp) != 1 || dp[0] != testPublicURL+"/crl/"+shards[k]+".crl" {
			t.Errorf("%x: CRL DP %v, want shard %d", c.SerialNumber, dp, k)
		}
		for j := range crls {
			if listed(crls[j], c.SerialNumber) != (j == k) {
				t.Errorf("%x (shard %d): listed in shard %d is %v", c.SerialNumber, k, j, j == k)
			}
		}
	}
	for _, c := range kept {
		for j := range crls {
			if listed(crls[j], c.SerialNumber) || listed(full, c.SerialNumber) {
				t.Errorf("good certificate %x listed in shard %d", c.SerialNumber, j)
			}
		}
	}
	// Publishing a shard by name publishes its group.
	again, err := f.pub.Publish(ctx, "issuing-1-2")
	if err != nil || again.Name != "issuing-1-2" || again.Number != before["issuing-1-2"]+2 || f.pub.Get("issuing-1").Number != before["issuing-1"]+2 {
		t.Fatalf("Publish(shard): %v %+v", err, again)
	}
	for _, bad := range []string{"issuing-1-4", "issuing-1-02", "root-0", "issuing-1-"} {
		if _, err := f.pub.Publish(ctx, bad); !errors.Is(err, zerr.NotFound) {
			t.Errorf("Publish(%q): %v", bad, err)
		}
	}
}

// TestShardedPublisherAfterRevocation: the publication a revocation
// triggers covers the shard, and a restarted publisher serves the stored
// shards at once, catching up with a revocation made while it was down.
func TestShardedPublisherAfterRevocation(t *testing.T) {
	f := newShardedFixture(t, 3, nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go f.pub.Run(ctx)
	leaf := f.issue(t)
	shard := "issuing-1-" + new(big.Int).Mod(leaf.SerialNumber, big.NewInt(3)).String()
	first := f.pub.Get(shard).Number
	if _, err := f.svc.Revoke(ctx, leaf.SerialNumber.Text(16), Superseded, "test", ByOperator); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(5 * time.Second); f.pub.Get(shard).Entries != 1; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("shard %s still without the revocation", shard)
		}
	}
	if !listed(f.parseCRL(t, shard), leaf.SerialNumber) || f.pub.Get(shard).Number <= first {
		t.Fatal("revocation not in a newer shard CRL")
	}
	cancel()

	// Revoked with no server running (the CLI alone).
	other := f.issue(t)
	otherShard := "issuing-1-" + new(big.Int).Mod(other.SerialNumber, big.NewInt(3)).String()
	if _, err := (&Service{Store: f.st}).Revoke(context.Background(), other.SerialNumber.Text(16), KeyCompromise, "operator", ByOperator); err != nil {
		t.Fatal(err)
	}
	p2, err := NewPublisher(PublisherOptions{Store: f.st, Issuers: f.a.IssuingCAs(), Root: f.a.RootCRLIssuer(), Interval: time.Hour, Validity: 2 * time.Hour,
		Shards: 3, PublicURL: testPublicURL})
	if err != nil {
		t.Fatal(err)
	}
	if err := p2.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	f.pub = p2
	if !listed(f.parseCRL(t, otherShard), other.SerialNumber) || !listed(f.parseCRL(t, "issuing-1"), other.SerialNumber) {
		t.Fatal("restarted publisher did not catch up with the offline revocation")
	}
	for _, name := range p2.Shards("issuing-1") {
		if p2.Get(name) == nil {
			t.Errorf("restarted publisher does not serve %s", name)
		}
	}
}

// TestShardedPublisherSync: another node's shard CRLs are served by this
// one after a sync (the path of a store notification or of the schedule).
func TestShardedPublisherSync(t *testing.T) {
	f := newShardedFixture(t, 2, nil)
	ctx := context.Background()
	p2, err := NewPublisher(PublisherOptions{Store: f.st, Issuers: f.a.IssuingCAs(), Root: f.a.RootCRLIssuer(), Interval: time.Hour, Validity: 2 * time.Hour,
		Shards: 2, PublicURL: testPublicURL})
	if err != nil {
		t.Fatal(err)
	}
	if err := p2.Load(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := f.pub.Publish(ctx, "issuing-1"); err != nil {
		t.Fatal(err)
	}
	if err := p2.syncAll(ctx); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"issuing-1", "issuing-1-0", "issuing-1-1"} {
		if a, b := f.pub.Get(name), p2.Get(name); b == nil || a.Number != b.Number {
			t.Errorf("%s: node 2 serves %+v, node 1 published #%d", name, b, a.Number)
		}
	}
}

// TestUnshardedPublishesNothingNew: without shards, no shard CRL is
// stored, served or named.
func TestUnshardedPublishesNothingNew(t *testing.T) {
	f := newFixture(t, nil)
	ctx := context.Background()
	leaf := f.issue(t)
	if _, err := f.svc.Revoke(ctx, leaf.SerialNumber.Text(16), KeyCompromise, "test", ByOperator); err != nil {
		t.Fatal(err)
	}
	if _, err := f.pub.Publish(ctx, "issuing-1"); err != nil {
		t.Fatal(err)
	}
	if s := f.pub.Shards("issuing-1"); s != nil {
		t.Errorf("shards %v", s)
	}
	if _, _, _, found := idpOf(t, f.parseCRL(t, "issuing-1")); found {
		t.Error("full CRL with an IDP")
	}
	for _, name := range []string{"issuing-1-0", "issuing-1-1"} {
		if f.pub.Get(name) != nil {
			t.Errorf("%s served", name)
		}
		if _, err := f.st.LatestCRL(ctx, name); !errors.Is(err, zerr.NotFound) {
			t.Errorf("%s stored: %v", name, err)
		}
	}
}

// TestShardedCRLHTTP: the shard CRLs are served in DER and PEM like any
// CRL, and nothing beyond the shard count.
func TestShardedCRLHTTP(t *testing.T) {
	f := newShardedFixture(t, 4, nil)
	e := echo.New()
	RegisterCRL(e, f.pub, time.Now)
	get := func(path string) *httptest.ResponseRecorder {
		rec := httptest.NewRecorder()
		e.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
		return rec
	}
	for k := range 4 {
		name := "issuing-1-" + strconv.Itoa(k)
		r := get("/crl/" + name + ".crl")
		if r.Code != 200 || r.Header().Get("Content-Type") != "application/pkix-crl" {
			t.Fatalf("%s: %d %q", name, r.Code, r.Header().Get("Content-Type"))
		}
		crl, err := x509.ParseRevocationList(r.Body.Bytes())
		if err != nil || crl.Number.Int64() != f.pub.Get(name).Number {
			t.Fatalf("%s: %v", name, err)
		}
		if r := get("/crl/" + name + ".pem"); r.Code != 200 || !strings.HasPrefix(r.Body.String(), "-----BEGIN X509 CRL-----\n") {
			t.Errorf("%s.pem: %d", name, r.Code)
		}
	}
	for _, p := range []string{"/crl/issuing-1-4.crl", "/crl/issuing-1-01.crl", "/crl/issuing-1--1.crl", "/crl/root-0.crl", "/crl/issuing-1-0.der"} {
		if r := get(p); r.Code != 404 {
			t.Errorf("%s: %d", p, r.Code)
		}
	}
}

func TestPublisherShardOptions(t *testing.T) {
	f := newFixture(t, nil)
	for _, tc := range []struct {
		shards int
		url    string
		want   string
	}{
		{1, testPublicURL, "want 0 or 2–256"},
		{-1, testPublicURL, "want 0 or 2–256"},
		{257, testPublicURL, "want 0 or 2–256"},
		{4, "", "public URL"},
	} {
		_, err := NewPublisher(PublisherOptions{Store: f.st, Issuers: f.a.IssuingCAs(), Root: f.a.RootCRLIssuer(), Shards: tc.shards, PublicURL: tc.url})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%d shards, URL %q: %v, want %q", tc.shards, tc.url, err, tc.want)
		}
	}
}

// TestShardsPerIssuer: after a rollover every issuing CA, retired ones
// included, has its own shards, with IDPs under its own name.
func TestShardsPerIssuer(t *testing.T) {
	f := newShardedFixture(t, 2, nil)
	cur := f.a.IssuingCAs()[0]
	retired := cur
	retired.Name = "issuing-0" // stands for a rolled-over CA
	p, err := NewPublisher(PublisherOptions{Store: f.st, Issuers: []ca.CRLIssuer{cur, retired}, Root: f.a.RootCRLIssuer(), Interval: time.Hour, Validity: 2 * time.Hour,
		Shards: 2, PublicURL: testPublicURL})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	f.pub = p
	for _, name := range []string{"issuing-1-0", "issuing-1-1", "issuing-0-0", "issuing-0-1"} {
		uri, _, critical, found := idpOf(t, f.parseCRL(t, name))
		if !found || !critical || uri != testPublicURL+"/crl/"+name+".crl" {
			t.Errorf("%s: IDP %q critical %v", name, uri, critical)
		}
	}
	if got := p.Shards("issuing-0"); len(got) != 2 || got[1] != "issuing-0-1" {
		t.Errorf("shards of the retired CA: %v", got)
	}
	// A shard name that is also a CA's name is refused.
	clash := cur
	clash.Name = "issuing-1-1"
	if _, err := NewPublisher(PublisherOptions{Store: f.st, Issuers: []ca.CRLIssuer{cur, clash}, Root: f.a.RootCRLIssuer(), Shards: 2, PublicURL: testPublicURL}); err == nil {
		t.Error("clashing CRL names accepted")
	}
}
