-- The status feed (issue 16): every commit that changes a certificate's
-- status (issuance, revocation, superseding) adds one row per certificate,
-- numbered 1, 2, 3 ... in commit order. Numbers are taken under the lock
-- that already orders writers (SQLite's write lock; on PostgreSQL the
-- audit chain's advisory lock, held by every writer transaction from its
-- first statement to its commit), so a reader that has seen change n has
-- seen every change before it, and numbers have no gaps. Readers (the
-- OCSP table, the CRL publisher, verification) apply the changes after the
-- last number they applied; nothing compares clocks. `at` is the writer's
-- clock, for people reading the table; old rows are pruned by count.
CREATE TABLE status_changes (
    seq    BIGINT NOT NULL PRIMARY KEY,
    serial TEXT   NOT NULL,
    at     BIGINT NOT NULL
);

-- The feed replaces the poll over updated_at: its indexes go. The full
-- load at start-up reads the certificates not yet past their OCSP grace,
-- from a covering index (the rows carry the DER).
DROP INDEX certificates_status;
DROP INDEX certificates_updated;
CREATE INDEX certificates_live ON certificates(not_after, serial, issuer, status, revoked_at, revocation_reason);
