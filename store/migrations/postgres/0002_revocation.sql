-- Revocation: CRL numbers and the latest CRL per issuer.

-- One row per CRL issuer (an issuing CA, the root, or a CRL shard), keyed by
-- a name such as "issuing-1", "root" or "issuing-1/shard-3". number is the
-- last cRLNumber used: strictly increasing, never reused.
CREATE TABLE crls (
    name        TEXT    PRIMARY KEY,
    number      BIGINT  NOT NULL,
    this_update BIGINT  NOT NULL,
    next_update BIGINT  NOT NULL,
    der         BYTEA   NOT NULL,
    entries     BIGINT  NOT NULL,
    updated_at  BIGINT  NOT NULL
);

-- updated_at changes whenever a certificate is stored or revoked, so that
-- every server process can pick up changes made by others (the CLI, other
-- nodes) by polling one index.
ALTER TABLE certificates ADD COLUMN updated_at BIGINT  NOT NULL DEFAULT 0;
UPDATE certificates SET updated_at = created_at;
CREATE INDEX certificates_updated ON certificates(updated_at);
