package store

import (
	"context"
	"fmt"

	"github.com/zbca/zbca/internal/zerr"
)

// BulkWriter is the batched form of CertWriter, for bulk issuance of test
// data (ca.IssueBulk): the same two durable steps, many certificates per
// transaction, one audit event per step and batch, and no guards (no
// issuance policy) at all.
type BulkWriter interface {
	// JournalSerials journals many serials, all or none.
	JournalSerials(ctx context.Context, js []JournalEntry, ev AuditEvent) error
	// StoreCertificates stores many certificates whose serials were
	// journaled, all or none.
	StoreCertificates(ctx context.Context, cs []*Certificate, ev AuditEvent) error
}

var _ BulkWriter = (*SQL)(nil)

// JournalSerials implements BulkWriter.
func (s *SQL) JournalSerials(ctx context.Context, js []JournalEntry, ev AuditEvent) error {
	now := s.now()
	return s.write(ctx, func(ctx context.Context, w *wtx) error {
		for _, j := range js {
			if len(j.Guards) > 0 {
				return zerr.New(zerr.Internal, "serial %s: bulk journaling runs no guards", j.Serial)
			}
			_, err := w.exec(ctx, `INSERT INTO issuance_journal(serial, enterprise_id, profile, issuer, node, boot, state, created_at, updated_at) VALUES (?,?,?,?,?,?,'pending',?,?)`,
				j.Serial, nullID(j.EnterpriseID), j.Profile, j.Issuer, j.Node, j.Boot, nanos(now), nanos(now))
			if isUnique(err) {
				return zerr.New(zerr.Conflict, "serial %s was already used", j.Serial)
			}
			if err != nil {
				return fmt.Errorf("journaling serial: %w", err)
			}
		}
		return w.appendAudit(ctx, ev)
	})
}

// StoreCertificates implements BulkWriter.
func (s *SQL) StoreCertificates(ctx context.Context, cs []*Certificate, ev AuditEvent) error {
	now := s.now()
	return s.write(ctx, func(ctx context.Context, w *wtx) error {
		for _, c := range cs {
			if c.Status == "" {
				c.Status = CertActive
			}
			res, err := w.exec(ctx, `UPDATE issuance_journal SET state = 'issued', error = '', updated_at = ? WHERE serial = ?`, nanos(now), c.Serial)
			if err != nil {
				return err
			}
			if n, _ := res.RowsAffected(); n != 1 {
				return zerr.New(zerr.Internal, "serial %s was never journaled", c.Serial)
			}
			if _, err := w.exec(ctx, `INSERT INTO certificates(serial, enterprise_id, profile, issuer, subject, not_before, not_after, der, spki_sha256, fingerprint_sha256, status, created_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)`,
				c.Serial, nullID(c.EnterpriseID), c.Profile, c.Issuer, c.Subject, nanos(c.NotBefore), nanos(c.NotAfter), c.DER, c.SPKISHA256, c.FingerprintSHA256, c.Status, nanos(now), nanos(now)); err != nil {
				return fmt.Errorf("storing certificate %s: %w", c.Serial, err)
			}
			c.CreatedAt = now
			if c.FeedSeq, err = w.recordChange(ctx, c.Serial); err != nil {
				return err
			}
		}
		return w.appendAudit(ctx, ev)
	})
}
