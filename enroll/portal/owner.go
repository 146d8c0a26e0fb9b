package portal

import (
	"fmt"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/zbca/zbca/enroll"
	"github.com/zbca/zbca/internal/zerr"
	"github.com/zbca/zbca/revocation"
	"github.com/zbca/zbca/store"
)

// expiryWindowDays is when the portal starts reminding (PRODUCT.md).
const expiryWindowDays = 30

type banner struct{ Class, Text string }

// expiryBanner warns about the newest certificate that is not revoked
// when it has expired or expires within 30 days. Older certificates are
// never warned about: once a newer one exists, the reminder stops.
func expiryBanner(list []enroll.CertificateJSON, lang string) *banner {
	var newest *enroll.CertificateJSON
	for i := range list {
		j := &list[i]
		if j.Status == store.CertRevoked {
			continue
		}
		if newest == nil || j.NotBefore.After(newest.NotBefore) {
			newest = j
		}
	}
	switch {
	case newest == nil:
		return nil
	case newest.Status == "expired":
		return &banner{Class: "error", Text: text(lang, "certs.expired")}
	case newest.DaysLeft <= expiryWindowDays:
		return &banner{Class: "warn", Text: fmt.Sprintf(text(lang, "certs.expiring"), max(newest.DaysLeft, 0))}
	}
	return nil
}

func (p *Portal) certificatesPage(c echo.Context) error {
	u, err := p.requireLogin(c, "certificates")
	if u == "" {
		return err
	}
	list, err := enroll.OwnerCertificates(c.Request().Context(), p.o.Store, u, p.o.Now())
	if err != nil {
		return err
	}
	lang, _ := c.Get("lang").(string)
	return p.render(c, http.StatusOK, "certificates", &view{User: u, Data: map[string]any{"Certs": list, "Banner": expiryBanner(list, lang)}})
}

// subscriberReasons are offered in this order; the first is the default.
var subscriberReasons = []revocation.Reason{revocation.Unspecified, revocation.KeyCompromise, revocation.CessationOfOperation,
	revocation.AffiliationChanged, revocation.Superseded}

func (p *Portal) revokePage(c echo.Context) error {
	u, err := p.requireLogin(c, "revoke")
	if u == "" {
		return err
	}
	return p.renderRevoke(c, http.StatusOK, u, "")
}

func (p *Portal) renderRevoke(c echo.Context, status int, user, errText string) error {
	list, err := enroll.OwnerCertificates(c.Request().Context(), p.o.Store, user, p.o.Now())
	if err != nil {
		return err
	}
	var active []enroll.CertificateJSON
	for _, j := range list {
		if j.Status == store.CertActive {
			active = append(active, j)
		}
	}
	reasons := make([]string, len(subscriberReasons))
	for i, r := range subscriberReasons {
		reasons[i] = r.String()
	}
	return p.render(c, status, "revoke", &view{User: user, Error: errText, Data: map[string]any{"Active": active, "Reasons": reasons}})
}

// revokeChoice reads and checks the revoke form: the serial (one of the
// enterprise's active certificates, or "all") and the reason. It returns
// the serials that would be revoked.
func (p *Portal) revokeChoice(c echo.Context, user string) (serial string, reason revocation.Reason, targets []string, list []enroll.CertificateJSON, err error) {
	list, err = enroll.OwnerCertificates(c.Request().Context(), p.o.Store, user, p.o.Now())
	if err != nil {
		return "", 0, nil, nil, err
	}
	reason, err = enroll.ParseSubscriberReason(c.FormValue("reason"))
	if err != nil {
		return "", 0, nil, nil, err
	}
	serial = c.FormValue("serial")
	for _, j := range list {
		if j.Status == store.CertActive && (serial == "all" || j.Serial == serial) {
			targets = append(targets, j.Serial)
		}
	}
	return serial, reason, targets, list, nil
}

// revokeConfirm: POST /revoke, the first step: show what will be revoked
// and ask for confirmation.
func (p *Portal) revokeConfirm(c echo.Context) error {
	u, err := p.requireLogin(c, "revoke")
	if u == "" {
		return err
	}
	lang, _ := c.Get("lang").(string)
	serial, reason, targets, _, err := p.revokeChoice(c, u)
	if err != nil {
		return p.revokeChoiceError(c, u, err)
	}
	if len(targets) == 0 {
		return p.renderRevoke(c, http.StatusBadRequest, u, text(lang, "err.bad_choice"))
	}
	return p.render(c, http.StatusOK, "revoke_confirm", &view{User: u, Data: map[string]any{"Serial": serial, "Reason": reason.String(), "Targets": targets}})
}

// revoke: POST /revoke/confirm, the confirmed revocation, through the
// same owner revocation as the API.
func (p *Portal) revoke(c echo.Context) error {
	u, err := p.requireLogin(c, "revoke")
	if u == "" {
		return err
	}
	lang, _ := c.Get("lang").(string)
	serial, reason, targets, list, err := p.revokeChoice(c, u)
	if err != nil {
		return p.revokeChoiceError(c, u, err)
	}
	if len(targets) == 0 {
		return p.renderRevoke(c, http.StatusBadRequest, u, text(lang, "err.bad_choice"))
	}
	revoked, err := enroll.RevokeOwned(c.Request().Context(), p.o.Revocation, list, u, serial, reason)
	if err != nil {
		return err
	}
	return p.render(c, http.StatusOK, "revoke_done", &view{User: u, Data: map[string]any{"Revoked": revoked}})
}

// revokeChoiceError shows a refused choice on the revoke page; an internal
// error (the store failing) goes to the error page, which shows a generic
// text and logs the cause.
func (p *Portal) revokeChoiceError(c echo.Context, u string, err error) error {
	if zerr.KindOf(err) == zerr.Internal {
		return err
	}
	return p.renderRevoke(c, http.StatusBadRequest, u, zerr.Public(err))
}
