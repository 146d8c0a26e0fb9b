package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/zbca/zbca/ca"
	"github.com/zbca/zbca/internal/runlock"
	"github.com/zbca/zbca/revocation"
	"github.com/zbca/zbca/store"
)

func (a *app) initCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "init",
		Short: "Create the CA (root, issuing CA, OCSP signer, TLS certificate) and the database",
		Long: `init creates, in the data directory, the root CA (ECDSA P-384, 20 years by
default), the issuing CA (ECDSA P-256), the delegated OCSP signer, the TLS
certificate of the HTTPS listener, the SQLite database, the key passphrase
file and the admin token file (both mode 0600).

It refuses to run on a data directory that already holds a CA, and then
changes nothing. 'zbca serve' runs init by itself on an empty data directory.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := a.load(slog.LevelWarn); err != nil {
				return err
			}
			ctx := cmd.Context()
			lock, err := runlock.Exclusive(filepath.Join(a.runDir(), "serve.lock"))
			if err != nil {
				return err
			}
			defer lock.Close()
			caDir := filepath.Join(a.cfg.DataDir, "ca")
			if ca.Initialized(caDir) {
				return fmt.Errorf("%s already holds a CA: refusing to overwrite it (nothing was changed)", a.cfg.DataDir)
			}
			st, auth, err := a.initialise(ctx)
			if err != nil {
				return err
			}
			defer st.Close()
			defer auth.Close()
			a.printSummary(a.stdout, auth, "")
			return nil
		},
	}
}

// initialise creates the CA and the admin token in an empty data directory.
func (a *app) initialise(ctx context.Context) (*store.SQL, *ca.Authority, error) {
	st, err := a.createStore(ctx)
	if err != nil {
		return nil, nil, err
	}
	opts, err := a.caOptions(st)
	if err != nil {
		st.Close()
		return nil, nil, err
	}
	auth, err := ca.Init(ctx, opts)
	if err != nil {
		st.Close()
		return nil, nil, userError(err)
	}
	if _, err := a.ensureAdminToken(); err != nil {
		auth.Close()
		st.Close()
		return nil, nil, err
	}
	// The first CRLs, the root's among them: nginx with ssl_crl refuses
	// every client unless each CA of the chain has a CRL.
	pub, err := a.newPublisher(st, auth)
	if err == nil {
		err = pub.Load(ctx)
	}
	if err != nil {
		auth.Close()
		st.Close()
		return nil, nil, fmt.Errorf("publishing the first CRLs: %w", err)
	}
	return st, auth, nil
}

func (a *app) newPublisher(st *store.SQL, auth *ca.Authority) (*revocation.Publisher, error) {
	o := a.publisherOptions(auth)
	o.Store = st
	return revocation.NewPublisher(o)
}

// publisherOptions is the CRL publisher's configuration.
func (a *app) publisherOptions(auth *ca.Authority) revocation.PublisherOptions {
	return revocation.PublisherOptions{
		Issuers: auth.IssuingCAs(), Root: auth.RootCRLIssuer(),
		Interval: a.cfg.CRL.Interval.Duration, Delay: a.cfg.CRL.Delay.Duration,
		Validity: a.cfg.CRL.Validity.Duration, RootValidity: a.cfg.CRL.RootValidity.Duration,
		// The CA's shard count, fixed at init, and the base of the URLs it
		// writes into certificates (ca.Options.PublicURL).
		Shards: auth.CRLShards(), PublicURL: a.cfg.PublicURL,
		// With the root offline, its CRL is the pre-signed one; online,
		// it lists the issuing CAs a ceremony revoked.
		RootMaterial:   auth.ServedRootMaterial,
		RevokedIssuing: auth.RevokedIssuingCAs,
		Logger:         a.log,
	}
}

// printSummary says where everything is.
func (a *app) printSummary(w io.Writer, auth *ca.Authority, bound string) {
	root := auth.Root()
	httpAddr, httpsAddr, adminAddr := a.cfg.Listen.HTTP, a.cfg.Listen.HTTPS, a.cfg.Listen.Admin
	if bound != "" {
		parts := strings.Split(bound, ",")
		httpAddr, httpsAddr, adminAddr = parts[0], parts[1], parts[2]
	}
	host := a.cfg.HTTPS.Hosts[0]
	fmt.Fprintf(w, `zbca %s
  data directory    %s
  root CA           %s
  root SHA-256      %s
  issuing CA        %s (valid until %s)
  certificate URLs  %s%s  (CRL, OCSP and caIssuers in every certificate)
  public HTTP       %s  (/pki/root.crt, /pki/chain.pem, /crl/, /ocsp)
  HTTPS portal      https://%s/
  admin             http://%s/metrics  /healthz  /readyz  /admin/v1/
  admin token file  %s
  key passphrase    %s
`, version, a.cfg.DataDir, root.Subject.CommonName, ca.ColonHex(ca.Fingerprint(root)),
		auth.Issuing().Subject.CommonName, auth.Issuing().NotAfter.Format("2006-01-02"),
		a.cfg.PublicURL, defaultedNote(a), listenURL("http", httpAddr, host), hostPort(httpsAddr, host), hostPort(adminAddr, "127.0.0.1"),
		a.cfg.Admin.TokenFile, passphraseNote(a))
	if n := auth.CRLShards(); n > 0 {
		fmt.Fprintf(w, "  CRL shards        %d per issuing CA: /crl/%s-<serial mod %d>.crl, and the full /crl/%s.crl\n",
			n, auth.IssuingName(), n, auth.IssuingName())
	}
	if auth.RootOnline() {
		fmt.Fprintf(w, "  root key          online in %s (take it offline: README \"Key ceremonies\")\n", filepath.Join(a.cfg.DataDir, "ca"))
	} else if m := auth.ServedRootMaterial(); m != nil {
		fmt.Fprintf(w, "  root key          offline; pre-signed root material valid until %s\n", m.NextUpdate.Format(time.DateOnly))
	} else {
		fmt.Fprintf(w, "  root key          offline, and no root material\n")
	}
	for _, msg := range []string{auth.ExpiryWarning(), auth.RootMaterialWarning()} {
		if msg != "" {
			fmt.Fprintf(a.stdout, "  WARNING           %s\n", msg)
		}
	}
}

func defaultedNote(a *app) string {
	if a.cfg.PublicURLDefaulted() {
		return " (default: set public_url)"
	}
	return ""
}

func passphraseNote(a *app) string {
	if a.cfg.CA.KMS != "" {
		return "keys in the PKCS#11 token " + a.cfg.CA.KMS + " (service keys: " + a.cfg.CA.PassphraseFile + ")"
	}
	return a.cfg.CA.PassphraseFile + "  (keep a copy apart from backups)"
}

func listenURL(scheme, addr, host string) string { return scheme + "://" + hostPort(addr, host) }

func hostPort(addr, host string) string {
	h, p, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	if h == "" || h == "0.0.0.0" || h == "::" {
		h = host
	}
	return net.JoinHostPort(h, p)
}
