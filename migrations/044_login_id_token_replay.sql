-- ID tokens are accepted once. A login records the SHA-256 of the token's signed part
-- (header.payload: the bytes the IdP's signature covers, so a re-encoded signature is still
-- the same token) until the token expires; a second login with it is refused as a replay.
-- Only hashes are stored: an ID token is a credential until it expires.
CREATE TABLE login_id_tokens (
  token_hash bytea PRIMARY KEY CHECK (octet_length(token_hash) = 32),
  expires_at timestamptz NOT NULL
);
CREATE INDEX login_id_tokens_expires_idx ON login_id_tokens (expires_at);

-- Not tenant data (a login names no tenant until the user is found): no row-level security;
-- the application may record, look up and drop expired entries. UPDATE on one column only
-- because the clean-up locks the rows it drops (FOR UPDATE SKIP LOCKED needs it); the
-- application never updates a row.
GRANT SELECT, INSERT, DELETE ON login_id_tokens TO fleet_app;
GRANT UPDATE (expires_at) ON login_id_tokens TO fleet_app;
