package store

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	_ "modernc.org/sqlite" // registers the "sqlite" driver

	"github.com/zbca/zbca/internal/zerr"
)

//go:embed migrations
var migrations embed.FS

// Options configures Open.
type Options struct {
	Driver string // "sqlite" (default) or "postgres"
	Path   string // SQLite database file
	// DSN is the PostgreSQL connection string (driver "postgres"), in
	// pgx's URL or keyword/value form. It is a secret: never logged.
	DSN string
	// MaxBatch bounds the writes grouped into one commit (default 256).
	MaxBatch int
	Logger   *slog.Logger
	// Now is the clock; default time.Now.
	Now func() time.Time
	// MustExist refuses to create a new database (commands other than
	// init and serve: a mistyped data directory must not look empty).
	MustExist bool
}

// ErrNoDatabase is returned by Open with MustExist when there is no
// database at the path.
var ErrNoDatabase = errors.New("no database")

// SQL is the SQL implementation of the store interfaces.
type SQL struct {
	w        *db // one connection: the single writer
	r        *db // readers
	d        *dialect
	log      *slog.Logger
	now      func() time.Time
	path     string
	dsn      string // PostgreSQL: for the LISTEN connection (cluster.go)
	ops      chan *op
	stop     chan struct{}
	done     chan struct{}
	closed   sync.Once
	max      int
	ck       *sql.DB // SQLite checkpoints; nil on PostgreSQL
	sendMu   sync.RWMutex
	isClosed bool
	ckDone   chan struct{}
	rstmts   sync.Map      // query → *sql.Stmt on r (stmt.go)
	feedSig  chan struct{} // FeedSignal (feed.go)
}

var (
	_ EnterpriseReader = (*SQL)(nil)
	_ EnterpriseWriter = (*SQL)(nil)
	_ CertReader       = (*SQL)(nil)
	_ CertWriter       = (*SQL)(nil)
	_ Journal          = (*SQL)(nil)
	_ AuditLog         = (*SQL)(nil)
)

// Open opens (creating if needed) the database and applies migrations.
func Open(ctx context.Context, o Options) (*SQL, error) {
	if o.Driver == "" {
		o.Driver = "sqlite"
	}
	if o.MaxBatch <= 0 {
		o.MaxBatch = 256
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	var (
		w, r *db
		err  error
	)
	switch o.Driver {
	case "sqlite":
		w, r, err = openSQLite(o)
	case "postgres":
		w, r, err = openPostgres(ctx, o)
	default:
		return nil, fmt.Errorf("store: driver %q is not supported", o.Driver)
	}
	if err != nil {
		return nil, err
	}
	s := &SQL{w: w, r: r, d: w.d, log: o.Logger, now: o.Now, path: o.Path, dsn: o.DSN, max: o.MaxBatch,
		ops: make(chan *op, 4096), feedSig: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{}), ckDone: make(chan struct{})}
	if err := s.migrate(ctx); err != nil {
		w.Close()
		r.Close()
		return nil, err
	}
	if o.Driver == "sqlite" {
		_ = os.Chmod(o.Path, 0o600)
		ck, err := sql.Open("sqlite", "file:"+o.Path+"?_pragma=busy_timeout(10000)")
		if err != nil {
			w.Close()
			r.Close()
			return nil, err
		}
		ck.SetMaxOpenConns(1)
		s.ck = ck
		go s.checkpointer()
	} else {
		close(s.ckDone)
	}
	go s.writer()
	return s, nil
}

// openSQLite opens the writer (one connection) and the reader pool.
func openSQLite(o Options) (w, r *db, err error) {
	if o.Path == "" {
		return nil, nil, errors.New("store: empty database path")
	}
	if o.MustExist {
		if _, err := os.Stat(o.Path); err != nil {
			return nil, nil, fmt.Errorf("store: %w at %s", ErrNoDatabase, o.Path)
		}
	}
	if err := os.MkdirAll(filepath.Dir(o.Path), 0o700); err != nil {
		return nil, nil, fmt.Errorf("store: %w", err)
	}
	// synchronous(FULL): a commit is on disk when Commit returns, which is
	// what "stored before anyone receives it" needs, also on power loss.
	q := url.Values{}
	// wal_autocheckpoint(0): checkpoints run in a goroutine of their own
	// (checkpointer), not inside the writer's commits.
	for _, p := range []string{"busy_timeout(10000)", "journal_mode(WAL)", "synchronous(FULL)", "foreign_keys(ON)", "wal_autocheckpoint(0)", "mmap_size(268435456)"} {
		q.Add("_pragma", p)
	}
	q.Set("_txlock", "immediate")
	dsn := "file:" + o.Path + "?" + q.Encode()
	wdb, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, nil, fmt.Errorf("store: opening database: %w", err)
	}
	wdb.SetMaxOpenConns(1)
	wdb.SetMaxIdleConns(1)
	wdb.SetConnMaxLifetime(0)
	rq := url.Values{}
	// mmap: reads come from the shared page cache instead of a pread per
	// page and a private 2 MB cache per connection.
	for _, p := range []string{"busy_timeout(10000)", "foreign_keys(ON)", "query_only(1)", "mmap_size(268435456)"} {
		rq.Add("_pragma", p)
	}
	rdb, err := sql.Open("sqlite", "file:"+o.Path+"?"+rq.Encode())
	if err != nil {
		wdb.Close()
		return nil, nil, fmt.Errorf("store: opening database: %w", err)
	}
	rdb.SetMaxOpenConns(8)
	rdb.SetMaxIdleConns(8)
	return &db{DB: wdb, d: sqliteDialect}, &db{DB: rdb, d: sqliteDialect}, nil
}

// Close stops the writer after the queued writes and closes the database.
func (s *SQL) Close() error {
	var err error
	s.closed.Do(func() {
		s.sendMu.Lock()
		s.isClosed = true
		s.sendMu.Unlock()
		close(s.stop)
		<-s.done
		<-s.ckDone
		var ckErr, ckClose error
		if s.ck != nil {
			// Fold the WAL into the database on a clean close.
			_, ckErr = s.ck.Exec("PRAGMA wal_checkpoint(TRUNCATE)")
			ckClose = s.ck.Close()
		}
		err = errors.Join(ckErr, ckClose, s.w.Close(), s.r.Close())
	})
	return err
}

// checkpointer copies the WAL into the database file every half second
// (PASSIVE: it never blocks the writer or readers), so the writer's commits
// stay short and the WAL stays small.
func (s *SQL) checkpointer() {
	defer close(s.ckDone)
	t := time.NewTicker(500 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			if _, err := s.ck.Exec("PRAGMA wal_checkpoint(PASSIVE)"); err != nil {
				s.log.Warn("wal checkpoint", "err", err)
			}
		}
	}
}

// Ping checks that the database answers.
func (s *SQL) Ping(ctx context.Context) error {
	var one int
	return s.r.QueryRowContext(ctx, "SELECT 1").Scan(&one)
}

func (s *SQL) migrate(ctx context.Context) error {
	ddl := `CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)`
	if s.d.pg {
		ddl = `CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL)`
		unlock, err := s.pgMigrationLock(ctx)
		if err != nil {
			return err
		}
		defer unlock()
	}
	if _, err := s.w.ExecContext(ctx, ddl); err != nil {
		return fmt.Errorf("store: creating schema_migrations: %w", err)
	}
	var current int
	if err := s.w.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&current); err != nil {
		return fmt.Errorf("store: reading schema version: %w", err)
	}
	files, err := fs.Glob(migrations, "migrations/"+s.d.name+"/*.sql")
	if err != nil {
		return err
	}
	sort.Strings(files)
	latest := 0
	for _, f := range files {
		v, err := strconv.Atoi(strings.SplitN(filepath.Base(f), "_", 2)[0])
		if err != nil {
			return fmt.Errorf("store: bad migration name %s", f)
		}
		latest = max(latest, v)
		if v <= current {
			continue
		}
		body, err := migrations.ReadFile(f)
		if err != nil {
			return err
		}
		tx, err := s.w.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, string(body)); err != nil {
			tx.Rollback()
			return fmt.Errorf("store: migration %s: %w", f, err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations(version, applied_at) VALUES (?, ?)`, v, s.now().UnixNano()); err != nil {
			tx.Rollback()
			return fmt.Errorf("store: migration %s: %w", f, err)
		}
		if err := tx.Commit(); err != nil {
			return fmt.Errorf("store: migration %s: %w", f, err)
		}
		s.log.Info("applied migration", "version", v)
	}
	if current > latest {
		return fmt.Errorf("store: database schema version %d is newer than this binary knows (%d): upgrade zbca", current, latest)
	}
	return nil
}

// op is one unit of work for the writer: it runs inside its own savepoint
// of a shared transaction, so its failure rolls back only its own changes.
type op struct {
	fn   func(ctx context.Context, w *wtx) error
	ctx  context.Context
	done chan error
}

// wtx is the writer's transaction: statements are prepared once per batch
// and the audit chain head is read once per batch and carried in memory.
type wtx struct {
	tx    *tx
	s     *SQL
	stmts map[string]*sql.Stmt
	head  auditHead
	// fed: the transaction recorded status changes (feed.go).
	fed bool
}

type auditHead struct {
	loaded bool
	dirty  bool
	seq    int64
	hash   string
}

func (w *wtx) stmt(ctx context.Context, q string) (*sql.Stmt, error) {
	if st, ok := w.stmts[q]; ok {
		return st, nil
	}
	st, err := w.tx.PrepareContext(ctx, q)
	if err != nil {
		return nil, err
	}
	w.stmts[q] = st
	return st, nil
}

func (w *wtx) exec(ctx context.Context, q string, args ...any) (sql.Result, error) {
	if w.s.d.pg {
		// pgx prepares and caches each statement on its connection by
		// itself; a database/sql Stmt per batch would add two round trips.
		return w.tx.ExecContext(ctx, q, args...)
	}
	st, err := w.stmt(ctx, q)
	if err != nil {
		return nil, err
	}
	return st.ExecContext(ctx, args...)
}

func (w *wtx) queryRow(ctx context.Context, q string, args ...any) *sql.Row {
	if w.s.d.pg {
		return w.tx.QueryRowContext(ctx, q, args...)
	}
	st, err := w.stmt(ctx, q)
	if err != nil {
		return w.tx.QueryRowContext(ctx, q, args...) // reports err on Scan
	}
	return st.QueryRowContext(ctx, args...)
}

// write queues fn and waits until it is committed (or failed).
func (s *SQL) write(ctx context.Context, fn func(ctx context.Context, w *wtx) error) error {
	o := &op{fn: fn, ctx: ctx, done: make(chan error, 1)}
	// The read lock orders sends before Close's drain: an op is either
	// refused or committed, never left waiting for a writer that is gone.
	s.sendMu.RLock()
	if s.isClosed {
		s.sendMu.RUnlock()
		return errors.New("store: closed")
	}
	select {
	case s.ops <- o:
		s.sendMu.RUnlock()
	case <-ctx.Done():
		s.sendMu.RUnlock()
		return ctx.Err()
	}
	// Once queued, the op is committed or failed by the writer; waiting for
	// it even after ctx ends keeps the caller's view and the disk in step.
	return <-o.done
}

func (s *SQL) writer() {
	defer close(s.done)
	batch := make([]*op, 0, s.max)
	for {
		batch = batch[:0]
		select {
		case o := <-s.ops:
			batch = append(batch, o)
		case <-s.stop:
			// Drain what is already queued, then stop.
			for {
				select {
				case o := <-s.ops:
					s.commit([]*op{o})
				default:
					return
				}
			}
		}
	fill:
		for len(batch) < s.max {
			select {
			case o := <-s.ops:
				batch = append(batch, o)
			default:
				break fill
			}
		}
		s.commit(batch)
	}
}

// commit runs a batch in one transaction. The fast path runs the ops one
// after the other; if one fails (rare: a duplicate, a missing row), the
// transaction is rolled back and the batch is run again with a savepoint
// per op, so that only the failing op's changes are undone.
func (s *SQL) commit(batch []*op) {
	results, err := s.runBatch(batch, false)
	if errors.Is(err, errRetryWithSavepoints) {
		results, err = s.runBatch(batch, true)
	}
	for i, o := range batch {
		if err != nil {
			o.done <- fmt.Errorf("store: commit: %w", err)
		} else {
			o.done <- results[i]
		}
	}
}

var errRetryWithSavepoints = errors.New("retry with savepoints")

func (s *SQL) runBatch(batch []*op, savepoints bool) ([]error, error) {
	results := make([]error, len(batch))
	ctx := context.Background()
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return nil, err
	}
	w := &wtx{tx: tx, s: s, stmts: make(map[string]*sql.Stmt, 8)}
	fail := func(err error) ([]error, error) {
		tx.Rollback()
		return nil, err
	}
	// On PostgreSQL every writer transaction takes the audit chain's lock
	// first, before any row: several nodes' batches mix row updates (a
	// login bucket, a login count) with audited writes, and taking the
	// lock at the first audit event, after a row, deadlocked against a
	// batch of another node holding the lock and wanting that row.
	if err := w.lockAuditHead(ctx); err != nil {
		return fail(err)
	}
	for i, o := range batch {
		if err := o.ctx.Err(); err != nil {
			results[i] = err
			continue
		}
		if !savepoints {
			if err := o.fn(ctx, w); err != nil {
				if len(batch) == 1 {
					// Nothing else to keep: undo and report.
					tx.Rollback()
					results[0] = err
					return results, nil
				}
				return fail(errRetryWithSavepoints)
			}
			continue
		}
		// Savepoint commands are not prepared: PostgreSQL refuses to
		// prepare statements in a transaction that has seen an error.
		if _, err := w.tx.ExecContext(ctx, "SAVEPOINT op"); err != nil {
			return fail(err)
		}
		head, fed := w.head, w.fed
		if err := o.fn(ctx, w); err != nil {
			results[i] = err
			// The op's NOTIFY goes with its savepoint: the next op that
			// records a change must send it again.
			w.head, w.fed = head, fed
			if _, err := w.tx.ExecContext(ctx, "ROLLBACK TO SAVEPOINT op"); err != nil {
				return fail(err)
			}
		}
		if _, err := w.tx.ExecContext(ctx, "RELEASE SAVEPOINT op"); err != nil {
			return fail(err)
		}
	}
	if err := w.flushHead(ctx); err != nil {
		return fail(err)
	}
	if err := tx.Commit(); err != nil {
		return nil, err
	}
	if w.fed {
		s.fedCommitted()
	}
	return results, nil
}

// isUnique reports whether err is a uniqueness or primary-key violation.
func isUnique(err error) bool {
	if err == nil {
		return false
	}
	if pe := (*pgconn.PgError)(nil); errors.As(err, &pe) {
		return pe.Code == "23505" // unique_violation
	}
	return strings.Contains(err.Error(), "UNIQUE constraint failed")
}

func notFound(what, key string) error {
	return zerr.New(zerr.NotFound, "%s %q not found", what, key)
}

func nanos(t time.Time) int64 { return t.UTC().UnixNano() }

func fromNanos(n int64) time.Time { return time.Unix(0, n).UTC() }
