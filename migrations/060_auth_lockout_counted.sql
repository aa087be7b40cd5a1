-- Login lockout counts only attempts that carried a correctly signed ID token which then failed
-- a check (wrong audience, unverified e-mail, unprovisioned user, replay, ...). Such
-- auth.login.failure rows carry after.lockout = {"ip": true, "email": true|false}; junk tokens
-- (bad shape, unknown kid, bad signature) are still audited but never counted, so five requests
-- with "a.b.c" no longer lock an e-mail or everyone behind one IP.
-- The IP counter covers a network (IPv4 /32, IPv6 /56, as the rate limiter keys clients); the
-- e-mail counter has its own, slower threshold and window.
CREATE INDEX audit_logs_login_counted_email_idx
  ON audit_logs (resource_id, created_at DESC)
  WHERE action = 'auth.login.failure' AND (after -> 'lockout' ->> 'email') = 'true';
CREATE INDEX audit_logs_login_counted_ip_idx
  ON audit_logs (ip_address, created_at DESC)
  WHERE action = 'auth.login.failure' AND (after -> 'lockout' ->> 'ip') = 'true';

CREATE OR REPLACE FUNCTION auth_login_lockout_counted(
  p_email text, p_email_since timestamptz, p_email_window interval, p_email_max integer,
  p_net cidr, p_ip_since timestamptz, p_ip_window interval, p_ip_max integer)
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
       WHERE a.action = 'auth.login.failure' AND (a.after -> 'lockout' ->> 'email') = 'true'
         AND a.resource_id = p_email AND a.created_at > p_email_since
       LIMIT p_email_max) e),
    (SELECT a.created_at + p_email_window FROM audit_logs a
       WHERE a.action = 'auth.login.failure' AND (a.after -> 'lockout' ->> 'email') = 'true'
         AND a.resource_id = p_email AND a.created_at > p_email_since
       ORDER BY a.created_at DESC OFFSET p_email_max - 1 LIMIT 1),
    (SELECT count(*)::integer FROM (
       SELECT 1 FROM audit_logs a
       WHERE a.action = 'auth.login.failure' AND (a.after -> 'lockout' ->> 'ip') = 'true'
         AND p_net IS NOT NULL AND a.ip_address <<= p_net AND a.created_at > p_ip_since
       LIMIT p_ip_max) i),
    (SELECT a.created_at + p_ip_window FROM audit_logs a
       WHERE a.action = 'auth.login.failure' AND (a.after -> 'lockout' ->> 'ip') = 'true'
         AND p_net IS NOT NULL AND a.ip_address <<= p_net AND a.created_at > p_ip_since
       ORDER BY a.created_at DESC OFFSET p_ip_max - 1 LIMIT 1);
  PERFORM set_config('app.audit_scope', coalesce(prev_scope, ''), true);
END
$$;
REVOKE ALL ON FUNCTION auth_login_lockout_counted(text, timestamptz, interval, integer, cidr, timestamptz, interval, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION auth_login_lockout_counted(text, timestamptz, interval, integer, cidr, timestamptz, interval, integer) TO fleet_app;
