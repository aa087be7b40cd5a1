-- TOTP step-up (CONTRACT §11). The shared secret is kept only as an encryption-service
-- envelope bound (AAD) to tenant and user. `last_used_step` makes every code single-use;
-- `failed_count` / `locked_until` lock step-up for 15 minutes after five wrong codes.
-- Recovery codes: ten per activation, single use, stored only as keyed hashes (HMAC under a
-- subkey of the master key).
CREATE TABLE mfa_totp (
  user_id        uuid PRIMARY KEY REFERENCES users (id),
  tenant_id      text NOT NULL,
  secret_sealed  text NOT NULL CHECK (length(secret_sealed) <= 1000),
  created_at     timestamptz NOT NULL,
  activated_at   timestamptz,
  last_used_step bigint,
  failed_count   integer NOT NULL DEFAULT 0,
  locked_until   timestamptz
);
CREATE INDEX mfa_totp_tenant_idx ON mfa_totp (tenant_id);

CREATE TABLE mfa_recovery_codes (
  id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  user_id    uuid NOT NULL REFERENCES mfa_totp (user_id) ON DELETE CASCADE,
  tenant_id  text NOT NULL,
  code_hash  text NOT NULL CHECK (length(code_hash) <= 200),
  used_at    timestamptz
);
CREATE INDEX mfa_recovery_codes_user_idx ON mfa_recovery_codes (user_id);

GRANT SELECT, INSERT, UPDATE, DELETE ON mfa_totp, mfa_recovery_codes TO fleet_app;
