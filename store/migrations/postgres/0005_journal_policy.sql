-- The issuance policy is checked inside the transaction that journals a
-- serial (the single writer makes it atomic): the key and the enterprise
-- of every journaled serial are indexed.
ALTER TABLE issuance_journal ADD COLUMN spki_sha256 TEXT NOT NULL DEFAULT '';
UPDATE issuance_journal SET spki_sha256 = (SELECT c.spki_sha256 FROM certificates c WHERE c.serial = issuance_journal.serial)
    WHERE EXISTS (SELECT 1 FROM certificates c WHERE c.serial = issuance_journal.serial);
CREATE INDEX issuance_journal_spki ON issuance_journal(spki_sha256) WHERE spki_sha256 <> '';
-- Covers the daily-limit count, so it reads the index only.
CREATE INDEX issuance_journal_enterprise ON issuance_journal(enterprise_id, profile, created_at, state);
