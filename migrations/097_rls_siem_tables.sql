-- Row-level security, enabled and FORCED, on the SIEM tables (issue 15, "RLS on every tenant
-- table"): siem_outbox, siem_dead_letter, siem_alert_signals and siem_alert_state. A
-- runtime-login query without a tenant context (app.tenant_id) sees nothing and cannot insert;
-- with one it sees and writes only that tenant's rows.
--
-- The SIEM worker, the fair per-tenant outbox bound, queue status and the alert rules span
-- tenants by design. Those statements run in a transaction that sets the transaction-local
-- app.siem_worker = 'on' (server/src/db/transaction.ts: withSiemWorker / asSiemWorker), so the
-- scope never leaks onto a pooled connection and a forgotten tenant context fails closed.
-- (Like app.tenant_id it is a second wall against mistakes, not against code that can run
-- arbitrary SQL as the runtime login.) siem_alert_state has no tenant (a subject such as an IP
-- address spans tenants): only the worker scope reaches it.
--
-- The owner keeps the deliberate all-tenant path of migrations 022, 095 and 096
-- (app.audit_scope = 'all', set by the operator scripts).
--
-- The audit trigger that queues high/critical audit rows (migration 040) inserts with the
-- worker scope for its own statement, so an owner-written audit row (no tenant context) is
-- still queued.

ALTER TABLE siem_outbox ENABLE ROW LEVEL SECURITY;
ALTER TABLE siem_outbox FORCE ROW LEVEL SECURITY;
ALTER TABLE siem_dead_letter ENABLE ROW LEVEL SECURITY;
ALTER TABLE siem_dead_letter FORCE ROW LEVEL SECURITY;
ALTER TABLE siem_alert_signals ENABLE ROW LEVEL SECURITY;
ALTER TABLE siem_alert_signals FORCE ROW LEVEL SECURITY;
ALTER TABLE siem_alert_state ENABLE ROW LEVEL SECURITY;
ALTER TABLE siem_alert_state FORCE ROW LEVEL SECURITY;

CREATE POLICY siem_outbox_tenant_isolation ON siem_outbox
  USING (tenant_id = app_current_tenant() OR current_setting('app.siem_worker', true) = 'on')
  WITH CHECK (tenant_id = app_current_tenant() OR current_setting('app.siem_worker', true) = 'on');
CREATE POLICY siem_dead_letter_tenant_isolation ON siem_dead_letter
  USING (tenant_id = app_current_tenant() OR current_setting('app.siem_worker', true) = 'on')
  WITH CHECK (tenant_id = app_current_tenant() OR current_setting('app.siem_worker', true) = 'on');
CREATE POLICY siem_alert_signals_tenant_isolation ON siem_alert_signals
  USING (tenant_id = app_current_tenant() OR current_setting('app.siem_worker', true) = 'on')
  WITH CHECK (tenant_id = app_current_tenant() OR current_setting('app.siem_worker', true) = 'on');
CREATE POLICY siem_alert_state_worker ON siem_alert_state
  USING (current_setting('app.siem_worker', true) = 'on')
  WITH CHECK (current_setting('app.siem_worker', true) = 'on');

DO $$
DECLARE
  t text;
BEGIN
  FOREACH t IN ARRAY ARRAY['siem_outbox', 'siem_dead_letter', 'siem_alert_signals', 'siem_alert_state'] LOOP
    EXECUTE format($p$CREATE POLICY %I ON %I FOR ALL TO %I
                      USING (current_setting('app.audit_scope', true) = 'all')
                      WITH CHECK (current_setting('app.audit_scope', true) = 'all')$p$,
                   t || '_owner_all_tenants', t, current_user);
  END LOOP;
END
$$;

CREATE OR REPLACE FUNCTION siem_outbox_enqueue_audit() RETURNS trigger
  LANGUAGE plpgsql
  SET search_path = public, pg_temp
AS $$
DECLARE
  prev_scope text;
BEGIN
  IF NEW.action LIKE 'audit.siem.%' OR NOT coalesce((SELECT forwarding FROM siem_settings WHERE id), false) THEN
    RETURN NULL;
  END IF;
  prev_scope := current_setting('app.siem_worker', true);
  PERFORM set_config('app.siem_worker', 'on', true);
  INSERT INTO siem_outbox (tenant_id, audit_log_id, event_type, severity, enqueued_at, next_attempt_at)
  VALUES (NEW.tenant_id, NEW.id, NEW.action, NEW.severity, now(), now());
  PERFORM set_config('app.siem_worker', coalesce(prev_scope, ''), true);
  RETURN NULL;
END
$$;
