// Package benchenv opens a zbca data directory the way cmd/zbca does, for
// the benchmark tools under scripts/bench: the configuration (optional
// file, then the data directory), the SQLite store and the CA with this
// process's boot lock.
package benchenv

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/zbca/zbca/ca"
	"github.com/zbca/zbca/config"
	"github.com/zbca/zbca/internal/runlock"
	"github.com/zbca/zbca/store"
)

// Env is an opened data directory.
type Env struct {
	Config config.Config
	Store  *store.SQL
	CA     *ca.Authority
	lock   *runlock.Lock
}

// Open opens the data directory dir (initialised with `zbca init`), with
// the configuration file configPath when it is not empty.
func Open(ctx context.Context, dir, configPath string, log *slog.Logger) (*Env, error) {
	cfg, err := config.Load(configPath)
	if err != nil {
		return nil, err
	}
	if dir != "" {
		cfg.DataDir = dir
	}
	if abs, err := filepath.Abs(cfg.DataDir); err == nil {
		cfg.DataDir = abs
	}
	cfg.Resolve()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	caDir := filepath.Join(cfg.DataDir, "ca")
	if !ca.Initialized(caDir) {
		return nil, fmt.Errorf("%s is not an initialised data directory: run `zbca --data %s init` first", cfg.DataDir, cfg.DataDir)
	}
	var dsn string
	if cfg.Store.Driver == "postgres" {
		b, err := config.ReadSecretFile(cfg.Store.DSNFile)
		if err != nil {
			return nil, fmt.Errorf("store.dsn_file: %w", err)
		}
		dsn = string(b)
	}
	st, err := store.Open(ctx, store.Options{Driver: cfg.Store.Driver, Path: cfg.Store.Path, DSN: dsn, MaxBatch: cfg.Store.MaxBatch, Logger: log, MustExist: true})
	if err != nil {
		return nil, err
	}
	lock, err := runlock.Acquire(filepath.Join(cfg.DataDir, "run"))
	if err != nil {
		st.Close()
		return nil, fmt.Errorf("taking the boot lock: %w", err)
	}
	auth, err := ca.Open(ctx, ca.Options{
		Boot: lock.Boot, Dir: caDir, Config: cfg.CA, PublicURL: cfg.PublicURL, TLSHosts: cfg.HTTPS.Hosts,
		Store: st, Logger: log, Node: cfg.NodeName,
	})
	if err != nil {
		lock.Release()
		st.Close()
		return nil, err
	}
	return &Env{Config: cfg, Store: st, CA: auth, lock: lock}, nil
}

// Close closes the CA and the store and releases the boot lock.
func (e *Env) Close() error {
	err := errors.Join(e.CA.Close(), e.Store.Close())
	e.lock.Release()
	return err
}

// ServiceSerials returns the serials of the CA's own certificates (OCSP
// signer, TLS), which the benchmarks leave alone.
func (e *Env) ServiceSerials(ctx context.Context) (map[string]bool, error) {
	out := map[string]bool{}
	for _, p := range []string{store.ProfileOCSP, store.ProfileTLS} {
		after := ""
		for {
			cs, err := e.Store.ListCertificates(ctx, store.CertFilter{Profile: p, After: after, Limit: 1000})
			if err != nil {
				return nil, err
			}
			for _, c := range cs {
				out[c.Serial] = true
				after = c.Serial
			}
			if len(cs) < 1000 {
				break
			}
		}
	}
	return out, nil
}
