package acme_test

import (
	"crypto/x509"
	"encoding/base64"
	"net/http"
	"testing"

	"github.com/go-jose/go-jose/v4"

	"github.com/zbca/zbca/enroll"
	"github.com/zbca/zbca/store"
)

func revokePayload(c *x509.Certificate, reason *int) map[string]any {
	p := map[string]any{"certificate": base64.RawURLEncoding.EncodeToString(c.Raw)}
	if reason != nil {
		p["reason"] = *reason
	}
	return p
}

func intp(i int) *int { return &i }

// TestRevokeCert: RFC 8555 §7.6, by the owning account or the
// certificate's key, with a subscriber's reason.
func TestRevokeCert(t *testing.T) {
	e := newTestEnv(t, enroll.Policy{MaxActive: 10})
	a := e.account(t, "alpha")
	b := e.account(t, "beta")
	u := "/acme/revoke-cert"

	t.Run("refusals", func(t *testing.T) {
		_, cert, _ := e.issue(t, a, "alpha")
		thirdParty := newKey(t, jose.ES256) // no account, not the certificate's key
		cases := []struct {
			name    string
			k       *key
			payload any
			status  int
			typ     string
		}{
			{"third party's key (jwk)", thirdParty, revokePayload(cert, nil), 403, "unauthorized"},
			{"another enterprise's account (kid)", b, revokePayload(cert, nil), 403, "unauthorized"},
			{"reason cACompromise (2)", a, revokePayload(cert, intp(2)), 400, "badRevocationReason"},
			{"reason certificateHold (6)", a, revokePayload(cert, intp(6)), 400, "badRevocationReason"},
			{"reason privilegeWithdrawn (9)", a, revokePayload(cert, intp(9)), 400, "badRevocationReason"},
			{"reason -1", a, revokePayload(cert, intp(-1)), 400, "badRevocationReason"},
			{"reason 1000", a, revokePayload(cert, intp(1000)), 400, "badRevocationReason"},
			{"not a certificate", a, map[string]any{"certificate": "AAAA"}, 400, "malformed"},
			{"not base64url", a, map[string]any{"certificate": "***"}, 400, "malformed"},
			{"not issued here", a, revokePayload(e.auth.Issuing(), nil), 404, "malformed"},
			{"POST-as-GET", a, nil, 400, "malformed"},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				wantProblem(t, e.post(t, tc.k, u, tc.payload), tc.status, tc.typ)
				if rec := e.certStatus(t, cert); rec.Status != store.CertActive {
					t.Fatalf("certificate is %s after a refused revocation", rec.Status)
				}
			})
		}
	})

	t.Run("by the account key", func(t *testing.T) {
		_, cert, _ := e.issue(t, a, "alpha")
		wantStatus(t, e.post(t, a, u, revokePayload(cert, intp(1))), http.StatusOK)
		if rec := e.certStatus(t, cert); rec.Status != store.CertRevoked || rec.RevocationReason != 1 {
			t.Fatalf("after revokeCert: %s reason %d", rec.Status, rec.RevocationReason)
		}
		wantProblem(t, e.post(t, a, u, revokePayload(cert, nil)), http.StatusBadRequest, "alreadyRevoked")
	})

	t.Run("by another account of the enterprise", func(t *testing.T) {
		_, cert, _ := e.issue(t, a, "alpha")
		a2 := e.account(t, "alpha")
		wantStatus(t, e.post(t, a2, u, revokePayload(cert, nil)), http.StatusOK)
	})

	t.Run("by the certificate key", func(t *testing.T) {
		_, cert, ck := e.issue(t, a, "alpha")
		k := &key{signer: ck, alg: jose.ES256} // no kid: signed with the jwk
		wantStatus(t, e.post(t, k, u, revokePayload(cert, intp(4))), http.StatusOK)
		if rec := e.certStatus(t, cert); rec.Status != store.CertRevoked || rec.RevocationReason != 4 {
			t.Fatalf("after revokeCert: %s reason %d", rec.Status, rec.RevocationReason)
		}
		wantProblem(t, e.post(t, k, u, revokePayload(cert, nil)), http.StatusBadRequest, "alreadyRevoked")
	})

	t.Run("a certificate key cannot revoke another certificate", func(t *testing.T) {
		_, _, ck := e.issue(t, a, "alpha")
		_, second, _ := e.issue(t, a, "alpha")
		k := &key{signer: ck, alg: jose.ES256}
		wantProblem(t, e.post(t, k, u, revokePayload(second, nil)), http.StatusForbidden, "unauthorized")
		if rec := e.certStatus(t, second); rec.Status != store.CertActive {
			t.Fatalf("second certificate is %s", rec.Status)
		}
	})
}
