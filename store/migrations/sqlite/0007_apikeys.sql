-- API keys of the submission sites that call the verification API
-- (store/apikey.go). Only the SHA-256 of a key is stored: keys are 32
-- random bytes, so a fast hash is enough (there is nothing to guess), and
-- the key itself is shown once, by `zbca apikey add`.
--
-- A revoked key keeps its row, for the record; a name may be reused once
-- its key is revoked, hence the partial unique index instead of UNIQUE.
CREATE TABLE api_keys (
    id         INTEGER PRIMARY KEY,
    name       TEXT    NOT NULL,
    hash       TEXT    NOT NULL UNIQUE,            -- SHA-256 of the whole key, hex
    prefix     TEXT    NOT NULL,                   -- the key's first characters, to recognise it
    status     TEXT    NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'revoked')),
    created_at INTEGER NOT NULL,
    revoked_at INTEGER NOT NULL DEFAULT 0
);
CREATE UNIQUE INDEX api_keys_active_name ON api_keys(name) WHERE status = 'active';
