package main

import (
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/zbca/zbca/zbcert"
)

func (a *app) doctorCmd() *cobra.Command {
	var o zbcert.DoctorOptions
	var caFile string
	var asJSON bool
	c := &cobra.Command{
		Use:   "doctor --url https://submission-site[:port] [--user USERNAME]",
		Short: "find out why certificate login to the submission site fails",
		Long: `doctor runs every step of the legacy troubleshooting page and says what to do:
name resolution, the port (the "telnet host 443" step), proxy settings, the TLS
handshake, whether the site asks for a client certificate and from which CAs,
whether a certificate from those CAs is on this computer and whether more than
one could be picked, its validity, OCSP status, user name, chain and root, the
computer's clock against the site's, and a login with the certificate.
Exit status 1 when a check fails.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o.Lang, o.Getenv = a.lang, a.getenv
			if caFile != "" {
				b, err := os.ReadFile(caFile)
				if err != nil {
					return err
				}
				o.Roots = x509.NewCertPool()
				if !o.Roots.AppendCertsFromPEM(b) {
					return errors.New(caFile + ": no PEM certificate")
				}
			}
			r, err := a.home.Doctor(cmd.Context(), o)
			if err != nil {
				return err
			}
			if asJSON {
				if err := a.printJSON(r); err != nil {
					return err
				}
			} else {
				a.printReport(r)
			}
			if !r.OK {
				return exitCode(1)
			}
			return nil
		},
	}
	c.Flags().StringVar(&o.URL, "url", "", "the submission site's address (required)")
	c.Flags().StringVar(&o.User, "user", "", "the enterprise username you log in with")
	c.Flags().DurationVar(&o.Timeout, "timeout", 5*time.Second, "timeout of each network step")
	c.Flags().StringVar(&caFile, "ca-file", "", "PEM roots for the site's own certificate (default: the system's)")
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	_ = c.MarkFlagRequired("url")
	return c
}

func (a *app) printReport(r *zbcert.Report) {
	fmt.Fprintln(a.stdout, "zbcert doctor "+r.URL)
	for _, c := range r.Checks {
		line := c.Status.Mark() + " " + c.Title
		if c.Detail != "" {
			line += ": " + c.Detail
		}
		fmt.Fprintln(a.stdout, line)
		if c.Advice != "" && c.Status != zbcert.OK {
			fmt.Fprintln(a.stdout, "    → "+c.Advice)
		}
	}
	if r.OK {
		a.printf("doctor.summary.ok")
	} else {
		a.printf("doctor.summary.fail")
	}
}
