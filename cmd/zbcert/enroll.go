package main

import (
	"context"
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/zbca/zbca/zbcert"
)

// p12Flags are the PKCS#12 options shared by enroll, reissue and renew.
type p12Flags struct {
	file    string
	profile string
	install bool
}

func (f *p12Flags) add(c *cobra.Command) {
	c.Flags().StringVar(&f.file, "p12", "", "also write the certificate and key as a password-protected PKCS#12 (.p12/.pfx) file")
	c.Flags().StringVar(&f.profile, "p12-profile", "", "PKCS#12 encryption: modern (AES) or legacy (3DES, for macOS and old Windows); default for this OS: "+string(zbcert.DefaultP12Profile(runtime.GOOS)))
	c.Flags().BoolVar(&f.install, "install", false, "import the certificate into this computer's store (Windows: certutil; macOS: login keychain; Linux: ~/.pki/nssdb with pk12util)")
}

func (a *app) issuer() (*zbcert.Issuer, error) {
	cl, err := a.client()
	if err != nil {
		return nil, err
	}
	is := &zbcert.Issuer{Home: a.home, Client: cl, Notify: func(m string) { fmt.Fprintln(a.stderr, "zbcert:", m) }}
	if a.timeout > 0 {
		is.StepTimeout, is.TotalTimeout = a.timeout, 4*a.timeout
	}
	return is, nil
}

// client is the configured server's client, each request bounded by
// --timeout.
func (a *app) client() (*zbcert.Client, error) {
	cfg, root, err := a.home.LoadConfig()
	if err != nil {
		return nil, err
	}
	cl := zbcert.NewClient(cfg.Server, root)
	cl.SetTimeout(a.timeout)
	return cl, nil
}

// addTimeout adds --timeout to a command that talks to the server.
func (a *app) addTimeout(c *cobra.Command) {
	c.Flags().DurationVar(&a.timeout, "timeout", zbcert.DefaultStepTimeout,
		"how long to wait for each answer of the server (login, ACME account, order, issuance); the command gives up after 4 times this")
}

func (a *app) enrollCmd() *cobra.Command {
	var user string
	var rsaKey bool
	var p p12Flags
	c := &cobra.Command{
		Use:   "enroll --user USERNAME",
		Short: "get a client certificate with the enterprise's username and password",
		Long: `enroll makes a key on this computer (ECDSA P-256, or RSA-2048 with --rsa), trades
the enterprise's username and password for an ACME External Account Binding and
gets the certificate over ACME. The key is stored encrypted (PKCS#8) in the
config directory, with a random passphrase in secrets/key-passphrase (0600)
beside it: use export to move the certificate to another computer.

enroll always needs the password and proves it to the server (an audited login),
even when an ACME account is remembered from an earlier enroll: it registers a
new ACME account and remembers it, in place of the earlier one, for renew. A
wrong password gets no certificate and changes nothing on this computer.

The password is asked without echo; --password-stdin reads it from the first
line of standard input (and the PKCS#12 password, with --p12, from the second).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.obtain(cmd.Context(), user, rsaKey, p, false)
		},
	}
	c.Flags().StringVar(&user, "user", "", "the enterprise's username (required)")
	c.Flags().BoolVar(&rsaKey, "rsa", false, "make an RSA-2048 key instead of ECDSA P-256")
	c.Flags().BoolVar(&a.passwordStdin, "password-stdin", false, "read the password(s) from standard input, one per line")
	p.add(c)
	a.addTimeout(c)
	_ = c.MarkFlagRequired("user")
	return c
}

func (a *app) reissueCmd() *cobra.Command {
	var user string
	var rsaKey bool
	var p p12Flags
	c := &cobra.Command{
		Use:   "reissue --user USERNAME",
		Short: "new key and certificate when the old one is lost, damaged or expired; the older ones are revoked",
		Long: `reissue is the legacy "重新申请证书": with the username and password (no old
certificate needed) it makes a new key, gets a new certificate, then revokes
every other active certificate of the enterprise as superseded and removes the
old local copies. Like enroll, reissue always needs the password and proves it
to the server; the new ACME account it registers replaces the remembered one.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.obtain(cmd.Context(), user, rsaKey, p, true)
		},
	}
	c.Flags().StringVar(&user, "user", "", "the enterprise's username (required)")
	c.Flags().BoolVar(&rsaKey, "rsa", false, "make an RSA-2048 key instead of ECDSA P-256")
	c.Flags().BoolVar(&a.passwordStdin, "password-stdin", false, "read the password(s) from standard input, one per line")
	p.add(c)
	a.addTimeout(c)
	_ = c.MarkFlagRequired("user")
	return c
}

// obtain is enroll and reissue: both always prove the password.
func (a *app) obtain(ctx context.Context, user string, rsaKey bool, p p12Flags, reissue bool) error {
	profile, err := zbcert.ParseP12Profile(p.profile, runtime.GOOS)
	if err != nil {
		return err
	}
	is, err := a.issuer()
	if err != nil {
		return err
	}
	pw, err := a.password(user)
	if err != nil {
		return err
	}
	p12pw, err := a.p12Password(p)
	if err != nil {
		return err
	}
	old, _ := a.home.Certs()
	key, err := zbcert.NewKey(rsaKey)
	if err != nil {
		return err
	}
	chain, err := is.Enroll(ctx, user, pw, key)
	if err != nil {
		return err
	}
	e, err := a.home.SaveCert(key, chain)
	if err != nil {
		return err
	}
	a.printf("enroll.done", e.Leaf().Subject.String(), e.Serial, e.Leaf().NotAfter.Local().Format(time.DateOnly), e.Dir)
	if reissue {
		if err := a.supersede(ctx, is, user, pw, e, old); err != nil {
			return err
		}
	}
	return a.writeP12(ctx, e, key, chain, p, p12pw, profile)
}

// supersede revokes the enterprise's other active certificates (the
// server's policy may already have done so) and removes their local copies.
func (a *app) supersede(ctx context.Context, is *zbcert.Issuer, user, pw string, keep *zbcert.Entry, old []*zbcert.Entry) error {
	remote, err := is.Client.Certificates(ctx, user, pw)
	if err != nil {
		return err
	}
	var done []string
	for _, r := range remote {
		if r.Status != "active" || r.Serial == keep.Serial {
			continue
		}
		revoked, err := is.Client.Revoke(ctx, user, pw, r.Serial, "superseded")
		var ae *zbcert.APIError
		if errors.As(err, &ae) && ae.Status == 409 { // revoked meanwhile
			continue
		}
		if err != nil {
			return err
		}
		done = append(done, revoked...)
	}
	if len(done) > 0 {
		a.printf("superseded.done", strings.Join(done, ", "))
	}
	for _, e := range old {
		if e.User() == user && e.Serial != keep.Serial {
			if err := a.home.RemoveCert(e); err == nil {
				a.printf("renew.removed", e.Serial)
			}
		}
	}
	return nil
}

func (a *app) p12Password(p p12Flags) (string, error) {
	if p.file == "" && !p.install {
		return "", nil
	}
	return a.newP12Password()
}

func (a *app) writeP12(ctx context.Context, e *zbcert.Entry, key crypto.Signer, chain []*x509.Certificate, p p12Flags, pw string, profile zbcert.P12Profile) error {
	if p.file == "" && !p.install {
		return nil
	}
	file := p.file
	if file == "" {
		file = e.Dir + "/cert.p12"
	}
	if err := a.home.Export(e, file, pw, profile); err != nil {
		return err
	}
	a.printf("p12.written", file, profile)
	if p.install {
		where, err := zbcert.InstallP12(ctx, file, pw)
		if err != nil {
			return fmt.Errorf("installing %s: %w", file, err)
		}
		a.printf("p12.installed", where)
	}
	return nil
}

func (a *app) renewCmd() *cobra.Command {
	var serial, user string
	var rsaKey bool
	var p p12Flags
	c := &cobra.Command{
		Use:   "renew [--serial S | --user USERNAME]",
		Short: "replace a local certificate before it expires (new key; never asks for the password)",
		Long: `renew gets a new certificate, with a new key, for the user of a local
certificate, through the ACME account remembered by the last enroll or reissue
on this computer. It never asks for the enterprise's password: it is the one
command without it. The server supersedes the old certificate under its policy;
the old local copy is removed.

The server refuses the remembered account once the enterprise's password has
changed since it was made (or the account was disabled, or an operator ended
all access): then run zbcert enroll (or reissue) with the current password.
With --p12 or --install, --password-stdin reads the PKCS#12 password from the
first line of standard input.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			old, err := a.chooseLocal(serial, user)
			if err != nil {
				return err
			}
			profile, err := zbcert.ParseP12Profile(p.profile, runtime.GOOS)
			if err != nil {
				return err
			}
			is, err := a.issuer()
			if err != nil {
				return err
			}
			p12pw, err := a.p12Password(p)
			if err != nil {
				return err
			}
			key, err := zbcert.NewKey(rsaKey)
			if err != nil {
				return err
			}
			chain, err := is.Renew(ctx, old.User(), key)
			if err != nil {
				return err
			}
			e, err := a.home.SaveCert(key, chain)
			if err != nil {
				return err
			}
			a.printf("enroll.done", e.Leaf().Subject.String(), e.Serial, e.Leaf().NotAfter.Local().Format(time.DateOnly), e.Dir)
			if err := a.home.RemoveCert(old); err == nil {
				a.printf("renew.removed", old.Serial)
			}
			return a.writeP12(ctx, e, key, chain, p, p12pw, profile)
		},
	}
	c.Flags().StringVar(&serial, "serial", "", "the local certificate to renew (see zbcert list)")
	c.Flags().StringVar(&user, "user", "", "renew the newest local certificate of this username")
	c.Flags().BoolVar(&rsaKey, "rsa", false, "make an RSA-2048 key instead of ECDSA P-256")
	c.Flags().BoolVar(&a.passwordStdin, "password-stdin", false, "read the PKCS#12 password (--p12, --install) from standard input; renew needs no enterprise password")
	p.add(c)
	a.addTimeout(c)
	return c
}

// chooseLocal finds one local certificate by serial, by user (the newest),
// or the only one.
func (a *app) chooseLocal(serial, user string) (*zbcert.Entry, error) {
	if serial != "" {
		return a.home.FindCert(serial)
	}
	list, err := a.home.Certs()
	if err != nil && len(list) == 0 {
		return nil, err
	}
	var match []*zbcert.Entry
	for _, e := range list {
		if user == "" || e.User() == user {
			match = append(match, e)
		}
	}
	switch {
	case len(match) == 0:
		return nil, errors.New(a.lang.T("err.nolocal"))
	case len(match) > 1 && user == "":
		return nil, errors.New(a.lang.T("err.choose"))
	}
	return match[0], nil
}
