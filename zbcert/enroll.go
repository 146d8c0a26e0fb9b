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

	"golang.org/x/crypto/acme"

	"github.com/zbca/zbca/internal/account"
)

// ErrNeedPassword: the operation needs the enterprise's password (no ACME
// account is remembered for this username).
var ErrNeedPassword = errors.New("the enterprise's password is needed")

// NewKey makes the certificate's key on this computer: ECDSA P-256, or
// RSA-2048 for old software that knows no ECDSA.
func NewKey(rsaKey bool) (crypto.Signer, error) {
	if rsaKey {
		return rsa.GenerateKey(rand.Reader, 2048)
	}
	return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
}

// Issuer obtains certificates over ACME (RFC 8555) with External Account
// Binding, remembering the account key per username so that a renewal
// needs no password.
type Issuer struct {
	Home   Home
	Client *Client
}

// Obtain gets a certificate for user's key. password may be empty when an
// account key for user is remembered; otherwise ErrNeedPassword.
func (is *Issuer) Obtain(ctx context.Context, user, password string, key crypto.Signer) ([]*x509.Certificate, error) {
	if err := account.ValidateUsername(user); err != nil {
		return nil, err
	}
	cl, err := is.account(ctx, user, password)
	if err != nil {
		return nil, err
	}
	// RFC 8555 §7.4: the order names the one identifier zbca accepts; its
	// authorization is valid at creation, so the order is ready at once.
	o, err := cl.AuthorizeOrder(ctx, []acme.AuthzID{{Type: "enterprise", Value: user}})
	if err != nil {
		return nil, fmt.Errorf("ACME order: %w", err)
	}
	if o.Status != acme.StatusReady {
		if o, err = cl.WaitOrder(ctx, o.URI); err != nil {
			return nil, fmt.Errorf("ACME order: %w", err)
		}
	}
	// The CSR's subject is ignored by zbca (it writes the enterprise's),
	// but a CN makes the CSR readable in logs.
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: user}}, key)
	if err != nil {
		return nil, err
	}
	ders, _, err := cl.CreateOrderCert(ctx, o.FinalizeURL, csr, true)
	if err != nil {
		return nil, fmt.Errorf("ACME finalize: %w", err)
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

// account returns an ACME client with a registered account for user: the
// remembered one, or a new one bound with an EAB key bought with the
// password.
func (is *Issuer) account(ctx context.Context, user, password string) (*acme.Client, error) {
	dir := is.Client.Base + "/acme/directory"
	known, err := is.Home.AccountKey(user)
	if err != nil {
		return nil, err
	}
	if known != nil {
		cl := &acme.Client{Key: known, DirectoryURL: dir, HTTPClient: is.Client.HTTP, UserAgent: "zbcert"}
		if _, err := cl.GetReg(ctx, ""); err == nil {
			return cl, nil
		} else if password == "" {
			return nil, fmt.Errorf("the remembered ACME account was not accepted (%v): %w", err, ErrNeedPassword)
		}
	}
	if password == "" {
		return nil, ErrNeedPassword
	}
	eab, err := is.Client.NewEAB(ctx, user, password)
	if err != nil {
		return nil, err
	}
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	cl := &acme.Client{Key: k, DirectoryURL: eab.Directory, HTTPClient: is.Client.HTTP, UserAgent: "zbcert"}
	if _, err := cl.Register(ctx, &acme.Account{ExternalAccountBinding: &acme.ExternalAccountBinding{KID: eab.KID, Key: eab.Key}}, acme.AcceptTOS); err != nil {
		return nil, fmt.Errorf("ACME account: %w", err)
	}
	if err := is.Home.SaveAccountKey(user, k); err != nil {
		return nil, err
	}
	return cl, nil
}
