-- Durable SIEM outbox. Events are inserted in the same transaction as the audit row they
-- come from; workers in every instance claim due rows with FOR UPDATE SKIP LOCKED and a
-- lease (claimed_by / claimed_until), delete them once the SIEM accepted them, push
-- next_attempt_at back on retryable failures and move permanent failures to the dead letter.
-- The queue is a system table spanning tenants (one SIEM per deployment): the worker must
-- read every tenant's events, so it has no row-level security; every API read filters by tenant.
CREATE TABLE siem_outbox (
  seq              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  event_id         uuid NOT NULL,
  tenant_id        text NOT NULL CHECK (length(tenant_id) BETWEEN 1 AND 64),
  audit_log_id     bigint,
  event_type       text NOT NULL CHECK (length(event_type) BETWEEN 1 AND 128),
  severity         text NOT NULL CHECK (severity IN ('low', 'medium', 'high', 'critical')),
  -- The event for submitted events (json: written once, read back whole). NULL for events that
  -- mirror an audit row: the worker reads that row when it sends, so audit contents are not
  -- copied into this cross-tenant table and the audit write path inserts a small row.
  payload          json,
  enqueued_at      timestamptz NOT NULL,
  attempts         integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
  next_attempt_at  timestamptz NOT NULL,
  last_error       text CHECK (last_error IS NULL OR length(last_error) <= 1000),
  claimed_by       text CHECK (claimed_by IS NULL OR length(claimed_by) <= 200),
  claimed_until    timestamptz,
  CONSTRAINT siem_outbox_source CHECK (payload IS NOT NULL OR audit_log_id IS NOT NULL)
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
