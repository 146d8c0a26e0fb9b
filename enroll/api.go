package enroll

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/zbca/zbca/revocation"
	"github.com/zbca/zbca/store"
)

// APIStore is what the enrollment API reads and writes.
type APIStore interface {
	AddEABKey(ctx context.Context, k *store.EABKey, ev store.AuditEvent) error
	ListCertificates(ctx context.Context, f store.CertFilter) ([]store.Certificate, error)
}

// API serves the enterprise's password-authenticated endpoints on the
// HTTPS listener: EAB keys for ACME, the certificate list, and revocation
// without a certificate (the temporary-computer case).
type API struct {
	Auth        Authenticator
	Store       APIStore
	Revocation  *revocation.Service
	EABLifetime time.Duration
	Logger      *slog.Logger
	Now         func() time.Time
}

// Register mounts /api/v1/eab, /api/v1/certificates and /api/v1/revoke.
func (a *API) Register(e *echo.Echo) {
	e.POST("/api/v1/eab", a.eab)
	e.POST("/api/v1/certificates", a.certificates)
	e.POST("/api/v1/revoke", a.revoke)
}

type credentials struct {
	Username string `json:"username"`
	Password string `json:"password"`
}

// login decodes the body into v (which embeds credentials) and
// authenticates.
func (a *API) login(c echo.Context, v any, cred *credentials) (*store.Enterprise, error) {
	body, err := io.ReadAll(io.LimitReader(c.Request().Body, 8193))
	if err != nil || len(body) > 8192 {
		return nil, echo.NewHTTPError(http.StatusRequestEntityTooLarge, "request body too large")
	}
	if err := decodeJSON(body, v); err != nil {
		return nil, err
	}
	return a.Auth.Authenticate(c.Request().Context(), Attempt{Username: cred.Username, Password: cred.Password, IP: c.RealIP()})
}

// eab: POST /api/v1/eab {username, password} → a single-use External
// Account Binding key for ACME, valid for EABLifetime.
func (a *API) eab(c echo.Context) error {
	var req credentials
	e, err := a.login(c, &req, &req)
	if err != nil {
		return err
	}
	kid := make([]byte, 18)
	key := make([]byte, 32)
	_, _ = rand.Read(kid)
	_, _ = rand.Read(key)
	now := a.now()
	k := &store.EABKey{KID: base64.RawURLEncoding.EncodeToString(kid), HMACKey: key, EnterpriseID: e.ID, Epoch: e.CredentialEpoch, CreatedAt: now, ExpiresAt: now.Add(a.lifetime())}
	if err := a.Store.AddEABKey(c.Request().Context(), k, store.AuditEvent{Actor: "enterprise:" + e.Username, Action: "eab.issue", Subject: k.KID,
		Details: map[string]any{"ip": c.RealIP(), "expires_at": k.ExpiresAt}}); err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, map[string]any{
		"kid": k.KID, "hmac_key": base64.RawURLEncoding.EncodeToString(key), "expires_at": k.ExpiresAt.UTC(),
		"directory": "https://" + c.Request().Host + "/acme/directory",
	})
}

// CertificateJSON describes an enterprise's certificate to its owner.
type CertificateJSON struct {
	Serial            string     `json:"serial"`
	Status            string     `json:"status"` // active, expired, revoked
	FingerprintSHA256 string     `json:"sha256_fingerprint"`
	NotBefore         time.Time  `json:"not_before"`
	NotAfter          time.Time  `json:"not_after"`
	DaysLeft          int        `json:"days_left"`
	RevokedAt         *time.Time `json:"revoked_at,omitempty"`
	RevocationReason  string     `json:"revocation_reason,omitempty"`
}

func (a *API) list(c echo.Context, username string) ([]CertificateJSON, error) {
	return OwnerCertificates(c.Request().Context(), a.Store, username, a.now())
}

// certificates: POST /api/v1/certificates {username, password} → the
// enterprise's certificates.
func (a *API) certificates(c echo.Context) error {
	var req credentials
	e, err := a.login(c, &req, &req)
	if err != nil {
		return err
	}
	list, err := a.list(c, e.Username)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{"enterprise": e.Username, "certificates": list})
}

// revoke: POST /api/v1/revoke {username, password, serial | "all", reason}
// revokes without the certificate, from any computer.
func (a *API) revoke(c echo.Context) error {
	var req struct {
		credentials
		Serial string `json:"serial"`
		Reason string `json:"reason"`
	}
	e, err := a.login(c, &req, &req.credentials)
	if err != nil {
		return err
	}
	reason, err := ParseSubscriberReason(req.Reason)
	if err != nil {
		return err
	}
	list, err := a.list(c, e.Username)
	if err != nil {
		return err
	}
	revoked, err := RevokeOwned(c.Request().Context(), a.Revocation, list, e.Username, req.Serial, reason)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{"enterprise": e.Username, "revoked": revoked, "reason": reason.String()})
}

func (a *API) now() time.Time {
	if a.Now != nil {
		return a.Now()
	}
	return time.Now()
}

func (a *API) lifetime() time.Duration {
	if a.EABLifetime > 0 {
		return a.EABLifetime
	}
	return 10 * time.Minute
}
