-- Row-level security, enabled and FORCED, on the per-stream delivery tables of the tenant audit
-- streams (issue 15, after migration 097 for the SIEM tables): audit_stream_state,
-- audit_stream_outbox and audit_stream_dead_letter. Same rule as 097: a tenant context sees
-- and writes only its tenant's rows; the stream worker's cross-tenant claim and release run
-- with the transaction-local SIEM worker scope (app.siem_worker = 'on'); everything per stream
-- runs in the stream's tenant context. The owner keeps the app.audit_scope = 'all' path.
--
-- The audit trigger that queues each audit row for its tenant's streams (migration 080) reads
-- the state and inserts with the worker scope for its own statement, so an owner-written audit
-- row (no tenant context) is still queued for its tenant's streams.

ALTER TABLE audit_stream_state ENABLE ROW LEVEL SECURITY;
ALTER TABLE audit_stream_state FORCE ROW LEVEL SECURITY;
ALTER TABLE audit_stream_outbox ENABLE ROW LEVEL SECURITY;
ALTER TABLE audit_stream_outbox FORCE ROW LEVEL SECURITY;
ALTER TABLE audit_stream_dead_letter ENABLE ROW LEVEL SECURITY;
ALTER TABLE audit_stream_dead_letter FORCE ROW LEVEL SECURITY;

DO $$
DECLARE
  t text;
BEGIN
  FOREACH t IN ARRAY ARRAY['audit_stream_state', 'audit_stream_outbox', 'audit_stream_dead_letter'] LOOP
    EXECUTE format($p$CREATE POLICY %I ON %I
                      USING (tenant_id = app_current_tenant() OR current_setting('app.siem_worker', true) = 'on')
                      WITH CHECK (tenant_id = app_current_tenant() OR current_setting('app.siem_worker', true) = 'on')$p$,
                   t || '_tenant_isolation', t);
    EXECUTE format($p$CREATE POLICY %I ON %I FOR ALL TO %I
                      USING (current_setting('app.audit_scope', true) = 'all')
                      WITH CHECK (current_setting('app.audit_scope', true) = 'all')$p$,
                   t || '_owner_all_tenants', t, current_user);
  END LOOP;
END
$$;

CREATE OR REPLACE FUNCTION audit_stream_enqueue() RETURNS trigger
  LANGUAGE plpgsql
  SET search_path = public, pg_temp
AS $$
DECLARE
  prev_scope text;
BEGIN
  IF NEW.action = 'audit.stream.dead_letter' THEN
    RETURN NULL;
  END IF;
  prev_scope := current_setting('app.siem_worker', true);
  PERFORM set_config('app.siem_worker', 'on', true);
  INSERT INTO audit_stream_outbox (stream_id, tenant_id, audit_log_id, enqueued_at)
  SELECT s.stream_id, NEW.tenant_id, NEW.id, now()
  FROM audit_stream_state s
  WHERE s.tenant_id = NEW.tenant_id
    AND s.min_rank <= CASE NEW.severity WHEN 'low' THEN 1 WHEN 'medium' THEN 2 WHEN 'high' THEN 3 ELSE 4 END;
  PERFORM set_config('app.siem_worker', coalesce(prev_scope, ''), true);
  RETURN NULL;
END
$$;
