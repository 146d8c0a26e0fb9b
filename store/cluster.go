package store

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Several nodes on one PostgreSQL database learn of each other's changes
// through LISTEN/NOTIFY: a transaction that adds to the status feed
// (feed.go) or stores a new CRL announces it (PostgreSQL delivers at
// commit, never for a rolled-back one), and every node's listener wakes
// its feed reader or CRL publisher at once. Notifications are a fast path
// only: they are lost while a listener reconnects, so the feed reader
// still reads the feed on a short period and the publisher checks the
// stored CRLs on its schedule.

// pgChannelCRL is the channel of CRL publications; payload: the CRL name.
const pgChannelCRL = "zbca_crl"

// ChangeKind tells what a Change is about.
type ChangeKind int

// Change kinds.
const (
	// ChangeResync: the listener (re)connected and may have missed
	// notifications: read what changed.
	ChangeResync ChangeKind = iota
	// ChangeFeed: some node committed status changes (feed.go).
	ChangeFeed
	// ChangeCRL: Key is the name of a CRL that some node published.
	ChangeCRL
	// ChangeLost: the listener lost its connection; notifications are
	// missed until the next ChangeResync.
	ChangeLost
)

// Change is a notification from another process on the same database.
type Change struct {
	Kind ChangeKind
	Key  string
}

// Watcher delivers the changes other nodes make.
type Watcher interface {
	// Listen calls fn for every change until ctx ends. It returns at once
	// on a store that has no notifications (SQLite).
	Listen(ctx context.Context, fn func(Change))
}

// PublisherLock keeps CRL publication to one process at a time.
type PublisherLock interface {
	// LockCRLPublisher waits until no other process publishes CRLs (or ctx
	// ends) and returns the function that lets them again.
	LockCRLPublisher(ctx context.Context) (unlock func(), err error)
	// CRLHead is the number and BuiltAt of the latest stored CRL of name,
	// without its bytes; zerr.NotFound before the first.
	CRLHead(ctx context.Context, name string) (number int64, builtAt time.Time, err error)
}

var (
	_ Watcher       = (*SQL)(nil)
	_ PublisherLock = (*SQL)(nil)
)

// notify announces a change to the other nodes when the transaction
// commits. Nothing on SQLite.
func (w *wtx) notify(ctx context.Context, channel, payload string) error {
	if !w.s.d.pg {
		return nil
	}
	_, err := w.exec(ctx, `SELECT pg_notify(?, ?)`, channel, payload)
	return err
}

// Listen implements Watcher. On PostgreSQL it keeps one connection of its
// own in LISTEN, reconnecting with a growing delay (at most 5 s) when it
// breaks, and reports each (re)connection as ChangeResync.
func (s *SQL) Listen(ctx context.Context, fn func(Change)) {
	if !s.d.pg {
		return
	}
	const maxDelay = 5 * time.Second
	delay := 100 * time.Millisecond
	for ctx.Err() == nil {
		connected, err := s.listen(ctx, fn)
		if ctx.Err() != nil {
			return
		}
		if connected {
			delay = 100 * time.Millisecond
		}
		fn(Change{Kind: ChangeLost})
		s.log.Warn("listening for other nodes' changes: reconnecting (the feed's poll covers the gap)", "err", err, "in", delay)
		select {
		case <-ctx.Done():
			return
		case <-time.After(delay):
		}
		delay = min(2*delay, maxDelay)
	}
}

func (s *SQL) listen(ctx context.Context, fn func(Change)) (connected bool, err error) {
	conn, err := pgx.Connect(ctx, s.dsn)
	if err != nil {
		return false, err
	}
	defer conn.Close(context.Background())
	for _, ch := range []string{pgChannelFeed, pgChannelCRL} {
		if _, err := conn.Exec(ctx, "LISTEN "+ch); err != nil {
			return false, err
		}
	}
	var schema string
	if err := conn.QueryRow(ctx, `SELECT current_schema()`).Scan(&schema); err != nil {
		return false, err
	}
	fn(Change{Kind: ChangeResync})
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return true, err
		}
		switch n.Channel {
		case pgChannelFeed:
			if n.Payload == schema {
				fn(Change{Kind: ChangeFeed})
			}
		case pgChannelCRL:
			fn(Change{Kind: ChangeCRL, Key: n.Payload})
		}
	}
}

// LockCRLPublisher implements PublisherLock: a session advisory lock on a
// connection held until unlock (or until the process dies: PostgreSQL
// drops the lock with the connection). SQLite has one server per database
// file, which serialises its own publications.
func (s *SQL) LockCRLPublisher(ctx context.Context) (unlock func(), err error) {
	if !s.d.pg {
		return func() {}, nil
	}
	conn, err := s.r.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("store: CRL publisher lock: %w", err)
	}
	if _, err := conn.ExecContext(ctx, `SELECT pg_advisory_lock($1)`, pgLockCRL); err != nil {
		discard(conn)
		return nil, fmt.Errorf("store: CRL publisher lock: %w", err)
	}
	return releaser(conn, pgLockCRL), nil
}

// releaser returns the unlock of a session advisory lock held on conn.
func releaser(conn *sql.Conn, key int64) func() {
	return func() {
		if _, err := conn.ExecContext(context.Background(), `SELECT pg_advisory_unlock($1)`, key); err != nil {
			discard(conn) // closing the session releases the lock
			return
		}
		conn.Close()
	}
}

// TryLockPruner keeps the pruning of expired ACME state to one node at a
// time: ok is false when another node holds the lock (the caller skips
// this round). On PostgreSQL a session advisory lock, held until unlock or
// the process's death; on SQLite always granted (one server per file).
func (s *SQL) TryLockPruner(ctx context.Context) (unlock func(), ok bool, err error) {
	return s.tryLock(ctx, pgLockPrune, "pruner")
}

// tryLock takes the session advisory lock key if it is free.
func (s *SQL) tryLock(ctx context.Context, key int64, what string) (unlock func(), ok bool, err error) {
	if !s.d.pg {
		return func() {}, true, nil
	}
	conn, err := s.r.Conn(ctx)
	if err != nil {
		return nil, false, fmt.Errorf("store: %s lock: %w", what, err)
	}
	if err := conn.QueryRowContext(ctx, `SELECT pg_try_advisory_lock($1)`, key).Scan(&ok); err != nil {
		discard(conn)
		return nil, false, fmt.Errorf("store: %s lock: %w", what, err)
	}
	if !ok {
		conn.Close()
		return nil, false, nil
	}
	return releaser(conn, key), true, nil
}

// TryLockFeedPruner is TryLockPruner for the pruning of the status feed
// (a lock of its own: the two must not skip each other's rounds).
func (s *SQL) TryLockFeedPruner(ctx context.Context) (unlock func(), ok bool, err error) {
	return s.tryLock(ctx, pgLockFeed, "status feed pruner")
}

// discard closes conn's session instead of returning it to the pool, so
// that nothing it may hold (a lock taken as the call was cancelled) stays.
func discard(conn *sql.Conn) {
	_ = conn.Raw(func(any) error { return driver.ErrBadConn })
	conn.Close()
}

// CRLHead implements PublisherLock.
func (s *SQL) CRLHead(ctx context.Context, name string) (int64, time.Time, error) {
	var n, ba int64
	err := s.r.QueryRowContext(ctx, `SELECT der_number, built_at FROM crls WHERE name = ? AND der_number > 0`, name).Scan(&n, &ba)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, time.Time{}, notFound("CRL", name)
	}
	if err != nil {
		return 0, time.Time{}, err
	}
	return n, fromNanos(ba), nil
}

// ClaimNode makes name this process's node name on the database until
// release (or the process's death): a second live process claiming the
// same name is refused, for two nodes with one name would mark each
// other's pending issuances failed at start-up (RecoverJournal). Nothing
// on SQLite, where the data directory's lock does this.
func (s *SQL) ClaimNode(ctx context.Context, name string) (release func(), err error) {
	if !s.d.pg {
		return func() {}, nil
	}
	conn, err := s.r.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("store: claiming node name: %w", err)
	}
	var ok bool
	// The two-key form: a lock space apart from the bigint keys above.
	if err := conn.QueryRowContext(ctx, `SELECT pg_try_advisory_lock($1, hashtext($2))`, int32(pgLockNodeClass), name).Scan(&ok); err != nil {
		discard(conn)
		return nil, fmt.Errorf("store: claiming node name: %w", err)
	}
	if !ok {
		conn.Close()
		return nil, fmt.Errorf("store: node_name %q is used by another running zbca node on this database: give every node its own node_name", name)
	}
	return func() { discard(conn) }, nil
}
