-- Row-level security as a second wall on tenant tables beyond the audit trail (issue 15):
-- FORCE it (the owner is subject to it too) on encrypted_secrets and audit_exports, whose
-- every application path already runs in a tenant context (withTenant). Without a tenant
-- context a query sees nothing.
--
-- The owner keeps the deliberate all-tenant read path of the audit tables (migration 022):
-- only after setting app.audit_scope = 'all' in its transaction (operator scripts do, via
-- scripts/lib/common.sh; the SECURITY DEFINER functions below set it for their own duration).
-- The application role is not a member of the owner, so those policies never apply to it.

ALTER TABLE encrypted_secrets FORCE ROW LEVEL SECURITY;
ALTER TABLE audit_exports FORCE ROW LEVEL SECURITY;

DO $$
BEGIN
  EXECUTE format($p$CREATE POLICY encrypted_secrets_owner_all_tenants ON encrypted_secrets FOR ALL TO %I
                    USING (current_setting('app.audit_scope', true) = 'all')
                    WITH CHECK (current_setting('app.audit_scope', true) = 'all')$p$, current_user);
  EXECUTE format($p$CREATE POLICY audit_exports_owner_all_tenants ON audit_exports FOR ALL TO %I
                    USING (current_setting('app.audit_scope', true) = 'all')
                    WITH CHECK (current_setting('app.audit_scope', true) = 'all')$p$, current_user);
END
$$;

-- Counts per tenant and key version for `npm run keys:rewrap` (no secret data): reads across
-- tenants through the owner path, for its own duration.
CREATE OR REPLACE FUNCTION encrypted_secrets_key_usage()
  RETURNS TABLE (tenant_id text, key_version text, row_count bigint)
  LANGUAGE plpgsql VOLATILE SECURITY DEFINER
  SET search_path = pg_catalog, public
AS $$
DECLARE
  prev_scope text := current_setting('app.audit_scope', true);
BEGIN
  PERFORM set_config('app.audit_scope', 'all', true);
  RETURN QUERY
    SELECT s.tenant_id, s.key_version, count(*)
    FROM public.encrypted_secrets s
    GROUP BY s.tenant_id, s.key_version
    ORDER BY s.tenant_id, s.key_version;
  PERFORM set_config('app.audit_scope', coalesce(prev_scope, ''), true);
END
$$;
REVOKE ALL ON FUNCTION encrypted_secrets_key_usage() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION encrypted_secrets_key_usage() TO fleet_app;

-- Tenants that have exports (archive:verify walks each), through the owner path.
CREATE OR REPLACE FUNCTION audit_archive_tenants() RETURNS TABLE (tenant_id text)
  LANGUAGE plpgsql VOLATILE SECURITY DEFINER
  SET search_path = public, pg_temp
AS $$
DECLARE
  prev_scope text := current_setting('app.audit_scope', true);
BEGIN
  PERFORM set_config('app.audit_scope', 'all', true);
  RETURN QUERY SELECT DISTINCT e.tenant_id FROM public.audit_exports e ORDER BY 1;
  PERFORM set_config('app.audit_scope', coalesce(prev_scope, ''), true);
END
$$;
REVOKE ALL ON FUNCTION audit_archive_tenants() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION audit_archive_tenants() TO fleet_app;
