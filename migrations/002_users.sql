CREATE EXTENSION IF NOT EXISTS pgcrypto;

CREATE TABLE users (
  id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  tenant_id     text NOT NULL CHECK (tenant_id ~ '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$'),
  email         text NOT NULL CHECK (length(email) BETWEEN 3 AND 254 AND email = lower(email)),
  role          text NOT NULL CHECK (role IN ('admin', 'user', 'viewer')),
  display_name  text CHECK (display_name IS NULL OR length(display_name) <= 200),
  is_active     boolean NOT NULL DEFAULT true,
  auth0_sub     text CHECK (auth0_sub IS NULL OR length(auth0_sub) <= 255),
  created_at    timestamptz NOT NULL DEFAULT now(),
  updated_at    timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT users_tenant_email_unique UNIQUE (tenant_id, email)
);
CREATE INDEX users_email_idx ON users (email);
CREATE TRIGGER users_updated_at BEFORE UPDATE ON users FOR EACH ROW EXECUTE FUNCTION set_updated_at();

GRANT SELECT, INSERT, UPDATE ON users TO fleet_app;
