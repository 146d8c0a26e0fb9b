//go:build integration

package integration

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/zbca/zbca/ca"
	"github.com/zbca/zbca/config"
	"github.com/zbca/zbca/store"
)

// TestLeapDayCertificate: a certificate issued on 29 February (the CA's
// clock is faked; the binary has no fake clock) ends exactly three
// calendar years after its NotBefore, and openssl and zlint accept it at
// that date.
func TestLeapDayCertificate(t *testing.T) {
	openssl := requireTool(t, "openssl")
	now := time.Date(2028, 2, 29, 12, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	dir := t.TempDir()
	ctx := context.Background()
	st, err := store.Open(ctx, store.Options{Path: filepath.Join(dir, "zbca.db"), Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	c := config.Default()
	c.DataDir = dir
	c.Resolve()
	a, err := ca.Init(ctx, ca.Options{Dir: filepath.Join(dir, "ca"), Config: c.CA, PublicURL: "http://pki.test", TLSHosts: c.HTTPS.Hosts, Store: st, Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if err := st.AddEnterprise(ctx, &store.Enterprise{Username: "acme", Name: "ACME", PasswordHash: "x"}, store.AuditEvent{Actor: "t", Action: "enterprise.add"}); err != nil {
		t.Fatal(err)
	}
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, k)
	csr, _ := ca.ParseCSR(der)
	iss, err := a.Issue(ctx, ca.IssueRequest{CSR: csr, Username: "acme", Actor: "test"})
	if err != nil {
		t.Fatal(err)
	}
	cert := iss.Certificate
	if !cert.NotAfter.Equal(cert.NotBefore.AddDate(3, 0, 0)) || cert.NotAfter.Format(time.DateOnly) != "2031-03-01" {
		t.Fatalf("validity %s – %s", cert.NotBefore, cert.NotAfter)
	}
	leaf := filepath.Join(dir, "leaf.pem")
	os.WriteFile(leaf, iss.PEMChain(), 0o644)
	os.WriteFile(filepath.Join(dir, "root.pem"), pemBlock(a.Root().Raw), 0o644)
	at := strconv.FormatInt(now.Add(24*time.Hour).Unix(), 10)
	o, err := tool(t, openssl, "verify", "-attime", at, "-purpose", "sslclient", "-CAfile", filepath.Join(dir, "root.pem"), "-untrusted", leaf, leaf)
	if err != nil || !strings.Contains(o, "OK") {
		t.Fatalf("openssl verify at 2028-03-01: %v %s", err, o)
	}
	o, _ = tool(t, openssl, "x509", "-in", leaf, "-noout", "-enddate")
	if !strings.Contains(o, "Mar  1 11:55:00 2031 GMT") {
		t.Errorf("openssl sees %s", o)
	}
	zlintRFC5280(t, "leap-day client", cert.Raw)
}
