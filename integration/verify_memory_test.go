//go:build integration

package integration

import (
	"bytes"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestVerifyOfflineRevocation: the verification API answers statuses from
// memory (the status feed). A revocation written straight into the
// database by another process (`zbca cert revoke --offline`, which
// bypasses the server and announces nothing) counts within the feed's
// poll (100 ms on SQLite; README promises ≤ 1 s); one made through the
// server counts at the very next verification.
func TestVerifyOfflineRevocation(t *testing.T) {
	in := newInstance(t, "")
	in.start()
	if !strings.Contains(in.stderr.String(), "status feed: OCSP, CRLs and verification follow the status changes from memory") {
		t.Fatalf("serve did not say where verification reads statuses:\n%s", in.stderr)
	}
	work := t.TempDir()
	p := func(n string) string { return filepath.Join(work, n) }
	in.mustRun(testPassword+"\n", "enterprise", "add", "acme", "--name", "ACME", "--password-stdin")
	key := strings.TrimSpace(in.mustRun("", "apikey", "add", "site"))
	client := in.httpsClient(t)
	verify := func(cert []byte) string {
		t.Helper()
		body, _ := json.Marshal(map[string]string{"certificate": string(cert)})
		req, _ := http.NewRequest("POST", "https://"+in.https+"/api/v1/verify", bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+key)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var v struct{ Result string }
		json.NewDecoder(resp.Body).Decode(&v)
		return v.Result
	}
	for i := range 5 {
		name := "c" + string(rune('0'+i))
		writeClientCSR(t, p(name+".csr"), p(name+".key"), "acme")
		in.mustRun("", "cert", "issue", "--enterprise", "acme", "--csr", p(name+".csr"), "--out", p(name+".pem"))
		der := firstPEM(t, p(name+".pem"))
		leaf, err := x509.ParseCertificate(der)
		if err != nil {
			t.Fatal(err)
		}
		cert := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
		for range 3 {
			if r := verify(cert); r != "valid" {
				t.Fatalf("%s before revocation: %s", name, r)
			}
		}
		out, errOut, err := in.run("", "cert", "revoke", fmt.Sprintf("%x", leaf.SerialNumber), "--reason", "keyCompromise", "--offline")
		if err != nil {
			t.Fatalf("revoke --offline: %v\n%s%s", err, out, errOut)
		}
		start := time.Now()
		for r := verify(cert); r != "revoked"; r = verify(cert) {
			if time.Since(start) > time.Second {
				t.Fatalf("%s a second after `zbca cert revoke --offline` returned: %s, want revoked", name, r)
			}
			time.Sleep(5 * time.Millisecond)
		}
		t.Logf("%s: revoked by another process, answered revoked after %v", name, time.Since(start).Round(time.Millisecond))
	}
	// Through the server: at the very next verification.
	writeClientCSR(t, p("s.csr"), p("s.key"), "acme")
	in.mustRun("", "cert", "issue", "--enterprise", "acme", "--csr", p("s.csr"), "--out", p("s.pem"))
	der := firstPEM(t, p("s.pem"))
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	cert := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	if r := verify(cert); r != "valid" {
		t.Fatalf("issued through the server: %s", r)
	}
	in.mustRun("", "cert", "revoke", fmt.Sprintf("%x", leaf.SerialNumber), "--reason", "keyCompromise")
	if r := verify(cert); r != "revoked" {
		t.Fatalf("right after `zbca cert revoke` (through the server) returned: %s, want revoked", r)
	}
}
