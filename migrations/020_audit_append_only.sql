-- Audit trail, part 1: append-only storage and the indexes the queries need.
--
-- * Row triggers refuse UPDATE and DELETE (and statement triggers refuse the attempt even
--   when no row is visible to it), a statement trigger refuses TRUNCATE. They are
--   ENABLE ALWAYS, so `SET session_replication_role = replica` does not skip them, and they
--   fire for the table owner and superusers too. The only deletion path is the retention
--   purge function (migration 023), which sets `app.audit_purge` for its own duration.
-- * The application role keeps SELECT and INSERT only.

CREATE OR REPLACE FUNCTION audit_refuse_change() RETURNS trigger
  LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'DELETE' AND current_setting('app.audit_purge', true) = 'on' THEN
    RETURN OLD;
  END IF;
  RAISE EXCEPTION 'audit trail is append-only: % on % is refused', TG_OP, TG_TABLE_NAME
    USING ERRCODE = 'insufficient_privilege',
          HINT = 'Audit rows are never changed or removed; retention runs through audit_purge().';
END
$$;

CREATE TRIGGER audit_logs_refuse_update_delete
  BEFORE UPDATE OR DELETE ON audit_logs
  FOR EACH ROW EXECUTE FUNCTION audit_refuse_change();
CREATE TRIGGER audit_logs_refuse_truncate
  BEFORE TRUNCATE ON audit_logs
  FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_change();
-- Also per statement: an owner subject to row-level security sees no rows to UPDATE or
-- DELETE, so row triggers would not fire; the attempt itself is refused.
CREATE TRIGGER audit_logs_refuse_update_delete_stmt
  BEFORE UPDATE OR DELETE ON audit_logs
  FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_change();
ALTER TABLE audit_logs ENABLE ALWAYS TRIGGER audit_logs_refuse_update_delete;
ALTER TABLE audit_logs ENABLE ALWAYS TRIGGER audit_logs_refuse_update_delete_stmt;
ALTER TABLE audit_logs ENABLE ALWAYS TRIGGER audit_logs_refuse_truncate;

-- Least privilege: the application role reads and appends, nothing else.
REVOKE ALL ON audit_logs FROM PUBLIC;
REVOKE UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER ON audit_logs FROM fleet_app;
GRANT SELECT, INSERT ON audit_logs TO fleet_app;

-- Keyset pagination is on (created_at, id): the seed's (tenant_id, created_at) and
-- (user_id, created_at) indexes are replaced by the same indexes extended with id.
DROP INDEX IF EXISTS audit_logs_tenant_created_idx;
DROP INDEX IF EXISTS audit_logs_user_created_idx;
CREATE INDEX audit_logs_tenant_created_id_idx ON audit_logs (tenant_id, created_at, id);
CREATE INDEX audit_logs_user_created_id_idx ON audit_logs (tenant_id, user_id, created_at, id);
CREATE INDEX audit_logs_resource_idx ON audit_logs (tenant_id, resource_type, resource_id, created_at, id);

-- Brute-force counting (auth.login.failure rows by lower-cased email or by IP within a
-- window): small partial indexes holding only failed logins. IF NOT EXISTS with the same
-- definition as the authentication migration (011), which may have created them already.
CREATE INDEX IF NOT EXISTS audit_logs_login_failure_email_idx
  ON audit_logs (resource_id, created_at DESC) WHERE action = 'auth.login.failure';
CREATE INDEX IF NOT EXISTS audit_logs_login_failure_ip_idx
  ON audit_logs (ip_address, created_at DESC) WHERE action = 'auth.login.failure';

-- Timestamps stay in a sane range (the chain encoding prints them as YYYY-MM-DD...).
ALTER TABLE audit_logs ADD CONSTRAINT audit_logs_created_at_range
  CHECK (created_at >= '2000-01-01 00:00:00+00' AND created_at < '9000-01-01 00:00:00+00');
