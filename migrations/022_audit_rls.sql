-- Audit trail, part 3: row-level security by tenant, behind the WHERE clauses of every query.
--
-- * Every audit table has RLS enabled AND forced, so the table owner is subject to it too.
--   (Superusers and BYPASSRLS roles are never subject to RLS; run the service and the
--   owner login without those attributes in production.)
-- * Anyone sees and inserts rows of the tenant named by the transaction-local setting
--   app.tenant_id (app_current_tenant(), migration 001) only; a query without tenant context
--   sees nothing.
-- * The owner (the login that ran this migration) additionally
--     - may INSERT audit rows of any tenant (scripts write plain INSERTs), and
--     - may read all tenants only after deliberately setting app.audit_scope = 'all' in its
--       transaction. The SECURITY DEFINER functions (sealer, failed-login counts, purge)
--       set it for their own duration and restore it. The application role cannot use it:
--       those policies name the owner, and the application role is not a member of it.

ALTER TABLE audit_logs ENABLE ROW LEVEL SECURITY;
ALTER TABLE audit_logs FORCE ROW LEVEL SECURITY;
ALTER TABLE audit_chain ENABLE ROW LEVEL SECURITY;
ALTER TABLE audit_chain FORCE ROW LEVEL SECURITY;
ALTER TABLE audit_chain_anchors ENABLE ROW LEVEL SECURITY;
ALTER TABLE audit_chain_anchors FORCE ROW LEVEL SECURITY;

CREATE POLICY audit_logs_tenant_select ON audit_logs FOR SELECT
  USING (tenant_id = app_current_tenant());
CREATE POLICY audit_logs_tenant_insert ON audit_logs FOR INSERT
  WITH CHECK (tenant_id = app_current_tenant());
CREATE POLICY audit_chain_tenant_select ON audit_chain FOR SELECT
  USING (tenant_id = app_current_tenant());
CREATE POLICY audit_chain_anchors_tenant_select ON audit_chain_anchors FOR SELECT
  USING (tenant_id = app_current_tenant());

DO $$
BEGIN
  EXECUTE format('CREATE POLICY audit_logs_owner_insert ON audit_logs FOR INSERT TO %I WITH CHECK (true)', current_user);
  EXECUTE format($p$CREATE POLICY audit_logs_owner_all_tenants ON audit_logs FOR SELECT TO %I
                    USING (current_setting('app.audit_scope', true) = 'all')$p$, current_user);
  -- FOR ALL: the sealer inserts entries, the purge deletes a prefix (the append-only
  -- trigger still refuses everything but the purge's deletes).
  EXECUTE format($p$CREATE POLICY audit_chain_owner_all_tenants ON audit_chain FOR ALL TO %I
                    USING (current_setting('app.audit_scope', true) = 'all')
                    WITH CHECK (true)$p$, current_user);
  EXECUTE format('CREATE POLICY audit_chain_anchors_owner_insert ON audit_chain_anchors FOR INSERT TO %I WITH CHECK (true)', current_user);
  EXECUTE format($p$CREATE POLICY audit_chain_anchors_owner_all_tenants ON audit_chain_anchors FOR SELECT TO %I
                    USING (current_setting('app.audit_scope', true) = 'all')$p$, current_user);
  -- The retention purge deletes a chain prefix as the owner.
  EXECUTE format($p$CREATE POLICY audit_logs_owner_purge ON audit_logs FOR DELETE TO %I
                    USING (current_setting('app.audit_purge', true) = 'on')$p$, current_user);
END
$$;

-- Failed-login counts for the brute-force lockout. A login attempt has no tenant yet (the
-- row's tenant is the user's, or '_unknown'), so counting must span tenants: this function
-- returns two numbers and nothing else. Served by the partial indexes of migration 020.
CREATE OR REPLACE FUNCTION audit_failed_login_counts(p_email text, p_ip inet, p_since timestamptz)
  RETURNS TABLE (by_email bigint, by_ip bigint)
  LANGUAGE plpgsql SECURITY DEFINER
  SET search_path = public, pg_temp
AS $$
DECLARE
  prev_scope text := current_setting('app.audit_scope', true);
BEGIN
  IF p_since IS NULL THEN
    RAISE EXCEPTION 'audit_failed_login_counts: p_since is required' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  PERFORM set_config('app.audit_scope', 'all', true);
  by_email := 0;
  by_ip := 0;
  IF p_email IS NOT NULL THEN
    SELECT count(*) INTO by_email FROM (
      SELECT 1 FROM audit_logs
       WHERE action = 'auth.login.failure' AND result = 'failure'
         AND resource_id = lower(p_email) AND created_at >= p_since
       LIMIT 100000) s;
  END IF;
  IF p_ip IS NOT NULL THEN
    SELECT count(*) INTO by_ip FROM (
      SELECT 1 FROM audit_logs
       WHERE action = 'auth.login.failure' AND result = 'failure'
         AND ip_address = p_ip AND created_at >= p_since
       LIMIT 100000) s;
  END IF;
  PERFORM set_config('app.audit_scope', coalesce(prev_scope, ''), true);
  RETURN NEXT;
END
$$;
REVOKE ALL ON FUNCTION audit_failed_login_counts(text, inet, timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION audit_failed_login_counts(text, inet, timestamptz) TO fleet_app;
