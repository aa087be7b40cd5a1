-- Sessions and their refresh tokens. A session is one login; its refresh tokens form one
-- family (each used once). Tokens are stored only as SHA-256 hashes.
CREATE TABLE sessions (
  id                   uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  user_id              uuid NOT NULL REFERENCES users (id),
  tenant_id            text NOT NULL,
  created_at           timestamptz NOT NULL DEFAULT now(),
  last_used_at         timestamptz NOT NULL DEFAULT now(),
  idle_expires_at      timestamptz NOT NULL,
  absolute_expires_at  timestamptz NOT NULL,
  revoked_at           timestamptz,
  revoked_reason       text CHECK (revoked_reason IS NULL OR length(revoked_reason) <= 200),
  ip_address           inet,
  user_agent           text CHECK (user_agent IS NULL OR length(user_agent) <= 1024)
);
CREATE INDEX sessions_user_active_idx ON sessions (user_id) WHERE revoked_at IS NULL;
CREATE INDEX sessions_tenant_created_idx ON sessions (tenant_id, created_at);

CREATE TABLE refresh_tokens (
  id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  session_id   uuid NOT NULL REFERENCES sessions (id),
  token_hash   bytea NOT NULL UNIQUE CHECK (length(token_hash) = 32),
  created_at   timestamptz NOT NULL DEFAULT now(),
  expires_at   timestamptz NOT NULL,
  used_at      timestamptz,
  replaced_by  uuid REFERENCES refresh_tokens (id)
);
CREATE INDEX refresh_tokens_session_idx ON refresh_tokens (session_id);

GRANT SELECT, INSERT, UPDATE ON sessions, refresh_tokens TO fleet_app;
