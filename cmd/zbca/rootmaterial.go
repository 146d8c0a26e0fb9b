package main

import (
	"bufio"
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

// The key ceremonies of an offline root (README "Key ceremonies").

func (a *app) caRootMaterialCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "root-material",
		Short: "Sign (ceremony, where the root key is) or import the root's CRL and OCSP answers for an offline root",
	}
	c.AddCommand(a.rootMaterialSignCmd(), a.rootMaterialImportCmd())
	return c
}

func (a *app) rootMaterialSignCmd() *cobra.Command {
	var days int
	var revoke []string
	var out string
	var yes bool
	cmd := &cobra.Command{
		Use:   "sign --out DIR [--days N] [--revoke issuing-N]...",
		Short: "Ceremony: sign the root's CRL and the OCSP answers about every issuing CA for a period",
		Long: `sign runs where the root key is (the offline machine holding a copy of the
data directory with ca/root.key and the CA passphrase, or the HSM holding
the root). It signs, for --days (1–366, not past the root):

  - the root's CRL, listing the issuing CAs named by --revoke (a compromised
    issuing CA: reason cACompromise);
  - for every issuing CA zbca has had, a root-signed OCSP answer (good, or
    revoked for those named), for SHA-1 and SHA-256 CertIDs,

prints what it will sign and asks for confirmation (--yes skips it), and
writes them to --out. Bring that directory to the online server and run
"zbca ca root-material import DIR" there.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := a.load(slog.LevelWarn); err != nil {
				return err
			}
			if out == "" {
				return errors.New("--out DIR is required: where to write the signed material")
			}
			auth, err := a.openCeremonyCA(cmd)
			if err != nil {
				return err
			}
			defer auth.Close()
			if !auth.RootOnline() {
				return errors.New("the root key is not here: run the ceremony where it is (a copy of the data directory's ca/ with root.key and the CA passphrase, or the HSM holding the root)")
			}
			validity := time.Duration(days) * 24 * time.Hour
			// Refuse what cannot be signed before showing what would be.
			if days < 1 || days > 366 {
				return fmt.Errorf("--days %d is outside 1–366", days)
			}
			known := map[string]bool{}
			for _, is := range auth.IssuingCAs() {
				known[is.Name] = true
			}
			for _, n := range revoke {
				if !known[n] {
					return fmt.Errorf("--revoke %q: no issuing CA has that name (zbca ca list)", n)
				}
			}
			fmt.Fprintf(a.stdout, "The root %q (SHA-256 %s) will sign, valid %d days (until about %s):\n",
				auth.Root().Subject.CommonName, ca.Fingerprint(auth.Root()), days, time.Now().Add(validity).UTC().Format(time.DateOnly))
			rev := map[string]bool{}
			for _, n := range revoke {
				rev[n] = true
			}
			for _, is := range auth.IssuingCAs() {
				status := "good"
				if rev[is.Name] {
					status = "REVOKED (cACompromise)"
				}
				fmt.Fprintf(a.stdout, "  OCSP answer about %-10s %-24s serial %s\n", is.Name, status, ca.SerialHex(is.Cert.SerialNumber))
			}
			fmt.Fprintf(a.stdout, "  the root's CRL, listing %d revoked issuing CA(s)\n", len(revoke))
			if !yes {
				fmt.Fprint(a.stdout, "Sign? Type yes: ")
				line, _ := bufio.NewReader(a.stdin).ReadString('\n')
				if strings.TrimSpace(line) != "yes" {
					return errors.New("not signed")
				}
			}
			m, err := auth.SignRootMaterial(validity, revoke)
			if err != nil {
				return userError(err)
			}
			if err := ca.WriteRootMaterial(out, m); err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "signed; written to %s (valid until %s). On the online server: zbca ca root-material import %s\n",
				out, m.NextUpdate.Format(time.RFC3339), out)
			return nil
		},
	}
	cmd.Flags().IntVar(&days, "days", 365, "how long the material is valid (1–366 days)")
	cmd.Flags().StringArrayVar(&revoke, "revoke", nil, "an issuing CA to revoke (its name, e.g. issuing-1); repeatable")
	cmd.Flags().StringVar(&out, "out", "", "the directory to write the signed material to")
	cmd.Flags().BoolVar(&yes, "yes", false, "do not ask for confirmation")
	return cmd
}

// openCeremonyCA opens the CA directory of the data directory without its
// database: a ceremony machine holds a copy of ca/ (and the passphrase),
// not necessarily of the database.
func (a *app) openCeremonyCA(cmd *cobra.Command) (*ca.Authority, error) {
	return ca.Open(cmd.Context(), ca.Options{Dir: filepath.Join(a.cfg.DataDir, "ca"), Config: a.cfg.CA, PublicURL: a.cfg.PublicURL,
		TLSHosts: a.cfg.HTTPS.Hosts, Logger: a.log, Node: a.cfg.NodeName, Ceremony: true})
}

func (a *app) rootMaterialImportCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "import DIR",
		Short: "Check signed root material against this CA's root and serve it (a running server picks it up within a minute)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := a.load(slog.LevelWarn); err != nil {
				return err
			}
			st, auth, err := a.openCA(cmd.Context())
			if err != nil {
				return err
			}
			defer st.Close()
			defer auth.Close()
			m, err := auth.ImportRootMaterial(args[0])
			if err != nil {
				return userError(err)
			}
			if err := st.AppendAudit(cmd.Context(), store.AuditEvent{Actor: "operator", Action: "ca.root_material.import", Subject: "root",
				Details: map[string]any{"this_update": m.ThisUpdate, "next_update": m.NextUpdate, "revoked": m.Revoked}}); err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "imported: the root's CRL and OCSP answers valid until %s", m.NextUpdate.Format(time.RFC3339))
			if len(m.Revoked) > 0 {
				fmt.Fprintf(a.stdout, "; revoked issuing CAs: %s", strings.Join(m.Revoked, ", "))
			}
			fmt.Fprintln(a.stdout)
			return nil
		},
	}
}

func (a *app) caRootOfflineCmd() *cobra.Command {
	var keyOut string
	cmd := &cobra.Command{
		Use:   "root-offline --key-out FILE",
		Short: "Ceremony: move the root key out of the data directory (the server then runs with the root offline)",
		Long: `root-offline moves the root's encrypted key file (ca/<key>) to --key-out
(a removable medium; keep it, and the CA passphrase, apart and offline) and
leaves the root certificate. It first needs imported root material valid
for at least 30 more days ("zbca ca root-material sign" while the key is
still here, then "import"), so that the server keeps serving the root's
CRL and the OCSP answers about the issuing CAs. Restart the server after.
Rollovers and new root material need the key again (README "Key
ceremonies"). Software keys only: with an HSM, remove the root from the
token instead.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := a.load(slog.LevelWarn); err != nil {
				return err
			}
			if keyOut == "" {
				return errors.New("--key-out FILE is required: where the root key goes")
			}
			if a.cfg.CA.KMS != "" {
				return errors.New("the root is in an HSM: remove it from the token (and keep a backup) instead")
			}
			st, auth, err := a.openCA(cmd.Context())
			if err != nil {
				return err
			}
			defer st.Close()
			defer auth.Close()
			if !auth.RootOnline() {
				return errors.New("the root is already offline")
			}
			m, err := auth.RootMaterial()
			if err != nil {
				return fmt.Errorf("no usable root material: sign and import it first (zbca ca root-material sign, then import): %w", err)
			}
			if left := time.Until(m.NextUpdate); left < 30*24*time.Hour {
				return fmt.Errorf("the root material runs out on %s: sign new material first", m.NextUpdate.Format(time.DateOnly))
			}
			src := filepath.Join(a.cfg.DataDir, "ca", auth.RootKeyFile())
			if err := moveFile(src, keyOut); err != nil {
				return err
			}
			if err := st.AppendAudit(cmd.Context(), store.AuditEvent{Actor: "operator", Action: "ca.root.offline", Subject: "root",
				Details: map[string]any{"material_until": m.NextUpdate}}); err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "the root key is now %s (not in the data directory); restart the server: it runs with the root offline, serving the material until %s\n",
				keyOut, m.NextUpdate.Format(time.DateOnly))
			return nil
		},
	}
	cmd.Flags().StringVar(&keyOut, "key-out", "", "where to move the root's encrypted key file")
	return cmd
}

// moveFile moves src to dst (a new file), across file systems too: copied,
// synced, then src removed.
func moveFile(src, dst string) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("writing the key: %w", err)
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Remove(src)
}
