package store

import (
	"context"
	"database/sql"
	"errors"
)

// readStmt returns the reader pool's prepared statement for q, preparing
// it once. For the hot single-row reads (the verification API's status
// lookup): SQLite otherwise parses and plans the query on every call,
// which costs as much as running it.
func (s *SQL) readStmt(ctx context.Context, q string) (*sql.Stmt, error) {
	if st, ok := s.rstmts.Load(q); ok {
		return st.(*sql.Stmt), nil
	}
	st, err := s.r.PrepareContext(ctx, q)
	if err != nil {
		return nil, err
	}
	if prev, loaded := s.rstmts.LoadOrStore(q, st); loaded {
		st.Close()
		return prev.(*sql.Stmt), nil
	}
	return st, nil
}

// Revocation is a certificate's revocation state, the one thing about it
// that changes after issuance.
type Revocation struct {
	Revoked bool
	At      int64 // unix nanoseconds; 0 when not revoked
	Reason  int
}

// CertRevocation returns a certificate's revocation state by one primary
// key lookup of three integers (no strings to allocate): the verification
// API asks it at every login. found is false for an unknown serial.
func (s *SQL) CertRevocation(ctx context.Context, serial string) (r Revocation, found bool, err error) {
	st, err := s.readStmt(ctx, `SELECT status = 'revoked', COALESCE(revoked_at, 0), COALESCE(revocation_reason, 0) FROM certificates WHERE serial = ?`)
	if err != nil {
		return r, false, err
	}
	err = st.QueryRowContext(ctx, serial).Scan(&r.Revoked, &r.At, &r.Reason)
	if errors.Is(err, sql.ErrNoRows) {
		return r, false, nil
	}
	return r, err == nil, err
}

// RevocationReader is the verification API's status lookup.
type RevocationReader interface {
	CertRevocation(ctx context.Context, serial string) (r Revocation, found bool, err error)
}

var _ RevocationReader = (*SQL)(nil)
