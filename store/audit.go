package store

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	"github.com/zbca/zbca/internal/zerr"
)

// genesis is the prev_hash of the first audit entry.
const genesis = "0000000000000000000000000000000000000000000000000000000000000000"

// auditHash computes an entry's hash from its stored columns. Each field is
// length-prefixed so that no two different entries hash alike.
func auditHash(prev string, seq, at int64, actor, action, subject, details string) string {
	h := sha256.New()
	var buf [binary.MaxVarintLen64]byte
	for _, f := range []string{prev, strconv.FormatInt(seq, 10), strconv.FormatInt(at, 10), actor, action, subject, details} {
		n := binary.PutUvarint(buf[:], uint64(len(f)))
		h.Write(buf[:n])
		h.Write([]byte(f))
	}
	return hex.EncodeToString(h.Sum(nil))
}

// appendAudit appends ev to the chain inside the writer's transaction. The
// chain head is read once per transaction, under the database write lock
// (BEGIN IMMEDIATE; an advisory lock on PostgreSQL, see lockAuditHead), so
// writers in other processes serialise on it too.
func (w *wtx) appendAudit(ctx context.Context, ev AuditEvent) error {
	if ev.Action == "" || ev.Actor == "" {
		return zerr.New(zerr.Internal, "audit event without actor or action")
	}
	if ev.At.IsZero() {
		ev.At = w.s.now()
	}
	details := "{}"
	if len(ev.Details) > 0 {
		b, err := json.Marshal(ev.Details) // map keys are sorted: stable
		if err != nil {
			return fmt.Errorf("encoding audit details: %w", err)
		}
		details = string(b)
	}
	if !w.head.loaded {
		if err := w.lockAuditHead(ctx); err != nil {
			return fmt.Errorf("locking audit head: %w", err)
		}
		w.head = auditHead{loaded: true, hash: genesis}
		err := w.queryRow(ctx, `SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1`).Scan(&w.head.seq, &w.head.hash)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			w.head.loaded = false
			return fmt.Errorf("reading audit head: %w", err)
		}
	}
	seq, prev := w.head.seq+1, w.head.hash
	at := nanos(ev.At)
	hash := auditHash(prev, seq, at, ev.Actor, ev.Action, ev.Subject, details)
	if _, err := w.exec(ctx, `INSERT INTO audit_log(seq, at, actor, action, subject, details, prev_hash, hash) VALUES (?,?,?,?,?,?,?,?)`,
		seq, at, ev.Actor, ev.Action, ev.Subject, details, prev, hash); err != nil {
		return fmt.Errorf("appending audit: %w", err)
	}
	w.head.seq, w.head.hash, w.head.dirty = seq, hash, true
	return nil
}

// flushHead records the chain head apart from the rows, once per
// transaction, so that removing the newest rows is detected too.
func (w *wtx) flushHead(ctx context.Context) error {
	if !w.head.dirty {
		return nil
	}
	_, err := w.exec(ctx, `INSERT INTO meta(key, value) VALUES ('audit_head', ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value`,
		strconv.FormatInt(w.head.seq, 10)+":"+w.head.hash)
	if err != nil {
		return fmt.Errorf("updating audit head: %w", err)
	}
	return nil
}

// AppendAudit durably appends one event.
func (s *SQL) AppendAudit(ctx context.Context, ev AuditEvent) error {
	return s.write(ctx, func(ctx context.Context, w *wtx) error { return w.appendAudit(ctx, ev) })
}

// ErrAuditBroken is wrapped by VerifyAudit's error when the chain is broken.
var ErrAuditBroken = errors.New("audit chain broken")

// VerifyAudit recomputes the whole chain.
func (s *SQL) VerifyAudit(ctx context.Context) (int64, string, error) {
	// One read transaction: the rows and the head record are one snapshot,
	// so writes committed meanwhile cannot look like tampering.
	tx, err := s.r.BeginTx(ctx, s.d.readSnapshot())
	if err != nil {
		return 0, "", err
	}
	defer tx.Rollback()
	rows, err := tx.QueryContext(ctx, `SELECT seq, at, actor, action, subject, details, prev_hash, hash FROM audit_log ORDER BY seq`)
	if err != nil {
		return 0, "", fmt.Errorf("reading audit log: %w", err)
	}
	defer rows.Close()
	prev := genesis
	var n, want int64
	for rows.Next() {
		var seq, at int64
		var actor, action, subject, details, prevHash, hash string
		if err := rows.Scan(&seq, &at, &actor, &action, &subject, &details, &prevHash, &hash); err != nil {
			return n, "", err
		}
		want++
		switch {
		case seq != want:
			return n, "", fmt.Errorf("%w: entry %d is missing (next is %d)", ErrAuditBroken, want, seq)
		case prevHash != prev:
			return n, "", fmt.Errorf("%w: entry %d does not follow entry %d (removed, reordered or edited)", ErrAuditBroken, seq, seq-1)
		case auditHash(prev, seq, at, actor, action, subject, details) != hash:
			return n, "", fmt.Errorf("%w: entry %d was edited (its hash does not match its content)", ErrAuditBroken, seq)
		}
		prev = hash
		n++
	}
	if err := rows.Err(); err != nil {
		return n, "", err
	}
	var head string
	err = tx.QueryRowContext(ctx, `SELECT value FROM meta WHERE key = 'audit_head'`).Scan(&head)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		if n != 0 {
			return n, "", fmt.Errorf("%w: the chain head record is missing", ErrAuditBroken)
		}
	case err != nil:
		return n, "", err
	case head != strconv.FormatInt(n, 10)+":"+prev:
		return n, "", fmt.Errorf("%w: the chain ends at entry %d but the head record says %s (newest entries removed?)", ErrAuditBroken, n, head)
	}
	return n, prev, nil
}

// ListAudit returns up to limit entries with seq > after.
func (s *SQL) ListAudit(ctx context.Context, after int64, limit int) ([]AuditEvent, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT seq, at, actor, action, subject, details, prev_hash, hash FROM audit_log WHERE seq > ? ORDER BY seq LIMIT ?`, after, limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []AuditEvent
	for rows.Next() {
		var ev AuditEvent
		var at int64
		var details string
		if err := rows.Scan(&ev.Seq, &at, &ev.Actor, &ev.Action, &ev.Subject, &details, &ev.PrevHash, &ev.Hash); err != nil {
			return nil, err
		}
		ev.At = fromNanos(at)
		_ = json.Unmarshal([]byte(details), &ev.Details)
		out = append(out, ev)
	}
	return out, rows.Err()
}
