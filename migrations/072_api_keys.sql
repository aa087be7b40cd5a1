-- Service API keys (CONTRACT §11). A key is `fsk_<prefix>_<secret>`; the prefix finds the row,
-- the secret is stored only as HMAC-SHA256 under a subkey of the master key
-- (`s1:<master key version>:<tag>`): a database dump alone cannot test guesses.
-- Tenant isolation: every statement names the tenant, except the prefix lookup of an incoming
-- key (the key's tenant is not known before it is found; the HMAC decides).
CREATE TABLE api_keys (
  id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  tenant_id     text NOT NULL,
  name          text NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
  prefix        text NOT NULL UNIQUE CHECK (prefix ~ '^[a-z0-9]{12}$'),
  secret_hash   text NOT NULL CHECK (length(secret_hash) <= 200),
  scopes        text[] NOT NULL CHECK (cardinality(scopes) BETWEEN 1 AND 4),
  created_by    uuid NOT NULL REFERENCES users (id),
  created_at    timestamptz NOT NULL,
  expires_at    timestamptz,
  revoked_at    timestamptz,
  revoked_by    uuid,
  last_used_at  timestamptz
);
CREATE INDEX api_keys_tenant_created_idx ON api_keys (tenant_id, created_at);
GRANT SELECT, INSERT ON api_keys TO fleet_app;
GRANT UPDATE (revoked_at, revoked_by, last_used_at) ON api_keys TO fleet_app;

-- The audit actor gains the API key: rows written for a request authenticated by a key carry
-- its id here (user_id is then NULL). The key.api.used row of each request also names the key
-- in resource_id, which the hash chain covers.
ALTER TABLE audit_logs ADD COLUMN api_key_id uuid;
CREATE INDEX audit_logs_api_key_idx ON audit_logs (api_key_id, created_at) WHERE api_key_id IS NOT NULL;
