-- Alerting rules (services/siem/alerts.ts). Counting rules (brute force, 403 bursts) keep
-- one signal row per matching audit event, independent of audit_logs row-level security
-- (a brute force from one IP spans tenants). siem_alert_state suppresses repeated alerts
-- for the same subject within a rule's window.
CREATE TABLE siem_alert_signals (
  id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  rule          text NOT NULL CHECK (length(rule) BETWEEN 1 AND 64),
  subject       text NOT NULL CHECK (length(subject) BETWEEN 1 AND 300),
  tenant_id     text NOT NULL,
  audit_log_id  bigint,
  occurred_at   timestamptz NOT NULL
);
CREATE INDEX siem_alert_signals_subject_idx ON siem_alert_signals (rule, subject, occurred_at);
CREATE INDEX siem_alert_signals_occurred_idx ON siem_alert_signals (occurred_at);

CREATE TABLE siem_alert_state (
  rule           text NOT NULL,
  subject        text NOT NULL,
  last_alert_at  timestamptz NOT NULL,
  PRIMARY KEY (rule, subject)
);

GRANT SELECT, INSERT, DELETE ON siem_alert_signals TO fleet_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON siem_alert_state TO fleet_app;
