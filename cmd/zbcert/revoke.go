package main

import (
	"errors"
	"strings"

	"github.com/spf13/cobra"
)

func (a *app) revokeCmd() *cobra.Command {
	var user, serial, reason string
	var all bool
	c := &cobra.Command{
		Use:   "revoke --user USERNAME (--serial S | --all) [--reason R]",
		Short: "revoke with the username and password alone (e.g. after using a temporary computer)",
		Long: `revoke is the legacy "废除证书": with the enterprise's username and password, from
any computer and without the certificate, it revokes one certificate (--serial,
hex as zbcert list or the portal shows it) or every active one (--all). Reasons
an enterprise may give: unspecified (default), keyCompromise, affiliationChanged,
superseded, cessationOfOperation. Local copies of the revoked certificates are
deleted. Revocation is final.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if (serial == "") == !all {
				return errors.New("give either --serial S or --all")
			}
			if all {
				serial = "all"
			}
			cl, err := a.client()
			if err != nil {
				return err
			}
			pw, err := a.password(user)
			if err != nil {
				return err
			}
			revoked, err := cl.Revoke(cmd.Context(), user, pw, serial, reason)
			if err != nil {
				return err
			}
			if len(revoked) == 0 {
				a.printf("revoke.none")
				return nil
			}
			a.printf("revoke.done", strings.Join(revoked, ", "))
			for _, s := range revoked {
				if e, err := a.home.FindCert(s); err == nil {
					_ = a.home.RemoveCert(e)
				}
			}
			return nil
		},
	}
	c.Flags().StringVar(&user, "user", "", "the enterprise's username (required)")
	c.Flags().StringVar(&serial, "serial", "", "the certificate's serial (hex)")
	c.Flags().BoolVar(&all, "all", false, "revoke every active certificate of the enterprise")
	c.Flags().StringVar(&reason, "reason", "", "unspecified, keyCompromise, affiliationChanged, superseded or cessationOfOperation")
	c.Flags().BoolVar(&a.passwordStdin, "password-stdin", false, "read the password from the first line of standard input")
	a.addTimeout(c)
	_ = c.MarkFlagRequired("user")
	return c
}
