package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/zbca/zbca/internal/zerr"
)

// EABKey is an External Account Binding key (RFC 8555 §7.3.4).
type EABKey struct {
	KID          string
	HMACKey      []byte
	EnterpriseID int64
	// Epoch is the enterprise's credential epoch when the password was
	// checked: an account is made with the key only while it is current.
	Epoch     int64
	CreatedAt time.Time
	ExpiresAt time.Time
	UsedAt    time.Time // zero: unused (filled by GetEABKey)
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
	// Epoch is the credential epoch the account was made under (that of
	// its EAB key); filled by readers with the enterprise's current epoch
	// and status.
	Epoch            int64
	EnterpriseEpoch  int64
	EnterpriseStatus string
	LastUsedAt       time.Time // zero: never ordered
	CreatedAt        time.Time
}

// Current reports whether the account may act for its enterprise: the
// account is valid, the enterprise active, and the account made under the
// enterprise's current credential epoch.
func (a *ACMEAccount) Current() bool {
	return a.Status == "valid" && a.EnterpriseStatus == StatusActive && a.Epoch == a.EnterpriseEpoch
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
	// ListACMEAccounts returns an enterprise's accounts, oldest first.
	ListACMEAccounts(ctx context.Context, enterpriseID int64) ([]ACMEAccount, error)
	UpdateACMEAccount(ctx context.Context, a *ACMEAccount, ev AuditEvent) error
	// ChangeACMEAccountKey replaces the key; zerr.Conflict when another
	// account has the new key.
	ChangeACMEAccountKey(ctx context.Context, id, oldThumbprint, newThumbprint, newJWK string, ev AuditEvent) error
	// AddACMEOrder stores a new order made at o.CreatedAt (zero: now) and
	// marks the account used then, unless the account already has
	// maxPending orders unexpired at that time that are pending or ready
	// (ErrTooManyOrders; maxPending <= 0: no limit).
	AddACMEOrder(ctx context.Context, o *ACMEOrder, maxPending int) error
	// PruneACMEOrders deletes up to limit orders that expired before
	// before and are not being finalized; PruneEABKeys up to limit EAB
	// keys that expired before before, used or not (the audit log keeps
	// their use).
	PruneACMEOrders(ctx context.Context, before time.Time, limit int) (int64, error)
	PruneEABKeys(ctx context.Context, before time.Time, limit int) (int64, error)
	GetACMEOrder(ctx context.Context, id string) (*ACMEOrder, error)
	// SetACMEOrderStatus moves an order whose status is from to status
	// (with serial or error text); zerr.Conflict when it was not in from.
	SetACMEOrderStatus(ctx context.Context, id, from, status, serial, errText string) error
}

var _ ACMEStore = (*SQL)(nil)

// ErrOrderNotReady refuses a serial journaled for an ACME order
// (ACMEOrderGuard) that is not ready: being finalized, finalized, invalid
// or expired. Nothing was written.
var ErrOrderNotReady = zerr.New(zerr.Conflict, "the order is not ready")

// The ACME order moves with its serial (ACMEOrderGuard); orders in flight
// are found by serial through the partial index acme_orders_processing.
const (
	qOrderProcessing = `UPDATE acme_orders SET status = 'processing', serial = ?, updated_at = ? WHERE id = ? AND status = 'ready' AND expires_at > ?`
	qOrderValid      = `UPDATE acme_orders SET status = 'valid', updated_at = ? WHERE serial = ? AND status = 'processing'`
	qOrderFailed     = `UPDATE acme_orders SET status = 'invalid', error = ?, updated_at = ? WHERE serial = ? AND status = 'processing'`
	// qOrderAccount: the status of the account of an order being finalized.
	qOrderAccount = `SELECT a.status FROM acme_orders o JOIN acme_accounts a ON a.id = o.account_id WHERE o.id = ?`
)

// ACMEOrderGuard makes the serial finalize the ACME order id (RFC 8555
// §7.4): when the serial is journaled the order moves from ready (and
// unexpired) to processing with it, or the serial is refused with
// ErrOrderNotReady (ErrAccessEnded when the order's account is no longer
// valid); storing the certificate makes the order valid, failing the
// serial makes it invalid, each in the same transaction.
func ACMEOrderGuard(id string) Guard { return orderGuard{id: id} }

// orderGuard is ACMEOrderGuard. Issued and Failed find the order by
// serial: with an empty id it is the orphan guard of RecoverJournal.
type orderGuard struct{ id string }

func (g orderGuard) Claim(ctx context.Context, tx *Tx, j *JournalEntry) error {
	if g.id == "" {
		return nil
	}
	// The order's account must still be valid: one deactivated while this
	// finalize was in flight (zbcert deactivates the account it replaces)
	// gets nothing.
	var status string
	err := tx.QueryRow(ctx, qOrderAccount, g.id).Scan(&status)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		// No such order: the update below refuses it.
	case err != nil:
		return fmt.Errorf("reading the order's account: %w", err)
	case status != "valid":
		return ErrAccessEnded
	}
	res, err := tx.Exec(ctx, qOrderProcessing, j.Serial, nanos(j.CreatedAt), g.id, nanos(j.CreatedAt))
	if err != nil {
		return fmt.Errorf("updating order: %w", err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return ErrOrderNotReady
	}
	return nil
}

func (orderGuard) Issued(ctx context.Context, tx *Tx, c *Certificate) error {
	if _, err := tx.Exec(ctx, qOrderValid, nanos(tx.Now()), c.Serial); err != nil {
		return fmt.Errorf("updating order: %w", err)
	}
	return nil
}

func (orderGuard) Failed(ctx context.Context, tx *Tx, serial, reason string) error {
	if _, err := tx.Exec(ctx, qOrderFailed, reason, nanos(tx.Now()), serial); err != nil {
		return fmt.Errorf("updating order: %w", err)
	}
	return nil
}

// ErrTooManyOrders refuses an order to an account that has as many
// unfinished orders as it may. Nothing was written.
var ErrTooManyOrders = zerr.New(zerr.Policy, "the account has too many unfinished orders")

// AddEABKey implements ACMEStore.
func (s *SQL) AddEABKey(ctx context.Context, k *EABKey, ev AuditEvent) error {
	return s.write(ctx, func(ctx context.Context, w *wtx) error {
		if _, err := w.exec(ctx, `INSERT INTO eab_keys(kid, hmac_key, enterprise_id, epoch, created_at, expires_at) VALUES (?,?,?,?,?,?)`,
			k.KID, k.HMACKey, k.EnterpriseID, k.Epoch, nanos(k.CreatedAt), nanos(k.ExpiresAt)); err != nil {
			return err
		}
		return w.appendAudit(ctx, ev)
	})
}

// GetEABKey implements ACMEStore.
func (s *SQL) GetEABKey(ctx context.Context, kid string) (*EABKey, error) {
	var k EABKey
	var c, e, u int64
	err := s.r.QueryRowContext(ctx, `SELECT kid, hmac_key, enterprise_id, epoch, created_at, expires_at, used_at FROM eab_keys WHERE kid = ?`, kid).
		Scan(&k.KID, &k.HMACKey, &k.EnterpriseID, &k.Epoch, &c, &e, &u)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, notFound("EAB key", kid)
	}
	k.CreatedAt, k.ExpiresAt = fromNanos(c), fromNanos(e)
	if u != 0 {
		k.UsedAt = fromNanos(u)
	}
	return &k, err
}

// CreateAccountWithEAB implements ACMEStore.
func (s *SQL) CreateAccountWithEAB(ctx context.Context, a *ACMEAccount, now time.Time, ev AuditEvent) error {
	return s.write(ctx, func(ctx context.Context, w *wtx) error {
		// The key is consumed only while it is unused, unexpired and of
		// the enterprise's current credential epoch, the enterprise
		// active: a key obtained before a passwd or disable makes nothing.
		var epoch int64
		err := w.queryRow(ctx, `UPDATE eab_keys SET used_at = ?, account_id = ? WHERE kid = ? AND enterprise_id = ? AND used_at = 0 AND expires_at > ?
			AND epoch = (SELECT credential_epoch FROM enterprises WHERE id = eab_keys.enterprise_id AND status = 'active') RETURNING epoch`,
			nanos(now), a.ID, a.EABKID, a.EnterpriseID, nanos(now)).Scan(&epoch)
		if errors.Is(err, sql.ErrNoRows) {
			return zerr.New(zerr.Unauthorized, "the external account binding key is unknown, used, expired or older than the enterprise's password: get a new one")
		}
		if err != nil {
			return err
		}
		_, err = w.exec(ctx, `INSERT INTO acme_accounts(id, thumbprint, jwk, enterprise_id, status, contact, eab_kid, epoch, created_at, updated_at) VALUES (?,?,?,?,'valid',?,?,?,?,?)`,
			a.ID, a.Thumbprint, a.JWK, a.EnterpriseID, a.Contact, a.EABKID, epoch, nanos(now), nanos(now))
		if isUnique(err) {
			return zerr.New(zerr.Conflict, "an account with this key exists")
		}
		if err != nil {
			return err
		}
		a.Status, a.CreatedAt, a.Epoch, a.EnterpriseEpoch, a.EnterpriseStatus = "valid", now, epoch, epoch, StatusActive
		return w.appendAudit(ctx, ev)
	})
}

const acctCols = `a.id, a.thumbprint, a.jwk, a.enterprise_id, e.username, a.status, a.contact, a.eab_kid, a.epoch, e.credential_epoch, e.status, a.last_used_at, a.created_at`

func scanAccount(row interface{ Scan(...any) error }, what string) (*ACMEAccount, error) {
	var a ACMEAccount
	var c, lu int64
	err := row.Scan(&a.ID, &a.Thumbprint, &a.JWK, &a.EnterpriseID, &a.Username, &a.Status, &a.Contact, &a.EABKID,
		&a.Epoch, &a.EnterpriseEpoch, &a.EnterpriseStatus, &lu, &c)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, notFound("ACME account", what)
	}
	a.CreatedAt = fromNanos(c)
	if lu != 0 {
		a.LastUsedAt = fromNanos(lu)
	}
	return &a, err
}

// ListACMEAccounts implements ACMEStore.
func (s *SQL) ListACMEAccounts(ctx context.Context, enterpriseID int64) ([]ACMEAccount, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT `+acctCols+` FROM acme_accounts a JOIN enterprises e ON e.id = a.enterprise_id WHERE a.enterprise_id = ? ORDER BY a.created_at, a.id`, enterpriseID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []ACMEAccount
	for rows.Next() {
		a, err := scanAccount(rows, "")
		if err != nil {
			return nil, err
		}
		out = append(out, *a)
	}
	return out, rows.Err()
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

// AddACMEOrder implements ACMEStore. The count and the insert are in one
// writer transaction, and writer transactions run one at a time (one
// connection on SQLite, the audit lock on PostgreSQL): two concurrent
// orders cannot both pass the count.
func (s *SQL) AddACMEOrder(ctx context.Context, o *ACMEOrder, maxPending int) error {
	if o.CreatedAt.IsZero() {
		o.CreatedAt = s.now()
	}
	now := o.CreatedAt
	return s.write(ctx, func(ctx context.Context, w *wtx) error {
		if _, err := w.exec(ctx, `UPDATE acme_accounts SET last_used_at = ? WHERE id = ?`, nanos(now), o.AccountID); err != nil {
			return err
		}
		if maxPending > 0 {
			var n int
			if err := w.queryRow(ctx, `SELECT count(*) FROM acme_orders WHERE account_id = ? AND status IN ('pending', 'ready') AND expires_at > ?`,
				o.AccountID, nanos(now)).Scan(&n); err != nil {
				return err
			}
			if n >= maxPending {
				return ErrTooManyOrders
			}
		}
		_, err := w.exec(ctx, `INSERT INTO acme_orders(id, account_id, status, identifier, expires_at, created_at, updated_at) VALUES (?,?,?,?,?,?,?)`,
			o.ID, o.AccountID, o.Status, o.Identifier, nanos(o.ExpiresAt), nanos(now), nanos(now))
		return err
	})
}

// PruneACMEOrders implements ACMEStore.
func (s *SQL) PruneACMEOrders(ctx context.Context, before time.Time, limit int) (int64, error) {
	return s.pruneWhere(ctx, "acme_orders", "id", "expires_at", "status <> 'processing'", before, limit)
}

// PruneEABKeys implements ACMEStore.
func (s *SQL) PruneEABKeys(ctx context.Context, before time.Time, limit int) (int64, error) {
	return s.prune(ctx, "eab_keys", "kid", "expires_at", before, limit)
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
