-- Access tokens moved from HS256 (JWT_SECRET) to asymmetric keys (JWT_SIGNING_KEY). The first
-- start with asymmetric keys records the time once; HS256 tokens issued before it stay valid
-- until they expire (at most JWT_EXPIRES_IN later), then the HS256 path closes for good.
-- One row; not tenant data. The application records the time once and reads it.
CREATE TABLE auth_token_upgrade (
  id               smallint PRIMARY KEY CHECK (id = 1),
  asymmetric_since timestamptz NOT NULL
);
GRANT SELECT, INSERT ON auth_token_upgrade TO fleet_app;
