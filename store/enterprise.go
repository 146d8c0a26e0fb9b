package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/zbca/zbca/internal/zerr"
)

const enterpriseCols = `id, username, name, code, password_hash, status, credential_epoch, created_at, updated_at`

func scanEnterprise(sc interface{ Scan(...any) error }) (*Enterprise, error) {
	var e Enterprise
	var c, u int64
	if err := sc.Scan(&e.ID, &e.Username, &e.Name, &e.Code, &e.PasswordHash, &e.Status, &e.CredentialEpoch, &c, &u); err != nil {
		return nil, err
	}
	e.CreatedAt, e.UpdatedAt = fromNanos(c), fromNanos(u)
	return &e, nil
}

// GetEnterprise implements EnterpriseReader.
func (s *SQL) GetEnterprise(ctx context.Context, username string) (*Enterprise, error) {
	e, err := scanEnterprise(s.r.QueryRowContext(ctx, `SELECT `+enterpriseCols+` FROM enterprises WHERE username = ?`, username))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, notFound("enterprise", username)
	}
	return e, err
}

// GetEnterpriseByID implements EnterpriseReader.
func (s *SQL) GetEnterpriseByID(ctx context.Context, id int64) (*Enterprise, error) {
	e, err := scanEnterprise(s.r.QueryRowContext(ctx, `SELECT `+enterpriseCols+` FROM enterprises WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, notFound("enterprise", fmt.Sprint(id))
	}
	return e, err
}

// ListEnterprises implements EnterpriseReader.
func (s *SQL) ListEnterprises(ctx context.Context, after string, limit int) ([]Enterprise, error) {
	if limit <= 0 {
		limit = 100
	}
	rows, err := s.r.QueryContext(ctx, `SELECT `+enterpriseCols+` FROM enterprises WHERE username > ? ORDER BY username LIMIT ?`, after, limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Enterprise
	for rows.Next() {
		e, err := scanEnterprise(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, *e)
	}
	return out, rows.Err()
}

// CountEnterprises returns the number of accounts.
func (s *SQL) CountEnterprises(ctx context.Context) (int64, error) {
	var n int64
	err := s.r.QueryRowContext(ctx, `SELECT COUNT(*) FROM enterprises`).Scan(&n)
	return n, err
}

// AddEnterprise implements EnterpriseWriter.
func (s *SQL) AddEnterprise(ctx context.Context, e *Enterprise, ev AuditEvent) error {
	if e.Status == "" {
		e.Status = StatusActive
	}
	now := s.now()
	return s.write(ctx, func(ctx context.Context, w *wtx) error {
		err := w.queryRow(ctx, `INSERT INTO enterprises(username, name, code, password_hash, status, created_at, updated_at) VALUES (?,?,?,?,?,?,?) RETURNING id`,
			e.Username, e.Name, e.Code, e.PasswordHash, e.Status, nanos(now), nanos(now)).Scan(&e.ID)
		if isUnique(err) {
			return zerr.New(zerr.Conflict, "enterprise %q already exists", e.Username)
		}
		if err != nil {
			return fmt.Errorf("adding enterprise: %w", err)
		}
		e.CreatedAt, e.UpdatedAt = now, now
		return w.appendAudit(ctx, ev)
	})
}

// ImportEnterprises implements EnterpriseWriter. It bypasses the group
// commit queue's per-op savepoints: the batch is one statement per row in
// one transaction, which is what makes a million-row import fast.
func (s *SQL) ImportEnterprises(ctx context.Context, rows []Enterprise, ev AuditEvent) ([]bool, error) {
	inserted := make([]bool, len(rows))
	now := nanos(s.now())
	err := s.write(ctx, func(ctx context.Context, w *wtx) error {
		st, err := w.stmt(ctx, `INSERT INTO enterprises(username, name, code, password_hash, status, created_at, updated_at) VALUES (?,?,?,?,'active',?,?) ON CONFLICT(username) DO NOTHING`)
		if err != nil {
			return err
		}
		for i, e := range rows {
			res, err := st.ExecContext(ctx, e.Username, e.Name, e.Code, e.PasswordHash, now, now)
			if err != nil {
				return fmt.Errorf("importing %q: %w", e.Username, err)
			}
			n, _ := res.RowsAffected()
			inserted[i] = n == 1
		}
		added := 0
		for _, ok := range inserted {
			if ok {
				added++
			}
		}
		if ev.Details == nil {
			ev.Details = map[string]any{}
		}
		ev.Details["added"] = added
		return w.appendAudit(ctx, ev)
	})
	if err != nil {
		clear(inserted)
		return inserted, err
	}
	return inserted, nil
}

func (s *SQL) updateEnterprise(ctx context.Context, username, set string, arg any, ev AuditEvent) error {
	_, err := s.updateEnterpriseEpoch(ctx, username, set, arg, false, ev)
	return err
}

// updateEnterpriseEpoch sets one column (none when set is empty), moves
// the credential epoch on when bump is true, and audits, in one
// transaction; it returns the epoch after the change.
func (s *SQL) updateEnterpriseEpoch(ctx context.Context, username, set string, arg any, bump bool, ev AuditEvent) (int64, error) {
	now := s.now()
	q, args := `UPDATE enterprises SET updated_at = ?`, []any{nanos(now)}
	if set != "" {
		q += `, ` + set + ` = ?`
		args = append(args, arg)
	}
	if bump {
		q += `, credential_epoch = credential_epoch + 1`
	}
	q += ` WHERE username = ? RETURNING credential_epoch`
	args = append(args, username)
	var epoch int64
	err := s.write(ctx, func(ctx context.Context, w *wtx) error {
		err := w.queryRow(ctx, q, args...).Scan(&epoch)
		if errors.Is(err, sql.ErrNoRows) {
			return notFound("enterprise", username)
		}
		if err != nil {
			return err
		}
		if ev.Details == nil {
			ev.Details = map[string]any{}
		}
		if bump {
			ev.Details["credential_epoch"] = epoch
		}
		return w.appendAudit(ctx, ev)
	})
	return epoch, err
}

// SetEnterpriseStatus implements EnterpriseWriter.
func (s *SQL) SetEnterpriseStatus(ctx context.Context, username, status string, ev AuditEvent) error {
	if status != StatusActive && status != StatusDisabled {
		return zerr.New(zerr.BadRequest, "unknown status %q", status)
	}
	_, err := s.updateEnterpriseEpoch(ctx, username, "status", status, status == StatusDisabled, ev)
	return err
}

// SetPasswordHash implements EnterpriseWriter.
func (s *SQL) SetPasswordHash(ctx context.Context, username, hash string, ev AuditEvent) error {
	_, err := s.updateEnterpriseEpoch(ctx, username, "password_hash", hash, true, ev)
	return err
}

// EndAccess implements EnterpriseWriter.
func (s *SQL) EndAccess(ctx context.Context, username string, ev AuditEvent) (int64, error) {
	return s.updateEnterpriseEpoch(ctx, username, "", nil, true, ev)
}
