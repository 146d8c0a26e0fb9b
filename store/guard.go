package store

import (
	"context"
	"database/sql"
	"errors"
	"time"
)

// Guard is issuance policy that must hold atomically with the issuance
// journal: it runs inside the store's issuing transactions, so concurrent
// requests cannot both pass it, and a refusal writes nothing. The caller
// (enroll) decides which guards an issuance gets; the store runs the ones
// it is given, in order, and knows nothing of what they check.
//
//   - Claim runs in JournalSerial's transaction, before the journal row is
//     written. An error refuses the serial: nothing of the call is written
//     (no journal row, no audit entry, none of the guards' own changes),
//     and JournalSerial returns it marked as a refusal (see Refused).
//   - Issued runs in the transaction that stores the serial's certificate
//     (StoreCertificate, StoreCertificateSuperseding), after it is stored.
//   - Failed runs in FailSerial's transaction, when the serial moves from
//     pending to failed.
//
// An error from Issued or Failed rolls back the whole call. Each runs on
// the writer's transaction through tx, with the store's ? placeholders,
// and may run more than once for one call (the writer runs a batch again,
// with a savepoint per call, when one of its calls fails): a guard keeps
// no state between runs other than in the database. A guard whose claim
// must be undone when its issuing process dies is keyed by serial in the
// database and listed in orphanGuards.
type Guard interface {
	Claim(ctx context.Context, tx *Tx, j *JournalEntry) error
	Issued(ctx context.Context, tx *Tx, c *Certificate) error
	Failed(ctx context.Context, tx *Tx, serial, reason string) error
}

// Tx is the writer's transaction as a guard sees it. Statements are
// written with ? placeholders, rewritten for PostgreSQL; on SQLite each is
// prepared once per batch.
type Tx struct {
	w   *wtx
	now time.Time
}

// Exec runs a statement in the transaction.
func (t *Tx) Exec(ctx context.Context, q string, args ...any) (sql.Result, error) {
	return t.w.exec(ctx, q, args...)
}

// QueryRow runs a query that returns at most one row in the transaction.
func (t *Tx) QueryRow(ctx context.Context, q string, args ...any) *sql.Row {
	return t.w.queryRow(ctx, q, args...)
}

// Now is the time the store gives the step (the store's clock; for Claim,
// the journal entry's CreatedAt).
func (t *Tx) Now() time.Time { return t.now }

// orphanGuards are the guards whose claim is a row keyed by the serial
// (the ACME order in processing): RecoverJournal runs their Failed for
// every serial it fails, because the process that journaled it, and the
// guards it held, are gone.
var orphanGuards = []Guard{orderGuard{}}

// refusal marks an error returned by a guard's Claim.
type refusal struct{ err error }

func (r refusal) Error() string { return r.err.Error() }
func (r refusal) Unwrap() error { return r.err }

// Refused reports whether err is a guard's refusal of a serial returned by
// JournalSerial: nothing was written, and drawing another serial would be
// refused alike. The guard's error is unchanged underneath (errors.Is,
// zerr.KindOf, the text).
func Refused(err error) bool {
	var r refusal
	return errors.As(err, &r)
}

func claimAll(ctx context.Context, t *Tx, j *JournalEntry) error {
	for _, g := range j.Guards {
		if err := g.Claim(ctx, t, j); err != nil {
			return refusal{err}
		}
	}
	return nil
}

func issuedAll(ctx context.Context, t *Tx, c *Certificate, guards []Guard) error {
	for _, g := range guards {
		if err := g.Issued(ctx, t, c); err != nil {
			return err
		}
	}
	return nil
}

func failedAll(ctx context.Context, t *Tx, serial, reason string, guards []Guard) error {
	for _, g := range guards {
		if err := g.Failed(ctx, t, serial, reason); err != nil {
			return err
		}
	}
	return nil
}

// check is a guard that only checks, when the serial is journaled.
type check func(ctx context.Context, tx *Tx, j *JournalEntry) error

func (c check) Claim(ctx context.Context, tx *Tx, j *JournalEntry) error { return c(ctx, tx, j) }
func (check) Issued(context.Context, *Tx, *Certificate) error            { return nil }
func (check) Failed(context.Context, *Tx, string, string) error          { return nil }
