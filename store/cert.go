package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"

	"github.com/zbca/zbca/internal/zerr"
)

func nullID(id int64) any {
	if id == 0 {
		return nil
	}
	return id
}

// JournalSerial implements CertWriter.
func (s *SQL) JournalSerial(ctx context.Context, j JournalEntry, ev AuditEvent) error {
	if j.CreatedAt.IsZero() {
		j.CreatedAt = s.now()
	}
	return s.write(ctx, func(ctx context.Context, w *wtx) error {
		if err := claimAll(ctx, &Tx{w: w, now: j.CreatedAt}, &j); err != nil {
			return err
		}
		_, err := w.exec(ctx, `INSERT INTO issuance_journal(serial, enterprise_id, profile, issuer, node, boot, state, created_at, updated_at, spki_sha256) VALUES (?,?,?,?,?,?,'pending',?,?,?)`,
			j.Serial, nullID(j.EnterpriseID), j.Profile, j.Issuer, j.Node, j.Boot, nanos(j.CreatedAt), nanos(j.CreatedAt), j.SPKISHA256)
		if isUnique(err) {
			return zerr.New(zerr.Conflict, "serial %s was already used", j.Serial)
		}
		if err != nil {
			return fmt.Errorf("journaling serial: %w", err)
		}
		return w.appendAudit(ctx, ev)
	})
}

// StoreCertificate implements CertWriter.
func (s *SQL) StoreCertificate(ctx context.Context, c *Certificate, ev AuditEvent, guards ...Guard) error {
	return s.write(ctx, func(ctx context.Context, w *wtx) error { return s.storeCertTx(ctx, w, c, ev, guards) })
}

func (s *SQL) storeCertTx(ctx context.Context, w *wtx, c *Certificate, ev AuditEvent, guards []Guard) error {
	now := s.now()
	if c.Status == "" {
		c.Status = CertActive
	}
	res, err := w.exec(ctx, `UPDATE issuance_journal SET state = 'issued', error = '', updated_at = ? WHERE serial = ?`, nanos(now), c.Serial)
	if err != nil {
		return fmt.Errorf("updating journal: %w", err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return zerr.New(zerr.Internal, "serial %s was never journaled", c.Serial)
	}
	_, err = w.exec(ctx, `INSERT INTO certificates(serial, enterprise_id, profile, issuer, subject, not_before, not_after, der, spki_sha256, fingerprint_sha256, status, created_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)`,
		c.Serial, nullID(c.EnterpriseID), c.Profile, c.Issuer, c.Subject, nanos(c.NotBefore), nanos(c.NotAfter), c.DER, c.SPKISHA256, c.FingerprintSHA256, c.Status, nanos(now), nanos(now))
	if isUnique(err) {
		return zerr.New(zerr.Conflict, "certificate %s already stored", c.Serial)
	}
	if err != nil {
		return fmt.Errorf("storing certificate: %w", err)
	}
	c.CreatedAt = now
	if err := issuedAll(ctx, &Tx{w: w, now: now}, c, guards); err != nil {
		return err
	}
	// Every node's OCSP table learns of it through the feed.
	if c.FeedSeq, err = w.recordChange(ctx, c.Serial); err != nil {
		return err
	}
	return w.appendAudit(ctx, ev)
}

// FailSerial implements CertWriter.
func (s *SQL) FailSerial(ctx context.Context, serial, reason string, ev AuditEvent, guards ...Guard) error {
	now := s.now()
	return s.write(ctx, func(ctx context.Context, w *wtx) error {
		res, err := w.exec(ctx, `UPDATE issuance_journal SET state = 'failed', error = ?, updated_at = ? WHERE serial = ? AND state = 'pending'`, reason, nanos(now), serial)
		if err != nil {
			return err
		}
		// A serial that is not pending (stored after all, or failed
		// already) has nothing left to undo.
		if n, _ := res.RowsAffected(); n == 1 {
			if err := failedAll(ctx, &Tx{w: w, now: now}, serial, reason, guards); err != nil {
				return err
			}
		}
		return w.appendAudit(ctx, ev)
	})
}

// RecoverJournal implements Journal.
func (s *SQL) RecoverJournal(ctx context.Context, node string, live []string) (int, error) {
	var n int64
	now := s.now()
	const reason = "process ended before the certificate was stored"
	err := s.write(ctx, func(ctx context.Context, w *wtx) error {
		q := `UPDATE issuance_journal SET state = 'failed', error = ?, updated_at = ? WHERE state = 'pending'`
		args := []any{reason, nanos(now)}
		if node != "" {
			q += ` AND node = ?`
			args = append(args, node)
		}
		if len(live) > 0 {
			q += ` AND boot NOT IN (?` + strings.Repeat(",?", len(live)-1) + `)`
			for _, b := range live {
				args = append(args, b)
			}
		}
		rows, err := w.tx.QueryContext(ctx, q+` RETURNING serial`, args...)
		if err != nil {
			return err
		}
		var serials []string
		for rows.Next() {
			var sn string
			if err := rows.Scan(&sn); err != nil {
				rows.Close()
				return err
			}
			serials = append(serials, sn)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		n = int64(len(serials))
		if n == 0 {
			return nil
		}
		// What their guards claimed by serial (an ACME order) will never
		// get a certificate.
		t := &Tx{w: w, now: now}
		for _, sn := range serials {
			if err := failedAll(ctx, t, sn, reason, orphanGuards); err != nil {
				return err
			}
		}
		return w.appendAudit(ctx, AuditEvent{Actor: "system", Action: "journal.recover", Subject: node,
			Details: map[string]any{"failed": n}})
	})
	return int(n), err
}

// GetJournal implements Journal.
func (s *SQL) GetJournal(ctx context.Context, serial string) (*JournalEntry, error) {
	var j JournalEntry
	var eid sql.NullInt64
	var c int64
	err := s.r.QueryRowContext(ctx, `SELECT serial, enterprise_id, profile, issuer, node, boot, state, error, created_at FROM issuance_journal WHERE serial = ?`, serial).
		Scan(&j.Serial, &eid, &j.Profile, &j.Issuer, &j.Node, &j.Boot, &j.State, &j.Error, &c)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, notFound("journal entry", serial)
	}
	j.EnterpriseID, j.CreatedAt = eid.Int64, fromNanos(c)
	return &j, err
}

// JournalCounts returns the number of journal entries per state.
func (s *SQL) JournalCounts(ctx context.Context) (map[string]int64, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT state, COUNT(*) FROM issuance_journal GROUP BY state`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]int64{}
	for rows.Next() {
		var st string
		var n int64
		if err := rows.Scan(&st, &n); err != nil {
			return nil, err
		}
		out[st] = n
	}
	return out, rows.Err()
}

const certCols = `c.serial, COALESCE(c.enterprise_id, 0), COALESCE(e.username, ''), c.profile, c.issuer, c.subject, c.not_before, c.not_after, c.der,
	c.spki_sha256, c.fingerprint_sha256, c.status, COALESCE(c.revoked_at, 0), COALESCE(c.revocation_reason, 0), COALESCE(c.revoked_by, ''), c.created_at`

func scanCert(sc interface{ Scan(...any) error }) (*Certificate, error) {
	var c Certificate
	var nb, na, ra, ca int64
	if err := sc.Scan(&c.Serial, &c.EnterpriseID, &c.Username, &c.Profile, &c.Issuer, &c.Subject, &nb, &na, &c.DER,
		&c.SPKISHA256, &c.FingerprintSHA256, &c.Status, &ra, &c.RevocationReason, &c.RevokedBy, &ca); err != nil {
		return nil, err
	}
	c.NotBefore, c.NotAfter, c.CreatedAt = fromNanos(nb), fromNanos(na), fromNanos(ca)
	if ra != 0 {
		c.RevokedAt = fromNanos(ra)
	}
	return &c, nil
}

// GetCertificate implements CertReader.
func (s *SQL) GetCertificate(ctx context.Context, serial string) (*Certificate, error) {
	c, err := scanCert(s.r.QueryRowContext(ctx, `SELECT `+certCols+` FROM certificates c LEFT JOIN enterprises e ON e.id = c.enterprise_id WHERE c.serial = ?`, serial))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, notFound("certificate", serial)
	}
	return c, err
}

// ListCertificates implements CertReader.
func (s *SQL) ListCertificates(ctx context.Context, f CertFilter) ([]Certificate, error) {
	if f.Limit <= 0 {
		f.Limit = 100
	}
	var where []string
	var args []any
	if f.Username != "" {
		where = append(where, "e.username = ?")
		args = append(args, f.Username)
	}
	if f.Profile != "" {
		where = append(where, "c.profile = ?")
		args = append(args, f.Profile)
	}
	if f.After != "" {
		where = append(where, "c.serial > ?")
		args = append(args, f.After)
	}
	q := `SELECT ` + certCols + ` FROM certificates c LEFT JOIN enterprises e ON e.id = c.enterprise_id`
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	q += " ORDER BY c.serial LIMIT ?"
	args = append(args, f.Limit)
	rows, err := s.r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Certificate
	for rows.Next() {
		c, err := scanCert(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, *c)
	}
	return out, rows.Err()
}

// Backup writes a consistent copy of the database to path (VACUUM INTO),
// safe while the server runs.
func (s *SQL) Backup(ctx context.Context, path string) error {
	if s.d.pg {
		return ErrBackupPostgres
	}
	// The reader pool is query_only and the writer must not be blocked for
	// the length of a copy: use a connection of its own.
	db, err := sql.Open("sqlite", "file:"+s.path+"?_pragma=busy_timeout(10000)")
	if err != nil {
		return err
	}
	defer db.Close()
	if _, err := db.ExecContext(ctx, `VACUUM INTO ?`, path); err != nil {
		return fmt.Errorf("backing up database: %w", err)
	}
	return nil
}

// StoreCertificateSuperseding is StoreCertificate plus, in the same
// transaction, the revocation as superseded (reason 4) of the enterprise's
// older active client certificates beyond the newest keep (this one
// included). guards are run as by StoreCertificate. It returns the
// superseded records.
func (s *SQL) StoreCertificateSuperseding(ctx context.Context, c *Certificate, ev AuditEvent, keep int, actor string, guards ...Guard) ([]*Certificate, error) {
	if keep < 1 {
		return nil, zerr.New(zerr.Internal, "keep must be at least 1")
	}
	var superseded []*Certificate
	err := s.write(ctx, func(ctx context.Context, w *wtx) error {
		superseded = superseded[:0]
		if err := s.storeCertTx(ctx, w, c, ev, guards); err != nil {
			return err
		}
		rows, err := w.tx.QueryContext(ctx, `SELECT serial FROM certificates WHERE enterprise_id = ? AND profile = 'client' AND status = 'active' AND serial <> ?
			ORDER BY created_at DESC, serial DESC LIMIT -1 OFFSET ?`, c.EnterpriseID, c.Serial, keep-1)
		if err != nil {
			return err
		}
		var serials []string
		for rows.Next() {
			var sn string
			if err := rows.Scan(&sn); err != nil {
				rows.Close()
				return err
			}
			serials = append(serials, sn)
		}
		rows.Close()
		now := s.now()
		for _, sn := range serials {
			rec, err := w.revoke(ctx, RevokeRequest{Serial: sn, Reason: 4, At: now, Actor: actor}, map[string]any{"superseded_by": c.Serial})
			if err != nil {
				return err
			}
			if rec != nil {
				superseded = append(superseded, rec)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return superseded, nil
}
