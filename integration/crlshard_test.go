//go:build integration

package integration

import (
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestCRLShards: a CA created with ca.crl_shards: 4 writes into each
// certificate the CRL distribution point of its shard (serial mod 4); that
// shard CRL verifies with openssl against the issuing CA, carries a
// critical issuing distribution point naming the same URL, says revoked for
// the revoked certificate and OK for a good one of the same shard, and is
// not taken for the CRL of another shard's certificate; the full CRL still
// lists the revocation; nginx with ssl_crl given the shard CRLs and the
// root's refuses the revoked certificate only.
func TestCRLShards(t *testing.T) {
	const shards = 4
	openssl := requireTool(t, "openssl")
	in := newInstance(t, "ca:\n  crl_shards: 4\ncrl:\n  delay: 2s\nenroll:\n  policy:\n    max_active: 100\n    max_per_day: 1000000\n")
	in.start()
	if !strings.Contains(in.stdout.String(), "CRL shards        4 per issuing CA") {
		t.Errorf("serve's summary does not name the shards:\n%s", in.stdout)
	}
	if b, err := os.ReadFile(filepath.Join(in.dir, "ca", "hierarchy.json")); err != nil || !strings.Contains(string(b), `"crl_shards": 4`) {
		t.Fatalf("hierarchy.json does not keep the shard count: %v\n%s", err, b)
	}
	in.mustRun(testPassword+"\n", "enterprise", "add", "acme", "--name", "ACME Ltd", "--password-stdin")
	work := t.TempDir()
	p := func(n string) string { return filepath.Join(work, n) }
	_, root := get(t, "http://"+in.http+"/pki/root.pem")
	_, iss := get(t, "http://"+in.http+"/pki/issuing.pem")
	os.WriteFile(p("issuing.pem"), iss, 0o644)
	os.WriteFile(p("chain.pem"), append(append([]byte{}, root...), iss...), 0o644)
	os.WriteFile(p("zbca-chain.pem"), append(append([]byte{}, iss...), root...), 0o644)

	// Five certificates in four shards: two share one.
	type cert struct {
		file, key, serial string
		shard             int
	}
	byShard := map[int][]*cert{}
	var certs []*cert
	for i := 0; i < shards+1; i++ {
		c := &cert{file: p(fmt.Sprintf("c%d.pem", i)), key: p(fmt.Sprintf("c%d.key", i))}
		writeClientCSR(t, p(fmt.Sprintf("c%d.csr", i)), c.key, "acme")
		in.mustRun("", "cert", "issue", "--enterprise", "acme", "--csr", p(fmt.Sprintf("c%d.csr", i)), "--out", c.file)
		leaf, err := x509.ParseCertificate(firstPEM(t, c.file))
		if err != nil {
			t.Fatal(err)
		}
		c.serial = fmt.Sprintf("%x", leaf.SerialNumber)
		c.shard = int(new(big.Int).Mod(leaf.SerialNumber, big.NewInt(shards)).Int64())
		byShard[c.shard] = append(byShard[c.shard], c)
		certs = append(certs, c)
	}
	var bad, good, other *cert
	for _, cs := range byShard {
		if len(cs) >= 2 && bad == nil {
			bad, good = cs[0], cs[1]
		}
	}
	for _, c := range certs {
		if c.shard != bad.shard {
			other = c
		}
	}
	shardName := fmt.Sprintf("issuing-1-%d", bad.shard)
	shardURL := "http://" + in.http + "/crl/" + shardName + ".crl"

	// The certificate names its shard, as openssl reads it.
	o, err := tool(t, openssl, "x509", "-in", bad.file, "-noout", "-ext", "crlDistributionPoints")
	if err != nil || !strings.Contains(o, "URI:"+shardURL) {
		t.Fatalf("CRL distribution point of %s (shard %d): %v\n%s", bad.serial, bad.shard, err, o)
	}

	revoke(t, in, bad.serial)
	fetch := func(name string) []byte {
		t.Helper()
		resp, body := get(t, "http://"+in.http+"/crl/"+name+".pem")
		if resp.StatusCode != 200 {
			t.Fatalf("/crl/%s.pem: %d %s", name, resp.StatusCode, body)
		}
		return body
	}
	has := func(pemCRL []byte, serial string) bool {
		blk, _ := pem.Decode(pemCRL)
		if blk == nil {
			t.Fatalf("not a PEM CRL: %q", pemCRL)
		}
		crl, err := x509.ParseRevocationList(blk.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		return crlHas(crl, serial)
	}
	var shardPEM []byte
	waitFor(t, 20*time.Second, func() bool { shardPEM = fetch(shardName); return has(shardPEM, bad.serial) },
		func() string { return shardName + " does not list the revocation 20 s after it (crl.delay 2s)" })
	os.WriteFile(p("shard.pem"), shardPEM, 0o644)

	// The shard CRL verifies against the issuing CA and is scoped by a
	// critical IDP naming the URL in the certificate.
	o, err = tool(t, openssl, "crl", "-in", p("shard.pem"), "-CAfile", p("issuing.pem"), "-noout", "-text", "-verify")
	if err != nil || !strings.Contains(o, "verify OK") {
		t.Fatalf("openssl crl -verify %s: %v\n%s", shardName, err, o)
	}
	for _, want := range []string{"X509v3 Issuing Distribution Point: critical", "URI:" + shardURL, "Only User Certificates"} {
		if !strings.Contains(o, want) {
			t.Errorf("%s lacks %q:\n%s", shardName, want, o)
		}
	}
	verify := func(crlFile, certFile string, extra ...string) (string, error) {
		args := append([]string{"verify", "-crl_check"}, extra...)
		return tool(t, openssl, append(args, "-CAfile", p("chain.pem"), "-CRLfile", crlFile, certFile)...)
	}
	if o, err := verify(p("shard.pem"), bad.file); err == nil || !strings.Contains(o, "certificate revoked") {
		t.Errorf("verify -crl_check, revoked certificate, its shard CRL: %v\n%s", err, o)
	}
	if o, err := verify(p("shard.pem"), good.file); err != nil || !strings.Contains(o, ": OK") {
		t.Errorf("verify -crl_check, good certificate of the same shard: %v\n%s", err, o)
	}
	// Another shard's certificate: the IDP does not match its
	// distribution point, so this CRL is not one for it (OpenSSL 3.0:
	// "different CRL scope").
	if o, err := verify(p("shard.pem"), other.file); err == nil || !strings.Contains(o, "different CRL scope") && !strings.Contains(o, "unable to get certificate CRL") {
		t.Errorf("verify -crl_check, certificate of shard %d with the CRL of shard %d: %v\n%s", other.shard, bad.shard, err, o)
	}
	// Shard and root CRLs, every CA of the chain checked.
	rootCRL := fetch("root")
	os.WriteFile(p("shard+root.pem"), append(append([]byte{}, shardPEM...), rootCRL...), 0o644)
	if o, err := verify(p("shard+root.pem"), good.file, "-crl_check_all"); err != nil || !strings.Contains(o, ": OK") {
		t.Errorf("verify -crl_check_all, good certificate, shard and root CRLs: %v\n%s", err, o)
	}

	// The full CRL, for auditors, still lists it and has no IDP.
	full := fetch("issuing-1")
	os.WriteFile(p("full.pem"), full, 0o644)
	o, err = tool(t, openssl, "crl", "-in", p("full.pem"), "-CAfile", p("issuing.pem"), "-noout", "-text", "-verify")
	if err != nil || !strings.Contains(o, "verify OK") || strings.Contains(o, "Issuing Distribution Point") || !has(full, bad.serial) {
		t.Fatalf("full CRL: %v\n%s", err, o)
	}
	if o, err := verify(p("full.pem"), bad.file); err == nil || !strings.Contains(o, "certificate revoked") {
		t.Errorf("verify -crl_check, revoked certificate, full CRL: %v\n%s", err, o)
	}
	// The shards' age is exported.
	if _, m := get(t, "http://"+in.admin+"/metrics"); !strings.Contains(string(m), `zbca_crl_shards_max_age_seconds{crl="issuing-1"}`) ||
		strings.Contains(string(m), `zbca_crl_shards_max_age_seconds{crl="issuing-1"} -1`) {
		t.Errorf("no shard age metric for issuing-1")
	}
	// Beyond the shard count nothing is served.
	if resp, _ := get(t, fmt.Sprintf("http://%s/crl/issuing-1-%d.crl", in.http, shards)); resp.StatusCode != 404 {
		t.Errorf("/crl/issuing-1-%d.crl: %d", shards, resp.StatusCode)
	}

	// nginx with ssl_crl: every shard's CRL and the root's in one file.
	t.Run("nginx", func(t *testing.T) {
		nginxBin := nginxPath(t)
		curl := requireTool(t, "curl")
		var all []byte
		for k := range shards {
			all = append(all, fetch(fmt.Sprintf("issuing-1-%d", k))...)
		}
		all = append(all, rootCRL...)
		os.WriteFile(p("crls.pem"), all, 0o644)
		srvCA := writeServerIdentity(t, work)
		ng := startNginx(t, nginxBin, work, "crlshard", "ssl_crl "+p("crls.pem")+";")
		defer ng.stop()
		try := func(c *cert) string {
			out, _ := tool(t, curl, "-sS", "--max-time", "15", "--cacert", srvCA, "--cert", c.file, "--key", c.key,
				"-w", "\n%{http_code}", "https://127.0.0.1:"+ng.port+"/")
			return out[strings.LastIndexByte(out, '\n')+1:]
		}
		for _, c := range certs {
			want := "200"
			if c == bad {
				want = "400"
			}
			if got := try(c); got != want {
				t.Errorf("certificate %s of shard %d: HTTP %s, want %s\n%s", c.serial, c.shard, got, want, ng.diag(in))
			}
		}
		if !strings.Contains(ng.log(), "certificate revoked") {
			t.Errorf("nginx error log does not name the revocation:\n%s", ng.log())
		}
	})
}
