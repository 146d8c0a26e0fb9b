package acme

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"

	"github.com/go-jose/go-jose/v4"
	"github.com/labstack/echo/v4"

	"github.com/zbca/zbca/internal/zerr"
	"github.com/zbca/zbca/store"
)

type accountJSON struct {
	Status  string   `json:"status"`
	Contact []string `json:"contact"`
	Orders  string   `json:"orders,omitempty"`
}

func (s *Server) writeAccount(c echo.Context, a *store.ACMEAccount, code int) error {
	var contact []string
	_ = json.Unmarshal([]byte(a.Contact), &contact)
	if contact == nil {
		contact = []string{}
	}
	c.Response().Header().Set("Location", s.accountURL(c, a.ID))
	return c.JSON(code, accountJSON{Status: a.Status, Contact: contact})
}

// newAccount (RFC 8555 §7.3) requires External Account Binding (§7.3.4):
// the EAB key binds the account to the enterprise that obtained it. The
// binding is checked, read-only, before the nonce is spent: a request with
// no usable EAB key writes nothing.
func (s *Server) newAccount(c echo.Context) error {
	ctx := c.Request().Context()
	var p struct {
		Contact              []string        `json:"contact"`
		TermsOfServiceAgreed bool            `json:"termsOfServiceAgreed"`
		OnlyReturnExisting   bool            `json:"onlyReturnExisting"`
		EAB                  json.RawMessage `json:"externalAccountBinding"`
	}
	var existing *store.ACMEAccount
	var tp string
	var key *store.EABKey
	req, err := s.verifyWith(c, byJWK, func(req *request) error {
		if err := strictJSON(req.payload, &p); err != nil {
			return err
		}
		var err error
		if existing, tp, err = s.lookupAccountByKey(ctx, req.jwk); err != nil {
			return err
		}
		switch {
		case existing != nil:
			return nil // answered after the nonce
		case p.OnlyReturnExisting:
			return accountDoesNotExist("no account has this key")
		case len(p.EAB) == 0 || string(p.EAB) == "null":
			return eabRequired("an external account binding is required: get one with your username and password at POST /api/v1/eab")
		}
		for _, ct := range p.Contact {
			if len(ct) > 256 || len(p.Contact) > 4 {
				return malformed("too many or too long contacts")
			}
		}
		key, err = s.checkEAB(c, p.EAB, tp)
		return err
	})
	if err != nil {
		return err
	}
	if existing != nil && !existing.Current() {
		// An account that may no longer act is not reported valid.
		return staleAccount(existing)
	}
	if existing != nil {
		return s.writeAccount(c, existing, http.StatusOK)
	}
	contact, _ := json.Marshal(p.Contact)
	if p.Contact == nil {
		contact = []byte("[]")
	}
	jwkJSON, _ := req.jwk.MarshalJSON()
	a := &store.ACMEAccount{ID: randomID(), Thumbprint: tp, JWK: string(jwkJSON), EnterpriseID: key.EnterpriseID, Contact: string(contact), EABKID: key.KID}
	err = s.o.Store.CreateAccountWithEAB(ctx, a, s.o.Now(), store.AuditEvent{Actor: "acme", Action: "acme.account.new", Subject: a.ID,
		Details: map[string]any{"enterprise_id": key.EnterpriseID, "eab_kid": key.KID, "thumbprint": tp}})
	if errors.Is(err, zerr.Conflict) || errors.Is(err, zerr.Unauthorized) {
		// Created meanwhile by a concurrent request with the same key (and,
		// often, the same EAB key, which that request spent).
		if existing, _, lerr := s.lookupAccountByKey(ctx, req.jwk); lerr == nil && existing != nil && existing.Current() {
			return s.writeAccount(c, existing, http.StatusOK)
		}
	}
	if err != nil {
		return err
	}
	s.o.Logger.Info("acme account created", "account", a.ID, "enterprise_id", key.EnterpriseID)
	return s.writeAccount(c, a, http.StatusCreated)
}

// checkEAB verifies the inner JWS of an external account binding: HS256/384/
// 512 by the EAB key, url = newAccount URL, payload = the account key; and
// that the key can still make an account: unused, unexpired, of its
// enterprise's current credential epoch, the enterprise active. It only
// reads: the store consumes the key with the same conditions when it makes
// the account.
func (s *Server) checkEAB(c echo.Context, raw json.RawMessage, outerThumbprint string) (*store.EABKey, error) {
	jws, h, err := parseJWS(raw, []jose.SignatureAlgorithm{jose.HS256, jose.HS384, jose.HS512})
	if err != nil {
		if p, ok := err.(*Problem); ok {
			p.Detail = "externalAccountBinding: " + p.Detail
		}
		return nil, err
	}
	url, _ := h.ExtraHeaders[jose.HeaderKey("url")].(string)
	switch {
	case h.Nonce != "":
		return nil, malformed("externalAccountBinding must not carry a nonce")
	case h.JSONWebKey != nil:
		return nil, malformed("externalAccountBinding must not carry a jwk")
	case url != s.requestURL(c):
		return nil, unauthorized("externalAccountBinding url is not the newAccount URL")
	case h.KeyID == "":
		return nil, malformed("externalAccountBinding has no kid")
	}
	key, err := s.o.Store.GetEABKey(c.Request().Context(), h.KeyID)
	if err != nil {
		return nil, unauthorized("unknown external account binding key")
	}
	payload, err := jws.Verify(key.HMACKey)
	if err != nil {
		return nil, unauthorized("externalAccountBinding signature does not verify")
	}
	var inner jose.JSONWebKey
	if err := inner.UnmarshalJSON(payload); err != nil {
		return nil, malformed("externalAccountBinding payload is not a JWK")
	}
	tp, err := thumbprint(&inner)
	if err != nil || tp != outerThumbprint {
		return nil, unauthorized("externalAccountBinding binds another key")
	}
	if !key.UsedAt.IsZero() || !s.o.Now().Before(key.ExpiresAt) {
		return nil, unauthorized("the external account binding key was used or has expired: get a new one at POST /api/v1/eab")
	}
	e, err := s.o.Store.GetEnterpriseByID(c.Request().Context(), key.EnterpriseID)
	if err != nil && !errors.Is(err, zerr.NotFound) {
		return nil, err
	}
	if err != nil || e.Status != store.StatusActive || e.CredentialEpoch != key.Epoch {
		return nil, unauthorized("此绑定密钥是在企业修改密码或被终止访问之前获取的，已失效：请用当前密码重新获取。" +
			" / The external account binding key was obtained before the enterprise's password was changed or its access was ended: get a new one with the current password.")
	}
	return key, nil
}

// account: POST-as-GET, contact update, deactivation (RFC 8555 §7.3.2, 7.3.6).
func (s *Server) account(c echo.Context) error {
	req, err := s.verify(c, byKID)
	if err != nil {
		return err
	}
	if req.account.ID != c.Param("id") {
		return unauthorized("the account key does not own this account")
	}
	a := req.account
	if req.postAsGet {
		return s.writeAccount(c, a, http.StatusOK)
	}
	var p struct {
		Status  string    `json:"status"`
		Contact *[]string `json:"contact"`
		// Fields a client may send and that are ignored here.
		TOS bool `json:"termsOfServiceAgreed"`
	}
	if err := strictJSON(req.payload, &p); err != nil {
		return err
	}
	switch p.Status {
	case "":
	case "deactivated":
		a.Status = "deactivated"
	default:
		return malformed("an account's status can only be set to deactivated")
	}
	if p.Contact != nil {
		if len(*p.Contact) > 4 {
			return malformed("too many contacts")
		}
		b, _ := json.Marshal(*p.Contact)
		a.Contact = string(b)
	}
	err = s.o.Store.UpdateACMEAccount(c.Request().Context(), a, store.AuditEvent{Actor: "acme:" + a.ID, Action: "acme.account.update", Subject: a.ID,
		Details: map[string]any{"status": a.Status}})
	if err != nil {
		return err
	}
	return s.writeAccount(c, a, http.StatusOK)
}

// keyChange (RFC 8555 §7.3.5): the inner JWS, signed by the new key,
// names the account and the old key.
func (s *Server) keyChange(c echo.Context) error {
	req, err := s.verify(c, byKID)
	if err != nil {
		return err
	}
	// The inner JWS is read as strictly as the outer one (parseJWS).
	jws, hp, err := parseJWS(req.payload, accountAlgs)
	if err != nil {
		if p, ok := err.(*Problem); ok {
			p.Detail = "the keyChange payload: " + p.Detail
		}
		return err
	}
	hdr := *hp
	if hdr.JSONWebKey == nil || hdr.KeyID != "" || !hdr.JSONWebKey.IsPublic() {
		return malformed("the inner JWS must carry the new key as jwk")
	}
	if u, _ := hdr.ExtraHeaders["url"].(string); u != req.url {
		return malformed("the inner JWS url must equal the outer url")
	}
	if hdr.Nonce != "" {
		return malformed("the inner JWS must not carry a nonce")
	}
	payload, err := jws.Verify(hdr.JSONWebKey.Key)
	if err != nil {
		return malformed("the inner JWS signature does not verify")
	}
	var p struct {
		Account string          `json:"account"`
		OldKey  json.RawMessage `json:"oldKey"`
	}
	if err := strictJSON(payload, &p); err != nil {
		return err
	}
	if p.Account != s.accountURL(c, req.account.ID) {
		return malformed("the inner payload names another account")
	}
	var old jose.JSONWebKey
	if err := old.UnmarshalJSON(p.OldKey); err != nil {
		return malformed("oldKey is not a JWK")
	}
	oldTP, _ := thumbprint(&old)
	if oldTP != req.account.Thumbprint {
		return malformed("oldKey is not the account's current key")
	}
	if err := checkAccountKey(hdr.JSONWebKey.Key); err != nil {
		return badSigAlg(err.Error())
	}
	newTP, err := thumbprint(hdr.JSONWebKey)
	if err != nil {
		return malformed("cannot compute the new key's thumbprint")
	}
	if other, _, _ := s.lookupAccountByKey(c.Request().Context(), hdr.JSONWebKey); other != nil {
		c.Response().Header().Set("Location", s.accountURL(c, other.ID))
		return &Problem{Type: ns + "malformed", Status: http.StatusConflict, Detail: "another account has the new key"}
	}
	newJWK, _ := hdr.JSONWebKey.MarshalJSON()
	err = s.o.Store.ChangeACMEAccountKey(c.Request().Context(), req.account.ID, oldTP, newTP, string(newJWK), store.AuditEvent{
		Actor: "acme:" + req.account.ID, Action: "acme.account.keychange", Subject: req.account.ID, Details: map[string]any{"thumbprint": newTP}})
	if err != nil {
		return err
	}
	req.account.Thumbprint = newTP
	return s.writeAccount(c, req.account, http.StatusOK)
}

// strictJSON decodes a JSON object payload; unknown fields are tolerated
// (RFC 8555 lets clients send fields a server ignores) but the payload
// must be one object.
func strictJSON(b []byte, v any) error {
	if err := json.Unmarshal(b, v); err != nil {
		return malformed("the payload is not the expected JSON object")
	}
	return nil
}

func randomID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}
