package main

import (
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/zbca/zbca/ca"
	"github.com/zbca/zbca/enroll"
	"github.com/zbca/zbca/internal/expiry"
	"github.com/zbca/zbca/revocation"
	"github.com/zbca/zbca/store"
)

func (a *app) certCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "cert", Short: "Issue and inspect certificates"}
	cmd.AddCommand(a.certIssueCmd(), a.certListCmd(), a.certShowCmd(), a.certRevokeCmd())
	return cmd
}

func (a *app) certIssueCmd() *cobra.Command {
	var username, csrPath, out string
	var offline bool
	cmd := &cobra.Command{
		Use:   "issue --enterprise USERNAME --csr FILE [--out FILE]",
		Short: "Sign a CSR for an enterprise (operator issuance); writes the PEM chain",
		Long: `issue signs a PKCS#10 CSR (PEM or DER; "-" reads standard input) with the
issuing CA, for an existing, active enterprise. The subject of the CSR is
ignored: the certificate follows the client profile (CN = username, O = name,
serialNumber = enterprise ID, 3 years). The certificate, the issuing CA and
the root are written as PEM to --out (or standard output) after the
certificate is stored.`,
		Example: `  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout acme.key -subj /CN=acme -out acme.csr
  zbca cert issue --enterprise acme --csr acme.csr --out acme.pem`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := a.load(slog.LevelWarn); err != nil {
				return err
			}
			var b []byte
			var err error
			if csrPath == "-" {
				b, err = io.ReadAll(io.LimitReader(a.stdin, ca.MaxCSRSize+1))
			} else {
				b, err = readLimited(csrPath, ca.MaxCSRSize+1)
			}
			if err != nil {
				return err
			}
			csr, err := ca.ParseCSR(b)
			if err != nil {
				return userError(err)
			}
			if !offline {
				// Through the running server when it answers: it signs the
				// first OCSP response at issuance, so relying parties never
				// see the new certificate as unknown.
				done, err := a.issueViaServer(username, csr, out)
				if done || err != nil {
					return err
				}
			}
			st, auth, err := a.openCA(cmd.Context())
			if err != nil {
				return err
			}
			defer st.Close()
			defer auth.Close()
			es := a.enrollService(st, auth, &revocation.Service{Store: st, Logger: a.log})
			iss, err := es.Issue(cmd.Context(), enroll.Request{CSR: csr, Username: username, Actor: "operator"})
			if err != nil {
				return userError(err)
			}
			if err := a.writeChain(out, iss.PEMChain(), iss.Record.Serial); err != nil {
				return err
			}
			fmt.Fprintf(a.stderr, "issued certificate %s for %s, valid until %s\n", iss.Record.Serial, username, iss.Certificate.NotAfter.Format(time.RFC3339))
			return nil
		},
	}
	cmd.Flags().StringVar(&username, "enterprise", "", "enterprise username (required)")
	cmd.Flags().StringVar(&csrPath, "csr", "", `CSR file, PEM or DER; "-" for standard input (required)`)
	cmd.Flags().StringVar(&out, "out", "", "write the PEM chain here instead of standard output")
	cmd.Flags().BoolVar(&offline, "offline", false, "sign in this process even if the server runs")
	_ = cmd.MarkFlagRequired("enterprise")
	_ = cmd.MarkFlagRequired("csr")
	return cmd
}

// issueViaServer asks the running server's admin API; done is false when no
// server answers.
func (a *app) issueViaServer(username string, csr *x509.CertificateRequest, out string) (bool, error) {
	body, _ := json.Marshal(map[string]string{"enterprise": username,
		"csr": string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: csr.Raw}))})
	b, reachable, err := a.adminCall(http.MethodPost, "/admin/v1/certificates", body)
	if !reachable {
		return false, nil
	}
	if err != nil {
		return true, err
	}
	var r struct {
		Serial   string    `json:"serial"`
		NotAfter time.Time `json:"not_after"`
		ChainPEM string    `json:"chain_pem"`
	}
	if err := json.Unmarshal(b, &r); err != nil || r.ChainPEM == "" {
		return true, fmt.Errorf("unexpected answer from the server: %.200s", b)
	}
	if err := a.writeChain(out, []byte(r.ChainPEM), r.Serial); err != nil {
		return true, err
	}
	fmt.Fprintf(a.stderr, "issued certificate %s for %s by the running server, valid until %s\n", r.Serial, username, r.NotAfter.Format(time.RFC3339))
	return true, nil
}

func (a *app) writeChain(out string, chain []byte, serial string) error {
	var err error
	if out == "" || out == "-" {
		_, err = a.stdout.Write(chain)
	} else {
		err = writeFileAtomic(out, chain, 0o644)
	}
	if err != nil {
		return fmt.Errorf("the certificate %s is issued and stored, but writing it failed: %w (get it again with 'zbca cert show %s --pem')", serial, err, serial)
	}
	return nil
}

func readLimited(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, limit))
}

func writeFileAtomic(path string, b []byte, mode os.FileMode) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, mode); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

type certJSON struct {
	Serial            string    `json:"serial"`
	Enterprise        string    `json:"enterprise,omitempty"`
	Profile           string    `json:"profile"`
	Subject           string    `json:"subject"`
	NotBefore         time.Time `json:"not_before"`
	NotAfter          time.Time `json:"not_after"`
	DaysLeft          int       `json:"days_left"`
	Status            string    `json:"status"`
	RevokedAt         time.Time `json:"revoked_at,omitzero"`
	FingerprintSHA256 string    `json:"sha256_fingerprint"`
	PEM               string    `json:"pem,omitempty"`
}

// status returns active, expired or revoked.
func status(c *store.Certificate, now time.Time) string {
	if c.Status == store.CertActive && expiry.Expired(c.NotAfter, now) {
		return "expired"
	}
	return c.Status
}

func toCertJSON(c *store.Certificate, now time.Time) certJSON {
	return certJSON{Serial: c.Serial, Enterprise: c.Username, Profile: c.Profile, Subject: c.Subject, NotBefore: c.NotBefore,
		NotAfter: c.NotAfter, DaysLeft: expiry.DaysLeft(c.NotAfter, now), Status: status(c, now), RevokedAt: c.RevokedAt, FingerprintSHA256: c.FingerprintSHA256}
}

func printCertTable(w io.Writer, certs []store.Certificate, now time.Time) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SERIAL\tENTERPRISE\tPROFILE\tSTATUS\tNOT AFTER\tDAYS LEFT")
	for i := range certs {
		c := &certs[i]
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\n", c.Serial, c.Username, c.Profile, status(c, now), c.NotAfter.Local().Format(time.DateOnly), expiry.DaysLeft(c.NotAfter, now))
	}
	tw.Flush()
}

func (a *app) certListCmd() *cobra.Command {
	var username, profile string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "list [--enterprise USERNAME] [--json]",
		Short: "List certificates",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			st, err := a.loadStore(cmd.Context())
			if err != nil {
				return err
			}
			defer st.Close()
			now := time.Now()
			var all []store.Certificate
			f := store.CertFilter{Username: username, Profile: profile, Limit: 1000}
			for {
				page, err := st.ListCertificates(cmd.Context(), f)
				if err != nil {
					return err
				}
				if asJSON {
					enc := json.NewEncoder(a.stdout)
					for i := range page {
						if err := enc.Encode(toCertJSON(&page[i], now)); err != nil {
							return err
						}
					}
				} else {
					all = append(all, page...)
				}
				if len(page) < f.Limit {
					break
				}
				f.After = page[len(page)-1].Serial
			}
			if !asJSON {
				printCertTable(a.stdout, all, now)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&username, "enterprise", "", "only this enterprise's certificates")
	cmd.Flags().StringVar(&profile, "profile", "", "only this profile (client, tls, ocsp)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "one JSON object per line")
	return cmd
}

func (a *app) certShowCmd() *cobra.Command {
	var asJSON, asPEM bool
	cmd := &cobra.Command{
		Use:   "show SERIAL [--json | --pem]",
		Short: "Show one certificate (serial in hex, colons allowed)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			serial, err := ca.NormalizeSerial(args[0])
			if err != nil {
				return userError(err)
			}
			st, err := a.loadStore(cmd.Context())
			if err != nil {
				return err
			}
			defer st.Close()
			c, err := st.GetCertificate(cmd.Context(), serial)
			if err != nil {
				return userError(err)
			}
			p := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.DER})
			now := time.Now()
			switch {
			case asPEM:
				_, err = a.stdout.Write(p)
				return err
			case asJSON:
				j := toCertJSON(c, now)
				j.PEM = string(p)
				return json.NewEncoder(a.stdout).Encode(j)
			}
			fmt.Fprintf(a.stdout, "serial       %s\nenterprise   %s\nprofile      %s\nsubject      %s\nnot before   %s\nnot after    %s (%d days left)\nstatus       %s\nsha256       %s\n",
				c.Serial, c.Username, c.Profile, c.Subject, c.NotBefore.Format(time.RFC3339), c.NotAfter.Format(time.RFC3339), expiry.DaysLeft(c.NotAfter, now),
				status(c, now), ca.ColonHex(c.FingerprintSHA256))
			if c.Status == store.CertRevoked {
				fmt.Fprintf(a.stdout, "revoked at   %s (reason %d, by %s)\n", c.RevokedAt.Format(time.RFC3339), c.RevocationReason, c.RevokedBy)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "JSON output, with the PEM")
	cmd.Flags().BoolVar(&asPEM, "pem", false, "print the certificate as PEM")
	return cmd
}
