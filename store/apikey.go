package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/zbca/zbca/internal/zerr"
)

// APIKey is a submission site's key for the verification API. Only the
// SHA-256 of the key is stored (Hash, lowercase hex); Prefix is its first
// characters, enough for an operator to recognise it in a list.
type APIKey struct {
	ID        int64
	Name      string
	Hash      string
	Prefix    string
	Status    string // APIKeyActive or APIKeyRevoked
	CreatedAt time.Time
	RevokedAt time.Time // zero while active
}

// API key statuses.
const (
	APIKeyActive  = "active"
	APIKeyRevoked = "revoked"
)

// APIKeys keeps the verification API's keys. Changes are audited in the
// same transaction. Safe for concurrent use.
type APIKeys interface {
	// AddAPIKey stores a new active key; zerr.Conflict when an active key
	// already has that name or the hash exists.
	AddAPIKey(ctx context.Context, k *APIKey, ev AuditEvent) error
	// RevokeAPIKey revokes the active key named name and returns it;
	// zerr.NotFound when no active key has that name.
	RevokeAPIKey(ctx context.Context, name string, ev AuditEvent) (*APIKey, error)
	// ListAPIKeys returns every key, active and revoked, oldest first.
	ListAPIKeys(ctx context.Context) ([]APIKey, error)
	// APIKeyByHash returns the key (active or revoked) with this hash;
	// zerr.NotFound when there is none. One primary-key-like lookup.
	APIKeyByHash(ctx context.Context, hash string) (*APIKey, error)
}

var _ APIKeys = (*SQL)(nil)

const apiKeyCols = `id, name, hash, prefix, status, created_at, revoked_at`

func scanAPIKey(sc interface{ Scan(...any) error }) (*APIKey, error) {
	var k APIKey
	var c, r int64
	if err := sc.Scan(&k.ID, &k.Name, &k.Hash, &k.Prefix, &k.Status, &c, &r); err != nil {
		return nil, err
	}
	k.CreatedAt = fromNanos(c)
	if r != 0 {
		k.RevokedAt = fromNanos(r)
	}
	return &k, nil
}

// AddAPIKey implements APIKeys.
func (s *SQL) AddAPIKey(ctx context.Context, k *APIKey, ev AuditEvent) error {
	if k.Name == "" || len(k.Hash) != 64 {
		return zerr.New(zerr.BadRequest, "API key needs a name and a SHA-256 hash")
	}
	now := s.now()
	return s.write(ctx, func(ctx context.Context, w *wtx) error {
		err := w.queryRow(ctx, `INSERT INTO api_keys(name, hash, prefix, status, created_at) VALUES (?,?,?,'active',?) RETURNING id`,
			k.Name, k.Hash, k.Prefix, nanos(now)).Scan(&k.ID)
		if isUnique(err) {
			return zerr.New(zerr.Conflict, "an active API key named %q already exists (revoke it first)", k.Name)
		}
		if err != nil {
			return fmt.Errorf("adding API key: %w", err)
		}
		k.Status, k.CreatedAt, k.RevokedAt = APIKeyActive, now, time.Time{}
		return w.appendAudit(ctx, ev)
	})
}

// RevokeAPIKey implements APIKeys: one conditional UPDATE.
func (s *SQL) RevokeAPIKey(ctx context.Context, name string, ev AuditEvent) (*APIKey, error) {
	now := s.now()
	var k *APIKey
	err := s.write(ctx, func(ctx context.Context, w *wtx) error {
		var id int64
		err := w.queryRow(ctx, `SELECT id FROM api_keys WHERE name = ? AND status = 'active'`, name).Scan(&id)
		if errors.Is(err, sql.ErrNoRows) {
			return notFound("active API key", name)
		}
		if err != nil {
			return err
		}
		res, err := w.exec(ctx, `UPDATE api_keys SET status = 'revoked', revoked_at = ? WHERE id = ? AND status = 'active'`, nanos(now), id)
		if err != nil {
			return fmt.Errorf("revoking API key: %w", err)
		}
		if n, _ := res.RowsAffected(); n != 1 {
			return notFound("active API key", name)
		}
		if err := w.appendAudit(ctx, ev); err != nil {
			return err
		}
		k, err = scanAPIKey(w.queryRow(ctx, `SELECT `+apiKeyCols+` FROM api_keys WHERE id = ?`, id))
		return err
	})
	if err != nil {
		return nil, err
	}
	return k, nil
}

// ListAPIKeys implements APIKeys.
func (s *SQL) ListAPIKeys(ctx context.Context) ([]APIKey, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT `+apiKeyCols+` FROM api_keys ORDER BY id`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []APIKey
	for rows.Next() {
		k, err := scanAPIKey(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, *k)
	}
	return out, rows.Err()
}

// APIKeyByHash implements APIKeys.
func (s *SQL) APIKeyByHash(ctx context.Context, hash string) (*APIKey, error) {
	k, err := scanAPIKey(s.r.QueryRowContext(ctx, `SELECT `+apiKeyCols+` FROM api_keys WHERE hash = ?`, hash))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, zerr.New(zerr.NotFound, "API key not found")
	}
	return k, err
}
