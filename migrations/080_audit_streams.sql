-- Per-tenant audit streams: a tenant's administrators send their own tenant's audit rows to
-- their own SIEM (GitHub Enterprise audit-log streaming, WorkOS Log Streams).
--
-- audit_streams            the destination (tenant-owned, row-level security): provider, URL,
--                          schema, minimum severity, credentials encrypted by the encryption
--                          service with AAD bound to tenant and stream name.
-- audit_stream_state       per-stream delivery state (system table, the worker reads every
--                          tenant's): backoff, lease, last delivery / error, and the severity
--                          floor the audit_logs trigger reads.
-- audit_stream_outbox      each stream's own queue: a reference to an audit row (or the
--                          payload of a test event), queued in the audit row's transaction.
-- audit_stream_dead_letter events a stream's SIEM refused permanently.
-- Deleting a stream deletes its state, queue and dead letter (ON DELETE CASCADE).

CREATE TABLE audit_streams (
  id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  tenant_id     text NOT NULL CHECK (length(tenant_id) BETWEEN 1 AND 64),
  name          text NOT NULL CHECK (name ~ '^[a-z0-9-]{1,64}$'),
  provider      text NOT NULL CHECK (provider IN ('splunk', 'datadog', 'elastic', 'webhook', 'sentinel')),
  endpoint_url  text NOT NULL CHECK (length(endpoint_url) BETWEEN 1 AND 2048),
  schema        text NOT NULL CHECK (schema IN ('native', 'ocsf', 'ecs')),
  min_severity  text NOT NULL CHECK (min_severity IN ('low', 'medium', 'high', 'critical')),
  -- encryptToString text form; NULL when the provider needs no credential.
  credentials   text CHECK (credentials IS NULL OR length(credentials) <= 16384),
  created_at    timestamptz NOT NULL,
  updated_at    timestamptz NOT NULL,
  CONSTRAINT audit_streams_tenant_name UNIQUE (tenant_id, name)
);
-- Enabled, not forced (as encrypted_secrets): the application role sees its tenant only; the
-- owner (migrations, backup/restore scripts) keeps reading every row.
ALTER TABLE audit_streams ENABLE ROW LEVEL SECURITY;
CREATE POLICY audit_streams_tenant_isolation ON audit_streams
  USING (tenant_id = app_current_tenant())
  WITH CHECK (tenant_id = app_current_tenant());
GRANT SELECT, INSERT, UPDATE, DELETE ON audit_streams TO fleet_app;

CREATE TABLE audit_stream_state (
  stream_id          bigint PRIMARY KEY REFERENCES audit_streams (id) ON DELETE CASCADE,
  tenant_id          text NOT NULL,
  -- 1 low … 4 critical: rows at or above it are queued.
  min_rank           smallint NOT NULL CHECK (min_rank BETWEEN 1 AND 4),
  attempts           integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
  next_attempt_at    timestamptz NOT NULL,
  claimed_by         text CHECK (claimed_by IS NULL OR length(claimed_by) <= 200),
  claimed_until      timestamptz,
  last_delivered_at  timestamptz,
  last_error         text CHECK (last_error IS NULL OR length(last_error) <= 500),
  last_error_at      timestamptz
);
CREATE INDEX audit_stream_state_tenant_idx ON audit_stream_state (tenant_id);
GRANT SELECT, INSERT, UPDATE, DELETE ON audit_stream_state TO fleet_app;

CREATE TABLE audit_stream_outbox (
  seq           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  stream_id     bigint NOT NULL REFERENCES audit_streams (id) ON DELETE CASCADE,
  tenant_id     text NOT NULL,
  audit_log_id  bigint,
  payload       json,
  enqueued_at   timestamptz NOT NULL,
  CONSTRAINT audit_stream_outbox_source CHECK (payload IS NOT NULL OR audit_log_id IS NOT NULL)
);
CREATE INDEX audit_stream_outbox_stream_idx ON audit_stream_outbox (stream_id, seq);
GRANT SELECT, INSERT, DELETE ON audit_stream_outbox TO fleet_app;

CREATE TABLE audit_stream_dead_letter (
  stream_id     bigint NOT NULL REFERENCES audit_streams (id) ON DELETE CASCADE,
  event_id      uuid NOT NULL,
  tenant_id     text NOT NULL,
  audit_log_id  bigint,
  payload       json,
  reason        text NOT NULL CHECK (length(reason) BETWEEN 1 AND 1000),
  dead_at       timestamptz NOT NULL,
  PRIMARY KEY (stream_id, event_id)
);
GRANT SELECT, INSERT ON audit_stream_dead_letter TO fleet_app;

-- Queues every audit row for each stream of its tenant whose floor it reaches, in the
-- inserting transaction. The streams' own dead-letter rows are not queued (a refusing SIEM
-- must not feed itself). One indexed lookup per audit row; nothing when the tenant has no stream.
CREATE FUNCTION audit_stream_enqueue() RETURNS trigger
  LANGUAGE plpgsql
  SET search_path = public, pg_temp
AS $$
BEGIN
  IF NEW.action = 'audit.stream.dead_letter' THEN
    RETURN NULL;
  END IF;
  INSERT INTO audit_stream_outbox (stream_id, tenant_id, audit_log_id, enqueued_at)
  SELECT s.stream_id, NEW.tenant_id, NEW.id, now()
  FROM audit_stream_state s
  WHERE s.tenant_id = NEW.tenant_id
    AND s.min_rank <= CASE NEW.severity WHEN 'low' THEN 1 WHEN 'medium' THEN 2 WHEN 'high' THEN 3 ELSE 4 END;
  RETURN NULL;
END
$$;
CREATE TRIGGER audit_logs_stream_outbox
  AFTER INSERT ON audit_logs
  FOR EACH ROW
  EXECUTE FUNCTION audit_stream_enqueue();
ALTER TABLE audit_logs ENABLE ALWAYS TRIGGER audit_logs_stream_outbox;
