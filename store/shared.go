package store

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/zbca/zbca/internal/zerr"
)

// The short-lived state that every node on one database must share (issue
// 8): portal sessions, spent ACME nonces, the login rate limit's buckets
// and the secrets the nodes use alike. Rows expire; the Prune methods
// delete at most limit of them per call, so a caller can prune from a
// request without a long transaction.

// SessionStore keeps the portal's login sessions. Only the SHA-256 of a
// session token is stored, never the token. Safe for concurrent use.
type SessionStore interface {
	// CreateSession starts a session for username, made under the
	// enterprise's credential epoch epoch, that lasts until expires;
	// zerr.Conflict if the token exists (tokens are random).
	CreateSession(ctx context.Context, token, username string, epoch int64, expires time.Time) error
	// Session returns the username of the session token and the
	// credential epoch it was made under; found is false when there is no
	// such session, it has expired at now, or its enterprise is disabled
	// or has moved to another credential epoch.
	Session(ctx context.Context, token string, now time.Time) (username string, epoch int64, found bool, err error)
	// DeleteSession ends a session; an unknown token is not an error.
	DeleteSession(ctx context.Context, token string) error
	// PruneSessions deletes up to limit sessions that expired before
	// before, and returns how many.
	PruneSessions(ctx context.Context, before time.Time, limit int) (int64, error)
}

// NonceStore records the ACME nonces that were used (RFC 8555 §6.5).
// Nonces are checked for authenticity and expiry by their issuer; the
// store only answers "was it used before". Safe for concurrent use.
type NonceStore interface {
	// UseNonce records nonce as used, until expires (its own expiry), and
	// reports whether it was new: false means a replay. Atomic across
	// every store on the database.
	UseNonce(ctx context.Context, nonce string, expires time.Time) (fresh bool, err error)
	// PruneNonces forgets up to limit used nonces whose expiry is before
	// before, and returns how many. Only nonces that their issuer refuses
	// as expired by then may be forgotten.
	PruneNonces(ctx context.Context, before time.Time, limit int) (int64, error)
}

// ClusterSecrets keeps random secrets that every node must use alike.
type ClusterSecrets interface {
	// ClusterSecret returns the 32-byte secret named name, made at random
	// by whichever node asks first; every store on the database returns
	// the same bytes.
	ClusterSecret(ctx context.Context, name string) ([]byte, error)
}

// RateStore keeps token buckets (rate limits) shared by every node. Safe
// for concurrent use.
type RateStore interface {
	// TakeToken takes one token from bucket at now. The bucket holds at
	// most burst tokens, refills at rate tokens per second and starts
	// full. ok reports whether a token was taken; when it was not, first
	// reports whether this is the bucket's first refusal since its last
	// allowed take. Atomic across every store on the database.
	TakeToken(ctx context.Context, bucket string, now time.Time, rate float64, burst int) (ok, first bool, err error)
	// PruneRateBuckets deletes up to limit buckets last refilled before
	// before, and returns how many. A bucket untouched for burst/rate
	// seconds is full again: deleting it changes nothing.
	PruneRateBuckets(ctx context.Context, before time.Time, limit int) (int64, error)
}

var (
	_ SessionStore   = (*SQL)(nil)
	_ NonceStore     = (*SQL)(nil)
	_ ClusterSecrets = (*SQL)(nil)
	_ RateStore      = (*SQL)(nil)
)

// sessionKey is what identifies a session in the table: a stolen copy of
// the database holds no usable token.
func sessionKey(token string) string {
	h := sha256.Sum256([]byte(token))
	return hex.EncodeToString(h[:])
}

// CreateSession implements SessionStore.
func (s *SQL) CreateSession(ctx context.Context, token, username string, epoch int64, expires time.Time) error {
	if token == "" || username == "" {
		return zerr.New(zerr.BadRequest, "a session needs a token and a username")
	}
	return s.write(ctx, func(ctx context.Context, w *wtx) error {
		_, err := w.exec(ctx, `INSERT INTO portal_sessions(token_hash, username, epoch, expires_at) VALUES (?, ?, ?, ?)`,
			sessionKey(token), username, epoch, nanos(expires))
		if isUnique(err) {
			return zerr.New(zerr.Conflict, "session exists")
		}
		if err != nil {
			return fmt.Errorf("creating session: %w", err)
		}
		return nil
	})
}

// Session implements SessionStore.
func (s *SQL) Session(ctx context.Context, token string, now time.Time) (string, int64, bool, error) {
	var u string
	var epoch int64
	// The session counts only while its enterprise is active and has the
	// credential epoch the session was made under (EnterpriseWriter): a
	// passwd, disable or EndAccess ends it on every node at once.
	err := s.r.QueryRowContext(ctx, `SELECT s.username, s.epoch FROM portal_sessions s JOIN enterprises e ON e.username = s.username
		WHERE s.token_hash = ? AND s.expires_at > ? AND e.credential_epoch = s.epoch AND e.status = 'active'`,
		sessionKey(token), nanos(now)).Scan(&u, &epoch)
	if errors.Is(err, sql.ErrNoRows) {
		return "", 0, false, nil
	}
	if err != nil {
		return "", 0, false, fmt.Errorf("reading session: %w", err)
	}
	return u, epoch, true, nil
}

// DeleteSession implements SessionStore.
func (s *SQL) DeleteSession(ctx context.Context, token string) error {
	return s.write(ctx, func(ctx context.Context, w *wtx) error {
		if _, err := w.exec(ctx, `DELETE FROM portal_sessions WHERE token_hash = ?`, sessionKey(token)); err != nil {
			return fmt.Errorf("deleting session: %w", err)
		}
		return nil
	})
}

// PruneSessions implements SessionStore.
func (s *SQL) PruneSessions(ctx context.Context, before time.Time, limit int) (int64, error) {
	return s.prune(ctx, "portal_sessions", "token_hash", "expires_at", before, limit)
}

// UseNonce implements NonceStore: one INSERT that does nothing on a
// conflict, so the number of rows it inserted is the answer, on every
// node at once.
func (s *SQL) UseNonce(ctx context.Context, nonce string, expires time.Time) (bool, error) {
	var fresh bool
	err := s.write(ctx, func(ctx context.Context, w *wtx) error {
		res, err := w.exec(ctx, `INSERT INTO acme_used_nonces(nonce, expires_at) VALUES (?, ?) ON CONFLICT(nonce) DO NOTHING`,
			nonce, nanos(expires))
		if err != nil {
			return fmt.Errorf("recording used nonce: %w", err)
		}
		n, err := res.RowsAffected()
		fresh = n == 1
		return err
	})
	return fresh, err
}

// PruneNonces implements NonceStore.
func (s *SQL) PruneNonces(ctx context.Context, before time.Time, limit int) (int64, error) {
	return s.prune(ctx, "acme_used_nonces", "nonce", "expires_at", before, limit)
}

// ClusterSecret implements ClusterSecrets. The first node inserts its
// random candidate; the others' inserts do nothing, and everyone reads
// back the row that won.
func (s *SQL) ClusterSecret(ctx context.Context, name string) ([]byte, error) {
	if name == "" {
		return nil, zerr.New(zerr.BadRequest, "a cluster secret needs a name")
	}
	const read = `SELECT value FROM cluster_secrets WHERE name = ?`
	var v []byte
	err := s.r.QueryRowContext(ctx, read, name).Scan(&v)
	if err == nil {
		return v, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("reading cluster secret %s: %w", name, err)
	}
	candidate := make([]byte, 32)
	if _, err := rand.Read(candidate); err != nil {
		return nil, err
	}
	err = s.write(ctx, func(ctx context.Context, w *wtx) error {
		if _, err := w.exec(ctx, `INSERT INTO cluster_secrets(name, value, created_at) VALUES (?, ?, ?) ON CONFLICT(name) DO NOTHING`,
			name, candidate, nanos(s.now())); err != nil {
			return err
		}
		return w.queryRow(ctx, read, name).Scan(&v)
	})
	if err != nil {
		return nil, fmt.Errorf("making cluster secret %s: %w", name, err)
	}
	return v, nil
}

// bucketState is one row of rate_buckets.
type bucketState struct {
	tokens  float64
	updated int64 // unix nanoseconds of the last refill
	limited bool
}

// take is the token bucket: refill for the time since the last refill (a
// clock that went back refills nothing), then take a token if there is
// one.
func (b bucketState) take(now int64, rate, burst float64) (next bucketState, ok, first bool) {
	next = b
	if el := now - b.updated; el > 0 {
		next.tokens = min(burst, b.tokens+float64(el)/1e9*rate)
		next.updated = now
	}
	if next.tokens >= 1 {
		next.tokens--
		next.limited = false
		return next, true, false
	}
	next.limited = true
	return next, false, !b.limited
}

// TakeToken implements RateStore. The row is read and written back only if
// it is still the row read (compare and swap), so concurrent takes on
// several nodes are each counted once.
func (s *SQL) TakeToken(ctx context.Context, bucket string, now time.Time, rate float64, burst int) (ok, first bool, err error) {
	if !(rate > 0) || burst < 1 {
		return false, false, zerr.New(zerr.Internal, "rate limit needs a positive rate and burst")
	}
	t := nanos(now)
	err = s.write(ctx, func(ctx context.Context, w *wtx) error {
		// As in BeginLogin, the loop matters only on PostgreSQL, where
		// another node's writer can slip in between the read and the write.
		for range 5 {
			old := bucketState{tokens: float64(burst), updated: t}
			err := w.queryRow(ctx, `SELECT tokens, updated_at, limited FROM rate_buckets WHERE bucket = ?`, bucket).
				Scan(&old.tokens, &old.updated, &old.limited)
			exists := err == nil
			if err != nil && !errors.Is(err, sql.ErrNoRows) {
				return fmt.Errorf("reading rate bucket: %w", err)
			}
			next, took, firstRefusal := old.take(t, rate, float64(burst))
			var res sql.Result
			if exists {
				res, err = w.exec(ctx, `UPDATE rate_buckets SET tokens = ?, updated_at = ?, limited = ? WHERE bucket = ? AND tokens = ? AND updated_at = ? AND limited = ?`,
					next.tokens, next.updated, next.limited, bucket, old.tokens, old.updated, old.limited)
			} else {
				res, err = w.exec(ctx, `INSERT INTO rate_buckets(bucket, tokens, updated_at, limited) VALUES (?, ?, ?, ?) ON CONFLICT(bucket) DO NOTHING`,
					bucket, next.tokens, next.updated, next.limited)
			}
			if err != nil {
				return fmt.Errorf("taking a token: %w", err)
			}
			if n, _ := res.RowsAffected(); n == 1 {
				ok, first = took, firstRefusal
				return nil
			}
		}
		return zerr.New(zerr.Internal, "rate bucket %q keeps changing", bucket)
	})
	return ok, first, err
}

// PruneRateBuckets implements RateStore.
func (s *SQL) PruneRateBuckets(ctx context.Context, before time.Time, limit int) (int64, error) {
	return s.prune(ctx, "rate_buckets", "bucket", "updated_at", before, limit)
}

// prune deletes up to limit rows of table whose column col is before
// before (limit < 1: all of them). table, key and col are constants of
// this file, never input.
func (s *SQL) prune(ctx context.Context, table, key, col string, before time.Time, limit int) (int64, error) {
	return s.pruneWhere(ctx, table, key, col, "", before, limit)
}

// pruneWhere is prune for the rows that also meet cond (SQL, no arguments).
func (s *SQL) pruneWhere(ctx context.Context, table, key, col, cond string, before time.Time, limit int) (int64, error) {
	if limit < 1 {
		limit = math.MaxInt32
	}
	if cond != "" {
		cond = ` AND ` + cond
	}
	q := `DELETE FROM ` + table + ` WHERE ` + key + ` IN (SELECT ` + key + ` FROM ` + table + ` WHERE ` + col + ` < ?` + cond + ` LIMIT ?)`
	var n int64
	err := s.write(ctx, func(ctx context.Context, w *wtx) error {
		res, err := w.exec(ctx, q, nanos(before), limit)
		if err != nil {
			return fmt.Errorf("pruning %s: %w", table, err)
		}
		n, err = res.RowsAffected()
		return err
	})
	return n, err
}
