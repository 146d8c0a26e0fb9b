package main

import (
	"archive/tar"
	"compress/gzip"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"
)

func (a *app) backupCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "backup FILE.tar.gz",
		Short: "Write a consistent backup (database, CA certificates and encrypted keys) while the server runs",
		Long: `backup writes a gzipped tar with a consistent snapshot of the database (SQLite
VACUUM INTO, safe while the server runs), the CA directory (certificates,
encrypted keys, manifest) and the configuration file when one is used.
The archive and its entries are readable by their owner only (0600; the
CA certificates 0644): the database holds password hashes, EAB keys and
the cluster secrets.

The secrets directory (key passphrase, admin token) is NOT included: the
encrypted keys are useless without the passphrase, so keep a copy of it
apart from the backups. To restore, stop the server, unpack the archive into
an empty data directory and put the passphrase file back in secrets/.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			st, err := a.loadStore(cmd.Context())
			if err != nil {
				return err
			}
			defer st.Close()
			tmpDir, err := os.MkdirTemp(filepath.Dir(args[0]), ".zbca-backup-")
			if err != nil {
				return err
			}
			defer os.RemoveAll(tmpDir)
			snap := filepath.Join(tmpDir, "zbca.db")
			if err := st.Backup(cmd.Context(), snap); err != nil {
				return err
			}
			out := args[0] + ".tmp"
			// The archive holds the password hashes, EAB HMAC keys and
			// cluster secrets: owner-only, also when a stale .tmp of
			// other permissions is reused.
			os.Remove(out)
			f, err := os.OpenFile(out, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
			if err != nil {
				return err
			}
			if err := f.Chmod(0o600); err != nil {
				f.Close()
				os.Remove(out)
				return err
			}
			gz := gzip.NewWriter(f)
			tw := tar.NewWriter(gz)
			n := 0
			add := func(src, name string) error {
				fi, err := os.Stat(src)
				if err != nil {
					return err
				}
				in, err := os.Open(src)
				if err != nil {
					return err
				}
				defer in.Close()
				if err := tw.WriteHeader(&tar.Header{Name: name, Mode: backupMode(name), Size: fi.Size(), ModTime: fi.ModTime()}); err != nil {
					return err
				}
				_, err = io.Copy(tw, in)
				n++
				return err
			}
			err = add(snap, "zbca.db")
			if err == nil {
				// Unpacked into an empty directory, ca/ is made owner-only
				// too, not with the unpacker's umask.
				err = tw.WriteHeader(&tar.Header{Name: "ca/", Typeflag: tar.TypeDir, Mode: 0o700, ModTime: time.Now()})
			}
			caDir := filepath.Join(a.cfg.DataDir, "ca")
			if err == nil {
				entries, rerr := os.ReadDir(caDir)
				err = rerr
				for _, e := range entries {
					if err != nil {
						break
					}
					if e.Type().IsRegular() && filepath.Ext(e.Name()) != ".tmp" {
						err = add(filepath.Join(caDir, e.Name()), "ca/"+e.Name())
					}
				}
			}
			if err == nil && a.configUsed != "" {
				err = add(a.configUsed, "config.yaml")
			}
			if err == nil && a.cfg.CA.Client.Template != "" {
				err = add(a.cfg.CA.Client.Template, "client-template.tpl")
			}
			if err == nil {
				err = tw.Close()
			}
			if err == nil {
				err = gz.Close()
			}
			if err == nil {
				err = f.Sync()
			}
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				os.Remove(out)
				return fmt.Errorf("writing backup: %w", err)
			}
			if err := os.Rename(out, args[0]); err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "backup written to %s (%d files, %s)\nnot included: %s — keep the key passphrase apart from backups\n",
				args[0], n, time.Now().Format(time.RFC3339), filepath.Join(a.cfg.DataDir, "secrets"))
			return nil
		},
	}
}

// backupMode is the mode of a backup entry: CA certificates are public
// (0644); everything else is owner-only (0600) whatever its mode on disk:
// the database (password hashes, EAB HMAC keys, the ACME nonce key and
// other cluster secrets), the encrypted CA keys and the manifest, the
// configuration (which may name a DSN) and the client template.
func backupMode(name string) int64 {
	if strings.HasPrefix(name, "ca/") && strings.HasSuffix(name, ".crt") {
		return 0o644
	}
	return 0o600
}
