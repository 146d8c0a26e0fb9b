// Package store persists zbca's state: enterprises, the issuance journal,
// certificates and the hash-chained audit log.
//
// The one implementation, SQL, runs on SQLite (modernc.org/sqlite, the
// embedded default) and on PostgreSQL (pgx v5 through database/sql): the
// statements are written once, with ? placeholders, and rewritten for
// PostgreSQL by dialect.go; migrations are kept per dialect. Writes that
// must be durable before the caller goes on (journal entries, certificates,
// audit events) are grouped into shared commits by a single writer goroutine
// ("group commit"), each inside its own savepoint, so a failing write
// changes nothing and does not disturb the others in its batch.
//
// Consumers depend on the narrow interfaces below, not on *SQL. Every method
// honours ctx; a missing object is reported as an error of kind
// zerr.NotFound, a uniqueness violation as zerr.Conflict.
package store

import (
	"context"
	"time"
)

// Enterprise is an enterprise account.
type Enterprise struct {
	ID           int64
	Username     string
	Name         string
	Code         string // enterprise ID, such as the unified social credit code
	PasswordHash string
	Status       string // StatusActive or StatusDisabled
	// CredentialEpoch moves on with every passwd, disable and end of all
	// access (EndAccess): EAB keys, ACME accounts and portal sessions made
	// under an older epoch are refused.
	CredentialEpoch int64
	CreatedAt       time.Time
	UpdatedAt       time.Time
}

// Enterprise statuses.
const (
	StatusActive   = "active"
	StatusDisabled = "disabled"
)

// Certificate statuses. Expiry is computed from NotAfter, not stored.
const (
	CertActive  = "active"
	CertRevoked = "revoked"
)

// Certificate profiles.
const (
	ProfileClient = "client"
	ProfileTLS    = "tls"
	ProfileOCSP   = "ocsp"
)

// Journal states.
const (
	JournalPending = "pending"
	JournalIssued  = "issued"
	JournalFailed  = "failed"
)

// JournalEntry records a serial before it is signed.
type JournalEntry struct {
	Serial       string // lowercase hex, no leading zeros
	EnterpriseID int64  // 0 for certificates of the CA itself
	Profile      string
	Issuer       string // issuer SubjectKeyId, hex
	Node         string
	Boot         string
	State        string
	Error        string
	CreatedAt    time.Time
	// SPKISHA256 of the key to be certified (client certificates),
	// recorded with the serial: KeyOwnerGuard searches it.
	SPKISHA256 string
	// Guards run in the transactions of this serial's issuance (see
	// Guard): the issuance policy that must hold atomically with the
	// journal. Not stored.
	Guards []Guard
}

// Certificate is an issued certificate.
type Certificate struct {
	Serial            string
	EnterpriseID      int64
	Username          string // filled by readers when EnterpriseID != 0
	Profile           string
	Issuer            string
	Subject           string
	NotBefore         time.Time
	NotAfter          time.Time
	DER               []byte
	SPKISHA256        string
	FingerprintSHA256 string
	Status            string
	RevokedAt         time.Time
	RevocationReason  int
	RevokedBy         string
	CreatedAt         time.Time
	// FeedSeq is the number, in the status feed, of the change that the
	// call returning this record committed (StoreCertificate*, Revoke):
	// a reader that has applied it knows the status. Not stored.
	FeedSeq int64
}

// AuditEvent is one entry of the audit log. Seq, PrevHash and Hash are set
// by the store.
type AuditEvent struct {
	Seq      int64
	At       time.Time
	Actor    string
	Action   string
	Subject  string
	Details  map[string]any
	PrevHash string
	Hash     string
}

// CertFilter selects certificates for listing.
type CertFilter struct {
	Username string // empty: all
	Profile  string // empty: all
	After    string // serial to continue after (exclusive), for paging
	Limit    int
}

// EnterpriseReader reads enterprise accounts.
type EnterpriseReader interface {
	// GetEnterprise returns zerr.NotFound when username does not exist.
	GetEnterprise(ctx context.Context, username string) (*Enterprise, error)
	GetEnterpriseByID(ctx context.Context, id int64) (*Enterprise, error)
	// ListEnterprises returns up to limit accounts with username > after,
	// ordered by username.
	ListEnterprises(ctx context.Context, after string, limit int) ([]Enterprise, error)
}

// EnterpriseWriter changes enterprise accounts; every change is audited in
// the same transaction.
type EnterpriseWriter interface {
	// AddEnterprise returns zerr.Conflict if the username exists.
	AddEnterprise(ctx context.Context, e *Enterprise, ev AuditEvent) error
	// ImportEnterprises inserts the rows whose username does not exist yet,
	// with ev, in one transaction, and reports for each row whether it was
	// inserted.
	ImportEnterprises(ctx context.Context, rows []Enterprise, ev AuditEvent) ([]bool, error)
	// SetEnterpriseStatus sets the status; disabling also moves the
	// credential epoch on, so that enabling again revives no account or
	// session made before.
	SetEnterpriseStatus(ctx context.Context, username, status string, ev AuditEvent) error
	// SetPasswordHash sets an operator-chosen password and moves the
	// credential epoch on (the login's own rehash does not).
	SetPasswordHash(ctx context.Context, username, hash string, ev AuditEvent) error
	// EndAccess moves the credential epoch on: every ACME account, EAB key
	// and portal session made before is refused from the next request on,
	// on every node. It returns the new epoch.
	EndAccess(ctx context.Context, username string, ev AuditEvent) (int64, error)
}

// CertReader reads certificates. Safe for concurrent use.
type CertReader interface {
	// GetCertificate returns zerr.NotFound for an unknown serial.
	GetCertificate(ctx context.Context, serial string) (*Certificate, error)
	ListCertificates(ctx context.Context, f CertFilter) ([]Certificate, error)
}

// CertWriter persists the two durable steps of issuance.
type CertWriter interface {
	// JournalSerial durably records a serial before it is signed, with its
	// audit event, after j.Guards' Claim. A serial that was ever journaled
	// returns zerr.Conflict; a guard's refusal returns its error, marked
	// (Refused), and writes nothing.
	JournalSerial(ctx context.Context, j JournalEntry, ev AuditEvent) error
	// StoreCertificate durably stores an issued certificate, marks its
	// journal entry issued, runs the guards' Issued and appends ev, all
	// in one transaction. guards are those the serial was journaled with.
	StoreCertificate(ctx context.Context, c *Certificate, ev AuditEvent, guards ...Guard) error
	// FailSerial marks a journaled serial as failed (signing failed) and,
	// if it was pending, runs the guards' Failed, in one transaction.
	// guards are those the serial was journaled with.
	FailSerial(ctx context.Context, serial, reason string, ev AuditEvent, guards ...Guard) error
}

// Journal reads and repairs the issuance journal.
type Journal interface {
	// RecoverJournal marks as failed the pending entries of node (every
	// node when empty: one host, as with SQLite) whose boot is not in live:
	// their process died before storing the certificate, so nobody
	// received it. What a guard claimed by serial (an ACME order in
	// processing) is failed with them. It returns how many.
	RecoverJournal(ctx context.Context, node string, live []string) (int, error)
	GetJournal(ctx context.Context, serial string) (*JournalEntry, error)
}

// AuditLog appends to and verifies the hash-chained audit log.
type AuditLog interface {
	AppendAudit(ctx context.Context, ev AuditEvent) error
	// VerifyAudit walks the whole chain and returns the number of entries
	// and the head hash, or an error naming the first broken entry.
	VerifyAudit(ctx context.Context) (n int64, head string, err error)
}
