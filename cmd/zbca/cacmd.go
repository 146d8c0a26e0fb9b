package main

import (
	"bufio"
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/zbca/zbca/ca"
	"github.com/zbca/zbca/store"
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
	c := &cobra.Command{
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

It needs the root key (the passphrase file or the HSM holding it). With the
root offline it goes in two halves: "zbca ca rollover prepare" here, "zbca ca
rollover sign" at the ceremony, "zbca ca rollover import" here (README "Key
ceremonies").`,
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
			return a.afterRollover(ctx, st, r, "")
		},
	}
	c.AddCommand(a.rolloverPrepareCmd(), a.rolloverSignCmd(), a.rolloverImportCmd())
	return c
}

// afterRollover opens the CA again (the new issuing CA is current now),
// imports the root material that answers for it (material, when the root
// is offline), renews the service certificates under it, publishes its
// first CRL and says what happened.
func (a *app) afterRollover(ctx context.Context, st *store.SQL, r *ca.Rolled, material string) error {
	opts, err := a.caOptions(st)
	if err != nil {
		return err
	}
	auth, err := ca.Open(ctx, opts)
	if err != nil {
		return err
	}
	defer auth.Close()
	if material != "" {
		m, err := auth.ImportRootMaterial(material)
		if err != nil {
			return fmt.Errorf("the root material of the ceremony (the server cannot answer for %s about the new issuing CA without it): %w", r.NewName, err)
		}
		if err := st.AppendAudit(ctx, store.AuditEvent{Actor: "operator", Action: "ca.root_material.import", Subject: "root",
			Details: map[string]any{"this_update": m.ThisUpdate, "next_update": m.NextUpdate, "revoked": m.Revoked}}); err != nil {
			return err
		}
		if _, err := auth.ReloadRootMaterial(); err != nil {
			return err
		}
	}
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
}

func (a *app) rolloverPrepareCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "prepare",
		Short: "Rollover with the root offline, first half: make the next issuing CA's key and CSR",
		Long: `prepare makes the next issuing CA's key (encrypted in ca/, or in the HSM) and
writes its CSR to ca/issuing-N.csr. The current issuing CA goes on signing.
Take the CSR to the ceremony ("zbca ca rollover sign" where the root key is),
then bring its output back and run "zbca ca rollover import DIR".`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := a.load(slog.LevelWarn); err != nil {
				return err
			}
			// The server rewrites the manifest when it renews its service
			// certificates: it must not run while the pending CA is added.
			lock, err := a.aloneWithData("preparing a rollover")
			if err != nil {
				return err
			}
			defer lock.Close()
			st, auth, err := a.openCA(cmd.Context())
			if err != nil {
				return err
			}
			defer st.Close()
			defer auth.Close()
			name, _, err := auth.PrepareRollover(cmd.Context())
			if err != nil {
				return userError(err)
			}
			csr := filepath.Join(a.cfg.DataDir, "ca", name+".csr")
			fmt.Fprintf(a.stdout, "prepared %s: its key is made, its CSR is %s\nnext: at the ceremony, zbca ca rollover sign --csr %s.csr --out DIR; then here, with the server stopped, zbca ca rollover import DIR\n", name, csr, name)
			return nil
		},
	}
}

func (a *app) rolloverSignCmd() *cobra.Command {
	var csrFile, out string
	var days int
	var yes bool
	cmd := &cobra.Command{
		Use:   "sign --csr FILE --out DIR [--days N]",
		Short: "Ceremony: the root signs the prepared issuing CA, and root material that answers for it",
		Long: `sign runs where the root key is (as "zbca ca root-material sign"). It checks the
CSR (self-signed; a key of the configured kind; this CA's issuing name with
a new generation, " G2"), prints what the root will sign, asks for
confirmation (--yes skips it), and writes DIR/issuing.crt (the CA
certificate, this CA's issuing profile: nothing but the key and the name is
taken from the CSR) and DIR/root-material/ (the root's CRL and OCSP answers
about every issuing CA, the new one included, for --days).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := a.load(slog.LevelWarn); err != nil {
				return err
			}
			if csrFile == "" || out == "" {
				return errors.New("--csr FILE and --out DIR are required")
			}
			b, err := os.ReadFile(csrFile)
			if err != nil {
				return err
			}
			auth, err := a.openCeremonyCA(cmd)
			if err != nil {
				return err
			}
			defer auth.Close()
			cert, err := auth.SignIssuingCSR(b)
			if err != nil {
				return userError(err)
			}
			fmt.Fprintf(a.stdout, "The root %q (SHA-256 %s) will sign:\n  issuing CA  %s, SHA-256 %s, valid until %s, CA:TRUE path length 0\n  root material for %d days answering for it and for %d issuing CA(s) before it\n",
				auth.Root().Subject.CommonName, ca.Fingerprint(auth.Root()), cert.Subject.CommonName, ca.Fingerprint(cert), cert.NotAfter.Format(time.DateOnly), days, len(auth.IssuingCAs()))
			if !yes {
				fmt.Fprint(a.stdout, "Sign? Type yes: ")
				line, _ := bufio.NewReader(a.stdin).ReadString('\n')
				if strings.TrimSpace(line) != "yes" {
					return errors.New("not signed")
				}
			}
			m, err := auth.SignRootMaterial(time.Duration(days)*24*time.Hour, nil, cert)
			if err != nil {
				return userError(err)
			}
			if err := os.MkdirAll(out, 0o700); err != nil {
				return err
			}
			if err := os.WriteFile(filepath.Join(out, "issuing.crt"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw}), 0o644); err != nil {
				return err
			}
			if err := ca.WriteRootMaterial(filepath.Join(out, "root-material"), m); err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "signed; written to %s. On the server, stopped: zbca ca rollover import %s\n", out, out)
			return nil
		},
	}
	cmd.Flags().StringVar(&csrFile, "csr", "", "the CSR made by zbca ca rollover prepare")
	cmd.Flags().StringVar(&out, "out", "", "the directory to write the certificate and the root material to")
	cmd.Flags().IntVar(&days, "days", 365, "validity of the root material (1–366 days)")
	cmd.Flags().BoolVar(&yes, "yes", false, "do not ask for confirmation")
	return cmd
}

func (a *app) rolloverImportCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "import DIR",
		Short: "Rollover with the root offline, second half: import the ceremony's issuing CA and switch to it",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := a.load(slog.LevelWarn); err != nil {
				return err
			}
			lock, err := a.aloneWithData("the rollover")
			if err != nil {
				return err
			}
			defer lock.Close()
			ctx := cmd.Context()
			b, err := os.ReadFile(filepath.Join(args[0], "issuing.crt"))
			if err != nil {
				return err
			}
			blk, _ := pem.Decode(b)
			if blk == nil {
				return errors.New("issuing.crt is not a PEM certificate")
			}
			cert, err := x509.ParseCertificate(blk.Bytes)
			if err != nil {
				return err
			}
			st, auth, err := a.openCA(ctx)
			if err != nil {
				return err
			}
			defer st.Close()
			material := filepath.Join(args[0], "root-material")
			if _, err := os.Stat(material); err != nil {
				material = "" // ImportRollover refuses that with the root offline
			}
			r, err := auth.ImportRollover(ctx, cert, material)
			auth.Close()
			if err != nil {
				return userError(err)
			}
			return a.afterRollover(ctx, st, r, material)
		},
	}
}
