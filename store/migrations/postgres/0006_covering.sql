-- Covering indexes for the two scans over every certificate, so that
-- neither reads the rows (which carry the DER):
-- the OCSP responder's load and polls (ForEachStatus) ...
CREATE INDEX certificates_status ON certificates(updated_at, serial, issuer, status, not_after, revoked_at, revocation_reason);
-- ... and the CRL (ForEachRevoked), already in serial order.
CREATE INDEX certificates_crl ON certificates(issuer, serial, revoked_at, revocation_reason) WHERE status = 'revoked';
