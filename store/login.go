package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/zbca/zbca/internal/zerr"
)

// LockoutPolicy is the progressive lockout of logins: after Threshold
// consecutive failures a username is locked for Base, and each further
// failure (possible only once the lock has run out) locks it for twice as
// long as the one before, up to Max. A successful login resets it.
type LockoutPolicy struct {
	Threshold int // consecutive failures before the first lock; < 1: never lock
	Base      time.Duration
	Max       time.Duration // 0: no cap
}

// LockFor returns how long a username with n consecutive failures is
// locked: 0 below the threshold, Base at it, doubling with each further
// failure, never more than Max.
func (p LockoutPolicy) LockFor(n int) time.Duration {
	if p.Threshold < 1 || n < p.Threshold || p.Base <= 0 {
		return 0
	}
	limit := p.Max
	if limit <= 0 {
		limit = math.MaxInt64
	}
	shift := n - p.Threshold
	if shift >= 62 {
		return limit
	}
	d := p.Base << shift
	if d <= 0 || d>>shift != p.Base || d > limit {
		return limit
	}
	return d
}

// LoginState is the lockout record of one username. The zero value is a
// username with no counted attempt.
type LoginState struct {
	Failures    int
	LockedUntil time.Time // zero: never locked since the last success
	LastFailure time.Time // when the last attempt was counted; zero: never
}

// Locked reports whether the username is locked at now.
func (s LoginState) Locked(now time.Time) bool { return now.Before(s.LockedUntil) }

// LoginAttempt is the result of BeginLogin, to be settled by FinishLogin.
type LoginAttempt struct {
	Username string
	// Allowed is false when the username was locked at the time of the
	// attempt; nothing was counted then, and FinishLogin need not be called.
	Allowed bool
	// Before and After are the record before and after the attempt was
	// counted (equal when !Allowed).
	Before, After LoginState
}

// LoginOutcome settles a counted attempt.
type LoginOutcome int

// Login outcomes.
const (
	// LoginSucceeded clears the username's failures and lock.
	LoginSucceeded LoginOutcome = iota + 1
	// LoginFailed keeps the failure counted by BeginLogin.
	LoginFailed
	// LoginAborted undoes the count of BeginLogin (the attempt could not be
	// decided: a login service or database failure, the caller gone), unless
	// another attempt was counted since.
	LoginAborted
)

// Logins keeps the progressive lockout of logins in the database, so that
// every node sees the same counts and locks.
//
// An attempt is counted before the password is checked (BeginLogin), as a
// failure, and settled afterwards (FinishLogin). Counting first is what
// makes the threshold hold under concurrency: of many simultaneous attempts
// on one username, across any number of nodes, at most Threshold get to
// check a password before the lock applies.
type Logins interface {
	// LoginState returns the record of username (the zero LoginState when
	// there is none).
	LoginState(ctx context.Context, username string) (LoginState, error)
	// BeginLogin, in one transaction: if username is locked at now, it
	// returns Allowed false and changes nothing; otherwise it counts one
	// failure at now and, when the count reaches p.Threshold or beyond,
	// locks the username until now + p.LockFor(count). The update is
	// conditional on the record read, so concurrent attempts are each
	// counted once.
	BeginLogin(ctx context.Context, username string, now time.Time, p LockoutPolicy) (LoginAttempt, error)
	// FinishLogin settles an attempt that BeginLogin allowed and appends ev,
	// in one transaction.
	FinishLogin(ctx context.Context, a LoginAttempt, o LoginOutcome, ev AuditEvent) error
	// PruneLogins deletes the records whose last counted attempt and lock
	// both ended before before, and returns how many.
	PruneLogins(ctx context.Context, before time.Time) (int64, error)
}

// PasswordUpgrader replaces a password hash only if it is still the one
// that was verified.
type PasswordUpgrader interface {
	// UpgradePasswordHash sets username's hash to newHash and appends ev, in
	// one transaction, if the stored hash is still oldHash. It reports
	// false (and changes nothing) when the hash was changed meanwhile, for
	// example by an operator's passwd, which must not be undone by a login
	// that verified the old password.
	UpgradePasswordHash(ctx context.Context, username, oldHash, newHash string, ev AuditEvent) (bool, error)
}

var (
	_ Logins           = (*SQL)(nil)
	_ PasswordUpgrader = (*SQL)(nil)
)

// optNanos stores the zero time as 0 (time.Time{}.UnixNano is undefined).
func optNanos(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return nanos(t)
}

func optTime(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return fromNanos(n)
}

type loginRow struct {
	failures          int
	lockedUntil, last int64
}

func (r loginRow) state() LoginState {
	return LoginState{Failures: r.failures, LockedUntil: optTime(r.lockedUntil), LastFailure: optTime(r.last)}
}

func scanLogin(row *sql.Row) (loginRow, bool, error) {
	var r loginRow
	err := row.Scan(&r.failures, &r.lockedUntil, &r.last)
	if errors.Is(err, sql.ErrNoRows) {
		return loginRow{}, false, nil
	}
	if err != nil {
		return loginRow{}, false, fmt.Errorf("reading login state: %w", err)
	}
	return r, true, nil
}

const loginSelect = `SELECT failures, locked_until, last_failure_at FROM logins WHERE username = ?`

// LoginState implements Logins.
func (s *SQL) LoginState(ctx context.Context, username string) (LoginState, error) {
	r, _, err := scanLogin(s.r.QueryRowContext(ctx, loginSelect, username))
	return r.state(), err
}

// BeginLogin implements Logins.
func (s *SQL) BeginLogin(ctx context.Context, username string, now time.Time, p LockoutPolicy) (LoginAttempt, error) {
	a := LoginAttempt{Username: username}
	err := s.write(ctx, func(ctx context.Context, w *wtx) error {
		// The loop matters only where another writer can slip in between
		// the read and the conditional write (PostgreSQL, read committed);
		// SQLite's single writer always succeeds the first time.
		for range 5 {
			old, exists, err := scanLogin(w.queryRow(ctx, loginSelect, username))
			if err != nil {
				return err
			}
			a.Before = old.state()
			if a.Before.Locked(now) {
				a.Allowed, a.After = false, a.Before
				return nil
			}
			next := loginRow{failures: old.failures + 1, last: nanos(now)}
			if d := p.LockFor(next.failures); d > 0 {
				next.lockedUntil = nanos(now.Add(d))
			}
			var res sql.Result
			if exists {
				res, err = w.exec(ctx, `UPDATE logins SET failures = ?, locked_until = ?, last_failure_at = ? WHERE username = ? AND failures = ? AND locked_until = ?`,
					next.failures, next.lockedUntil, next.last, username, old.failures, old.lockedUntil)
			} else {
				res, err = w.exec(ctx, `INSERT INTO logins(username, failures, locked_until, last_failure_at) VALUES (?, ?, ?, ?) ON CONFLICT(username) DO NOTHING`,
					username, next.failures, next.lockedUntil, next.last)
			}
			if err != nil {
				return fmt.Errorf("counting login attempt: %w", err)
			}
			if n, _ := res.RowsAffected(); n == 1 {
				a.Allowed, a.After = true, next.state()
				return nil
			}
		}
		return zerr.New(zerr.Internal, "login state of %q keeps changing", username)
	})
	if err != nil {
		return LoginAttempt{}, err
	}
	return a, nil
}

// FinishLogin implements Logins.
func (s *SQL) FinishLogin(ctx context.Context, a LoginAttempt, o LoginOutcome, ev AuditEvent) error {
	if o != LoginSucceeded && o != LoginFailed && o != LoginAborted {
		return zerr.New(zerr.Internal, "unknown login outcome %d", o)
	}
	return s.write(ctx, func(ctx context.Context, w *wtx) error {
		var err error
		switch {
		case o == LoginSucceeded:
			_, err = w.exec(ctx, `DELETE FROM logins WHERE username = ?`, a.Username)
		case o == LoginAborted && a.Allowed && a.Before.Failures == 0:
			_, err = w.exec(ctx, `DELETE FROM logins WHERE username = ? AND failures = ? AND locked_until = ?`,
				a.Username, a.After.Failures, optNanos(a.After.LockedUntil))
		case o == LoginAborted && a.Allowed:
			_, err = w.exec(ctx, `UPDATE logins SET failures = ?, locked_until = ?, last_failure_at = ? WHERE username = ? AND failures = ? AND locked_until = ?`,
				a.Before.Failures, optNanos(a.Before.LockedUntil), optNanos(a.Before.LastFailure),
				a.Username, a.After.Failures, optNanos(a.After.LockedUntil))
		}
		if err != nil {
			return fmt.Errorf("settling login attempt: %w", err)
		}
		return w.appendAudit(ctx, ev)
	})
}

// PruneLogins implements Logins.
func (s *SQL) PruneLogins(ctx context.Context, before time.Time) (int64, error) {
	var n int64
	err := s.write(ctx, func(ctx context.Context, w *wtx) error {
		res, err := w.exec(ctx, `DELETE FROM logins WHERE last_failure_at < ? AND locked_until < ?`, nanos(before), nanos(before))
		if err != nil {
			return fmt.Errorf("pruning logins: %w", err)
		}
		n, _ = res.RowsAffected()
		return nil
	})
	return n, err
}

// UpgradePasswordHash implements PasswordUpgrader.
func (s *SQL) UpgradePasswordHash(ctx context.Context, username, oldHash, newHash string, ev AuditEvent) (bool, error) {
	now := s.now()
	var ok bool
	err := s.write(ctx, func(ctx context.Context, w *wtx) error {
		res, err := w.exec(ctx, `UPDATE enterprises SET password_hash = ?, updated_at = ? WHERE username = ? AND password_hash = ?`,
			newHash, nanos(now), username, oldHash)
		if err != nil {
			return fmt.Errorf("upgrading password hash: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			ok = false
			return nil
		}
		ok = true
		return w.appendAudit(ctx, ev)
	})
	return ok, err
}
