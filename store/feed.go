package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// The status feed. Every transaction that changes a certificate's status
// (an issuance, a revocation, the superseding in an issuance) adds, for
// each certificate it changes, a row to status_changes numbered one more
// than the last: the number is taken under the lock that orders all
// writers (SQLite's database write lock, taken by BEGIN IMMEDIATE; on
// PostgreSQL the advisory lock every writer transaction takes first,
// lockAuditHead), held until commit. So numbers follow commit order and
// have no gaps: a reader that sees change n has seen every change before
// it, on one node or many. Readers (revocation.Feed) apply the changes
// after the last number they applied; the writer announces a commit to
// this process (FeedSignal) and, on PostgreSQL, to the other nodes
// (NOTIFY zbca_feed, delivered at commit).

// pgChannelFeed is the notification channel of the feed; payload: the
// schema (PostgreSQL delivers one per transaction).
const pgChannelFeed = "zbca_feed"

// FeedKeep is how many of the newest changes PruneFeed keeps: a reader
// further behind than this (a node cut off from the database for that
// many changes) reloads every status instead.
const FeedKeep = 100_000

// FeedSource is what a feed reader needs of the store.
type FeedSource interface {
	// LoadStatuses calls fn for every certificate whose NotAfter is after
	// notAfter (zero: all), and returns the last change committed before
	// the scan began: a reader applying the changes after it misses
	// nothing.
	LoadStatuses(ctx context.Context, notAfter time.Time, fn func(CertStatus) error) (head FeedMark, err error)
	// ReadFeed calls fn, in order, for at most limit changes numbered
	// after `after`, with the certificate's status as it is now (a later
	// change of the same certificate is delivered again with its own
	// number) and the change's ChangedAt. It returns how many it
	// delivered.
	ReadFeed(ctx context.Context, after int64, limit int, fn func(seq int64, c CertStatus) error) (int, error)
	// FeedHead is the number of the last committed change (0: none).
	FeedHead(ctx context.Context) (int64, error)
	// FeedSignal is sent to (without blocking, buffer 1) after every
	// commit of this process that added changes.
	FeedSignal() <-chan struct{}
}

var _ FeedSource = (*SQL)(nil)

// FeedMark identifies one change: its number and what the row says. A
// reader keeps the mark of the last change it applied and finds it again
// at its next read; a different row under that number (a database
// restored from a backup, whose numbers are handed out again) or none (a
// reader further behind than the store keeps) makes it reload.
type FeedMark struct {
	Seq    int64
	Serial string
	At     int64 // the change's at (unix nanoseconds, the writer's clock)
}

// Mark is the FeedMark of a change ReadFeed delivered.
func (c CertStatus) Mark(seq int64) FeedMark {
	return FeedMark{Seq: seq, Serial: c.Serial, At: c.ChangedAt}
}

// feedTestHook, when set (tests), runs after a change is numbered and
// before its transaction commits.
var feedTestHook func()

// recordChange numbers a status change of serial in w's transaction.
func (w *wtx) recordChange(ctx context.Context, serial string) (int64, error) {
	var seq int64
	err := w.queryRow(ctx, `INSERT INTO status_changes(seq, serial, at) SELECT COALESCE(MAX(seq), 0) + 1, ?, ? FROM status_changes RETURNING seq`,
		serial, nanos(w.s.now())).Scan(&seq)
	if err != nil {
		return 0, fmt.Errorf("recording the status change: %w", err)
	}
	if feedTestHook != nil {
		feedTestHook()
	}
	if !w.fed {
		w.fed = true
		if w.s.d.pg {
			// The payload is the schema: deployments sharing a database
			// in schemas of their own do not wake each other.
			if _, err := w.exec(ctx, `SELECT pg_notify('`+pgChannelFeed+`', current_schema())`); err != nil {
				return 0, err
			}
		}
	}
	return seq, nil
}

// fedCommitted tells this process's feed reader that changes committed.
func (s *SQL) fedCommitted() {
	select {
	case s.feedSig <- struct{}{}:
	default:
	}
}

// FeedSignal implements FeedSource.
func (s *SQL) FeedSignal() <-chan struct{} { return s.feedSig }

// FeedHead implements FeedSource.
func (s *SQL) FeedHead(ctx context.Context) (int64, error) {
	var n int64
	err := s.r.QueryRowContext(ctx, `SELECT COALESCE(MAX(seq), 0) FROM status_changes`).Scan(&n)
	return n, err
}

// LoadStatuses implements FeedSource.
func (s *SQL) LoadStatuses(ctx context.Context, notAfter time.Time, fn func(CertStatus) error) (FeedMark, error) {
	// The head first: the scan (a statement of its own, whose snapshot is
	// taken after) holds every change up to it.
	var head FeedMark
	err := s.r.QueryRowContext(ctx, `SELECT seq, serial, at FROM status_changes ORDER BY seq DESC LIMIT 1`).Scan(&head.Seq, &head.Serial, &head.At)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return FeedMark{}, err
	}
	var after int64
	if !notAfter.IsZero() {
		after = nanos(notAfter)
	}
	rows, err := s.r.QueryContext(ctx, `SELECT serial, issuer, status, not_after, COALESCE(revoked_at, 0), COALESCE(revocation_reason, 0) FROM certificates WHERE not_after > ?`, after)
	if err != nil {
		return FeedMark{}, err
	}
	defer rows.Close()
	for rows.Next() {
		var c CertStatus
		var na, ra int64
		if err := rows.Scan(&c.Serial, &c.Issuer, &c.Status, &na, &ra, &c.Reason); err != nil {
			return FeedMark{}, err
		}
		c.NotAfter = fromNanos(na)
		if ra != 0 {
			c.RevokedAt = fromNanos(ra)
		}
		if err := fn(c); err != nil {
			return FeedMark{}, err
		}
	}
	return head, rows.Err()
}

// ReadFeed implements FeedSource.
func (s *SQL) ReadFeed(ctx context.Context, after int64, limit int, fn func(seq int64, c CertStatus) error) (int, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT f.seq, f.serial, f.at, COALESCE(c.issuer, ''), COALESCE(c.status, ''), COALESCE(c.not_after, 0), COALESCE(c.revoked_at, 0), COALESCE(c.revocation_reason, 0)
		FROM status_changes f LEFT JOIN certificates c ON c.serial = f.serial WHERE f.seq > ? ORDER BY f.seq LIMIT ?`, after, limit)
	if err != nil {
		return 0, err
	}
	defer rows.Close()
	n := 0
	for rows.Next() {
		var seq, na, ra int64
		var c CertStatus
		if err := rows.Scan(&seq, &c.Serial, &c.ChangedAt, &c.Issuer, &c.Status, &na, &ra, &c.Reason); err != nil {
			return n, err
		}
		c.NotAfter = fromNanos(na)
		if ra != 0 {
			c.RevokedAt = fromNanos(ra)
		}
		if err := fn(seq, c); err != nil {
			return n, err
		}
		n++
	}
	return n, rows.Err()
}

// PruneFeed deletes the changes older than the newest keep (FeedKeep for
// zero) and reports how many, in transactions of pruneChunk rows, so that
// a first prune after a bulk import does not hold the writer for long.
func (s *SQL) PruneFeed(ctx context.Context, keep int64) (int64, error) {
	if keep <= 0 {
		keep = FeedKeep
	}
	var lo, head int64
	if err := s.r.QueryRowContext(ctx, `SELECT COALESCE(MIN(seq), 0), COALESCE(MAX(seq), 0) FROM status_changes`).Scan(&lo, &head); err != nil {
		return 0, err
	}
	var total int64
	for cutoff := head - keep; lo <= cutoff; lo += pruneChunk {
		var n int64
		err := s.write(ctx, func(ctx context.Context, w *wtx) error {
			res, err := w.exec(ctx, `DELETE FROM status_changes WHERE seq <= ?`, min(lo+pruneChunk-1, cutoff))
			if err != nil {
				return err
			}
			n, _ = res.RowsAffected()
			return nil
		})
		if err != nil {
			return total, err
		}
		total += n
	}
	return total, nil
}

// pruneChunk is how many changes one pruning transaction deletes at most
// (a variable for the tests).
var pruneChunk int64 = 10_000

// CertStatus returns one certificate's status; (nil, nil) when the serial
// is unknown.
func (s *SQL) CertStatus(ctx context.Context, serial string) (*CertStatus, error) {
	var c CertStatus
	var na, ra int64
	err := s.r.QueryRowContext(ctx, `SELECT serial, issuer, status, not_after, COALESCE(revoked_at, 0), COALESCE(revocation_reason, 0) FROM certificates WHERE serial = ?`, serial).
		Scan(&c.Serial, &c.Issuer, &c.Status, &na, &ra, &c.Reason)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	c.NotAfter = fromNanos(na)
	if ra != 0 {
		c.RevokedAt = fromNanos(ra)
	}
	return &c, nil
}

// CertStatus is what the OCSP responder needs of a certificate.
type CertStatus struct {
	Serial    string
	Issuer    string
	Status    string
	NotAfter  time.Time
	RevokedAt time.Time
	Reason    int
	// ChangedAt is the change's at (unix nanoseconds), from ReadFeed only.
	ChangedAt int64
}
