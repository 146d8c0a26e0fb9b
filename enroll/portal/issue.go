package portal

import (
	"encoding/pem"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/zbca/zbca/ca"
	"github.com/zbca/zbca/enroll"
	"github.com/zbca/zbca/internal/zerr"
	"github.com/zbca/zbca/store"
)

// applyPage serves /apply and /reissue: the same issuance (a new
// certificate supersedes the active ones, as the policy says), with the
// texts of each and the certificates that will be superseded.
func (p *Portal) applyPage(c echo.Context) error {
	page := strings.TrimPrefix(c.Path(), "/")
	u, err := p.requireLogin(c, page)
	if u == "" {
		return err
	}
	return p.renderApply(c, http.StatusOK, page, u, "")
}

func (p *Portal) renderApply(c echo.Context, status int, page, user, errText string) error {
	ctx := c.Request().Context()
	list, err := enroll.OwnerCertificates(ctx, p.o.Store, user, p.o.Now())
	if err != nil {
		return err
	}
	var active []enroll.CertificateJSON
	for _, j := range list {
		if j.Status == store.CertActive {
			active = append(active, j)
		}
	}
	keygen, err := p.o.Store.ServerKeygen(ctx, user)
	if err != nil && zerr.KindOf(err) != zerr.NotFound {
		return err
	}
	return p.render(c, status, "apply", &view{Page: page, User: user, Error: errText, Data: map[string]any{"Active": active, "Keygen": keygen}})
}

// issuedJSON is the answer to the page script: the certificate and its
// chain, for the PKCS#12 file it builds.
type issuedJSON struct {
	Serial      string    `json:"serial"`
	NotAfter    time.Time `json:"not_after"`
	Fingerprint string    `json:"sha256_fingerprint"`
	Certificate string    `json:"certificate"` // PEM
	Chain       []string  `json:"chain"`       // PEM: issuing CA, root
	Superseded  []string  `json:"superseded"`
}

// apply: POST /apply with a CSR in PEM (from the page script, which asks
// for JSON, or pasted into the form). The CSR goes through the one
// enrollment service and its policy; a refused CSR changes nothing.
func (p *Portal) apply(c echo.Context) error {
	lang, _ := c.Get("lang").(string)
	u := p.user(c)
	if u == "" {
		if wantsJSON(c) {
			return c.JSON(http.StatusUnauthorized, map[string]string{"error": text(lang, "err.session")})
		}
		return p.render(c, http.StatusUnauthorized, "login", &view{Page: "apply", Error: text(lang, "err.session"), Data: map[string]string{"Next": "apply"}})
	}
	csrText := c.FormValue("csr")
	if strings.TrimSpace(csrText) == "" {
		return p.applyError(c, u, zerr.New(zerr.BadCSR, "%s", text(lang, "err.no_csr")))
	}
	csr, err := ca.ParseCSR([]byte(strings.TrimSpace(csrText)))
	if err != nil {
		return p.applyError(c, u, err)
	}
	iss, err := p.o.Enroll.Issue(c.Request().Context(), enroll.Request{Username: u, CSR: csr, Actor: "enterprise:" + u, CredentialEpoch: p.sessionEpoch(c)})
	if err != nil {
		return p.applyError(c, u, err)
	}
	out := issuedJSON{Serial: iss.Record.Serial, NotAfter: iss.Certificate.NotAfter, Fingerprint: iss.Record.FingerprintSHA256,
		Certificate: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: iss.Certificate.Raw})), Superseded: []string{}}
	for _, x := range iss.Chain {
		out.Chain = append(out.Chain, string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: x.Raw})))
	}
	for _, old := range iss.Superseded {
		out.Superseded = append(out.Superseded, old.Serial)
	}
	if wantsJSON(c) {
		c.Response().Header().Set("Cache-Control", "no-store")
		return c.JSON(http.StatusCreated, out)
	}
	return p.render(c, http.StatusCreated, "issued", &view{User: u, Data: map[string]any{
		"Serial": out.Serial, "NotAfter": out.NotAfter, "Fingerprint": out.Fingerprint, "Superseded": out.Superseded,
		"PEM": out.Certificate + strings.Join(out.Chain, ""),
	}})
}

// applyError answers a refused application: JSON for the page script,
// else the apply page again with the reason above the form.
func (p *Portal) applyError(c echo.Context, user string, err error) error {
	if errors.Is(err, store.ErrAccessEnded) {
		// The password changed (or access ended) while this request was in
		// flight: as if the session had ended before it.
		lang, _ := c.Get("lang").(string)
		if wantsJSON(c) {
			return c.JSON(http.StatusUnauthorized, map[string]string{"error": text(lang, "err.session")})
		}
		return p.render(c, http.StatusUnauthorized, "login", &view{Page: "apply", Error: text(lang, "err.session"), Data: map[string]string{"Next": "apply"}})
	}
	switch zerr.KindOf(err) {
	case zerr.BadCSR, zerr.Policy, zerr.Disabled, zerr.BadRequest:
	default:
		return err
	}
	if wantsJSON(c) {
		return err // htmlErrors answers {"error"}
	}
	status, msg := p.errorText(c, err)
	return p.renderApply(c, status, "apply", user, msg)
}
