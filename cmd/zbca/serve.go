package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/zbca/zbca/ca"
	"github.com/zbca/zbca/enroll"
	"github.com/zbca/zbca/enroll/acme"
	"github.com/zbca/zbca/enroll/portal"
	"github.com/zbca/zbca/internal/adminsock"
	"github.com/zbca/zbca/internal/lifecycle"
	"github.com/zbca/zbca/internal/runlock"
	"github.com/zbca/zbca/revocation"
	"github.com/zbca/zbca/server"
	"github.com/zbca/zbca/verify"
)

func (a *app) serveCmd() *cobra.Command {
	var httpAddr, httpsAddr, adminAddr string
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the server (initialises an empty data directory first)",
		Long: `serve runs the three listeners: public HTTP (/pki, /crl, /ocsp), HTTPS (portal
and APIs) and admin (/admin/v1, /metrics, /healthz, /readyz). The admin API
is also served on the Unix socket <data>/run/admin.sock, the only way the
other zbca commands on this host talk to the server; <data>/run/listen.json
records the addresses really listened on while the server runs.

When public_url is not set, the certificate URLs follow --http
(http://localhost:PORT).

On a first start with an empty data directory it creates the CA and the
database, and prints the root's SHA-256 fingerprint, the URLs and where the
admin token file is. SIGINT or SIGTERM stop it gracefully.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := a.load(0); err != nil {
				return err
			}
			// The flags move the listeners; a public_url left to its
			// default follows --http. The other commands learn these
			// addresses from listen.json and reach the server through the
			// admin socket, never by assuming the configured ones.
			if httpAddr != "" {
				a.cfg.SetListenHTTP(httpAddr)
			}
			for _, o := range []struct{ v, dst *string }{{&httpsAddr, &a.cfg.Listen.HTTPS}, {&adminAddr, &a.cfg.Listen.Admin}} {
				if *o.v != "" {
					*o.dst = *o.v
				}
			}
			if err := a.cfg.Validate(); err != nil {
				return fmt.Errorf("invalid configuration:\n%w", err)
			}
			return a.serve(cmd.Context())
		},
	}
	cmd.Flags().StringVar(&httpAddr, "http", "", "public HTTP listen address (default :8080)")
	cmd.Flags().StringVar(&httpsAddr, "https", "", "HTTPS listen address (default :8443)")
	cmd.Flags().StringVar(&adminAddr, "admin", "", "admin listen address (default 127.0.0.1:9090)")
	return cmd
}

func (a *app) serve(parent context.Context) error {
	// The OCSP responder keeps ~150 bytes per certificate in memory, all of
	// it long-lived and without pointers, so a GC cycle costs little: with
	// Go's default GOGC=100 the heap would still grow to twice the live
	// data. 50 keeps it near 1.5×; GOGC in the environment still wins.
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(50)
	}
	ctx, stop := signal.NotifyContext(parent, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	start := time.Now()
	metrics := server.NewMetrics()

	// Nobody else may be able to replace the data directory or its run
	// directory (and so impersonate this server to the command line).
	if err := os.MkdirAll(a.cfg.DataDir, 0o700); err != nil {
		return err
	}
	if tightened, err := adminsock.SafeDataDir(a.cfg.DataDir, true); err != nil {
		return err
	} else if tightened {
		a.log.Warn("the data directory was writable by group or others: made it 0700", "data", a.cfg.DataDir)
	}
	// One server per data directory: two would both renew the service
	// certificates, and two first starts would both create a root.
	lock, err := runlock.Exclusive(filepath.Join(a.runDir(), "serve.lock"))
	if err != nil {
		return err
	}
	defer lock.Close()
	if a.cfg.PublicURLDefaulted() {
		a.log.Warn("public_url is not set: certificates carry "+a.cfg.PublicURL+" as their CRL, OCSP and caIssuers URLs for 3 years; set public_url to the address relying parties use", "public_url", a.cfg.PublicURL)
	}
	caDir := filepath.Join(a.cfg.DataDir, "ca")
	first := !ca.Initialized(caDir)
	if first {
		a.log.Info("first start: initialising a new CA", "data", a.cfg.DataDir)
		st, auth, err := a.initialise(ctx)
		if err != nil {
			return fmt.Errorf("initialising: %w", err)
		}
		auth.Close()
		st.Close()
	}
	st, err := a.createStore(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	opts, err := a.caOptions(st)
	if err != nil {
		return err
	}
	opts.Observe = metrics.ObserveIssuance
	auth, err := ca.Open(ctx, opts)
	if err != nil {
		return err
	}
	defer auth.Close()
	// Serials journaled by a process of this node that died before storing
	// the certificate were never delivered: mark them failed. Processes
	// still running (a CLI issuance) hold their boot lock and are spared.
	live, err := runlock.Live(a.runDir())
	if err != nil {
		return fmt.Errorf("reading boot locks: %w", err)
	}
	// SQLite is one host: the boot locks in the data directory speak for
	// every process, whatever host name it had (a container's changes). On
	// PostgreSQL other nodes journal too, with boot locks this node cannot
	// see: recover only this node's entries (node_name must be unique).
	node := ""
	if a.cfg.Store.Driver == "postgres" {
		node = a.cfg.NodeName
		release, err := st.ClaimNode(ctx, node)
		if err != nil {
			return err
		}
		defer release()
	}
	if n, err := st.RecoverJournal(ctx, node, live); err != nil {
		return fmt.Errorf("recovering the issuance journal: %w", err)
	} else if n > 0 {
		a.log.Warn("marked unfinished issuances of an earlier run as failed", "count", n)
	}
	if err := auth.EnsureServiceCertificates(ctx); err != nil {
		return err
	}
	token, err := a.ensureAdminToken()
	if err != nil {
		return fmt.Errorf("admin token: %w", err)
	}
	// The node, in dependency order: store → CA → OCSP table and CRL
	// publisher → the status feed that keeps both (and verification)
	// current → revocation → enrollment and verification → listeners.
	// Nothing is changed after it is built; every goroutine is a task,
	// stopped in reverse order of its start.
	// The tasks outlive the signal: they stop after the listeners have
	// drained (srv.Shutdown below), so that a request in flight at SIGTERM
	// still has its feed, publisher and OCSP refresh.
	tasks := lifecycle.New(context.WithoutCancel(ctx), a.log)
	defer tasks.Stop(10 * time.Second)
	ro := revocation.ResponderOptions{
		Issuers: auth.IssuingCAs(), Root: auth.RootCRLIssuer(), RootMaterial: auth.ServedRootMaterial, RevokedIssuing: auth.RevokedIssuingCAs,
		Validity: a.cfg.OCSP.Validity.Duration, LiveWorkers: a.cfg.OCSP.NonceWorkers,
		ExpiredGrace: a.cfg.OCSP.ExpiredGrace.Duration,
	}
	if a.cfg.OCSP.Signer == "delegated" {
		ro.Delegated = auth.OCSPResponder
	}
	stack, err := revocation.NewStack(revocation.StackOptions{Store: st, OCSP: ro, Publisher: a.publisherOptions(auth),
		Notified: a.cfg.Store.Driver == "postgres", Observe: metrics.ObserveRevocation, Logger: a.log})
	if err != nil {
		return err
	}
	if err := stack.Load(ctx); err != nil {
		return err
	}
	stack.Start(tasks)
	resp, pub, feed, svc := stack.OCSP, stack.CRL, stack.Feed, stack.Service
	metrics.WatchOCSP(resp)
	metrics.WatchFeed(feed)
	if !auth.RootOnline() {
		metrics.WatchRootMaterial(auth.RootMaterialLeft)
	}
	metrics.WatchCRL(pub, time.Now)
	authn, err := enroll.NewAuthenticator(enroll.AuthOptions{Config: a.cfg.Enroll, Store: st, Logger: a.log, Observe: metrics.ObserveLogin})
	if err != nil {
		return err
	}
	es := a.enrollService(st, auth, svc)
	api := &enroll.API{Auth: authn, Store: st, Revocation: svc, EABLifetime: a.cfg.Enroll.EABLifetime.Duration, Logger: a.log}
	portalSrv, err := portal.New(portal.Options{Auth: authn, Enroll: es, Store: st, Revocation: svc,
		DownloadsDir: filepath.Join(a.cfg.DataDir, "downloads"), Logger: a.log})
	if err != nil {
		return err
	}
	acmeSrv := acme.New(acme.Options{Store: st, Enroll: es, Revocation: svc, Issuers: auth.IssuingCerts(), Logger: a.log,
		RatePerSecond: a.cfg.Enroll.ACMERate.PerIPPerSecond, RateBurst: a.cfg.Enroll.ACMERate.Burst})
	tasks.Go("acme-janitor", func(ctx context.Context) { acmeSrv.RunJanitor(ctx, st, 5*time.Minute) })
	vs, err := a.verifyService(st, auth, feed)
	if err != nil {
		return err
	}
	metrics.WatchVerify(vs)
	vh := verify.NewHandler(vs, verify.HandlerOptions{CertHeader: a.cfg.Verify.NginxCertHeader, UserHeader: a.cfg.Verify.NginxUserHeader})
	srv, err := server.New(server.Options{
		HTTPAddr: a.cfg.Listen.HTTP, HTTPSAddr: a.cfg.Listen.HTTPS, AdminAddr: a.cfg.Listen.Admin,
		CA: auth, Store: st, AdminToken: token, Registry: metrics.Registry, Logger: a.log,
		Revocation: svc, CRLs: pub, OCSP: resp, Enroll: es, API: api, ACME: acmeSrv, Portal: portalSrv, Verify: vh,
		// We hold the serve lock: a stale socket there may be replaced.
		AdminSocketDir: a.runDir(),
	})
	if err != nil {
		return err
	}
	if err := srv.Start(); err != nil {
		return err
	}
	h, hs, ad := srv.Addrs()
	host := a.cfg.HTTPS.Hosts[0]
	info := adminsock.Info{PID: os.Getpid(), HTTP: listenURL("http", h, host), HTTPS: listenURL("https", hs, host),
		Admin: listenURL("http", ad, "127.0.0.1"), AdminSocket: srv.AdminSocket(), PublicURL: a.cfg.PublicURL, Started: time.Now().UTC()}
	if err := adminsock.WriteInfo(a.runDir(), info); err != nil {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 15*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
		return err
	}
	defer func() {
		if err := adminsock.RemoveInfo(a.runDir(), info.PID); err != nil {
			a.log.Warn("removing listen.json", "err", err)
		}
	}()
	a.printSummary(a.stdout, auth, strings.Join([]string{h, hs, ad}, ","))
	fmt.Fprintf(a.stdout, "  admin socket      %s  (the zbca commands on this host)\n", info.AdminSocket)
	a.log.Info("serving", "http", h, "https", hs, "admin", ad, "admin_socket", info.AdminSocket,
		"startup", time.Since(start).Round(time.Millisecond), "first_start", first)

	// Renew the OCSP signer and the TLS certificate while running.
	tasks.Go("service-certificates", func(ctx context.Context) { auth.RunServiceRenewal(ctx, 6*time.Hour, a.log) })
	// With the root offline: pick up imported root material, and warn
	// before it runs out.
	tasks.Go("root-material", func(ctx context.Context) { auth.RunRootMaterial(ctx, time.Minute, a.log) })

	select {
	case <-ctx.Done():
		a.log.Info("shutting down")
	case err := <-srv.Errors():
		a.log.Error("listener failed", "err", err)
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 15*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
		return err
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 15*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		a.log.Warn("shutdown", "err", err)
	}
	a.log.Info("stopped")
	return nil
}
