//go:build integration

package integration

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestRollover rolls the issuing CA over as an operator does (stop, `zbca
// ca rollover`, start) and checks with openssl, nginx and the verification
// API that certificates of the retired issuing CA keep working: OCSP
// answers (good, then revoked) signed by the retired CA, its CRL still
// published and updated, verification through /pki/issuers.pem; and that
// new certificates come from the new issuing CA.
func TestRollover(t *testing.T) {
	openssl := requireTool(t, "openssl")
	curl := requireTool(t, "curl")
	nginxBin := nginxPath(t)
	in := newInstance(t, "crl:\n  delay: 2s\nenroll:\n  policy:\n    max_active: 100\n    max_per_day: 1000000\n")
	in.start()
	work := t.TempDir()
	p := func(n string) string { return filepath.Join(work, n) }
	for _, name := range []string{"alpha", "beta", "gamma"} {
		in.mustRun(testPassword+"\n", "enterprise", "add", name, "--name", strings.ToUpper(name)+" Ltd", "--password-stdin")
	}
	issue := func(name string) string {
		writeClientCSR(t, p(name+".csr"), p(name+".key"), name)
		in.mustRun("", "cert", "issue", "--enterprise", name, "--csr", p(name+".csr"), "--out", p(name+".pem"))
		o, _ := tool(t, openssl, "x509", "-in", p(name+".pem"), "-noout", "-serial")
		return strings.TrimLeft(strings.ToLower(strings.TrimSpace(strings.TrimPrefix(o, "serial="))), "0")
	}
	alphaSerial := issue("alpha") // issuing-1, revoked after the rollover
	issue("gamma")                // issuing-1, stays good
	_, iss1 := get(t, "http://"+in.http+"/pki/issuing-1.crt")

	// A running server holds the CA: rollover refuses and changes nothing.
	if out, errOut, err := in.run("", "ca", "rollover"); err == nil || !strings.Contains(errOut, "stop it before the rollover") {
		t.Fatalf("rollover beside a running server: %v\n%s%s", err, out, errOut)
	}
	in.stop()
	out := in.mustRun("", "ca", "rollover")
	if !strings.Contains(out, "retired   issuing-1") || !strings.Contains(out, "current   issuing-2") {
		t.Fatalf("rollover printed:\n%s", out)
	}
	list := in.mustRun("", "ca", "list")
	if !regexpLine(list, `issuing-2 +current .* G2 `) || !regexpLine(list, `issuing-1 +retired `) {
		t.Fatalf("ca list:\n%s", list)
	}
	in.start()

	betaSerial := issue("beta") // issuing-2
	_, root := get(t, "http://"+in.http+"/pki/root.pem")
	_, iss1PEM := get(t, "http://"+in.http+"/pki/issuing-1.crt")
	_, chain := get(t, "http://"+in.http+"/pki/chain.pem")
	_, issuers := get(t, "http://"+in.http+"/pki/issuers.pem")
	if !bytes.Equal(iss1PEM, iss1) {
		t.Fatal("/pki/issuing-1.crt changed with the rollover")
	}
	os.WriteFile(p("root.pem"), root, 0o644)
	os.WriteFile(p("issuers.pem"), issuers, 0o644)
	if n := bytes.Count(issuers, []byte("BEGIN CERTIFICATE")); n != 3 {
		t.Fatalf("/pki/issuers.pem holds %d certificates, want 3 (two issuing CAs and the root)", n)
	}
	// Each issuing CA in PEM, for openssl's -issuer and -CAfile.
	writeDER := func(name string, der []byte) {
		os.WriteFile(p(name+".der"), der, 0o644)
		if o, err := tool(t, openssl, "x509", "-inform", "DER", "-in", p(name+".der"), "-out", p(name+".pem")); err != nil {
			t.Fatalf("%v %s", err, o)
		}
	}
	writeDER("issuing-1", iss1)
	_, iss2 := get(t, "http://"+in.http+"/pki/issuing-2.crt")
	writeDER("issuing-2", iss2)
	if !bytes.HasPrefix(chain, mustRead(t, p("issuing-2.pem"))) {
		t.Error("/pki/chain.pem does not start with the new issuing CA")
	}
	for name, want := range map[string]string{"alpha": "G2", "beta": "G2"} {
		o, _ := tool(t, openssl, "x509", "-in", p(name+".pem"), "-noout", "-issuer")
		if has := strings.Contains(o, want); has != (name == "beta") {
			t.Errorf("%s's issuer: %s", name, o)
		}
	}

	url := "http://" + in.http + "/ocsp"
	ocspStatus := func(cert, issuer string, extra ...string) string {
		t.Helper()
		args := append([]string{"ocsp"}, extra...)
		args = append(args, "-issuer", p(issuer+".pem"), "-CAfile", p("root.pem"), "-url", url, "-cert", p(cert+".pem"))
		o, err := tool(t, openssl, args...)
		if err != nil || !strings.Contains(o, "Response verify OK") {
			t.Fatalf("openssl %v: %v\n%s", args, err, o)
		}
		return o
	}
	for _, v := range [][]string{{}, {"-no_nonce", "-sha256"}} {
		for _, c := range [][2]string{{"alpha", "issuing-1"}, {"gamma", "issuing-1"}, {"beta", "issuing-2"}} {
			if o := ocspStatus(c[0], c[1], v...); !strings.Contains(o, ": good") {
				t.Errorf("%s (%s) %v before revocation:\n%s", c[0], c[1], v, o)
			}
		}
	}
	revoke(t, in, alphaSerial)
	if o := ocspStatus("alpha", "issuing-1", "-no_nonce"); !strings.Contains(o, ": revoked") {
		t.Errorf("alpha after revocation:\n%s", o)
	}
	if o := ocspStatus("beta", "issuing-2", "-no_nonce"); !strings.Contains(o, ": good") {
		t.Errorf("beta after alpha's revocation:\n%s", o)
	}

	// CRLs: the retired CA's lists alpha (within crl.delay), the new one's
	// does not; each verifies against its own CA; openssl verify with the
	// CRLs of the whole chain agrees.
	crl := func(name string) string {
		_, b := get(t, "http://"+in.http+"/crl/"+name+".pem")
		os.WriteFile(p(name+".crl.pem"), b, 0o644)
		return p(name + ".crl.pem")
	}
	waitFor(t, 20*time.Second, func() bool {
		o, _ := tool(t, openssl, "crl", "-in", crl("issuing-1"), "-noout", "-text")
		return strings.Contains(strings.ToLower(o), alphaSerial)
	}, func() string { return "alpha's revocation not in /crl/issuing-1.pem within 20 s" })
	for _, name := range []string{"issuing-1", "issuing-2"} {
		o, err := tool(t, openssl, "crl", "-in", crl(name), "-CAfile", p(name+".pem"), "-noout", "-text", "-verify")
		if err != nil || !strings.Contains(o, "verify OK") {
			t.Fatalf("CRL of %s: %v\n%s", name, err, o)
		}
		if has := strings.Contains(strings.ToLower(o), alphaSerial); has != (name == "issuing-1") || strings.Contains(strings.ToLower(o), betaSerial) {
			t.Errorf("CRL of %s lists alpha: %v\n%s", name, has, o)
		}
	}
	var crls []byte
	for _, name := range []string{"issuing-1", "issuing-2", "root"} {
		crls = append(crls, mustRead(t, crl(name))...)
	}
	os.WriteFile(p("crls.pem"), crls, 0o644)
	for name, want := range map[string]string{"alpha": "certificate revoked", "beta": ": OK", "gamma": ": OK"} {
		o, _ := tool(t, openssl, "verify", "-crl_check_all", "-CAfile", p("root.pem"), "-untrusted", p("issuers.pem"), "-CRLfile", p("crls.pem"), p(name+".pem"))
		if !strings.Contains(o, want) {
			t.Errorf("openssl verify -crl_check_all %s: want %q\n%s", name, want, o)
		}
	}

	// The verification API knows both issuing CAs.
	key := strings.TrimSpace(in.mustRun("", "apikey", "add", "site"))
	client := in.httpsClient(t)
	for name, want := range map[string]string{"alpha": "revoked", "beta": "valid", "gamma": "valid"} {
		body, _ := json.Marshal(map[string]string{"certificate": string(mustRead(t, p(name+".pem"))), "username": name})
		req, _ := http.NewRequest("POST", "https://"+in.https+"/api/v1/verify", bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+key)
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var v struct{ Result string }
		json.NewDecoder(resp.Body).Decode(&v)
		resp.Body.Close()
		if v.Result != want {
			t.Errorf("verify %s: %q, want %q", name, v.Result, want)
		}
	}

	// nginx accepting every issuing CA zbca has had (issuers.pem), with
	// OCSP: gamma (old CA) and beta (new) in, alpha (old, revoked) out.
	srvCA := writeServerIdentity(t, work)
	os.WriteFile(p("zbca-chain.pem"), issuers, 0o644)
	ng := startNginx(t, nginxBin, work, "rollover", fmt.Sprintf("ssl_ocsp leaf;\n        ssl_ocsp_responder %s;\n        ssl_ocsp_cache off;", url))
	defer ng.stop()
	for name, want := range map[string]int{"alpha": 400, "beta": 200, "gamma": 200} {
		o, _ := exec.Command(curl, "-sS", "--max-time", "15", "--cacert", srvCA, "--cert", p(name+".pem"), "--key", p(name+".key"),
			"-o", "/dev/null", "-w", "%{http_code}", "https://127.0.0.1:"+ng.port+"/").CombinedOutput()
		if code, _ := strconv.Atoi(strings.TrimSpace(string(o))); code != want {
			t.Errorf("nginx, %s: %s, want %d\n%s", name, o, want, ng.diag(in))
		}
	}
	if o := in.mustRun("", "audit", "verify"); !strings.Contains(o, "audit log intact") {
		t.Errorf("audit verify: %s", o)
	}
}

// regexpLine reports whether a line of s matches the expression.
func regexpLine(s, expr string) bool {
	return regexp.MustCompile(`(?m)^` + expr).MatchString(s)
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
