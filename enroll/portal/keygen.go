package portal

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"errors"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"
	"software.sslmate.com/src/go-pkcs12"

	"github.com/zbca/zbca/ca"
	"github.com/zbca/zbca/enroll"
	"github.com/zbca/zbca/internal/zerr"
	"github.com/zbca/zbca/store"
)

// keygenProfiles maps the system the user picks to the PKCS#12 profile it
// reads: PBES2/AES-256 with SHA-256 MACs (Windows 10 1709 and later,
// Windows 11, Linux, Firefox), or 3DES with SHA-1 for macOS's keychain and
// older Windows. The modern profile's iterations are raised to the
// browser-made files' 100,000.
var keygenProfiles = map[string]*pkcs12.Encoder{
	"windows":     pkcs12.Modern2023.WithIterations(100_000),
	"linux":       pkcs12.Modern2023.WithIterations(100_000),
	"firefox":     pkcs12.Modern2023.WithIterations(100_000),
	"macos":       pkcs12.LegacyDES,
	"windows-old": pkcs12.LegacyDES,
}

// checkP12Password is the strength rule of PKCS#12 passwords the user
// chooses, the same as the page script's: printable ASCII (every reader
// agrees on its encoding), at least 10 characters with three of upper
// case, lower case, digits and symbols, or any 16 or more.
func checkP12Password(pw string) bool {
	if len(pw) < 10 || len(pw) > 128 {
		return false
	}
	var up, low, dig, sym int
	for _, r := range pw {
		switch {
		case r < 0x20 || r > 0x7e:
			return false
		case r >= 'A' && r <= 'Z':
			up = 1
		case r >= 'a' && r <= 'z':
			low = 1
		case r >= '0' && r <= '9':
			dig = 1
		default:
			sym = 1
		}
	}
	return len(pw) >= 16 || up+low+dig+sym >= 3
}

func (p *Portal) keygenEnabled(c echo.Context, user string) (bool, error) {
	on, err := p.o.Store.ServerKeygen(c.Request().Context(), user)
	if zerr.KindOf(err) == zerr.NotFound {
		return false, nil
	}
	return on, err
}

func (p *Portal) keygenPage(c echo.Context) error {
	u, err := p.requireLogin(c, "keygen")
	if u == "" {
		return err
	}
	on, err := p.keygenEnabled(c, u)
	if err != nil {
		return err
	}
	return p.render(c, http.StatusOK, "keygen", &view{User: u, Data: map[string]any{"Enabled": on}})
}

// keygen: POST /keygen, for enterprises an operator allowed: the server
// makes the key pair, issues through the enrollment service and answers
// the PKCS#12 file. The key lives only in this request's memory: it is
// never stored, logged or kept after the answer.
func (p *Portal) keygen(c echo.Context) error {
	lang, _ := c.Get("lang").(string)
	u := p.user(c)
	if u == "" {
		return p.render(c, http.StatusUnauthorized, "login", &view{Page: "keygen", Error: text(lang, "err.session"), Data: map[string]string{"Next": "keygen"}})
	}
	on, err := p.keygenEnabled(c, u)
	if err != nil {
		return err
	}
	if !on {
		return p.render(c, http.StatusForbidden, "keygen", &view{User: u, Data: map[string]any{"Enabled": false}})
	}
	fail := func(key string) error {
		return p.render(c, http.StatusBadRequest, "keygen", &view{User: u, Error: text(lang, key), Data: map[string]any{"Enabled": true}})
	}
	enc, ok := keygenProfiles[c.FormValue("os")]
	if !ok {
		return fail("err.bad_choice")
	}
	pw := c.FormValue("p12_password")
	if pw != c.FormValue("p12_password2") {
		return fail("err.password_mismatch")
	}
	if !checkP12Password(pw) {
		return fail("err.weak_password")
	}
	keytype := c.FormValue("keytype")
	if keytype == "" {
		keytype = "EC-P256"
	}
	if keytype != "EC-P256" && keytype != "RSA-2048" {
		return fail("err.bad_choice")
	}
	// The policy before the key: an RSA key costs a CPU for a while, and
	// a refused issuance must not cost it. The service checks again, in
	// the transaction that journals the serial.
	if err := p.keygenPolicy(c.Request().Context(), u); err != nil {
		if k := zerr.KindOf(err); k == zerr.Policy || k == zerr.Disabled {
			_, msg := p.errorText(c, err)
			return p.render(c, http.StatusForbidden, "keygen", &view{User: u, Error: msg, Data: map[string]any{"Enabled": true}})
		}
		return err
	}
	key, err := generateKey(keytype)
	if err != nil {
		return err
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
	if err != nil {
		return err
	}
	csr, err := ca.ParseCSR(der)
	if err != nil {
		return err
	}
	iss, err := p.o.Enroll.Issue(c.Request().Context(), enroll.Request{Username: u, CSR: csr, Actor: "enterprise:" + u, CredentialEpoch: p.sessionEpoch(c)})
	if err != nil {
		if errors.Is(err, store.ErrAccessEnded) {
			// The password changed (or access ended) while this request
			// was in flight: as if the session had ended before it.
			return p.render(c, http.StatusUnauthorized, "login", &view{Page: "keygen", Error: text(lang, "err.session"), Data: map[string]string{"Next": "keygen"}})
		}
		if k := zerr.KindOf(err); k == zerr.Policy || k == zerr.Disabled {
			_, msg := p.errorText(c, err)
			return p.render(c, http.StatusForbidden, "keygen", &view{User: u, Error: msg, Data: map[string]any{"Enabled": true}})
		}
		return err
	}
	pfx, err := enc.Encode(key, iss.Certificate, iss.Chain, pw)
	if err != nil {
		return err
	}
	p.log.Info("portal: server-side key issued", "enterprise", u, "serial", iss.Record.Serial, "profile", c.FormValue("os"))
	h := c.Response().Header()
	h.Set("Cache-Control", "no-store")
	h.Set(echo.HeaderContentDisposition, `attachment; filename="`+u+`.p12"`)
	return c.Blob(http.StatusOK, "application/x-pkcs12", pfx)
}

// generateKey makes the key pair of a server-side keygen; tests count its
// calls.
var generateKey = func(keytype string) (crypto.Signer, error) {
	if keytype == "RSA-2048" {
		return rsa.GenerateKey(rand.Reader, 2048)
	}
	return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
}

// keygenPolicy refuses, before any key is made, what the enrollment
// service would refuse after: an account that is not active, and an
// enterprise at its daily limit (certificates stored in the last 24
// hours). It is an early answer, not the rule: the service's check in the
// journaling transaction stays the one that counts.
func (p *Portal) keygenPolicy(ctx context.Context, u string) error {
	e, err := p.o.Enroll.Store.GetEnterprise(ctx, u)
	if err != nil {
		return err
	}
	if e.Status != store.StatusActive {
		return zerr.New(zerr.Disabled, "enterprise %q is disabled", u)
	}
	limit := p.o.Enroll.Policy.MaxPerDay
	if limit <= 0 {
		limit = 10
	}
	certs, err := p.o.Store.ListCertificates(ctx, store.CertFilter{Username: u, Profile: store.ProfileClient})
	if err != nil {
		return err
	}
	since := p.o.Now().Add(-24 * time.Hour)
	n := 0
	for _, c := range certs {
		if !c.CreatedAt.Before(since) {
			n++
		}
	}
	if n >= limit {
		return zerr.New(zerr.Policy, "the enterprise has had %d certificates in the last 24 hours, the daily limit: try again tomorrow or ask the operator", n)
	}
	return nil
}
