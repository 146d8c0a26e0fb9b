package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" driver
)

// PostgreSQL advisory lock keys (pg_advisory_lock's bigint space is shared
// by every application on the database: these are "zbca" plus a number).
const (
	pgLockMigrate int64 = 0x7a626361_0001 // schema migrations
	pgLockAudit   int64 = 0x7a626361_0002 // the audit chain head
	pgLockCRL     int64 = 0x7a626361_0003 // the CRL publisher (cluster.go)
	pgLockPrune   int64 = 0x7a626361_0004 // the ACME janitor (TryLockPruner)
	pgLockFeed    int64 = 0x7a626361_0005 // the status feed's pruner (TryLockFeedPruner)
	// pgLockNodeClass ("zbca") with hashtext(node_name): a running node.
	pgLockNodeClass = 0x7a626361
)

// ErrBackupPostgres is Backup's error on PostgreSQL: its own tools make
// consistent copies.
var ErrBackupPostgres = errors.New("store: backup of a PostgreSQL store: use pg_dump")

// openPostgres opens the writer (one connection: the single writer and its
// group commit work on PostgreSQL as on SQLite, one writer per process) and
// the reader pool. The DSN is never logged, nor put in an error.
func openPostgres(ctx context.Context, o Options) (w, r *db, err error) {
	if o.DSN == "" {
		return nil, nil, errors.New("store: empty PostgreSQL DSN")
	}
	wdb, err := sql.Open("pgx", o.DSN)
	if err != nil {
		return nil, nil, errors.New("store: opening PostgreSQL: bad DSN")
	}
	wdb.SetMaxOpenConns(1)
	wdb.SetMaxIdleConns(1)
	rdb, err := sql.Open("pgx", o.DSN)
	if err != nil {
		wdb.Close()
		return nil, nil, errors.New("store: opening PostgreSQL: bad DSN")
	}
	rdb.SetMaxOpenConns(16)
	rdb.SetMaxIdleConns(16)
	if err := wdb.PingContext(ctx); err != nil {
		wdb.Close()
		rdb.Close()
		return nil, nil, fmt.Errorf("store: connecting to PostgreSQL: %w", err)
	}
	return &db{DB: wdb, d: pgDialect}, &db{DB: rdb, d: pgDialect}, nil
}

// pgMigrationLock serialises migrations between processes starting at the
// same time on one database. The lock is a session lock on the writer's one
// connection; unlock releases it.
func (s *SQL) pgMigrationLock(ctx context.Context) (unlock func(), err error) {
	if _, err := s.w.ExecContext(ctx, `SELECT pg_advisory_lock(?)`, pgLockMigrate); err != nil {
		return nil, fmt.Errorf("store: locking migrations: %w", err)
	}
	return func() {
		_, _ = s.w.ExecContext(context.Background(), `SELECT pg_advisory_unlock(?)`, pgLockMigrate)
	}, nil
}

// lockAuditHead is called at the start of every writer transaction (and
// again, harmlessly, before the audit chain head is read). On SQLite,
// BEGIN IMMEDIATE already holds the database write lock. On PostgreSQL, writers in other processes (several nodes on
// one database) would otherwise read the same head and fork the chain, so
// the transaction takes an advisory lock held until it ends. It stands for
// "the head row FOR UPDATE": a row lock cannot cover the first entry (no
// row yet), and under READ COMMITTED a waiter on a row lock would still see
// the old head; after the advisory lock, the next statement reads the
// latest committed head.
func (w *wtx) lockAuditHead(ctx context.Context) error {
	if !w.s.d.pg {
		return nil
	}
	_, err := w.exec(ctx, `SELECT pg_advisory_xact_lock(?)`, pgLockAudit)
	return err
}

// readSnapshot is the transaction for reads that must see one snapshot
// (VerifyAudit): SQLite's read transactions are, PostgreSQL's need
// REPEATABLE READ.
func (d *dialect) readSnapshot() *sql.TxOptions {
	if d.pg {
		return &sql.TxOptions{ReadOnly: true, Isolation: sql.LevelRepeatableRead}
	}
	return &sql.TxOptions{ReadOnly: true}
}
