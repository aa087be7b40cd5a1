-- The least-privileged role the application assumes on every connection (DATABASE_APP_ROLE).
-- Roles are cluster-wide: create it once, tolerate a concurrent creator.
DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'fleet_app') THEN
    BEGIN
      CREATE ROLE fleet_app NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS;
    EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
    END;
  END IF;
END
$$;

-- The migrating (owner) login must be able to assume the role; superusers always can.
DO $$
BEGIN
  IF NOT (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) THEN
    EXECUTE format('GRANT fleet_app TO %I', current_user);
  END IF;
END
$$;

GRANT USAGE ON SCHEMA public TO fleet_app;
REVOKE CREATE ON SCHEMA public FROM PUBLIC;

-- Schema-wide helper: the tenant of the current transaction ('' when unset).
CREATE OR REPLACE FUNCTION app_current_tenant() RETURNS text
  LANGUAGE sql STABLE PARALLEL SAFE
  AS $$ SELECT coalesce(current_setting('app.tenant_id', true), '') $$;

CREATE OR REPLACE FUNCTION set_updated_at() RETURNS trigger
  LANGUAGE plpgsql AS $$
BEGIN
  NEW.updated_at := now();
  RETURN NEW;
END
$$;
