package ocspder_test

import (
	"bytes"
	"crypto"
	"encoding/pem"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/zbca/zbca/internal/ocspder"
)

// openssl returns a function running openssl in a directory holding
// root.pem, issuer.pem, leaf.pem and responder.pem. Without openssl the
// test is skipped, or fails when CI=true.
func openssl(t *testing.T, p *testPKI) (dir string, run func(args ...string) (string, error)) {
	t.Helper()
	bin, err := exec.LookPath("openssl")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("openssl is required when CI=true: %v", err)
		}
		t.Skipf("openssl not found: %v", err)
	}
	dir = t.TempDir()
	for name, der := range map[string][]byte{
		"root.pem": p.root.Raw, "issuer.pem": p.issuer.Raw, "leaf.pem": p.leaf.Raw, "responder.pem": p.responder.Raw,
	} {
		if err := os.WriteFile(filepath.Join(dir, name), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir, func(args ...string) (string, error) {
		cmd := exec.Command(bin, args...)
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
}

func TestOpenSSLReadsResponses(t *testing.T) {
	p := pki(t)
	dir, run := openssl(t, p)
	s := p.delegatedSigner(t)
	for _, h := range []crypto.Hash{crypto.SHA1, crypto.SHA256} {
		req, err := ocspder.ParseRequest(p.request(t, h))
		if err != nil {
			t.Fatal(err)
		}
		for _, tt := range responseCases {
			t.Run(h.String()+"/"+tt.name, func(t *testing.T) {
				r := p.response(req, ocspder.Good)
				tt.edit(r)
				der, err := s.Sign(r)
				if err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(dir, "resp.der"), der, 0o600); err != nil {
					t.Fatal(err)
				}
				wantStatus := map[int]string{ocspder.Good: "leaf.pem: good", ocspder.Revoked: "leaf.pem: revoked", ocspder.Unknown: "leaf.pem: unknown"}[r.Status]
				digest := "-" + strings.ToLower(strings.ReplaceAll(h.String(), "-", ""))
				// -no_nonce: the request openssl builds from -cert must not
				// carry a nonce of its own to compare with the response's.
				common := []string{"ocsp", "-respin", "resp.der", "-issuer", "issuer.pem", "-no_nonce", digest, "-cert", "leaf.pem", "-resp_text"}
				for _, v := range []struct {
					name string
					args []string
					want string
				}{
					{"noverify", []string{"-CAfile", "root.pem", "-noverify"}, ""},
					{"chain to root", []string{"-CAfile", "root.pem", "-verify_other", "issuer.pem"}, "Response verify OK"},
					{"VAfile", []string{"-VAfile", "responder.pem"}, "Response verify OK"},
				} {
					out, err := run(append(common, v.args...)...)
					if err != nil || !strings.Contains(out, wantStatus) || !strings.Contains(out, v.want) ||
						strings.Contains(out, "WARNING") || strings.Contains(out, "rror") {
						t.Errorf("openssl %s: %v\n%s", v.name, err, out)
					}
				}
				out, _ := run(append(common, "-noverify")...)
				if r.Status == ocspder.Revoked {
					reason := "Reason:"
					if !strings.Contains(out, reason) != (r.Reason == ocspder.NoReason) {
						t.Errorf("revocation reason presence wrong:\n%s", out)
					}
				}
				// OpenSSL 3.0 names 1.3.6.1.5.5.7.48.1.9 "valid", after
				// id-pkix-ocsp-valid of an RFC 2560 draft.
				if r.ExtendedRevoke && !strings.Contains(out, "valid:") {
					t.Errorf("no extended revoke extension:\n%s", out)
				}
				if r.Nonce != nil && !strings.Contains(out, "OCSP Nonce") {
					t.Errorf("no nonce extension:\n%s", out)
				}
			})
		}
	}
}

func TestOpenSSLRequests(t *testing.T) {
	p := pki(t)
	dir, run := openssl(t, p)
	s := p.delegatedSigner(t)
	tests := []struct {
		name  string
		flags []string
		hash  crypto.Hash
		nonce bool
	}{
		{"default", nil, crypto.SHA1, true},
		{"no_nonce", []string{"-no_nonce"}, crypto.SHA1, false},
		{"sha256", []string{"-sha256"}, crypto.SHA256, true},
		{"sha256 no_nonce", []string{"-sha256", "-no_nonce"}, crypto.SHA256, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// The digest flag applies to the -cert options after it.
			args := append([]string{"ocsp", "-issuer", "issuer.pem"}, tt.flags...)
			args = append(args, "-cert", "leaf.pem", "-reqout", "req.der")
			if out, err := run(args...); err != nil {
				t.Fatalf("openssl %v: %v\n%s", args, err, out)
			}
			der, err := os.ReadFile(filepath.Join(dir, "req.der"))
			if err != nil {
				t.Fatal(err)
			}
			req, err := ocspder.ParseRequest(der)
			if err != nil {
				t.Fatalf("ParseRequest(%x): %v", der, err)
			}
			if req.HashAlgorithm != tt.hash || !bytes.Equal(req.Serial, p.leaf.SerialNumber.Bytes()) ||
				req.HasNonce != tt.nonce || tt.nonce && len(req.Nonce) != 16 {
				t.Fatalf("ParseRequest = %+v", req)
			}

			// Answer it, echoing the nonce. With -reqin and no -cert,
			// openssl checks the signature and the nonce against req.der
			// (a -cert would make it build a new request with a new nonce);
			// with -cert and -no_nonce it matches the CertID.
			r := p.response(req, ocspder.Good)
			r.Nonce = req.Nonce
			resp, err := s.Sign(r)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, "resp.der"), resp, 0o600); err != nil {
				t.Fatal(err)
			}
			check := []string{"ocsp", "-reqin", "req.der", "-respin", "resp.der", "-VAfile", "responder.pem"}
			out, err := run(check...)
			if err != nil || !strings.Contains(out, "Response verify OK") || strings.Contains(out, "WARNING") || strings.Contains(out, "rror") {
				t.Errorf("openssl %v: %v\n%s", check, err, out)
			}
			status := append([]string{"ocsp", "-respin", "resp.der", "-issuer", "issuer.pem", "-no_nonce"}, tt.flags...)
			status = append(status, "-cert", "leaf.pem", "-VAfile", "responder.pem")
			out, err = run(status...)
			if err != nil || !strings.Contains(out, "Response verify OK") || !strings.Contains(out, "leaf.pem: good") ||
				strings.Contains(out, "WARNING") || strings.Contains(out, "rror") {
				t.Errorf("openssl %v: %v\n%s", status, err, out)
			}

			if !tt.nonce {
				return
			}
			// A different nonce must fail openssl's check.
			r.Nonce = append([]byte{^req.Nonce[0]}, req.Nonce[1:]...)
			if resp, err = s.Sign(r); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, "resp.der"), resp, 0o600); err != nil {
				t.Fatal(err)
			}
			if out, err := run(check...); err == nil && !strings.Contains(out, "Nonce Verify error") {
				t.Errorf("openssl accepted a wrong nonce:\n%s", out)
			}
		})
	}
}
