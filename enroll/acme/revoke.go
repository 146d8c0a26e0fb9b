package acme

import (
	"crypto"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/zbca/zbca/ca"
	"github.com/zbca/zbca/internal/zerr"
	"github.com/zbca/zbca/revocation"
)

// revokeCert (RFC 8555 §7.6): signed by the account that owns the
// certificate (kid) or by the certificate's own key (jwk); reasons limited
// to those a subscriber may choose.
func (s *Server) revokeCert(c echo.Context) error {
	var p struct {
		Certificate string `json:"certificate"`
		Reason      *int   `json:"reason"`
	}
	var serial string
	reason := revocation.Unspecified
	// Who may revoke is checked, read-only, before the nonce is spent: a
	// request signed by a key that owns nothing writes nothing.
	req, err := s.verifyWith(c, byEither, func(req *request) error {
		if err := strictJSON(req.payload, &p); err != nil {
			return err
		}
		der, err := base64.RawURLEncoding.DecodeString(p.Certificate)
		if err != nil {
			return malformed("certificate is not base64url DER")
		}
		cert, err := x509.ParseCertificate(der)
		if err != nil {
			return malformed("certificate cannot be parsed")
		}
		serial = ca.SerialHex(cert.SerialNumber)
		rec, err := s.o.Store.GetCertificate(c.Request().Context(), serial)
		if err != nil || string(rec.DER) != string(der) {
			return &Problem{Type: ns + "malformed", Status: http.StatusNotFound, Detail: "this certificate was not issued here"}
		}
		switch {
		case req.account != nil:
			if rec.EnterpriseID != req.account.EnterpriseID {
				return unauthorized("the account's enterprise does not own this certificate")
			}
		default:
			pub, ok := cert.PublicKey.(interface{ Equal(crypto.PublicKey) bool })
			if !ok || !pub.Equal(req.jwk.Key) {
				return unauthorized("the JWS is signed neither by the owning account nor by the certificate's key")
			}
		}
		if p.Reason != nil {
			if reason = revocation.Reason(*p.Reason); !reason.SubscriberMay() {
				return badRevocationReason("a subscriber may use the reasons unspecified (0), keyCompromise (1), affiliationChanged (3), superseded (4), cessationOfOperation (5)")
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	actor := "acme:certificate-key"
	if req.account != nil {
		actor = "acme:" + req.account.ID
	}
	if _, err := s.o.Revocation.Revoke(c.Request().Context(), serial, reason, actor, revocation.BySubscriber); err != nil {
		if errors.Is(err, zerr.Conflict) {
			return alreadyRevoked("the certificate is already revoked")
		}
		return err
	}
	return c.NoContent(http.StatusOK)
}
