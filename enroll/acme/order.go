package acme

import (
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/zbca/zbca/ca"
	"github.com/zbca/zbca/enroll"
	"github.com/zbca/zbca/internal/zerr"
	"github.com/zbca/zbca/store"
)

// IdentifierType is the one identifier type zbca certifies.
const IdentifierType = "enterprise"

type identifier struct {
	Type  string `json:"type"`
	Value string `json:"value"`
}

type orderJSON struct {
	Status         string       `json:"status"`
	Expires        time.Time    `json:"expires"`
	Identifiers    []identifier `json:"identifiers"`
	Authorizations []string     `json:"authorizations"`
	Finalize       string       `json:"finalize"`
	Certificate    string       `json:"certificate,omitempty"`
	Error          *Problem     `json:"error,omitempty"`
}

func (s *Server) orderJSON(c echo.Context, o *store.ACMEOrder) orderJSON {
	j := orderJSON{
		Status: o.Status, Expires: o.ExpiresAt.UTC(), Identifiers: []identifier{{IdentifierType, o.Identifier}},
		Authorizations: []string{s.base(c) + "/acme/authz/" + o.ID},
		Finalize:       s.orderURL(c, o.ID) + "/finalize",
	}
	if o.Status == "valid" && o.Serial != "" {
		j.Certificate = s.base(c) + "/acme/cert/" + o.Serial
	}
	if o.Status == "invalid" && o.Error != "" {
		j.Error = serverInternal()
	}
	return j
}

// newOrder (RFC 8555 §7.4): the only identifier is the account's
// enterprise; its authorization is valid at once, so the order is ready.
func (s *Server) newOrder(c echo.Context) error {
	req, err := s.verify(c, byKID)
	if err != nil {
		return err
	}
	var p struct {
		Identifiers []identifier `json:"identifiers"`
		NotBefore   string       `json:"notBefore"`
		NotAfter    string       `json:"notAfter"`
	}
	if err := strictJSON(req.payload, &p); err != nil {
		return err
	}
	if p.NotBefore != "" || p.NotAfter != "" {
		return malformed("notBefore and notAfter are not supported: certificates are valid for three years from issuance")
	}
	if len(p.Identifiers) != 1 {
		return rejectedIdentifier(`exactly one identifier is accepted: {"type":"enterprise","value":"<your username>"}`)
	}
	id := p.Identifiers[0]
	if id.Type != IdentifierType {
		return rejectedIdentifier("identifier type " + quote(id.Type) + ` is not accepted: use {"type":"enterprise","value":"<your username>"}`)
	}
	if id.Value != req.account.Username {
		return unauthorized("this account belongs to enterprise " + quote(req.account.Username) + ", not " + quote(id.Value))
	}
	now := s.o.Now()
	o := &store.ACMEOrder{ID: randomID(), AccountID: req.account.ID, Status: "ready", Identifier: id.Value, CreatedAt: now, ExpiresAt: now.Add(s.o.OrderLifetime).Truncate(time.Second)}
	if err := s.o.Store.AddACMEOrder(c.Request().Context(), o, s.o.MaxPendingOrders); err != nil {
		return err
	}
	c.Response().Header().Set("Location", s.orderURL(c, o.ID))
	return c.JSON(http.StatusCreated, s.orderJSON(c, o))
}

// ownOrder loads an order of the requesting account.
func (s *Server) ownOrder(c echo.Context, req *request) (*store.ACMEOrder, error) {
	o, err := s.o.Store.GetACMEOrder(c.Request().Context(), c.Param("id"))
	if errors.Is(err, zerr.NotFound) || (err == nil && o.AccountID != req.account.ID) {
		return nil, &Problem{Type: ns + "malformed", Status: http.StatusNotFound, Detail: "no such order"}
	}
	if err != nil {
		return nil, err
	}
	if o.Status != "valid" && o.Status != "invalid" && s.o.Now().After(o.ExpiresAt) {
		o.Status = "invalid"
	}
	return o, nil
}

func (s *Server) getOrder(c echo.Context) error {
	req, err := s.verifyGet(c)
	if err != nil {
		return err
	}
	o, err := s.ownOrder(c, req)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, s.orderJSON(c, o))
}

// getAuthz answers the order's one authorization, valid from the start: the
// EAB by password was the proof of control.
func (s *Server) getAuthz(c echo.Context) error {
	req, err := s.verifyGet(c)
	if err != nil {
		return err
	}
	o, err := s.ownOrder(c, req)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{
		"status": "valid", "expires": o.ExpiresAt.UTC(), "identifier": identifier{IdentifierType, o.Identifier}, "challenges": []any{},
	})
}

// finalize (RFC 8555 §7.4): the CSR's subject is ignored; its signature
// and key are checked by the CA and the enrollment policy. The order moves
// ready → processing in the transaction that journals the serial, so a
// repeated finalize never issues twice, and processing → valid in the one
// that stores the certificate (processing → invalid if the serial fails).
// A CSR or a policy refusal writes nothing: the order stays ready for
// another CSR.
func (s *Server) finalize(c echo.Context) error {
	req, err := s.verify(c, byKID)
	if err != nil {
		return err
	}
	o, err := s.ownOrder(c, req)
	if err != nil {
		return err
	}
	if o.Status != "ready" {
		return orderNotReady("the order is " + o.Status)
	}
	var p struct {
		CSR string `json:"csr"`
	}
	if err := strictJSON(req.payload, &p); err != nil {
		return err
	}
	der, err := base64.RawURLEncoding.DecodeString(p.CSR)
	if err != nil || len(der) == 0 {
		return badCSR("csr is not base64url DER")
	}
	csr, err := ca.DecodeCSR(der)
	if err != nil {
		return badCSR(err.Error())
	}
	ctx := c.Request().Context()
	iss, err := s.o.Enroll.Issue(ctx, enroll.Request{Username: req.account.Username, CSR: csr, Actor: "acme:" + req.account.ID, ACMEOrder: o.ID,
		CredentialEpoch: &req.account.Epoch})
	switch {
	case errors.Is(err, store.ErrAccessEnded):
		// A passwd, disable or logout committed while this request was in
		// flight: nothing was journaled, the order stays ready for nobody.
		return accessEnded()
	case errors.Is(err, store.ErrOrderNotReady):
		return orderNotReady("the order is being finalized or was finalized")
	case err != nil && (zerr.KindOf(err) == zerr.BadCSR || zerr.KindOf(err) == zerr.Policy):
		return err // the client may send another CSR
	case err != nil:
		// Refused before its serial was journaled (the enterprise is gone
		// or disabled), the order is still ready; after, the failed serial
		// made it invalid already.
		_ = s.o.Store.SetACMEOrderStatus(context.WithoutCancel(ctx), o.ID, "ready", "invalid", "", err.Error())
		return err
	}
	s.issued.put(iss.Record.Serial, iss.Record.EnterpriseID, iss.Record.DER)
	o.Status, o.Serial = "valid", iss.Record.Serial
	c.Response().Header().Set("Location", s.orderURL(c, o.ID))
	return c.JSON(http.StatusOK, s.orderJSON(c, o))
}

// getCert downloads a certificate of the account's enterprise with its
// issuing CA, as application/pem-certificate-chain (RFC 8555 §7.4.2).
func (s *Server) getCert(c echo.Context) error {
	req, err := s.verifyGet(c)
	if err != nil {
		return err
	}
	serial, err := ca.NormalizeSerial(c.Param("serial"))
	if err != nil {
		return malformed(err.Error())
	}
	ic, ok := s.issued.get(serial)
	if !ok {
		if rec, err := s.o.Store.GetCertificate(c.Request().Context(), serial); err == nil {
			ic, ok = issuedCert{enterpriseID: rec.EnterpriseID, der: rec.DER}, true
		}
	}
	if !ok || ic.enterpriseID != req.account.EnterpriseID {
		return &Problem{Type: ns + "malformed", Status: http.StatusNotFound, Detail: "no such certificate"}
	}
	chain := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ic.der})
	chain = append(chain, s.issuerPEM(ic.der)...)
	return c.Blob(http.StatusOK, "application/pem-certificate-chain", chain)
}

// issuerPEM returns the PEM of the issuing CA that signed der: after a
// rollover, certificates of the older issuing CA are still downloadable.
func (s *Server) issuerPEM(der []byte) []byte {
	if c, err := x509.ParseCertificate(der); err == nil {
		if b, ok := s.issuingPEM[string(c.AuthorityKeyId)]; ok {
			return b
		}
	}
	return s.currentPEM
}

// verifyGet verifies a POST-as-GET read (RFC 8555 §6.3): signed by the
// account key, with an empty payload.
func (s *Server) verifyGet(c echo.Context) (*request, error) {
	req, err := s.verify(c, byKID)
	if err != nil {
		return nil, err
	}
	if !req.postAsGet {
		return nil, malformed("use POST-as-GET (an empty payload)")
	}
	return req, nil
}
