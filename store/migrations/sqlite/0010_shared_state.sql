-- State that every node on one database must share (store/shared.go):
-- portal sessions, spent ACME nonces, the login rate limit's token
-- buckets, and the secrets all nodes use alike. Each node kept these in
-- its own memory before. Rows are short-lived; the Prune methods delete
-- them a bounded number at a time. Times are unix nanoseconds (UTC).

-- Portal login sessions. Only the SHA-256 of the session token is kept: a
-- copy of the database does not log anyone in.
CREATE TABLE portal_sessions (
    token_hash TEXT    PRIMARY KEY,             -- SHA-256 of the session token, hex
    username   TEXT    NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX portal_sessions_expires ON portal_sessions(expires_at);

-- ACME nonces that were used (RFC 8555 §6.5). Issuing a nonce writes
-- nothing (it carries its expiry and a MAC); using one inserts it here, and
-- a second insert of the same nonce is a replay.
CREATE TABLE acme_used_nonces (
    nonce      TEXT    PRIMARY KEY,
    expires_at INTEGER NOT NULL                 -- the nonce's own expiry
);
CREATE INDEX acme_used_nonces_expires ON acme_used_nonces(expires_at);

-- Token buckets of the per-client-address login rate limit.
CREATE TABLE rate_buckets (
    bucket     TEXT    PRIMARY KEY,             -- an address, or an IPv6 /64
    tokens     REAL    NOT NULL,
    updated_at INTEGER NOT NULL,                -- when tokens was last refilled
    limited    INTEGER NOT NULL DEFAULT 0       -- the last attempt was refused
);
CREATE INDEX rate_buckets_updated ON rate_buckets(updated_at);

-- Random secrets made once and shared by every node (the ACME nonce MAC
-- key). Losing one costs only retries: `zbca store migrate` does not copy
-- them.
CREATE TABLE cluster_secrets (
    name       TEXT    PRIMARY KEY,
    value      BLOB    NOT NULL,
    created_at INTEGER NOT NULL
);
