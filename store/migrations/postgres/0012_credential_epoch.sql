-- The credential epoch (issue 15): a certificate goes to whoever knows the
-- enterprise's current password. An operator's passwd, disable or logout
-- moves enterprises.credential_epoch on; every EAB key, ACME account and
-- portal session carries the epoch it was made under and is refused once
-- it is older. Readers compare the two in the same query, so the change
-- counts on every node at the next request.
ALTER TABLE enterprises ADD COLUMN credential_epoch BIGINT NOT NULL DEFAULT 0;
ALTER TABLE eab_keys ADD COLUMN epoch BIGINT NOT NULL DEFAULT 0;
ALTER TABLE acme_accounts ADD COLUMN epoch BIGINT NOT NULL DEFAULT 0;
-- When the account last created an order (unix ns; 0: never).
ALTER TABLE acme_accounts ADD COLUMN last_used_at BIGINT NOT NULL DEFAULT 0;
CREATE INDEX acme_accounts_enterprise ON acme_accounts(enterprise_id);
ALTER TABLE portal_sessions ADD COLUMN epoch BIGINT NOT NULL DEFAULT 0;

-- Pruning (the janitor): expired orders and EAB keys go after a grace.
CREATE INDEX acme_orders_expires ON acme_orders(expires_at);
CREATE INDEX eab_keys_expires ON eab_keys(expires_at);
