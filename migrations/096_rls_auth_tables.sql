-- Row-level security, forced, on the authentication tables (issue 15): users, sessions and
-- refresh_tokens. Every query sees only the tenant named by app.tenant_id; without a tenant
-- context it sees nothing. (A refresh token belongs to its session's tenant: it is visible
-- and updatable exactly when its session is.)
--
-- The few questions that span tenants by nature are answered by narrowly-scoped SECURITY
-- DEFINER functions, each returning only what its caller needs; they read through the
-- owner's deliberate all-tenant path (app.audit_scope = 'all', as in migration 022), which
-- the application role cannot open for itself:
--   * auth_users_by_email(email)           login names no tenant: the users with this e-mail;
--   * auth_count_active_elsewhere(email, tenant)  ambiguity check when provisioning;
--   * auth_refresh_token_tenant(hash)       the tenant a refresh token belongs to (the refresh
--                                           then runs in that tenant's context);
--   * auth_find_sessions(ids, tenants, users)  the per-request session check (batched across
--                                           the requests of one event-loop turn): a session is
--                                           returned only for its own tenant and user; one round
--                                           trip, as before;
--   * auth_refresh_session(hash)            OAuth introspection / revocation (RFC 7662 / 7009)
--                                           of a refresh token: its session's state and user's
--                                           role, found by the token's hash only.
-- (First written as migration 053 on a work-in-progress branch; renumbered.)
-- Operator scripts (the owner) read every tenant as before, after setting app.audit_scope.

ALTER TABLE users ENABLE ROW LEVEL SECURITY;
ALTER TABLE users FORCE ROW LEVEL SECURITY;
ALTER TABLE sessions ENABLE ROW LEVEL SECURITY;
ALTER TABLE sessions FORCE ROW LEVEL SECURITY;
ALTER TABLE refresh_tokens ENABLE ROW LEVEL SECURITY;
ALTER TABLE refresh_tokens FORCE ROW LEVEL SECURITY;

CREATE POLICY users_tenant_isolation ON users
  USING (tenant_id = app_current_tenant()) WITH CHECK (tenant_id = app_current_tenant());
CREATE POLICY sessions_tenant_isolation ON sessions
  USING (tenant_id = app_current_tenant()) WITH CHECK (tenant_id = app_current_tenant());
CREATE POLICY refresh_tokens_tenant_select ON refresh_tokens FOR SELECT
  USING (EXISTS (SELECT 1 FROM sessions s WHERE s.id = refresh_tokens.session_id));
CREATE POLICY refresh_tokens_tenant_update ON refresh_tokens FOR UPDATE
  USING (EXISTS (SELECT 1 FROM sessions s WHERE s.id = refresh_tokens.session_id));
-- A login inserts the session and its first refresh token in one statement, where the new
-- session is not yet visible to a policy subquery (the foreign key ties every token to an
-- existing session). So an insert needs a tenant context, and is refused when its session
-- belongs to another tenant (auth_session_tenant reads past row-level security, by key only);
-- a session not visible yet is the one being inserted by the same statement, in this tenant.
CREATE FUNCTION auth_session_tenant(p_session uuid) RETURNS text
  LANGUAGE plpgsql VOLATILE SECURITY DEFINER
  SET search_path = public, pg_temp
AS $$
DECLARE
  prev_scope text := current_setting('app.audit_scope', true);
  t text;
BEGIN
  PERFORM set_config('app.audit_scope', 'all', true);
  SELECT s.tenant_id INTO t FROM public.sessions s WHERE s.id = p_session;
  PERFORM set_config('app.audit_scope', coalesce(prev_scope, ''), true);
  RETURN t;
END
$$;
REVOKE ALL ON FUNCTION auth_session_tenant(uuid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION auth_session_tenant(uuid) TO fleet_app;
CREATE POLICY refresh_tokens_insert ON refresh_tokens FOR INSERT
  WITH CHECK (app_current_tenant() <> '' AND coalesce(auth_session_tenant(session_id), app_current_tenant()) = app_current_tenant());

DO $$
BEGIN
  EXECUTE format($p$CREATE POLICY users_owner_all_tenants ON users FOR ALL TO %I
                    USING (current_setting('app.audit_scope', true) = 'all')
                    WITH CHECK (current_setting('app.audit_scope', true) = 'all')$p$, current_user);
  EXECUTE format($p$CREATE POLICY sessions_owner_all_tenants ON sessions FOR ALL TO %I
                    USING (current_setting('app.audit_scope', true) = 'all')
                    WITH CHECK (current_setting('app.audit_scope', true) = 'all')$p$, current_user);
  EXECUTE format($p$CREATE POLICY refresh_tokens_owner_all_tenants ON refresh_tokens FOR ALL TO %I
                    USING (current_setting('app.audit_scope', true) = 'all')
                    WITH CHECK (current_setting('app.audit_scope', true) = 'all')$p$, current_user);
END
$$;

CREATE FUNCTION auth_users_by_email(p_email text)
  RETURNS TABLE (id uuid, tenant_id text, email text, role text, display_name text, is_active boolean, auth0_sub text)
  LANGUAGE plpgsql VOLATILE SECURITY DEFINER
  SET search_path = public, pg_temp
AS $$
#variable_conflict use_column
DECLARE
  prev_scope text := current_setting('app.audit_scope', true);
BEGIN
  PERFORM set_config('app.audit_scope', 'all', true);
  RETURN QUERY
    SELECT u.id, u.tenant_id, u.email, u.role::text, u.display_name, u.is_active, u.auth0_sub
      FROM public.users u WHERE u.email = p_email ORDER BY u.tenant_id LIMIT 20;
  PERFORM set_config('app.audit_scope', coalesce(prev_scope, ''), true);
END
$$;

CREATE FUNCTION auth_count_active_elsewhere(p_email text, p_tenant text) RETURNS integer
  LANGUAGE plpgsql VOLATILE SECURITY DEFINER
  SET search_path = public, pg_temp
AS $$
#variable_conflict use_column
DECLARE
  prev_scope text := current_setting('app.audit_scope', true);
  n integer;
BEGIN
  PERFORM set_config('app.audit_scope', 'all', true);
  SELECT count(*)::integer INTO n FROM public.users u WHERE u.email = p_email AND u.tenant_id <> p_tenant AND u.is_active;
  PERFORM set_config('app.audit_scope', coalesce(prev_scope, ''), true);
  RETURN n;
END
$$;

CREATE FUNCTION auth_refresh_token_tenant(p_hash bytea) RETURNS text
  LANGUAGE plpgsql VOLATILE SECURITY DEFINER
  SET search_path = public, pg_temp
AS $$
#variable_conflict use_column
DECLARE
  prev_scope text := current_setting('app.audit_scope', true);
  t text;
BEGIN
  PERFORM set_config('app.audit_scope', 'all', true);
  SELECT s.tenant_id INTO t FROM public.refresh_tokens rt JOIN public.sessions s ON s.id = rt.session_id WHERE rt.token_hash = p_hash;
  PERFORM set_config('app.audit_scope', coalesce(prev_scope, ''), true);
  RETURN t;
END
$$;

CREATE FUNCTION auth_find_sessions(p_ids uuid[], p_tenants text[], p_users uuid[])
  RETURNS TABLE (ord integer, revoked boolean, revoked_reason text, last_used_ms float8, absolute_expires_ms float8,
                 email text, role text, is_active boolean, display_name text)
  LANGUAGE plpgsql VOLATILE SECURITY DEFINER
  SET search_path = public, pg_temp
AS $$
#variable_conflict use_column
DECLARE
  prev_scope text := current_setting('app.audit_scope', true);
BEGIN
  PERFORM set_config('app.audit_scope', 'all', true);
  -- One primary-key probe per key (the LIMIT keeps the planner from pushing the tenant filter
  -- into the probe, see session-repository.ts); tenant and user are checked after it.
  RETURN QUERY
    SELECT k.ord::integer, (s.revoked_at IS NOT NULL), s.revoked_reason,
           floor(extract(epoch FROM s.last_used_at) * 1000)::float8,
           floor(extract(epoch FROM s.absolute_expires_at) * 1000)::float8,
           u.email, u.role::text, u.is_active, u.display_name
      FROM unnest(p_ids, p_tenants, p_users) WITH ORDINALITY AS k(sid, tid, uid, ord)
      CROSS JOIN LATERAL (SELECT x.id, x.tenant_id, x.user_id, x.revoked_at, x.revoked_reason, x.last_used_at, x.absolute_expires_at
                            FROM public.sessions x WHERE x.id = k.sid LIMIT 1) s
      JOIN public.users u ON u.id = s.user_id AND u.tenant_id = s.tenant_id
     WHERE s.tenant_id = k.tid AND s.user_id = k.uid;
  PERFORM set_config('app.audit_scope', coalesce(prev_scope, ''), true);
END
$$;

CREATE FUNCTION auth_refresh_session(p_hash bytea)
  RETURNS TABLE (created_at timestamptz, expires_at timestamptz, used_at timestamptz, session_id uuid, tenant_id text, user_id uuid,
                 last_used_at timestamptz, absolute_expires_at timestamptz, revoked_at timestamptz, role text, is_active boolean)
  LANGUAGE plpgsql VOLATILE SECURITY DEFINER
  SET search_path = public, pg_temp
AS $$
#variable_conflict use_column
DECLARE
  prev_scope text := current_setting('app.audit_scope', true);
BEGIN
  PERFORM set_config('app.audit_scope', 'all', true);
  RETURN QUERY
    SELECT rt.created_at, rt.expires_at, rt.used_at, s.id, s.tenant_id, s.user_id,
           s.last_used_at, s.absolute_expires_at, s.revoked_at, u.role::text, u.is_active
      FROM public.refresh_tokens rt
      JOIN public.sessions s ON s.id = rt.session_id
      JOIN public.users u ON u.id = s.user_id AND u.tenant_id = s.tenant_id
     WHERE rt.token_hash = p_hash;
  PERFORM set_config('app.audit_scope', coalesce(prev_scope, ''), true);
END
$$;

REVOKE ALL ON FUNCTION auth_refresh_session(bytea) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION auth_refresh_session(bytea) TO fleet_app;
REVOKE ALL ON FUNCTION auth_users_by_email(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION auth_count_active_elsewhere(text, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION auth_refresh_token_tenant(bytea) FROM PUBLIC;
REVOKE ALL ON FUNCTION auth_find_sessions(uuid[], text[], uuid[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION auth_users_by_email(text) TO fleet_app;
GRANT EXECUTE ON FUNCTION auth_count_active_elsewhere(text, text) TO fleet_app;
GRANT EXECUTE ON FUNCTION auth_refresh_token_tenant(bytea) TO fleet_app;
GRANT EXECUTE ON FUNCTION auth_find_sessions(uuid[], text[], uuid[]) TO fleet_app;
