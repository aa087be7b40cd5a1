-- Secrets the service stores encrypted (integration credentials such as SIEM or storage keys,
-- per tenant). The value is the encryption service's compact text form
-- (v1:<keyVersion>:<iv>:<ciphertext>:<tag>), AES-256-GCM with AAD binding it to its tenant
-- and name; key_version repeats the envelope's version so `npm run keys:rewrap` finds stale
-- rows by index. Tenant isolation: every query filters on tenant_id, and row-level security
-- on the transaction-local app.tenant_id is the second wall.
CREATE TABLE encrypted_secrets (
  id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  tenant_id     text NOT NULL CHECK (tenant_id ~ '^[A-Za-z0-9_][A-Za-z0-9._-]{0,63}$'),
  name          text NOT NULL CHECK (name ~ '^[a-z0-9][a-z0-9._-]{0,127}$'),
  key_version   text NOT NULL CHECK (key_version ~ '^[A-Za-z0-9._-]{1,64}$'),
  ciphertext    text NOT NULL CHECK (length(ciphertext) <= 262144 AND ciphertext LIKE 'v1:%'),
  description   text CHECK (description IS NULL OR length(description) <= 500),
  created_at    timestamptz NOT NULL DEFAULT now(),
  updated_at    timestamptz NOT NULL DEFAULT now(),
  rewrapped_at  timestamptz,
  CONSTRAINT encrypted_secrets_tenant_name_unique UNIQUE (tenant_id, name),
  CONSTRAINT encrypted_secrets_version_matches CHECK (split_part(ciphertext, ':', 2) = key_version)
);
CREATE INDEX encrypted_secrets_version_idx ON encrypted_secrets (key_version, tenant_id);

ALTER TABLE encrypted_secrets ENABLE ROW LEVEL SECURITY;
CREATE POLICY encrypted_secrets_tenant_isolation ON encrypted_secrets
  USING (tenant_id = app_current_tenant())
  WITH CHECK (tenant_id = app_current_tenant());

GRANT SELECT, INSERT, UPDATE, DELETE ON encrypted_secrets TO fleet_app;

-- For `npm run keys:rewrap`: which tenants hold rows under which key version (counts only,
-- never a value), across tenants. SECURITY DEFINER so it sees past row-level security; it
-- returns no secret data.
CREATE FUNCTION encrypted_secrets_key_usage()
  RETURNS TABLE (tenant_id text, key_version text, row_count bigint)
  LANGUAGE sql STABLE SECURITY DEFINER
  SET search_path = pg_catalog, public
  AS $$
    SELECT s.tenant_id, s.key_version, count(*)
    FROM public.encrypted_secrets s
    GROUP BY s.tenant_id, s.key_version
    ORDER BY s.tenant_id, s.key_version
  $$;
REVOKE ALL ON FUNCTION encrypted_secrets_key_usage() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION encrypted_secrets_key_usage() TO fleet_app;
