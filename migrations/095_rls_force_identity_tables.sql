-- Row-level security, enabled and FORCED, on the tenant tables the identity, idempotency and
-- stream features added (issue 15, "RLS on every tenant table"): mfa_totp, mfa_recovery_codes,
-- api_keys, idempotency_keys and audit_streams. Without a tenant context (app.tenant_id) a
-- query sees nothing and cannot insert; with one it sees and writes only that tenant's rows.
--
-- FORCE makes the owner subject to the policies too. The owner keeps the deliberate
-- all-tenant path of migrations 022 and 052: only after setting app.audit_scope = 'all' in its
-- transaction (the operator scripts do, via scripts/lib/common.sh, whose backup/evidence
-- refuse tables without such a policy). The application role is not a member of the owner,
-- so those policies never apply to it; it cannot open that path for itself.
--
-- The one question that spans tenants before the tenant is known, the prefix lookup of an
-- incoming API key, is answered by a narrowly-scoped SECURITY DEFINER function (one row by its
-- unique prefix, the columns the check needs); recording a key's use by another (its id only).
--
-- audit_streams was enabled but not forced by migration 080 because the owner scripts read
-- every row and the owner path was not yet in place for it; it is now (policy below).

ALTER TABLE mfa_totp ENABLE ROW LEVEL SECURITY;
ALTER TABLE mfa_totp FORCE ROW LEVEL SECURITY;
ALTER TABLE mfa_recovery_codes ENABLE ROW LEVEL SECURITY;
ALTER TABLE mfa_recovery_codes FORCE ROW LEVEL SECURITY;
ALTER TABLE api_keys ENABLE ROW LEVEL SECURITY;
ALTER TABLE api_keys FORCE ROW LEVEL SECURITY;
ALTER TABLE idempotency_keys FORCE ROW LEVEL SECURITY;
ALTER TABLE audit_streams FORCE ROW LEVEL SECURITY;

CREATE POLICY mfa_totp_tenant_isolation ON mfa_totp
  USING (tenant_id = app_current_tenant()) WITH CHECK (tenant_id = app_current_tenant());
CREATE POLICY mfa_recovery_codes_tenant_isolation ON mfa_recovery_codes
  USING (tenant_id = app_current_tenant()) WITH CHECK (tenant_id = app_current_tenant());
CREATE POLICY api_keys_tenant_isolation ON api_keys
  USING (tenant_id = app_current_tenant()) WITH CHECK (tenant_id = app_current_tenant());

DO $$
DECLARE
  t text;
BEGIN
  FOREACH t IN ARRAY ARRAY['mfa_totp', 'mfa_recovery_codes', 'api_keys', 'idempotency_keys', 'audit_streams'] LOOP
    EXECUTE format($p$CREATE POLICY %I ON %I FOR ALL TO %I
                      USING (current_setting('app.audit_scope', true) = 'all')
                      WITH CHECK (current_setting('app.audit_scope', true) = 'all')$p$,
                   t || '_owner_all_tenants', t, current_user);
  END LOOP;
END
$$;

-- The incoming key's row by its unique prefix (the key's tenant is not known before it is
-- found; the HMAC of the secret decides). At most one row; no listing, no pattern match.
CREATE FUNCTION auth_api_key_by_prefix(p_prefix text)
  RETURNS TABLE (id uuid, tenant_id text, name text, prefix text, secret_hash text, scopes text[], created_by uuid,
                 created_at timestamptz, expires_at timestamptz, revoked_at timestamptz, last_used_at timestamptz)
  LANGUAGE plpgsql VOLATILE SECURITY DEFINER
  SET search_path = public, pg_temp
AS $$
#variable_conflict use_column
DECLARE
  prev_scope text := current_setting('app.audit_scope', true);
BEGIN
  IF p_prefix IS NULL OR p_prefix !~ '^[a-z0-9]{12}$' THEN
    RETURN;
  END IF;
  PERFORM set_config('app.audit_scope', 'all', true);
  RETURN QUERY
    SELECT k.id, k.tenant_id, k.name, k.prefix, k.secret_hash, k.scopes, k.created_by, k.created_at, k.expires_at, k.revoked_at, k.last_used_at
      FROM public.api_keys k WHERE k.prefix = p_prefix;
  PERFORM set_config('app.audit_scope', coalesce(prev_scope, ''), true);
END
$$;

-- Records a key's use (at most once per interval: the condition makes concurrent writers a
-- no-op). Changes last_used_at only.
CREATE FUNCTION auth_api_key_touch(p_id uuid, p_now timestamptz, p_older_than timestamptz) RETURNS void
  LANGUAGE plpgsql VOLATILE SECURITY DEFINER
  SET search_path = public, pg_temp
AS $$
DECLARE
  prev_scope text := current_setting('app.audit_scope', true);
BEGIN
  PERFORM set_config('app.audit_scope', 'all', true);
  UPDATE public.api_keys SET last_used_at = p_now
   WHERE id = p_id AND (last_used_at IS NULL OR last_used_at <= p_older_than);
  PERFORM set_config('app.audit_scope', coalesce(prev_scope, ''), true);
END
$$;

REVOKE ALL ON FUNCTION auth_api_key_by_prefix(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION auth_api_key_touch(uuid, timestamptz, timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION auth_api_key_by_prefix(text) TO fleet_app;
GRANT EXECUTE ON FUNCTION auth_api_key_touch(uuid, timestamptz, timestamptz) TO fleet_app;

-- The periodic clean-up of idempotency_keys spans tenants (migration 046): now that the table
-- is forced, it reads through the owner path for its own duration.
CREATE OR REPLACE FUNCTION idempotency_keys_prune(p_now timestamptz, p_limit integer)
  RETURNS integer
  LANGUAGE plpgsql VOLATILE SECURITY DEFINER
  SET search_path = pg_catalog, public
AS $$
DECLARE
  n integer;
  prev_scope text := current_setting('app.audit_scope', true);
BEGIN
  IF p_now IS NULL OR p_limit IS NULL OR p_limit < 1 OR p_limit > 100000 THEN
    RAISE EXCEPTION 'idempotency_keys_prune: p_now and p_limit (1..100000) are required' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  PERFORM set_config('app.audit_scope', 'all', true);
  DELETE FROM public.idempotency_keys k
   WHERE k.ctid IN (SELECT ctid FROM public.idempotency_keys WHERE expires_at <= p_now LIMIT p_limit FOR UPDATE SKIP LOCKED);
  GET DIAGNOSTICS n = ROW_COUNT;
  PERFORM set_config('app.audit_scope', coalesce(prev_scope, ''), true);
  RETURN n;
END
$$;
