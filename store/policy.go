package store

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"github.com/zbca/zbca/internal/zerr"
)

// The guards of the enterprise issuance policy that are SQL over the
// store's tables. Which of them an issuance gets is enroll's decision.

// The guards' queries. Each must search an index, never scan the journal
// (TestJournalPolicyPlans): the spki_sha256 <> ” term lets SQLite use the
// partial index issuance_journal_spki with a bound parameter.
const (
	qKeyOwnedElsewhere = `SELECT 1 FROM issuance_journal WHERE spki_sha256 = ? AND spki_sha256 <> '' AND enterprise_id <> ? AND state <> 'failed' LIMIT 1`
	// Counting stops at the limit: the cost is bounded by it.
	qIssuedToday = `SELECT COUNT(*) FROM (SELECT 1 FROM issuance_journal WHERE enterprise_id = ? AND profile = 'client' AND state <> 'failed' AND created_at >= ? LIMIT ?) AS recent`
	// qEnterpriseCurrent: the enterprise is active and at the credential
	// epoch the requester proved its password under.
	qEnterpriseCurrent = `SELECT 1 FROM enterprises WHERE id = ? AND status = 'active' AND credential_epoch = ?`
)

// ErrAccessEnded refuses an issuance whose requester proved a password
// that the enterprise has changed since, or whose access was ended or
// disabled since (EpochGuard, ACMEOrderGuard). Nothing was written.
var ErrAccessEnded = zerr.New(zerr.Unauthorized, "the enterprise's password was changed or its access ended since this login: prove the current password again")

// EpochGuard refuses the serial with ErrAccessEnded unless its enterprise
// is active and at epoch, the credential epoch under which the requester
// proved the password (its ACME account's, its portal session's): a
// passwd, disable or logout that commits before the serial is journaled
// stops the issuance.
func EpochGuard(epoch int64) Guard {
	return check(func(ctx context.Context, tx *Tx, j *JournalEntry) error {
		var one int
		err := tx.QueryRow(ctx, qEnterpriseCurrent, j.EnterpriseID, epoch).Scan(&one)
		if errors.Is(err, sql.ErrNoRows) {
			return ErrAccessEnded
		}
		return err
	})
}

// KeyOwnerGuard refuses the serial (zerr.BadCSR) when its key
// (JournalEntry.SPKISHA256) is journaled, and not failed, for another
// enterprise: a key belongs to one enterprise.
func KeyOwnerGuard() Guard {
	return check(func(ctx context.Context, tx *Tx, j *JournalEntry) error {
		if j.SPKISHA256 == "" || j.EnterpriseID == 0 {
			return nil
		}
		var one int
		err := tx.QueryRow(ctx, qKeyOwnedElsewhere, j.SPKISHA256, j.EnterpriseID).Scan(&one)
		if err == nil {
			return zerr.New(zerr.BadCSR, "this key is already certified for another enterprise: make a new key")
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		return nil
	})
}

// DailyLimitGuard refuses the serial (zerr.Policy) when its enterprise
// already has max client serials journaled, pending or issued, in the 24
// hours before the entry's CreatedAt. max <= 0: no limit.
func DailyLimitGuard(max int) Guard {
	return check(func(ctx context.Context, tx *Tx, j *JournalEntry) error {
		if max <= 0 || j.EnterpriseID == 0 {
			return nil
		}
		var n int
		if err := tx.QueryRow(ctx, qIssuedToday, j.EnterpriseID, nanos(j.CreatedAt.Add(-24*time.Hour)), max).Scan(&n); err != nil {
			return err
		}
		if n >= max {
			return zerr.New(zerr.Policy, "the enterprise has had %d certificates in the last 24 hours, the daily limit: try again tomorrow or ask the operator", n)
		}
		return nil
	})
}
