package main

import (
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/zbca/zbca/config"
	"github.com/zbca/zbca/store"
)

func (a *app) storeCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "store", Short: "Database maintenance"}
	cmd.AddCommand(a.storeMigrateCmd())
	return cmd
}

func (a *app) storeMigrateCmd() *cobra.Command {
	var to, dsnFile string
	cmd := &cobra.Command{
		Use:   "migrate --to postgres --dsn-file FILE",
		Short: "Copy the SQLite database to an empty PostgreSQL database, and verify the copy",
		Long: `migrate copies every table of the configured SQLite database to an empty
PostgreSQL database, rows verbatim (ids, certificates, the journal, CRL
numbers, the hash-chained audit log and its head), then verifies that every
table has the same number of rows and that the audit chain verifies with the
same length and head on both sides.

Stop 'zbca serve' first: migrate refuses to run while a server (or another
zbca command) uses the data directory. The SQLite database is only read. The
DSN file must be mode 0600; the DSN is never printed. A destination that
already holds rows is refused, and nothing is written to it.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if to != "postgres" {
				return fmt.Errorf("--to %q: only postgres is supported", to)
			}
			if dsnFile == "" {
				return errors.New("--dsn-file is required (a 0600 file holding the PostgreSQL DSN)")
			}
			if err := a.load(slog.LevelWarn); err != nil {
				return err
			}
			if a.cfg.Store.Driver != "sqlite" {
				return fmt.Errorf("the configured store is %s, not sqlite: nothing to migrate", a.cfg.Store.Driver)
			}
			dsn, err := config.ReadSecretFile(dsnFile)
			if err != nil {
				return fmt.Errorf("--dsn-file: %w", err)
			}
			// Keep servers out while copying, and refuse while other zbca
			// commands may write.
			lock, err := a.aloneWithData("migrating")
			if err != nil {
				return err
			}
			defer lock.Close()
			ctx := cmd.Context()
			src, err := a.openStore(ctx)
			if err != nil {
				return err
			}
			defer src.Close()
			dst, err := store.Open(ctx, store.Options{Driver: "postgres", DSN: string(dsn), Logger: a.log})
			if err != nil {
				return err
			}
			defer dst.Close()
			fmt.Fprintf(a.stdout, "copying %s to PostgreSQL\n", a.cfg.Store.Path)
			// One line per table when it is done (Copy calls progress once
			// more at the end of each table), and one per 100,000 rows.
			var last string
			var lastN int64
			line := func() {
				if last != "" {
					fmt.Fprintf(a.stdout, "  %-18s %d rows\n", last, lastN)
				}
			}
			err = store.Copy(ctx, dst, src, func(table string, n int64) {
				if table != last {
					line()
				} else if n/100000 > lastN/100000 {
					fmt.Fprintf(a.stdout, "  %-18s %d rows…\n", table, n)
				}
				last, lastN = table, n
			})
			if err != nil {
				return err
			}
			line()
			n, head, err := dst.VerifyAudit(ctx)
			if err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "verified: row counts equal in every table; audit chain %d entries, head %s, on both sides\n\n", n, head)
			fmt.Fprintf(a.stdout, "Now set in the configuration file, then start 'zbca serve':\n  store:\n    driver: postgres\n    dsn_file: %s\n", absPath(dsnFile))
			fmt.Fprintf(a.stdout, "Keep %s as the copy before the move; zbca no longer writes to it.\n", a.cfg.Store.Path)
			return nil
		},
	}
	cmd.Flags().StringVar(&to, "to", "postgres", "destination driver (postgres)")
	cmd.Flags().StringVar(&dsnFile, "dsn-file", "", "file (mode 0600) holding the destination DSN")
	return cmd
}

func absPath(p string) string {
	if abs, err := filepath.Abs(p); err == nil {
		return abs
	}
	return p
}
