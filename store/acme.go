package store

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"github.com/zbca/zbca/internal/zerr"
)

// EABKey is an External Account Binding key (RFC 8555 §7.3.4).
type EABKey struct {
	KID          string
	HMACKey      []byte
	EnterpriseID int64
	CreatedAt    time.Time
	ExpiresAt    time.Time
}

// ACMEAccount is an ACME account bound to an enterprise.
type ACMEAccount struct {
	ID           string
	Thumbprint   string
	JWK          string
	EnterpriseID int64
	Username     string // filled by readers
	Status       string
	Contact      string // JSON array
	EABKID       string
	CreatedAt    time.Time
}

// ACMEOrder is an order for the enterprise identifier.
type ACMEOrder struct {
	ID         string
	AccountID  string
	Status     string
	Identifier string
	ExpiresAt  time.Time
	Serial     string
	Error      string
	CreatedAt  time.Time
}

// ACMEStore keeps EAB keys, accounts and orders. Missing objects are
// zerr.NotFound.
type ACMEStore interface {
	AddEABKey(ctx context.Context, k *EABKey, ev AuditEvent) error
	GetEABKey(ctx context.Context, kid string) (*EABKey, error)
	// CreateAccountWithEAB consumes the EAB key (unused, unexpired, of the
	// same enterprise) and creates the account in one transaction; a used
	// or expired key is zerr.Unauthorized, an existing thumbprint
	// zerr.Conflict.
	CreateAccountWithEAB(ctx context.Context, a *ACMEAccount, now time.Time, ev AuditEvent) error
	GetACMEAccount(ctx context.Context, id string) (*ACMEAccount, error)
	GetACMEAccountByThumbprint(ctx context.Context, thumbprint string) (*ACMEAccount, error)
	UpdateACMEAccount(ctx context.Context, a *ACMEAccount, ev AuditEvent) error
	// ChangeACMEAccountKey replaces the key; zerr.Conflict when another
	// account has the new key.
	ChangeACMEAccountKey(ctx context.Context, id, oldThumbprint, newThumbprint, newJWK string, ev AuditEvent) error
	AddACMEOrder(ctx context.Context, o *ACMEOrder) error
	GetACMEOrder(ctx context.Context, id string) (*ACMEOrder, error)
	// SetACMEOrderStatus moves an order whose status is from to status
	// (with serial or error text); zerr.Conflict when it was not in from.
	SetACMEOrderStatus(ctx context.Context, id, from, status, serial, errText string) error
}

var _ ACMEStore = (*SQL)(nil)

// ErrOrderNotReady refuses a serial journaled for an ACME order
// (JournalEntry.ACMEOrder) that is not ready: being finalized, finalized,
// invalid or expired. Nothing was written.
var ErrOrderNotReady = zerr.New(zerr.Conflict, "the order is not ready")

// AddEABKey implements ACMEStore.
func (s *SQL) AddEABKey(ctx context.Context, k *EABKey, ev AuditEvent) error {
	return s.write(ctx, func(ctx context.Context, w *wtx) error {
		if _, err := w.exec(ctx, `INSERT INTO eab_keys(kid, hmac_key, enterprise_id, created_at, expires_at) VALUES (?,?,?,?,?)`,
			k.KID, k.HMACKey, k.EnterpriseID, nanos(k.CreatedAt), nanos(k.ExpiresAt)); err != nil {
			return err
		}
		return w.appendAudit(ctx, ev)
	})
}

// GetEABKey implements ACMEStore.
func (s *SQL) GetEABKey(ctx context.Context, kid string) (*EABKey, error) {
	var k EABKey
	var c, e int64
	err := s.r.QueryRowContext(ctx, `SELECT kid, hmac_key, enterprise_id, created_at, expires_at FROM eab_keys WHERE kid = ?`, kid).
		Scan(&k.KID, &k.HMACKey, &k.EnterpriseID, &c, &e)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, notFound("EAB key", kid)
	}
	k.CreatedAt, k.ExpiresAt = fromNanos(c), fromNanos(e)
	return &k, err
}

// CreateAccountWithEAB implements ACMEStore.
func (s *SQL) CreateAccountWithEAB(ctx context.Context, a *ACMEAccount, now time.Time, ev AuditEvent) error {
	return s.write(ctx, func(ctx context.Context, w *wtx) error {
		res, err := w.exec(ctx, `UPDATE eab_keys SET used_at = ?, account_id = ? WHERE kid = ? AND enterprise_id = ? AND used_at = 0 AND expires_at > ?`,
			nanos(now), a.ID, a.EABKID, a.EnterpriseID, nanos(now))
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n != 1 {
			return zerr.New(zerr.Unauthorized, "the external account binding key is unknown, used or expired: get a new one")
		}
		_, err = w.exec(ctx, `INSERT INTO acme_accounts(id, thumbprint, jwk, enterprise_id, status, contact, eab_kid, created_at, updated_at) VALUES (?,?,?,?,'valid',?,?,?,?)`,
			a.ID, a.Thumbprint, a.JWK, a.EnterpriseID, a.Contact, a.EABKID, nanos(now), nanos(now))
		if isUnique(err) {
			return zerr.New(zerr.Conflict, "an account with this key exists")
		}
		if err != nil {
			return err
		}
		a.Status, a.CreatedAt = "valid", now
		return w.appendAudit(ctx, ev)
	})
}

const acctCols = `a.id, a.thumbprint, a.jwk, a.enterprise_id, e.username, a.status, a.contact, a.eab_kid, a.created_at`

func scanAccount(row *sql.Row, what string) (*ACMEAccount, error) {
	var a ACMEAccount
	var c int64
	err := row.Scan(&a.ID, &a.Thumbprint, &a.JWK, &a.EnterpriseID, &a.Username, &a.Status, &a.Contact, &a.EABKID, &c)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, notFound("ACME account", what)
	}
	a.CreatedAt = fromNanos(c)
	return &a, err
}

// GetACMEAccount implements ACMEStore.
func (s *SQL) GetACMEAccount(ctx context.Context, id string) (*ACMEAccount, error) {
	return scanAccount(s.r.QueryRowContext(ctx, `SELECT `+acctCols+` FROM acme_accounts a JOIN enterprises e ON e.id = a.enterprise_id WHERE a.id = ?`, id), id)
}

// GetACMEAccountByThumbprint implements ACMEStore.
func (s *SQL) GetACMEAccountByThumbprint(ctx context.Context, tp string) (*ACMEAccount, error) {
	return scanAccount(s.r.QueryRowContext(ctx, `SELECT `+acctCols+` FROM acme_accounts a JOIN enterprises e ON e.id = a.enterprise_id WHERE a.thumbprint = ?`, tp), tp)
}

// UpdateACMEAccount implements ACMEStore (status and contact).
func (s *SQL) UpdateACMEAccount(ctx context.Context, a *ACMEAccount, ev AuditEvent) error {
	now := s.now()
	return s.write(ctx, func(ctx context.Context, w *wtx) error {
		res, err := w.exec(ctx, `UPDATE acme_accounts SET status = ?, contact = ?, updated_at = ? WHERE id = ? AND status = 'valid'`, a.Status, a.Contact, nanos(now), a.ID)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n != 1 {
			return zerr.New(zerr.Unauthorized, "account %s is not valid", a.ID)
		}
		return w.appendAudit(ctx, ev)
	})
}

// ChangeACMEAccountKey implements ACMEStore.
func (s *SQL) ChangeACMEAccountKey(ctx context.Context, id, oldTP, newTP, newJWK string, ev AuditEvent) error {
	now := s.now()
	return s.write(ctx, func(ctx context.Context, w *wtx) error {
		res, err := w.exec(ctx, `UPDATE acme_accounts SET thumbprint = ?, jwk = ?, updated_at = ? WHERE id = ? AND thumbprint = ? AND status = 'valid'`, newTP, newJWK, nanos(now), id, oldTP)
		if isUnique(err) {
			return zerr.New(zerr.Conflict, "another account has the new key")
		}
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n != 1 {
			return zerr.New(zerr.Unauthorized, "the account key changed meanwhile or the account is not valid")
		}
		return w.appendAudit(ctx, ev)
	})
}

// AddACMEOrder implements ACMEStore.
func (s *SQL) AddACMEOrder(ctx context.Context, o *ACMEOrder) error {
	now := s.now()
	o.CreatedAt = now
	return s.write(ctx, func(ctx context.Context, w *wtx) error {
		_, err := w.exec(ctx, `INSERT INTO acme_orders(id, account_id, status, identifier, expires_at, created_at, updated_at) VALUES (?,?,?,?,?,?,?)`,
			o.ID, o.AccountID, o.Status, o.Identifier, nanos(o.ExpiresAt), nanos(now), nanos(now))
		return err
	})
}

// GetACMEOrder implements ACMEStore.
func (s *SQL) GetACMEOrder(ctx context.Context, id string) (*ACMEOrder, error) {
	var o ACMEOrder
	var e, c int64
	err := s.r.QueryRowContext(ctx, `SELECT id, account_id, status, identifier, expires_at, serial, error, created_at FROM acme_orders WHERE id = ?`, id).
		Scan(&o.ID, &o.AccountID, &o.Status, &o.Identifier, &e, &o.Serial, &o.Error, &c)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, notFound("order", id)
	}
	o.ExpiresAt, o.CreatedAt = fromNanos(e), fromNanos(c)
	return &o, err
}

// SetACMEOrderStatus implements ACMEStore.
func (s *SQL) SetACMEOrderStatus(ctx context.Context, id, from, status, serial, errText string) error {
	now := s.now()
	return s.write(ctx, func(ctx context.Context, w *wtx) error {
		res, err := w.exec(ctx, `UPDATE acme_orders SET status = ?, serial = ?, error = ?, updated_at = ? WHERE id = ? AND status = ?`,
			status, serial, errText, nanos(now), id, from)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n != 1 {
			return zerr.New(zerr.Conflict, "order %s is not %s", id, from)
		}
		return nil
	})
}
