-- zbca schema, version 1. All times are INTEGER unix nanoseconds (UTC).

CREATE TABLE enterprises (
    id            INTEGER PRIMARY KEY,
    username      TEXT    NOT NULL UNIQUE,
    name          TEXT    NOT NULL,
    code          TEXT    NOT NULL DEFAULT '',  -- enterprise ID (unified social credit code)
    password_hash TEXT    NOT NULL,
    status        TEXT    NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'disabled')),
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL
);

-- The issuance journal: a serial is written here, durably, before it is
-- signed. state: pending -> issued, or pending -> failed.
CREATE TABLE issuance_journal (
    serial        TEXT    PRIMARY KEY,
    enterprise_id INTEGER REFERENCES enterprises(id),
    profile       TEXT    NOT NULL,
    issuer        TEXT    NOT NULL,             -- issuer SubjectKeyId, hex
    node          TEXT    NOT NULL,
    boot          TEXT    NOT NULL,
    state         TEXT    NOT NULL CHECK (state IN ('pending', 'issued', 'failed')),
    error         TEXT    NOT NULL DEFAULT '',
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL
);
CREATE INDEX issuance_journal_pending ON issuance_journal(state, node) WHERE state = 'pending';

CREATE TABLE certificates (
    serial             TEXT    PRIMARY KEY REFERENCES issuance_journal(serial),
    enterprise_id      INTEGER REFERENCES enterprises(id),
    profile            TEXT    NOT NULL,
    issuer             TEXT    NOT NULL,
    subject            TEXT    NOT NULL,
    not_before         INTEGER NOT NULL,
    not_after          INTEGER NOT NULL,
    der                BLOB    NOT NULL,
    spki_sha256        TEXT    NOT NULL,
    fingerprint_sha256 TEXT    NOT NULL UNIQUE,
    status             TEXT    NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'revoked')),
    revoked_at         INTEGER,
    revocation_reason  INTEGER,
    revoked_by         TEXT,
    created_at         INTEGER NOT NULL
);
CREATE INDEX certificates_enterprise ON certificates(enterprise_id, created_at);
CREATE INDEX certificates_spki ON certificates(spki_sha256);
CREATE INDEX certificates_revoked ON certificates(issuer, revoked_at) WHERE status = 'revoked';

-- The audit log is append-only and hash-chained: hash = SHA-256 over the
-- previous row's hash and this row's fields (see store/audit.go).
CREATE TABLE audit_log (
    seq       INTEGER PRIMARY KEY,
    at        INTEGER NOT NULL,
    actor     TEXT    NOT NULL,
    action    TEXT    NOT NULL,
    subject   TEXT    NOT NULL,
    details   TEXT    NOT NULL,
    prev_hash TEXT    NOT NULL,
    hash      TEXT    NOT NULL
);

-- Small key/value facts, such as the audit chain head.
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
