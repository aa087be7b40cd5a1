-- The seed's audit table, with severity and request id. Tamper evidence, append-only
-- triggers and row-level security are added by later migrations.
CREATE TABLE audit_logs (
  id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  tenant_id      text NOT NULL,
  user_id        uuid,
  action         text NOT NULL CHECK (length(action) BETWEEN 1 AND 128),
  resource_type  text NOT NULL CHECK (length(resource_type) BETWEEN 1 AND 128),
  resource_id    text CHECK (resource_id IS NULL OR length(resource_id) <= 256),
  before         jsonb,
  after          jsonb,
  ip_address     inet,
  user_agent     text CHECK (user_agent IS NULL OR length(user_agent) <= 1024),
  result         text NOT NULL DEFAULT 'success' CHECK (result IN ('success', 'failure', 'denied')),
  error_message  text CHECK (error_message IS NULL OR length(error_message) <= 2000),
  severity       text NOT NULL DEFAULT 'low' CHECK (severity IN ('low', 'medium', 'high', 'critical')),
  request_id     text CHECK (request_id IS NULL OR length(request_id) <= 128),
  created_at     timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX audit_logs_tenant_created_idx ON audit_logs (tenant_id, created_at);
CREATE INDEX audit_logs_user_created_idx ON audit_logs (user_id, created_at);
CREATE INDEX audit_logs_action_result_idx ON audit_logs (action, result);

GRANT SELECT, INSERT ON audit_logs TO fleet_app;
