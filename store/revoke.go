package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/zbca/zbca/internal/zerr"
)

// RevokeRequest asks for one certificate's revocation.
type RevokeRequest struct {
	Serial string
	Reason int // CRLReason, RFC 5280 §5.3.1
	At     time.Time
	Actor  string
	// Comment is recorded in the audit event only.
	Comment string
}

// Revoker revokes certificates.
type Revoker interface {
	// Revoke marks the certificate revoked with its audit event in one
	// transaction: one conditional UPDATE (... AND status <> 'revoked'),
	// so two concurrent revocations cannot both succeed. It returns the
	// updated record; zerr.NotFound for an unknown serial and zerr.Conflict
	// for an already revoked certificate (nothing is changed then).
	Revoke(ctx context.Context, r RevokeRequest) (*Certificate, error)
}

// RevokedEntry is one line of a CRL.
type RevokedEntry struct {
	Serial    string
	RevokedAt time.Time
	Reason    int
}

// CRLStore keeps CRL numbers and the latest CRLs.
type CRLStore interface {
	// ForEachRevoked calls fn for every revoked, not yet expired-for-long
	// certificate of issuer (SubjectKeyId hex), in serial order. Rows are
	// streamed, not loaded at once.
	ForEachRevoked(ctx context.Context, issuer string, fn func(RevokedEntry) error) error
	// NextCRLNumber returns the next cRLNumber of the named CRL, durably
	// reserved: it is never returned twice, even across crashes.
	NextCRLNumber(ctx context.Context, name string) (int64, error)
	// SaveCRL stores the latest CRL of name if number is newer than the
	// stored one.
	SaveCRL(ctx context.Context, c *CRL) error
	// LatestCRL returns zerr.NotFound before the first SaveCRL.
	LatestCRL(ctx context.Context, name string) (*CRL, error)
}

// CRL is a stored CRL.
type CRL struct {
	Name       string
	Number     int64
	ThisUpdate time.Time
	NextUpdate time.Time
	// BuiltAt is when the build began, before the revoked certificates
	// were read: the CRL holds every revocation committed before it.
	BuiltAt time.Time
	DER     []byte
	Entries int
}

var (
	_ Revoker  = (*SQL)(nil)
	_ CRLStore = (*SQL)(nil)
)

// Revoke implements Revoker.
func (s *SQL) Revoke(ctx context.Context, r RevokeRequest) (*Certificate, error) {
	if r.At.IsZero() {
		r.At = s.now()
	}
	if r.Actor == "" {
		return nil, zerr.New(zerr.Internal, "revocation without actor")
	}
	var rec *Certificate
	err := s.write(ctx, func(ctx context.Context, w *wtx) error {
		var err error
		rec, err = w.revoke(ctx, r, nil)
		if err != nil || rec != nil {
			return err
		}
		var status string
		var at, reason sql.NullInt64
		err = w.queryRow(ctx, `SELECT status, revoked_at, revocation_reason FROM certificates WHERE serial = ?`, r.Serial).Scan(&status, &at, &reason)
		if errors.Is(err, sql.ErrNoRows) {
			return notFound("certificate", r.Serial)
		}
		if err != nil {
			return err
		}
		return zerr.New(zerr.Conflict, "certificate %s is already revoked (since %s, reason %d)", r.Serial, fromNanos(at.Int64).Format(time.RFC3339), reason.Int64)
	})
	if err != nil {
		return nil, err
	}
	return rec, nil
}

// revoke is the store's one revocation: the conditional UPDATE (so that two
// concurrent revocations cannot both succeed), its audit event (with
// details added to the reason and comment) and its change in the status
// feed, in w's transaction. It returns the updated record, or nil when
// the certificate is unknown or already revoked (nothing changed).
func (w *wtx) revoke(ctx context.Context, r RevokeRequest, details map[string]any) (*Certificate, error) {
	res, err := w.exec(ctx, `UPDATE certificates SET status = 'revoked', revoked_at = ?, revocation_reason = ?, revoked_by = ?, updated_at = ? WHERE serial = ? AND status <> 'revoked'`,
		nanos(r.At), r.Reason, r.Actor, nanos(w.s.now()), r.Serial)
	if err != nil {
		return nil, fmt.Errorf("revoking: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return nil, nil
	}
	if details == nil {
		details = map[string]any{}
	}
	details["reason"] = r.Reason
	if r.Comment != "" {
		details["comment"] = r.Comment
	}
	if err := w.appendAudit(ctx, AuditEvent{At: r.At, Actor: r.Actor, Action: "cert.revoke", Subject: r.Serial, Details: details}); err != nil {
		return nil, err
	}
	seq, err := w.recordChange(ctx, r.Serial)
	if err != nil {
		return nil, err
	}
	rec, err := scanCert(w.queryRow(ctx, `SELECT `+certCols+` FROM certificates c LEFT JOIN enterprises e ON e.id = c.enterprise_id WHERE c.serial = ?`, r.Serial))
	if err != nil {
		return nil, err
	}
	rec.FeedSeq = seq
	return rec, nil
}

// ForEachRevoked implements CRLStore.
func (s *SQL) ForEachRevoked(ctx context.Context, issuer string, fn func(RevokedEntry) error) error {
	rows, err := s.r.QueryContext(ctx, `SELECT serial, revoked_at, revocation_reason FROM certificates WHERE status = 'revoked' AND issuer = ? ORDER BY serial`, issuer)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var e RevokedEntry
		var at int64
		if err := rows.Scan(&e.Serial, &at, &e.Reason); err != nil {
			return err
		}
		e.RevokedAt = fromNanos(at)
		if err := fn(e); err != nil {
			return err
		}
	}
	return rows.Err()
}

// NextCRLNumber implements CRLStore.
func (s *SQL) NextCRLNumber(ctx context.Context, name string) (int64, error) {
	var n int64
	now := nanos(s.now())
	err := s.write(ctx, func(ctx context.Context, w *wtx) error {
		return w.queryRow(ctx, `INSERT INTO crls(name, number, this_update, next_update, der, entries, updated_at) VALUES (?, 1, 0, 0, x'', 0, ?)
			ON CONFLICT(name) DO UPDATE SET number = crls.number + 1, updated_at = excluded.updated_at RETURNING number`, name, now).Scan(&n)
	})
	return n, err
}

// SaveCRL implements CRLStore.
func (s *SQL) SaveCRL(ctx context.Context, c *CRL) error {
	builtAt := c.BuiltAt
	if builtAt.IsZero() {
		builtAt = c.ThisUpdate
	}
	return s.write(ctx, func(ctx context.Context, w *wtx) error {
		res, err := w.exec(ctx, `UPDATE crls SET this_update = ?, next_update = ?, built_at = ?, der = ?, der_number = ?, entries = ?, updated_at = ? WHERE name = ? AND der_number < ? AND number >= ?`,
			nanos(c.ThisUpdate), nanos(c.NextUpdate), nanos(builtAt), c.DER, c.Number, c.Entries, nanos(s.now()), c.Name, c.Number, c.Number)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 1 {
			// Other nodes load it now rather than at their next check.
			return w.notify(ctx, pgChannelCRL, c.Name)
		}
		return nil
	})
}

// LatestCRL implements CRLStore.
func (s *SQL) LatestCRL(ctx context.Context, name string) (*CRL, error) {
	c := &CRL{Name: name}
	var tu, nu, ba int64
	err := s.r.QueryRowContext(ctx, `SELECT der_number, this_update, next_update, built_at, der, entries FROM crls WHERE name = ? AND der_number > 0`, name).
		Scan(&c.Number, &tu, &nu, &ba, &c.DER, &c.Entries)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, notFound("CRL", name)
	}
	if err != nil {
		return nil, err
	}
	c.ThisUpdate, c.NextUpdate, c.BuiltAt = fromNanos(tu), fromNanos(nu), fromNanos(ba)
	return c, nil
}

// StatusReader is what the OCSP responder and its feed read: the feed,
// one serial's status, and a count for sizing tables.
type StatusReader interface {
	FeedSource
	CertStatus(ctx context.Context, serial string) (*CertStatus, error)
	CertificateCountHint(ctx context.Context, notAfter time.Time) (int, error)
	PruneFeed(ctx context.Context, keep int64) (int64, error)
}

var _ StatusReader = (*SQL)(nil)

// CertificateCountHint returns about how many certificates end after
// notAfter, at once, for sizing in-memory tables before a full scan. With
// a zero notAfter: an upper bound of all (the largest rowid: certificates
// are never deleted; on PostgreSQL the planner's estimate); otherwise a
// count over the covering index certificates_live (index only).
func (s *SQL) CertificateCountHint(ctx context.Context, notAfter time.Time) (int, error) {
	q, args := `SELECT COALESCE(MAX(rowid), 0) FROM certificates`, []any(nil)
	switch {
	case !notAfter.IsZero():
		q, args = `SELECT COUNT(*) FROM certificates WHERE not_after > ?`, []any{nanos(notAfter)}
	case s.d.pg:
		// No rowid: the planner's estimate (free) or, before the first
		// ANALYZE, an exact count.
		q = `SELECT CASE WHEN c.reltuples > 0 THEN c.reltuples::bigint ELSE (SELECT COUNT(*) FROM certificates) END
			FROM pg_class c WHERE c.oid = 'certificates'::regclass`
	}
	var n int
	err := s.r.QueryRowContext(ctx, q, args...).Scan(&n)
	return n, err
}

// CountRevoked returns how many of issuer's certificates are revoked (an
// index-only count).
func (s *SQL) CountRevoked(ctx context.Context, issuer string) (int, error) {
	var n int
	err := s.r.QueryRowContext(ctx, `SELECT COUNT(*) FROM certificates WHERE status = 'revoked' AND issuer = ?`, issuer).Scan(&n)
	return n, err
}
