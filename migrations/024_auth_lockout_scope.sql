-- auth_login_lockout (011) counts failed logins across tenants. Under the forced row-level
-- security of 022 a SECURITY DEFINER function runs as the table owner, which the policies
-- restrict unless app.audit_scope = 'all' (superuser owners bypass RLS, non-superuser owners
-- do not): without this, lockout would silently count 0 for production-like owners.
CREATE OR REPLACE FUNCTION auth_login_lockout(p_email text, p_ip inet, p_since timestamptz, p_window interval, p_max integer)
RETURNS TABLE (email_failures integer, email_unlock_at timestamptz, ip_failures integer, ip_unlock_at timestamptz)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = public, pg_temp
AS $$
DECLARE
  prev_scope text := current_setting('app.audit_scope', true);
BEGIN
  PERFORM set_config('app.audit_scope', 'all', true);
  RETURN QUERY SELECT
    (SELECT count(*)::integer FROM (
       SELECT 1 FROM audit_logs a
       WHERE a.action = 'auth.login.failure' AND a.resource_id = p_email AND a.created_at > p_since
       LIMIT p_max) e),
    (SELECT a.created_at + p_window FROM audit_logs a
       WHERE a.action = 'auth.login.failure' AND a.resource_id = p_email AND a.created_at > p_since
       ORDER BY a.created_at DESC OFFSET p_max - 1 LIMIT 1),
    (SELECT count(*)::integer FROM (
       SELECT 1 FROM audit_logs a
       WHERE a.action = 'auth.login.failure' AND a.ip_address = p_ip AND a.created_at > p_since
       LIMIT p_max) i),
    (SELECT a.created_at + p_window FROM audit_logs a
       WHERE a.action = 'auth.login.failure' AND a.ip_address = p_ip AND a.created_at > p_since
       ORDER BY a.created_at DESC OFFSET p_max - 1 LIMIT 1);
  PERFORM set_config('app.audit_scope', coalesce(prev_scope, ''), true);
END
$$;
REVOKE ALL ON FUNCTION auth_login_lockout(text, inet, timestamptz, interval, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION auth_login_lockout(text, inet, timestamptz, interval, integer) TO fleet_app;
