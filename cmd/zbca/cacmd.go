package main

import (
	"fmt"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/zbca/zbca/ca"
)

func (a *app) caCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "ca",
		Short: "Show the CA hierarchy and roll the issuing CA over",
	}
	c.AddCommand(a.caListCmd(), a.caRolloverCmd(), a.caRootMaterialCmd(), a.caRootOfflineCmd())
	return c
}

func (a *app) caListCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List the root and every issuing CA zbca has had",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := a.load(slog.LevelWarn); err != nil {
				return err
			}
			st, auth, err := a.openCA(cmd.Context())
			if err != nil {
				return err
			}
			defer st.Close()
			defer auth.Close()
			root := auth.Root()
			fmt.Fprintf(a.stdout, "%-11s %-8s %-10s %-10s %-32s %s\n", "NAME", "STATUS", "NOT BEFORE", "NOT AFTER", "SUBJECT", "SHA-256")
			rootStatus := "online"
			if !auth.RootOnline() {
				rootStatus = "offline"
			}
			fmt.Fprintf(a.stdout, "%-11s %-8s %-10s %-10s %-32s %s\n", "root", rootStatus, root.NotBefore.Format(time.DateOnly), root.NotAfter.Format(time.DateOnly), root.Subject.CommonName, ca.Fingerprint(root))
			for i, is := range auth.IssuingCAs() {
				status := "retired"
				if i == 0 {
					status = "current"
				}
				fmt.Fprintf(a.stdout, "%-11s %-8s %-10s %-10s %-32s %s\n", is.Name, status, is.Cert.NotBefore.Format(time.DateOnly), is.Cert.NotAfter.Format(time.DateOnly), is.Cert.Subject.CommonName, ca.Fingerprint(is.Cert))
			}
			if m := auth.ServedRootMaterial(); m != nil {
				fmt.Fprintf(a.stdout, "root: offline; pre-signed root material valid until %s\n", m.NextUpdate.Format(time.RFC3339))
			}
			for _, w := range []string{auth.ExpiryWarning(), auth.RootMaterialWarning()} {
				if w != "" {
					fmt.Fprintf(a.stdout, "WARNING: %s\n", w)
				}
			}
			return nil
		},
	}
}

func (a *app) caRolloverCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "rollover",
		Short: "Replace the issuing CA with a new one; the old one keeps answering for its certificates",
		Long: `rollover creates a new issuing CA (a new key, signed by the root, named
issuing-N, its common name ending in "GN") and makes it the one that signs
every new certificate. The old issuing CA is retired, not removed: its
certificates stay valid, its CRL is still published at the same URL, and
the OCSP responder and the verification API still answer for them.

The OCSP signer and the HTTPS certificate are renewed under the new issuing
CA at once. The server must be stopped (rollover takes the same lock as
serve); start it again afterwards. With several nodes, copy the CA
directory to every node before restarting them, and give relying parties
the new intermediate: /pki/issuers.pem holds every issuing CA and the root.

It needs the root key (the passphrase file or the HSM holding it).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := a.load(slog.LevelWarn); err != nil {
				return err
			}
			lock, err := a.aloneWithData("the rollover")
			if err != nil {
				return err
			}
			defer lock.Close()
			ctx := cmd.Context()
			st, auth, err := a.openCA(ctx)
			if err != nil {
				return err
			}
			defer st.Close()
			r, err := auth.Rollover(ctx)
			auth.Close()
			if err != nil {
				return userError(err)
			}
			// Open again: the new issuing CA is current now; renew the
			// service certificates under it and publish its first CRL.
			opts, err := a.caOptions(st)
			if err != nil {
				return err
			}
			auth, err = ca.Open(ctx, opts)
			if err != nil {
				return err
			}
			defer auth.Close()
			if err := auth.EnsureServiceCertificates(ctx); err != nil {
				return fmt.Errorf("renewing the OCSP signer and the TLS certificate (run rollover's follow-up by starting the server, which retries): %w", err)
			}
			pub, err := a.newPublisher(st, auth)
			if err == nil {
				err = pub.Load(ctx)
			}
			if err != nil {
				return fmt.Errorf("publishing the new issuing CA's first CRL (the server does it at start): %w", err)
			}
			fmt.Fprintf(a.stdout, `rolled over the issuing CA
  retired   %s  %s (until %s): signs no new certificate; its CRL and OCSP answers go on
  current   %s  %s (until %s)
  SHA-256   %s
next: start the server again (zbca serve); with several nodes copy %s to each node first;
      give relying parties (nginx ssl_client_certificate) the new bundle /pki/issuers.pem
`, r.OldName, r.Old.Subject.CommonName, r.Old.NotAfter.Format(time.DateOnly),
				r.NewName, r.New.Subject.CommonName, r.New.NotAfter.Format(time.DateOnly),
				ca.ColonHex(ca.Fingerprint(r.New)), filepath.Join(a.cfg.DataDir, "ca"))
			return nil
		},
	}
}
