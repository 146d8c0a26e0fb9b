package ca

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/zbca/zbca/config"
	"github.com/zbca/zbca/store"
)

func TestCRLShardOf(t *testing.T) {
	for _, n := range []int{0, 1, 2, 3, 7, 16, 255, 256} {
		for range 200 {
			b := make([]byte, 16)
			rand.Read(b)
			b[0] |= 0x01
			want := 0
			if n > 1 {
				want = int(new(big.Int).Mod(new(big.Int).SetBytes(b), big.NewInt(int64(n))).Int64())
			}
			if got := CRLShardOf(b, n); got != want {
				t.Fatalf("CRLShardOf(%x, %d) = %d, want %d", b, n, got, want)
			}
		}
	}
	if got := CRLShardName("issuing-2", 11); got != "issuing-2-11" {
		t.Errorf("shard name %q", got)
	}
	if got := CRLURL("http://pki.test", "issuing-1-3"); got != "http://pki.test/crl/issuing-1-3.crl" {
		t.Errorf("CRL URL %q", got)
	}
}

func withShards(n int) func(*config.Config) {
	return func(c *config.Config) { c.CA.CRLShards = n }
}

// shardURL is the CRL distribution point a certificate must name.
func shardURL(c *x509.Certificate, n int) string {
	k := new(big.Int).Mod(c.SerialNumber, big.NewInt(int64(n)))
	return "http://pki.example:8080/crl/issuing-1-" + k.String() + ".crl"
}

// TestShardedCRLDP: with ca.crl_shards the CRL distribution point of every
// certificate, issued one by one or in bulk, is its shard's (serial mod N);
// the count is kept in the manifest and a later configuration change does
// not move it.
func TestShardedCRLDP(t *testing.T) {
	ctx := context.Background()
	f := newFixtureConfig(t, time.Now, withShards(4))
	f.addEnterprise(t, "acme", store.StatusActive)
	if f.a.CRLShards() != 4 {
		t.Fatalf("CRLShards() = %d", f.a.CRLShards())
	}
	shards := map[string]bool{}
	check := func(c *x509.Certificate) {
		t.Helper()
		want := shardURL(c, 4)
		if len(c.CRLDistributionPoints) != 1 || c.CRLDistributionPoints[0] != want {
			t.Fatalf("serial %x: CRL DP %v, want [%s]", c.SerialNumber, c.CRLDistributionPoints, want)
		}
		shards[want] = true
	}
	for range 12 {
		iss, err := f.a.Issue(ctx, IssueRequest{CSR: makeCSR(t, p256(t)), Username: "acme", Actor: "test"})
		if err != nil {
			t.Fatal(err)
		}
		check(iss.Certificate)
	}
	e, _ := f.store.GetEnterprise(ctx, "acme")
	var items []BulkItem
	for range 12 {
		items = append(items, BulkItem{Enterprise: e, PublicKey: p256(t).Public()})
	}
	recs, err := f.a.IssueBulk(ctx, f.store, items, "test")
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		c, err := x509.ParseCertificate(r.DER)
		if err != nil {
			t.Fatal(err)
		}
		check(c)
	}
	if len(shards) < 2 {
		t.Errorf("24 random serials fell into %d shard(s)", len(shards))
	}
	b, err := os.ReadFile(filepath.Join(f.opts.Dir, manifestFile))
	if err != nil || !strings.Contains(string(b), `"crl_shards": 4`) {
		t.Fatalf("manifest lacks crl_shards: %v\n%s", err, b)
	}

	// The configuration changed after init: the CA keeps its count.
	f.opts.Config.CRLShards = 16
	f.reopen(t)
	if f.a.CRLShards() != 4 {
		t.Fatalf("after a config change CRLShards() = %d, want 4", f.a.CRLShards())
	}
	iss, err := f.a.Issue(ctx, IssueRequest{CSR: makeCSR(t, p256(t)), Username: "acme", Actor: "test"})
	if err != nil {
		t.Fatal(err)
	}
	check(iss.Certificate)

	// A rollover keeps the count; the new issuing CA's certificates name
	// its own shards.
	if _, err := f.a.Rollover(ctx); err != nil {
		t.Fatal(err)
	}
	f.reopen(t)
	if f.a.CRLShards() != 4 {
		t.Fatalf("after a rollover CRLShards() = %d", f.a.CRLShards())
	}
	iss, err = f.a.Issue(ctx, IssueRequest{CSR: makeCSR(t, p256(t)), Username: "acme", Actor: "test"})
	if err != nil {
		t.Fatal(err)
	}
	want := strings.Replace(shardURL(iss.Certificate, 4), "issuing-1-", "issuing-2-", 1)
	if dp := iss.Certificate.CRLDistributionPoints; len(dp) != 1 || dp[0] != want {
		t.Errorf("after rollover: CRL DP %v, want [%s]", dp, want)
	}
}

// TestUnshardedManifest: a CA without crl_shards (the default, and every CA
// created before partitioned CRLs) writes no field, names the full CRL, and
// a manifest with an impossible count is refused.
func TestUnshardedManifest(t *testing.T) {
	f := newFixture(t, time.Now)
	f.addEnterprise(t, "acme", store.StatusActive)
	b, err := os.ReadFile(filepath.Join(f.opts.Dir, manifestFile))
	if err != nil || strings.Contains(string(b), "crl_shards") {
		t.Fatalf("manifest: %v\n%s", err, b)
	}
	// Shards asked for after init do not apply.
	f.opts.Config.CRLShards = 8
	f.reopen(t)
	if f.a.CRLShards() != 0 {
		t.Fatalf("CRLShards() = %d", f.a.CRLShards())
	}
	iss, err := f.a.Issue(context.Background(), IssueRequest{CSR: makeCSR(t, p256(t)), Username: "acme", Actor: "test"})
	if err != nil {
		t.Fatal(err)
	}
	if dp := iss.Certificate.CRLDistributionPoints; len(dp) != 1 || dp[0] != "http://pki.example:8080/crl/issuing-1.crl" {
		t.Errorf("CRL DP %v", dp)
	}
	f.a.Close()
	bad := strings.Replace(string(b), `"version": 1,`, `"version": 1, "crl_shards": 1,`, 1)
	if err := os.WriteFile(filepath.Join(f.opts.Dir, manifestFile), []byte(bad), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(context.Background(), f.opts); err == nil || !strings.Contains(err.Error(), "crl_shards 1 out of range") {
		t.Errorf("manifest with crl_shards 1: %v", err)
	}
}
