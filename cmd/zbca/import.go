package main

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"sync"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/zbca/zbca/internal/csvimport"
	"github.com/zbca/zbca/internal/password"
	"github.com/zbca/zbca/store"
)

func (a *app) enterpriseImportCmd() *cobra.Command {
	var batchSize int
	var quiet bool
	cmd := &cobra.Command{
		Use:   "import FILE.csv",
		Short: "Import enterprise accounts from a CSV file (re-runnable)",
		Long: `import reads a UTF-8 CSV with a header row and the columns

  username,name,enterprise_id,password        (plain passwords: hashed with argon2id)
  username,name,enterprise_id,password_hash   (bcrypt or argon2id hashes, kept as they are)

Rows whose username already exists are left unchanged, so the import can be
re-run. Bad rows (truncated, duplicate, bad hash, bad username, …) are listed
with their line numbers and skipped; the good rows are imported. Progress is
printed to standard error. The exit status is 2 when rows were skipped.`,
		Example: `  zbca enterprise import accounts.csv`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if batchSize < 1 || batchSize > 100000 {
				return errors.New("--batch must be between 1 and 100000")
			}
			if err := a.load(slog.LevelWarn); err != nil {
				return err
			}
			f, err := os.Open(args[0])
			if err != nil {
				return err
			}
			defer f.Close()
			st, err := a.openStore(cmd.Context())
			if err != nil {
				return err
			}
			defer st.Close()
			res, err := a.importCSV(cmd.Context(), st, f, args[0], batchSize, quiet)
			if err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "imported %s: %d added, %d already present, %d bad rows skipped (%.1fs, %.0f rows/s)\n",
				args[0], res.added, res.existing, res.bad, res.elapsed.Seconds(), float64(res.read)/res.elapsed.Seconds())
			if res.bad > 0 {
				fmt.Fprintf(a.stderr, "%d bad rows were skipped: they are listed above with their line numbers; fix them and run the import again\n", res.bad)
				return exitCode(2)
			}
			return nil
		},
	}
	cmd.Flags().IntVar(&batchSize, "batch", 10000, "rows per database transaction")
	cmd.Flags().BoolVar(&quiet, "quiet", false, "no progress line")
	return cmd
}

type importResult struct {
	read, added, existing, bad int
	elapsed                    time.Duration
}

type importBatch struct {
	firstLine, lastLine int
	rows                []store.Enterprise
	plain               []string // plain passwords still to hash, index-aligned with rows ("" when pre-hashed)
}

// importCSV streams the file in batches: the reader validates rows while
// the previous batch is hashed (plain passwords only) and written.
func (a *app) importCSV(ctx context.Context, st *store.SQL, in io.Reader, name string, batchSize int, quiet bool) (importResult, error) {
	var res importResult
	start := time.Now()
	sum := sha256.New()
	r, err := csvimport.NewReader(bufio.NewReaderSize(io.TeeReader(in, sum), 1<<20))
	if err != nil {
		return res, err
	}
	batches := make(chan importBatch, 2)
	var mu sync.Mutex // guards res counters shared with the writer
	var werr error
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for b := range batches {
			if werr != nil {
				continue
			}
			hashPlain(b)
			// Each batch is audited in its own transaction: a killed
			// import leaves no account without its audit record.
			names := sha256.New()
			for _, r := range b.rows {
				names.Write([]byte(r.Username))
				names.Write([]byte{0})
			}
			ins, err := st.ImportEnterprises(ctx, b.rows, store.AuditEvent{Actor: "operator", Action: "enterprise.import.batch", Subject: name,
				Details: map[string]any{"rows": len(b.rows), "first_line": b.firstLine, "last_line": b.lastLine,
					"first": b.rows[0].Username, "last": b.rows[len(b.rows)-1].Username, "usernames_sha256": hex.EncodeToString(names.Sum(nil))}})
			if err != nil {
				werr = err
				continue
			}
			mu.Lock()
			for _, ok := range ins {
				if ok {
					res.added++
				} else {
					res.existing++
				}
			}
			mu.Unlock()
		}
	}()
	// On a terminal the progress line rewrites itself; elsewhere (a log
	// file, CI) it is a new line every few seconds.
	tty := false
	if f, ok := a.stderr.(*os.File); ok {
		tty = term.IsTerminal(int(f.Fd()))
	}
	every := 5 * time.Second
	if tty {
		every = 500 * time.Millisecond
	}
	progress := func(final bool) {
		if quiet {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		el := time.Since(start).Seconds()
		line := fmt.Sprintf("%d rows read, %d added, %d already present, %d bad (%.0f rows/s)", res.read, res.added, res.existing, res.bad, float64(res.read)/max(el, 0.001))
		switch {
		case tty && final:
			fmt.Fprintf(a.stderr, "\r\033[K%s\n", line)
		case tty:
			fmt.Fprintf(a.stderr, "\r\033[K%s", line)
		default:
			fmt.Fprintln(a.stderr, line)
		}
	}
	cur := importBatch{}
	lastProgress := time.Now()
	var fatal error
	for {
		row, err := r.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		var re *csvimport.RowError
		if errors.As(err, &re) && errors.Is(err, csvimport.ErrNotUTF8) && res.read == 0 {
			// A GBK file from Excel: every row would fail the same way.
			fatal = fmt.Errorf("%s, %v: the file is not UTF-8 (Excel's default CSV on Chinese Windows is GBK); save it as \"CSV UTF-8\" and import again", name, re)
			break
		}
		if errors.As(err, &re) {
			mu.Lock()
			res.bad++
			mu.Unlock()
			if tty && !quiet {
				fmt.Fprint(a.stderr, "\r\033[K")
			}
			fmt.Fprintf(a.stderr, "%s: %v\n", name, re)
			continue
		}
		if err != nil {
			fatal = err
			break
		}
		mu.Lock()
		res.read++
		mu.Unlock()
		if len(cur.rows) == 0 {
			cur.firstLine = row.Line
		}
		cur.lastLine = row.Line
		cur.rows = append(cur.rows, store.Enterprise{Username: row.Username, Name: row.Name, Code: row.Code, PasswordHash: row.PasswordHash})
		cur.plain = append(cur.plain, row.Password)
		if len(cur.rows) == batchSize {
			batches <- cur
			cur = importBatch{}
		}
		if time.Since(lastProgress) > every {
			progress(false)
			lastProgress = time.Now()
		}
	}
	if len(cur.rows) > 0 && fatal == nil {
		batches <- cur
	}
	close(batches)
	wg.Wait()
	progress(true)
	res.elapsed = time.Since(start)
	if fatal == nil {
		fatal = werr
	}
	// One audit event for the whole import, whether it finished or not.
	ev := store.AuditEvent{Actor: "operator", Action: "enterprise.import", Subject: name, Details: map[string]any{
		"added": res.added, "existing": res.existing, "bad": res.bad, "sha256": hex.EncodeToString(sum.Sum(nil)), "complete": fatal == nil,
	}}
	if err := st.AppendAudit(context.WithoutCancel(ctx), ev); err != nil && fatal == nil {
		fatal = err
	}
	if fatal != nil {
		return res, fmt.Errorf("import stopped after %d added rows: %w", res.added, fatal)
	}
	return res, nil
}

// hashPlain hashes the batch's plain passwords with argon2id on all cores.
func hashPlain(b importBatch) {
	var idx []int
	for i, p := range b.plain {
		if p != "" {
			idx = append(idx, i)
		}
	}
	if len(idx) == 0 {
		return
	}
	work := make(chan int)
	var wg sync.WaitGroup
	for range runtime.GOMAXPROCS(0) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				h, err := password.Hash(b.plain[i], password.Default)
				if err != nil {
					panic(err) // only on a broken random source
				}
				b.rows[i].PasswordHash = h
			}
		}()
	}
	for _, i := range idx {
		work <- i
	}
	close(work)
	wg.Wait()
}
