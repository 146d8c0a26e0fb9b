-- ACME (RFC 8555) with External Account Binding by password.

-- EAB keys: made by POST /api/v1/eab after a password login; single use,
-- valid for a few minutes, bound to one enterprise.
CREATE TABLE eab_keys (
    kid           TEXT    PRIMARY KEY,
    hmac_key      BYTEA   NOT NULL,
    enterprise_id BIGINT  NOT NULL REFERENCES enterprises(id),
    created_at    BIGINT  NOT NULL,
    expires_at    BIGINT  NOT NULL,
    used_at       BIGINT  NOT NULL DEFAULT 0,
    account_id    TEXT    NOT NULL DEFAULT ''
);

CREATE TABLE acme_accounts (
    id            TEXT    PRIMARY KEY,
    thumbprint    TEXT    NOT NULL UNIQUE,  -- RFC 7638 SHA-256 thumbprint of the key, base64url
    jwk           TEXT    NOT NULL,
    enterprise_id BIGINT  NOT NULL REFERENCES enterprises(id),
    status        TEXT    NOT NULL CHECK (status IN ('valid', 'deactivated', 'revoked')),
    contact       TEXT    NOT NULL DEFAULT '[]',
    eab_kid       TEXT    NOT NULL,
    created_at    BIGINT  NOT NULL,
    updated_at    BIGINT  NOT NULL
);

CREATE TABLE acme_orders (
    id          TEXT    PRIMARY KEY,
    account_id  TEXT    NOT NULL REFERENCES acme_accounts(id),
    status      TEXT    NOT NULL CHECK (status IN ('pending', 'ready', 'processing', 'valid', 'invalid')),
    identifier  TEXT    NOT NULL,               -- the enterprise username
    expires_at  BIGINT  NOT NULL,
    serial      TEXT    NOT NULL DEFAULT '',
    error       TEXT    NOT NULL DEFAULT '',
    created_at  BIGINT  NOT NULL,
    updated_at  BIGINT  NOT NULL
);
CREATE INDEX acme_orders_account ON acme_orders(account_id, created_at);
