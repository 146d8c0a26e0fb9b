// Command zbca is the zbca server and the operator's command line.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"

	"github.com/spf13/cobra"

	"github.com/zbca/zbca/ca"
	"github.com/zbca/zbca/config"
	"github.com/zbca/zbca/enroll"
	"github.com/zbca/zbca/internal/adminsock"
	"github.com/zbca/zbca/internal/runlock"
	"github.com/zbca/zbca/internal/zerr"
	"github.com/zbca/zbca/revocation"
	"github.com/zbca/zbca/store"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

func main() {
	a := &app{stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr}
	root := a.rootCmd()
	err := root.Execute()
	if a.lock != nil {
		a.lock.Release()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "zbca: "+err.Error())
		var ec exitCode
		if errors.As(err, &ec) {
			os.Exit(int(ec))
		}
		os.Exit(1)
	}
}

// exitCode lets a command choose its exit status after printing its own
// message.
type exitCode int

func (e exitCode) Error() string { return fmt.Sprintf("exit status %d", int(e)) }

// app carries the global flags and what is built from them.
type app struct {
	configPath string
	configUsed string // the file actually read (--config or ZBCA_CONFIG)
	dataDir    string
	cfg        config.Config
	log        *slog.Logger
	lock       *runlock.Lock // this process's boot lock, once it may journal
	stdin      io.Reader
	stdout     io.Writer
	stderr     io.Writer
}

func (a *app) rootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "zbca",
		Short: "zbca — certificate authority for online direct-reporting systems",
		Long: `zbca issues 3-year client certificates to reporting enterprises, and answers the
submission sites' OCSP, CRL and verification requests.

Start the server (initialises a CA and a SQLite database on first start):
  zbca serve

The data directory is ./zbca-data unless --data or ZBCA_DATA says otherwise;
the configuration file is named by --config or ZBCA_CONFIG (optional).`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.PersistentFlags().StringVar(&a.dataDir, "data", "", "data directory (default ./zbca-data, or $ZBCA_DATA, or data_dir in the config)")
	root.PersistentFlags().StringVar(&a.configPath, "config", "", "configuration file (default $ZBCA_CONFIG; none needed)")
	root.AddCommand(a.initCmd(), a.serveCmd(), a.enterpriseCmd(), a.certCmd(), a.auditCmd(), a.backupCmd(), a.apikeyCmd(), a.storeCmd(), a.caCmd(), a.versionCmd())
	return root
}

// load reads the configuration: file from --config or ZBCA_CONFIG, data
// directory from --data, ZBCA_DATA, the file, or the default. These two
// variables are the only environment zbca reads.
func (a *app) load(logLevel slog.Level, overrides ...func(*config.Config)) error {
	path := a.configPath
	if path == "" {
		path = os.Getenv("ZBCA_CONFIG")
	}
	cfg, err := config.Load(path)
	if err != nil {
		return err
	}
	a.configUsed = path
	switch {
	case a.dataDir != "":
		cfg.DataDir = a.dataDir
	case os.Getenv("ZBCA_DATA") != "":
		cfg.DataDir = os.Getenv("ZBCA_DATA")
	}
	if abs, err := filepath.Abs(cfg.DataDir); err == nil {
		cfg.DataDir = abs
	}
	for _, o := range overrides {
		o(&cfg)
	}
	cfg.Resolve()
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("invalid configuration:\n%w", err)
	}
	a.cfg = cfg
	a.log = newLogger(a.stderr, cfg.Log, logLevel)
	a.followServerPublicURL()
	return nil
}

// followServerPublicURL: when public_url is not configured and a server
// runs on this data directory, its certificate URLs (which follow serve
// --http) are this command's too, so that a certificate signed here points
// where the server's do.
func (a *app) followServerPublicURL() {
	if !a.cfg.PublicURLDefaulted() {
		return
	}
	info, err := adminsock.ReadInfo(a.runDir())
	if err != nil || info.PublicURL == "" {
		return
	}
	if pid, held, err := runlock.Holder(filepath.Join(a.runDir(), "serve.lock")); err == nil && held && pid == info.PID {
		a.cfg.PublicURL = info.PublicURL
	}
}

func newLogger(w io.Writer, c config.Log, min slog.Level) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(c.Level))
	if min > level {
		level = min
	}
	opts := &slog.HandlerOptions{Level: level}
	if c.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// loadStore loads the configuration (logging warnings only) and opens the
// store: the start of most operator commands.
func (a *app) loadStore(ctx context.Context) (*store.SQL, error) {
	if err := a.load(slog.LevelWarn); err != nil {
		return nil, err
	}
	return a.openStore(ctx)
}

// openStore opens the existing database; only init and serve create one
// (createStore), so that a mistyped --data is an error, not an empty CA.
func (a *app) openStore(ctx context.Context) (*store.SQL, error) {
	o, err := a.storeOptions()
	if err != nil {
		return nil, err
	}
	o.MustExist = true
	st, err := store.Open(ctx, o)
	if errors.Is(err, store.ErrNoDatabase) {
		return nil, fmt.Errorf("no zbca data directory at %s (check --data or ZBCA_DATA, or run 'zbca init')", a.cfg.DataDir)
	}
	return st, err
}

func (a *app) createStore(ctx context.Context) (*store.SQL, error) {
	if err := os.MkdirAll(a.cfg.DataDir, 0o700); err != nil {
		return nil, err
	}
	o, err := a.storeOptions()
	if err != nil {
		return nil, err
	}
	return store.Open(ctx, o)
}

// storeOptions is the store section as store.Options; for PostgreSQL, with
// the DSN read from store.dsn_file (a secret: never logged).
func (a *app) storeOptions() (store.Options, error) {
	o := store.Options{Driver: a.cfg.Store.Driver, Path: a.cfg.Store.Path, MaxBatch: a.cfg.Store.MaxBatch, Logger: a.log}
	if o.Driver == "postgres" {
		b, err := config.ReadSecretFile(a.cfg.Store.DSNFile)
		if err != nil {
			return o, fmt.Errorf("store.dsn_file: %w", err)
		}
		o.DSN = string(b)
	}
	return o, nil
}

func (a *app) runDir() string { return filepath.Join(a.cfg.DataDir, "run") }

// aloneWithData takes the serve lock, so that no server starts, and checks
// that no other zbca command is using the data directory, for commands that
// change it wholesale (store migrate, ca rollover); doing names the work in
// the error a running server gets ("stop it before doing").
func (a *app) aloneWithData(doing string) (*os.File, error) {
	lock, err := runlock.Exclusive(filepath.Join(a.runDir(), "serve.lock"))
	if err != nil {
		return nil, fmt.Errorf("%w: stop it before %s", err, doing)
	}
	live, err := runlock.Live(a.runDir())
	if err != nil {
		lock.Close()
		return nil, err
	}
	if live = slices.DeleteFunc(live, func(b string) bool { return b == "serve" }); len(live) > 0 {
		lock.Close()
		return nil, fmt.Errorf("%d other zbca process(es) are using this data directory: wait for them to finish", len(live))
	}
	return lock, nil
}

// caOptions returns the CA options; it takes this process's boot lock, so
// that a starting server leaves this process's journal entries alone.
func (a *app) caOptions(st ca.Store) (ca.Options, error) {
	if a.lock == nil {
		l, err := runlock.Acquire(a.runDir())
		if err != nil {
			return ca.Options{}, fmt.Errorf("taking the boot lock: %w", err)
		}
		a.lock = l
	}
	return ca.Options{
		Boot:      a.lock.Boot,
		Dir:       filepath.Join(a.cfg.DataDir, "ca"),
		Config:    a.cfg.CA,
		PublicURL: a.cfg.PublicURL,
		TLSHosts:  a.cfg.HTTPS.Hosts,
		Store:     st,
		Logger:    a.log,
		Node:      a.cfg.NodeName,
	}, nil
}

// openCA opens the store and the CA, for commands that sign.
func (a *app) openCA(ctx context.Context) (*store.SQL, *ca.Authority, error) {
	st, err := a.openStore(ctx)
	if err != nil {
		return nil, nil, err
	}
	opts, err := a.caOptions(st)
	if err != nil {
		st.Close()
		return nil, nil, err
	}
	auth, err := ca.Open(ctx, opts)
	if err != nil {
		st.Close()
		return nil, nil, err
	}
	return st, auth, nil
}

// ensureAdminToken creates the admin token file when missing and returns
// the token.
func (a *app) ensureAdminToken() ([]byte, error) {
	p := a.cfg.Admin.TokenFile
	if _, err := os.Stat(p); errors.Is(err, os.ErrNotExist) {
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			return nil, err
		}
		b := make([]byte, 32)
		if _, err := rand.Read(b); err != nil {
			return nil, err
		}
		f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return nil, err
		}
		_, err = f.WriteString(hex.EncodeToString(b) + "\n")
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return nil, err
		}
	}
	return config.ReadSecretFile(p)
}

func (a *app) readAdminToken() ([]byte, error) { return config.ReadSecretFile(a.cfg.Admin.TokenFile) }

// userError turns a core error into the message an operator reads.
func userError(err error) error {
	if err == nil {
		return nil
	}
	if zerr.KindOf(err) == zerr.Internal {
		return err
	}
	return errors.New(err.Error())
}

// enrollService is the one issuance policy, for serve and the CLI.
func (a *app) enrollService(st *store.SQL, auth *ca.Authority, svc *revocation.Service) *enroll.Service {
	return &enroll.Service{CA: auth, Store: st, Revoke: svc, Logger: a.log,
		Policy: enroll.Policy{MaxActive: a.cfg.Enroll.Policy.MaxActive, MaxPerDay: a.cfg.Enroll.Policy.MaxPerDay}}
}
