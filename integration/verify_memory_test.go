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
)

// TestVerifyOfflineRevocation: the verification API answers statuses from
// memory on SQLite, re-read after every commit. A revocation written
// straight into the database by another process (`zbca cert revoke
// --offline`, which bypasses the server) must count at the very next
// verification, not at the next 1-second poll.
func TestVerifyOfflineRevocation(t *testing.T) {
	in := newInstance(t, "")
	in.start()
	if !strings.Contains(in.stderr.String(), "verification reads statuses from memory") {
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
		if r := verify(cert); r != "revoked" {
			t.Fatalf("%s right after `zbca cert revoke --offline` returned: %s, want revoked", name, r)
		}
	}
}
