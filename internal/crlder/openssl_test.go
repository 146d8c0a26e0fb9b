package crlder

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// opensslReason is how openssl prints each CRLReason (RFC 5280 §5.3.1).
var opensslReason = map[int]string{
	1: "Key Compromise", 2: "CA Compromise", 3: "Affiliation Changed", 4: "Superseded",
	5: "Cessation Of Operation", 6: "Certificate Hold", 9: "Privilege Withdrawn", 10: "AA Compromise",
}

// TestOpenSSL checks our CRLs with a real peer: openssl parses, prints and
// verifies them, and rejects a revoked leaf through a partitioned (IDP) CRL.
func TestOpenSSL(t *testing.T) {
	bin, err := exec.LookPath("openssl")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("openssl not on PATH, and CI=true")
		}
		t.Skip("openssl not on PATH")
	}
	entries := sampleEntries()
	const uri = "http://crl.example.com/shard/5.crl"
	for name, ca := range issuers(t) {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			p := params(ca)
			p.IDP = &IssuingDistributionPoint{URI: uri, OnlyContainsUserCerts: true}
			der, err := Build(p, Entries(entries))
			if err != nil {
				t.Fatal(err)
			}
			crlPEM := writePEM(t, dir, "crl.pem", "X509 CRL", der)
			caPEM := writePEM(t, dir, "issuer.pem", "CERTIFICATE", ca.cert.Raw)
			run := func(args ...string) (string, error) {
				out, err := exec.Command(bin, args...).CombinedOutput()
				return string(out), err
			}

			out, err := run("crl", "-in", crlPEM, "-CAfile", caPEM, "-noout", "-text")
			if err != nil || !strings.Contains(out, "verify OK") {
				t.Fatalf("openssl crl -text: %v\n%s", err, out)
			}
			for _, want := range []string{"Version 2", "X509v3 Issuing Distribution Point: critical", "URI:" + uri, "Only User Certificates", "X509v3 CRL Number: \n                42"} {
				if !strings.Contains(out, want) {
					t.Errorf("openssl output lacks %q:\n%s", want, out)
				}
			}
			blocks := strings.Split(out, "Serial Number: ")[1:]
			if len(blocks) != len(entries) {
				t.Fatalf("openssl lists %d serials, want %d:\n%s", len(blocks), len(entries), out)
			}
			for i, e := range entries {
				b := blocks[i]
				if want := fmt.Sprintf("%X\n", e.Serial); !strings.HasPrefix(b, want) {
					t.Errorf("entry %d: openssl serial %q, want %q", i, b[:strings.IndexByte(b, '\n')+1], want)
				}
				hasReason := strings.Contains(b, "CRL Reason Code")
				if e.Reason == 0 && hasReason || e.Reason != 0 && !strings.Contains(b, "CRL Reason Code: \n                "+opensslReason[e.Reason]+"\n") {
					t.Errorf("entry %d: reason %d, openssl says:\n%s", i, e.Reason, b)
				}
			}

			if out, err := run("crl", "-in", crlPEM, "-CAfile", caPEM, "-noout", "-verify"); err != nil || !strings.Contains(out, "verify OK") {
				t.Errorf("openssl crl -verify: %v\n%s", err, out)
			}

			// Leaf certificates under the partition's URI: one revoked (a
			// serial with the high bit set), one not.
			at := strconv.FormatInt(p.ThisUpdate.Add(time.Hour).Unix(), 10)
			for _, leaf := range []struct {
				serial  []byte
				revoked bool
			}{{entries[6].Serial, true}, {[]byte{0x55, 0x66}, false}} {
				leafPEM := writePEM(t, dir, fmt.Sprintf("leaf-%x.pem", leaf.serial), "CERTIFICATE", issueLeaf(t, ca, leaf.serial, uri))
				out, err := run("verify", "-crl_check", "-attime", at, "-CAfile", caPEM, "-CRLfile", crlPEM, leafPEM)
				switch {
				case leaf.revoked && (err == nil || !strings.Contains(out, "certificate revoked")):
					t.Errorf("openssl verify of revoked leaf %x: %v\n%s", leaf.serial, err, out)
				case !leaf.revoked && (err != nil || !strings.Contains(out, ": OK")):
					t.Errorf("openssl verify of good leaf %x: %v\n%s", leaf.serial, err, out)
				}
			}
		})
	}
}

func writePEM(t *testing.T, dir, name, typ string, der []byte) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func issueLeaf(t *testing.T, ca testCA, serial []byte, crlURI string) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          new(big.Int).SetBytes(serial),
		Subject:               pkix.Name{CommonName: "leaf.example.com"},
		DNSNames:              []string{"leaf.example.com"},
		NotBefore:             time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC),
		NotAfter:              time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		CRLDistributionPoints: []string{crlURI},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, key.Public(), ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return der
}
