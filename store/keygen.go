package store

import (
	"context"
	"database/sql"
	"errors"
)

// KeygenStore reads and sets the per-enterprise permission to have the
// portal generate the key pair on the server (off by default). Safe for
// concurrent use.
type KeygenStore interface {
	// ServerKeygen reports whether the enterprise may use server-side key
	// generation; zerr.NotFound for an unknown username.
	ServerKeygen(ctx context.Context, username string) (bool, error)
	// SetServerKeygen turns it on or off, with ev, in one transaction;
	// zerr.NotFound for an unknown username.
	SetServerKeygen(ctx context.Context, username string, on bool, ev AuditEvent) error
}

var _ KeygenStore = (*SQL)(nil)

// ServerKeygen implements KeygenStore.
func (s *SQL) ServerKeygen(ctx context.Context, username string) (bool, error) {
	var on bool
	err := s.r.QueryRowContext(ctx, `SELECT server_keygen FROM enterprises WHERE username = ?`, username).Scan(&on)
	if errors.Is(err, sql.ErrNoRows) {
		return false, notFound("enterprise", username)
	}
	return on, err
}

// SetServerKeygen implements KeygenStore.
func (s *SQL) SetServerKeygen(ctx context.Context, username string, on bool, ev AuditEvent) error {
	return s.updateEnterprise(ctx, username, "server_keygen", on, ev)
}
