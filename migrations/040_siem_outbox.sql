-- Durable SIEM outbox. Events are inserted in the same transaction as the audit row they
-- come from (the AFTER INSERT trigger below, like the sealer's audit_pending queue); workers
-- in every instance claim due rows with FOR UPDATE SKIP LOCKED and a lease (claimed_by /
-- claimed_until), delete them once the SIEM accepted them, push next_attempt_at back on
-- retryable failures and move permanent failures to the dead letter.
-- The queue is a system table spanning tenants (one SIEM per deployment): the worker must
-- read every tenant's events, so it has no row-level security; every API read filters by tenant.
CREATE TABLE siem_outbox (
  seq              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  -- NULL for rows queued by the audit trigger: the id is then siem_audit_event_id(audit_log_id),
  -- computed where it is needed (the worker, the dead letter) instead of on the audit write path.
  event_id         uuid,
  tenant_id        text NOT NULL CHECK (length(tenant_id) BETWEEN 1 AND 64),
  audit_log_id     bigint,
  event_type       text NOT NULL CHECK (length(event_type) BETWEEN 1 AND 128),
  severity         text NOT NULL CHECK (severity IN ('low', 'medium', 'high', 'critical')),
  -- The event for submitted events (json: written once, read back whole). NULL for events that
  -- mirror an audit row: the worker reads that row when it sends, so audit contents are not
  -- copied into this cross-tenant table and the audit write path inserts a small row.
  payload          json,
  enqueued_at      timestamptz NOT NULL,
  -- attempts = 0: due at once (new or re-queued without penalty); otherwise at next_attempt_at.
  attempts         integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
  next_attempt_at  timestamptz NOT NULL,
  last_error       text CHECK (last_error IS NULL OR length(last_error) <= 1000),
  claimed_by       text CHECK (claimed_by IS NULL OR length(claimed_by) <= 200),
  claimed_until    timestamptz,
  CONSTRAINT siem_outbox_source CHECK (payload IS NOT NULL OR audit_log_id IS NOT NULL),
  CONSTRAINT siem_outbox_id CHECK (event_id IS NOT NULL OR audit_log_id IS NOT NULL)
);
-- Only the primary key: claims walk it in seq (FIFO) order and skip rows not due yet, so an
-- insert on the audit write path maintains a single index.

-- Events a SIEM refused permanently (4xx other than 408/429, malformed per item) or that
-- were evicted when the queue was full. Kept with the reason; replayable by an operator.
CREATE TABLE siem_dead_letter (
  event_id      uuid PRIMARY KEY,
  tenant_id     text NOT NULL,
  audit_log_id  bigint,
  event_type    text NOT NULL,
  severity      text NOT NULL CHECK (severity IN ('low', 'medium', 'high', 'critical')),
  payload       json,
  enqueued_at   timestamptz NOT NULL,
  attempts      integer NOT NULL,
  reason        text NOT NULL CHECK (length(reason) BETWEEN 1 AND 1000),
  dead_at       timestamptz NOT NULL,
  CONSTRAINT siem_dead_letter_source CHECK (payload IS NOT NULL OR audit_log_id IS NOT NULL)
);
CREATE INDEX siem_dead_letter_tenant_idx ON siem_dead_letter (tenant_id, dead_at);

-- One row per worker instance: last successful flush and last error (GET /siem/status
-- reports the newest across instances).
CREATE TABLE siem_worker_state (
  instance_id    text PRIMARY KEY CHECK (length(instance_id) <= 200),
  last_flush_at  timestamptz,
  last_error     text CHECK (last_error IS NULL OR length(last_error) <= 500),
  last_error_at  timestamptz,
  updated_at     timestamptz NOT NULL
);

GRANT SELECT, INSERT, UPDATE, DELETE ON siem_outbox TO fleet_app;
GRANT SELECT, INSERT ON siem_dead_letter TO fleet_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON siem_worker_state TO fleet_app;

-- Whether high/critical audit rows are queued (SIEM_PROVIDER configured). Every instance
-- writes it at start-up from its configuration; all instances share one configuration.
CREATE TABLE siem_settings (
  id          boolean PRIMARY KEY DEFAULT true CHECK (id),
  forwarding  boolean NOT NULL DEFAULT false,
  updated_at  timestamptz NOT NULL DEFAULT now()
);
INSERT INTO siem_settings (id) VALUES (true);
GRANT SELECT, UPDATE ON siem_settings TO fleet_app;

-- The stable event id of the SIEM event that mirrors an audit row: an RFC 4122 version-5
-- UUID of 'audit_logs:<id>' in the namespace 6f1c2b4e-8d3a-4f5b-9c7e-2a1d0e9b8c47
-- (services/siem/event-id.ts computes the same).
CREATE FUNCTION siem_audit_event_id(p_audit_id bigint) RETURNS uuid
  LANGUAGE sql IMMUTABLE PARALLEL SAFE
  SET search_path = public, pg_temp
AS $$
  SELECT encode(
    set_byte(set_byte(h, 6, (get_byte(h, 6) & 15) | 80), 8, (get_byte(h, 8) & 63) | 128),
    'hex')::uuid
  FROM (SELECT substring(digest(decode('6f1c2b4e8d3a4f5b9c7e2a1d0e9b8c47', 'hex') || convert_to('audit_logs:' || p_audit_id::text, 'UTF8'), 'sha1') FROM 1 FOR 16) AS h) s
$$;

-- Every high or critical audit row, and every security.alert.* row, is queued in the
-- transaction (or single statement) that inserts it, whoever inserts it: the application,
-- a script's plain INSERT, or a database function (audit_purge). Only a reference is queued;
-- the worker reads the row in its tenant's context when it sends. The forwarder's own
-- audit.siem.* rows are not queued (a SIEM refusing events must not feed itself).
-- Invoker rights: the application role and the owner both hold INSERT on siem_outbox.
CREATE FUNCTION siem_outbox_enqueue_audit() RETURNS trigger
  LANGUAGE plpgsql
  SET search_path = public, pg_temp
AS $$
BEGIN
  IF NEW.action LIKE 'audit.siem.%' OR NOT coalesce((SELECT forwarding FROM siem_settings WHERE id), false) THEN
    RETURN NULL;
  END IF;
  INSERT INTO siem_outbox (tenant_id, audit_log_id, event_type, severity, enqueued_at, next_attempt_at)
  VALUES (NEW.tenant_id, NEW.id, NEW.action, NEW.severity, now(), now());
  RETURN NULL;
END
$$;
CREATE TRIGGER audit_logs_siem_outbox
  AFTER INSERT ON audit_logs
  FOR EACH ROW
  WHEN (NEW.severity IN ('high', 'critical') OR NEW.action LIKE 'security.alert.%')
  EXECUTE FUNCTION siem_outbox_enqueue_audit();
ALTER TABLE audit_logs ENABLE ALWAYS TRIGGER audit_logs_siem_outbox;
