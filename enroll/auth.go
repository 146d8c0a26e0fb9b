// The authenticators: an enterprise proves who it is with the username
// and password it already has (the enrollment token), checked either
// against the hashes in the database (LocalAuthenticator) or by the
// reporting system's own login endpoint (HTTPAuthenticator), always behind
// a Guard that applies the limits: a per-IP token bucket, the progressive
// lockout per username, the audit of every attempt.

package enroll

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/zbca/zbca/config"
	"github.com/zbca/zbca/internal/password"
	"github.com/zbca/zbca/internal/zerr"
	"github.com/zbca/zbca/store"
)

// Authenticator checks an enterprise's username and password.
//
// Authenticate returns the enterprise's local record, which is what a
// certificate is issued for, when the password is right and the account is
// active. Every refusal is an error of kind zerr.Unauthorized whose text is
// GenericLoginError, whatever the reason (unknown username, wrong password,
// disabled account): the text never tells whether an account exists. Other
// kinds (zerr.Internal) mean the attempt could not be decided, for example
// because the login service did not answer. Implementations never log or
// store the password.
type Authenticator interface {
	Authenticate(ctx context.Context, a Attempt) (*store.Enterprise, error)
}

// Attempt is one login attempt.
type Attempt struct {
	Username string
	Password string
	// IP is the client's address as the listener saw it (not a forwarded
	// header anyone can send); the per-IP limit keys on it.
	IP string
}

// String leaves the password out, so that an Attempt printed by mistake
// does not leak it; the username too, which may be a password typed into
// the wrong field (the Guard records it as nameRecorder says).
func (a Attempt) String() string { return fmt.Sprintf("login from %s", a.IP) }

// GoString implements fmt.GoStringer, for %#v.
func (a Attempt) GoString() string { return a.String() }

// LogValue implements slog.LogValuer: neither the password nor the
// username is logged.
func (a Attempt) LogValue() slog.Value {
	return slog.GroupValue(slog.String("ip", a.IP))
}

// The texts of refusals, in Chinese and English, as the web edge shows them.
const (
	// GenericLoginError refuses an unknown username, a wrong password and a
	// disabled account alike.
	GenericLoginError = "用户名或口令错误 / wrong username or password"
	// LockedLoginError refuses any attempt on a username locked after
	// repeated failures, without checking the password. Unknown usernames
	// are counted and locked exactly like accounts, so this text does not
	// tell whether an account exists either.
	LockedLoginError = "登录失败次数过多，请稍后再试 / too many failed logins; try again later"
	// RateLimitedError refuses attempts beyond the per-address rate.
	RateLimitedError = "尝试次数过多，请稍后再试 / too many attempts from your address; wait a minute"
)

// Refusal reasons, recorded in the audit log (never shown to the client).
const (
	reasonMalformed = "malformed"
	reasonUnknown   = "unknown account"
	reasonPassword  = "wrong password"
	reasonDisabled  = "disabled"
	reasonBadHash   = "unusable password hash"
	reasonRejected  = "rejected by login service"
)

// refusal is a zerr.Unauthorized error whose text is always
// GenericLoginError; the reason is kept for the audit log only.
type refusal struct{ reason string }

func (r *refusal) Error() string { return GenericLoginError }

func (r *refusal) Unwrap() error { return zerr.Unauthorized }

func refuse(reason string) error { return &refusal{reason: reason} }

// refusalReason returns the audit reason of a refusal, or "".
func refusalReason(err error) string {
	var r *refusal
	if errors.As(err, &r) {
		return r.reason
	}
	return ""
}

// checkAttempt refuses what cannot be a valid login before any lookup: the
// rules are public, so refusing early tells nothing about any account.
func checkAttempt(a Attempt) error {
	if a.Username == "" || len(a.Username) > 256 || a.Password == "" || len(a.Password) > maxPassword {
		return refuse(reasonMalformed)
	}
	return nil
}

// maxPassword matches internal/password's limit.
const maxPassword = 1024

// EnterpriseGetter reads an enterprise's local record; it returns
// zerr.NotFound for an unknown username.
type EnterpriseGetter interface {
	GetEnterprise(ctx context.Context, username string) (*store.Enterprise, error)
}

// AuthStore is what NewAuthenticator needs from persistence.
type AuthStore interface {
	LocalStore
	GuardStore
}

// AuthOptions configures NewAuthenticator.
type AuthOptions struct {
	Config config.Enroll
	Store  AuthStore
	Logger *slog.Logger
	// Now is the clock of the lockout and the rate limit; default time.Now.
	Now func() time.Time
	// Observe, when set, is GuardOptions.Observe (metrics).
	Observe func(outcome string)
}

// NewAuthenticator builds the configured authenticator (local or http)
// behind a Guard with the configured limits.
func NewAuthenticator(o AuthOptions) (Authenticator, error) {
	if o.Store == nil {
		return nil, errors.New("enroll: no store")
	}
	c := o.Config
	if c.Authenticator == "" {
		c.Authenticator = "local"
	}
	var inner Authenticator
	var err error
	switch c.Authenticator {
	case "local":
		inner, err = NewLocal(LocalOptions{
			Store:               o.Store,
			Params:              password.Params{MemoryKiB: c.Argon2.MemoryKiB, Time: c.Argon2.Time, Threads: c.Argon2.Threads},
			MaxConcurrentHashes: c.MaxConcurrentHashes,
			Logger:              o.Logger,
		})
	case "http":
		inner, err = NewHTTP(HTTPOptions{URL: c.HTTP.URL, Timeout: c.HTTP.Timeout.Duration, CAFile: c.HTTP.CAFile, Store: o.Store, Logger: o.Logger})
	default:
		err = fmt.Errorf("enroll: unknown authenticator %q", c.Authenticator)
	}
	if err != nil {
		return nil, err
	}
	g, err := NewGuard(inner, GuardOptions{
		Store:      o.Store,
		Name:       c.Authenticator,
		Lockout:    store.LockoutPolicy{Threshold: c.Lockout.Threshold, Base: c.Lockout.Base.Duration, Max: c.Lockout.Max.Duration},
		PerIPRate:  c.Rate.PerIPPerSecond,
		PerIPBurst: c.Rate.Burst,
		Now:        o.Now,
		Logger:     o.Logger,
		Observe:    o.Observe,
	})
	if err != nil {
		return nil, err
	}
	return g, nil
}
