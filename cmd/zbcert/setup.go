package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/zbca/zbca/zbcert"
)

func (a *app) setupCmd() *cobra.Command {
	var server, fingerprint, stores string
	var noInstall bool
	c := &cobra.Command{
		Use:   "setup --server URL [--fingerprint SHA256]",
		Short: "fetch and install the root certificate, remember the server",
		Long: `setup downloads the root and the chain from the zbca server, shows the root's
SHA-256 fingerprint and asks you to compare it with the one on the portal's
download page (or pass it with --fingerprint), then installs the root into the
trust stores (the OS store needs administrator rights) and remembers the server.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o := zbcert.SetupOptions{Server: server, Fingerprint: fingerprint, Confirm: a.confirmFingerprint(server)}
			if !noInstall {
				t, err := zbcert.ParseTrustStores(stores)
				if err != nil {
					return err
				}
				o.Install = &t
			}
			res, err := a.home.Setup(cmd.Context(), o)
			if err != nil {
				return err
			}
			if fingerprint != "" {
				a.printf("setup.fingerprint", res.Server, res.Subject, res.Fingerprint)
			}
			if res.Installed {
				a.printf("setup.installed", stores)
			} else {
				a.printf("setup.noinstall")
			}
			a.printf("setup.done", res.Server)
			return nil
		},
	}
	c.Flags().StringVar(&server, "server", "", "the zbca server's HTTPS address, e.g. https://ca.example:8443 (required)")
	c.Flags().StringVar(&fingerprint, "fingerprint", "", "the root's expected SHA-256 fingerprint (skips the question)")
	c.Flags().BoolVar(&noInstall, "no-install", false, "do not install the root into any trust store")
	c.Flags().StringVar(&stores, "trust-stores", "all", "where to install the root: system, nss, java (comma-separated) or all")
	_ = c.MarkFlagRequired("server")
	return c
}

func (a *app) confirmFingerprint(server string) func(string, string) (bool, error) {
	return func(subject, fp string) (bool, error) {
		fmt.Fprintln(a.stderr, a.lang.T("setup.fingerprint", server, subject, fp))
		fmt.Fprint(a.stderr, a.lang.T("setup.confirm"))
		line, _ := a.stdin.ReadString('\n')
		switch strings.ToLower(strings.TrimSpace(line)) {
		case "y", "yes", "是", "是的":
			return true, nil
		}
		return false, nil
	}
}
