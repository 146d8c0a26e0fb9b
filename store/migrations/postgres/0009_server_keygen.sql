-- Server-side key generation in the portal (store/keygen.go): off by
-- default; an operator turns it on per enterprise with
-- `zbca enterprise set USERNAME --server-keygen`. The key the server makes
-- is never stored: this flag is all the database knows of it.
ALTER TABLE enterprises ADD COLUMN server_keygen BOOLEAN NOT NULL DEFAULT false;
