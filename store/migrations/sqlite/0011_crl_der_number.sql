-- The number of the CRL held in der. crls.number is the last number
-- reserved (NextCRLNumber), which runs ahead of der while a CRL is being
-- built, or forever if its publisher died: another node reading the latest
-- CRL must get the number of the bytes it reads.
ALTER TABLE crls ADD COLUMN der_number INTEGER NOT NULL DEFAULT 0;
UPDATE crls SET der_number = number WHERE length(der) > 0;
-- When the build of der began (unix ns; thisUpdate is truncated to the
-- second): a node woken by a revocation committed before that time knows
-- the stored CRL holds it and does not build another.
ALTER TABLE crls ADD COLUMN built_at INTEGER NOT NULL DEFAULT 0;
UPDATE crls SET built_at = this_update;
