package zbcert

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"time"

	"golang.org/x/crypto/acme"

	"github.com/zbca/zbca/internal/account"
)

// ErrNeedPassword: the operation needs the enterprise's password (none was
// given, and there is no terminal to ask on).
var ErrNeedPassword = errors.New("the enterprise's password is needed")

// ErrNoAccount: renew found no ACME account remembered on this computer for
// the username; enroll or reissue (with the password) makes one.
var ErrNoAccount = errors.New("no ACME account is remembered for this username")

// ErrAccountRefused: the server no longer accepts the remembered ACME
// account (the password was changed, the account disabled or all access
// ended since it was made). Only enroll or reissue, which prove the
// password again, get a new one.
var ErrAccountRefused = errors.New("the server no longer accepts the remembered ACME account")

// The bounds on network work of Enroll and Renew when Issuer leaves them
// zero.
const (
	DefaultStepTimeout  = 30 * time.Second
	DefaultTotalTimeout = 2 * time.Minute
)

// NewKey makes the certificate's key on this computer: ECDSA P-256, or
// RSA-2048 for old software that knows no ECDSA.
func NewKey(rsaKey bool) (crypto.Signer, error) {
	if rsaKey {
		return rsa.GenerateKey(rand.Reader, 2048)
	}
	return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
}

// Issuer obtains certificates over ACME (RFC 8555) with External Account
// Binding.
//
// Enroll (and reissue, which is Enroll followed by revocations) always
// proves the enterprise's password to the server: it buys a single-use EAB
// key with it (an audited login), registers a new ACME account key with
// that key, and remembers this account in place of any earlier one. Renew
// is the only path without the password: it uses the remembered account,
// which the server refuses once the password has changed since it was made.
type Issuer struct {
	Home   Home
	Client *Client
	// StepTimeout bounds each network step (login, account, order,
	// finalize); TotalTimeout the whole of Enroll or Renew. Zero means
	// DefaultStepTimeout and DefaultTotalTimeout.
	StepTimeout  time.Duration
	TotalTimeout time.Duration
	// Notify, when set, is told of what went wrong without failing the
	// command (an old account that could not be deactivated).
	Notify func(string)
}

// Step names, as errors and messages show them.
const (
	StepLogin    = "login"    // POST /api/v1/eab
	StepAccount  = "account"  // ACME new-account
	StepOrder    = "order"    // ACME new-order
	StepFinalize = "finalize" // ACME finalize and certificate download
)

// StepError is the failure of one network step, with its cause.
type StepError struct {
	Step    string
	Timeout time.Duration // the step's bound, for the message when it ran out
	Err     error
}

func (e *StepError) Error() string {
	if e.Step == "" {
		return e.Err.Error()
	}
	return e.Step + ": " + e.Err.Error()
}

func (e *StepError) Unwrap() error { return e.Err }

// Enroll proves user's password to the server, registers a new ACME account
// bound to the enterprise, remembers it (replacing the remembered one) and
// gets a certificate for key. A refused password is an *APIError; nothing is
// written locally then.
func (is *Issuer) Enroll(ctx context.Context, user, password string, key crypto.Signer) ([]*x509.Certificate, error) {
	if err := account.ValidateUsername(user); err != nil {
		return nil, err
	}
	if password == "" {
		return nil, ErrNeedPassword
	}
	ctx, cancel := context.WithTimeout(ctx, is.total())
	defer cancel()
	var eab *EAB
	if err := is.step(ctx, StepLogin, func(ctx context.Context) (err error) {
		eab, err = is.Client.NewEAB(ctx, user, password)
		return err
	}); err != nil {
		return nil, err
	}
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	old, _ := is.Home.AccountKey(user) // an unreadable one is replaced all the same
	cl := is.acmeClient(k, eab.Directory)
	if err := is.step(ctx, StepAccount, func(ctx context.Context) error {
		_, err := cl.Register(ctx, &acme.Account{ExternalAccountBinding: &acme.ExternalAccountBinding{KID: eab.KID, Key: eab.Key}}, acme.AcceptTOS)
		return err
	}); err != nil {
		return nil, err
	}
	if err := is.Home.SaveAccountKey(user, k); err != nil {
		return nil, err
	}
	if old != nil {
		is.retire(ctx, old, eab.Directory)
	}
	return is.issue(ctx, cl, user, key)
}

// retire deactivates the ACME account that a new one replaces (RFC 8555
// §7.3.6), so that a copy of this folder taken before cannot renew with
// it. Best effort, within one step's bound: an account the server already
// refuses (its password was changed, or it was deactivated) is dead
// anyway, and a server that cannot answer leaves it to the operator
// ("zbca enterprise logout" ends every account).
func (is *Issuer) retire(ctx context.Context, old crypto.Signer, dir string) {
	cl := is.acmeClient(old, dir)
	err := is.step(ctx, StepAccount, func(ctx context.Context) error { return cl.DeactivateReg(ctx) })
	if err != nil && is.Notify != nil && !accountRefused(err) && !errors.Is(err, acme.ErrNoAccount) {
		is.Notify(fmt.Sprintf("the previous ACME account of this computer could not be deactivated (%v): a copy of this folder could still renew until the operator runs zbca enterprise logout", err))
	}
}

// Renew gets a certificate for key through the ACME account remembered for
// user, without a password: ErrNoAccount when there is none, an error that
// is ErrAccountRefused when the server no longer accepts it.
func (is *Issuer) Renew(ctx context.Context, user string, key crypto.Signer) ([]*x509.Certificate, error) {
	if err := account.ValidateUsername(user); err != nil {
		return nil, err
	}
	known, err := is.Home.AccountKey(user)
	if err != nil {
		return nil, err
	}
	if known == nil {
		return nil, &accountError{user: user, kind: ErrNoAccount}
	}
	ctx, cancel := context.WithTimeout(ctx, is.total())
	defer cancel()
	cl := is.acmeClient(known, is.Client.Base+"/acme/directory")
	err = is.step(ctx, StepAccount, func(ctx context.Context) error {
		a, err := cl.GetReg(ctx, "")
		if err == nil && a.URI != "" {
			cl.KID = acme.KeyID(a.URI)
		}
		return err
	})
	var chain []*x509.Certificate
	if err == nil {
		chain, err = is.issue(ctx, cl, user, key)
	}
	if err != nil && accountRefused(err) {
		return nil, &accountError{user: user, kind: ErrAccountRefused, cause: err}
	}
	return chain, err
}

// accountError is ErrNoAccount or ErrAccountRefused for a username, with
// the server's answer if any.
type accountError struct {
	user  string
	kind  error
	cause error
}

func (e *accountError) Error() string {
	if e.cause == nil {
		return e.user + ": " + e.kind.Error()
	}
	return e.user + ": " + e.kind.Error() + ": " + e.cause.Error()
}

func (e *accountError) Unwrap() []error {
	if e.cause == nil {
		return []error{e.kind}
	}
	return []error{e.kind, e.cause}
}

// accountRefused tells an answer about the account itself: unknown to the
// server, or no longer authorized (RFC 8555 §6.7 unauthorized,
// accountDoesNotExist).
func accountRefused(err error) bool {
	if errors.Is(err, acme.ErrNoAccount) {
		return true
	}
	switch ProblemType(err) {
	case ProbUnauthorized, ProbAccountDoesNotExist:
		return true
	}
	return false
}

// issue orders a certificate for user and finalizes it with key's CSR.
func (is *Issuer) issue(ctx context.Context, cl *acme.Client, user string, key crypto.Signer) ([]*x509.Certificate, error) {
	// The CSR's subject is ignored by zbca (it writes the enterprise's),
	// but a CN makes the CSR readable in logs.
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: user}}, key)
	if err != nil {
		return nil, err
	}
	var o *acme.Order
	if err := is.step(ctx, StepOrder, func(ctx context.Context) (err error) {
		// RFC 8555 §7.4: the order names the one identifier zbca accepts;
		// its authorization is valid at creation, so the order is ready.
		o, err = cl.AuthorizeOrder(ctx, []acme.AuthzID{{Type: "enterprise", Value: user}})
		if err == nil && o.Status != acme.StatusReady {
			o, err = cl.WaitOrder(ctx, o.URI)
		}
		return err
	}); err != nil {
		return nil, err
	}
	var ders [][]byte
	if err := is.step(ctx, StepFinalize, func(ctx context.Context) (err error) {
		ders, _, err = cl.CreateOrderCert(ctx, o.FinalizeURL, csr, true)
		return err
	}); err != nil {
		return nil, err
	}
	var chain []*x509.Certificate
	for _, d := range ders {
		c, err := x509.ParseCertificate(d)
		if err != nil {
			return nil, fmt.Errorf("certificate from the server: %w", err)
		}
		chain = append(chain, c)
	}
	if len(chain) == 0 || !samePublicKey(chain[0].PublicKey, key.Public()) {
		return nil, errors.New("the server returned a certificate for another key")
	}
	return chain, nil
}

// step runs one network step under its own deadline (and the caller's).
func (is *Issuer) step(ctx context.Context, name string, f func(context.Context) error) error {
	d := is.StepTimeout
	if d <= 0 {
		d = DefaultStepTimeout
	}
	sctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	if err := f(sctx); err != nil {
		return &StepError{Step: name, Timeout: d, Err: err}
	}
	return nil
}

func (is *Issuer) total() time.Duration {
	if is.TotalTimeout > 0 {
		return is.TotalTimeout
	}
	return DefaultTotalTimeout
}

func (is *Issuer) acmeClient(key crypto.Signer, dir string) *acme.Client {
	return &acme.Client{Key: key, DirectoryURL: dir, HTTPClient: is.Client.HTTP, UserAgent: "zbcert", RetryBackoff: RetryBackoff}
}
