-- Immutable audit archive (services/archive). Each export is one NDJSON block blob holding a
-- tenant's audit rows first_id..last_id. Exports of a tenant form a gap-free sequence and a
-- digest chain: digest = SHA-256 over (tenant, seq, range, count, blob sha256, previous
-- digest, audit chain head). A row is inserted as 'pending' before the upload (so a crash
-- between upload and bookkeeping is resumed with identical content) and marked 'complete'
-- afterwards, together with its audit.export row.
CREATE TABLE audit_exports (
  id                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  tenant_id         text NOT NULL CHECK (length(tenant_id) BETWEEN 1 AND 64),
  seq               integer NOT NULL CHECK (seq >= 1),
  first_id          bigint NOT NULL,
  last_id           bigint NOT NULL CHECK (last_id >= first_id),
  row_count         integer NOT NULL CHECK (row_count >= 1),
  first_created_at  timestamptz NOT NULL,
  last_created_at   timestamptz NOT NULL,
  range_from        timestamptz,
  range_to          timestamptz,
  container         text NOT NULL,
  blob_name         text NOT NULL CHECK (length(blob_name) <= 1024),
  sha256            text NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
  prev_digest       text NOT NULL CHECK (prev_digest ~ '^[0-9a-f]{64}$'),
  chain_head        text CHECK (chain_head IS NULL OR length(chain_head) <= 256),
  digest            text NOT NULL CHECK (digest ~ '^[0-9a-f]{64}$'),
  status            text NOT NULL CHECK (status IN ('pending', 'complete')),
  immutable_until   timestamptz,
  created_by        uuid,
  created_at        timestamptz NOT NULL DEFAULT now(),
  completed_at      timestamptz,
  CONSTRAINT audit_exports_tenant_seq_unique UNIQUE (tenant_id, seq),
  CONSTRAINT audit_exports_tenant_first_unique UNIQUE (tenant_id, first_id),
  CONSTRAINT audit_exports_blob_unique UNIQUE (container, blob_name)
);

ALTER TABLE audit_exports ENABLE ROW LEVEL SECURITY;
CREATE POLICY audit_exports_tenant_isolation ON audit_exports
  USING (tenant_id = app_current_tenant())
  WITH CHECK (tenant_id = app_current_tenant());

GRANT SELECT, INSERT ON audit_exports TO fleet_app;
-- Only the completion bookkeeping may change; ranges and digests never do.
GRANT UPDATE (status, completed_at, immutable_until) ON audit_exports TO fleet_app;

-- The periodic job's cursor: every tenant's rows up to last_scanned_id are archived (or
-- were handed to an export). One row.
CREATE TABLE audit_archive_state (
  id               boolean PRIMARY KEY DEFAULT true CHECK (id),
  last_scanned_id  bigint NOT NULL DEFAULT 0,
  updated_at       timestamptz NOT NULL DEFAULT now()
);
INSERT INTO audit_archive_state (id) VALUES (true);
GRANT SELECT, UPDATE ON audit_archive_state TO fleet_app;

-- A gap-free export horizon: waits (at most 500 ms) for every transaction that is inserting
-- audit rows to finish, so every id up to the returned value is committed or rolled back.
-- Identity values are handed out in call order but committed in any order; exporting past
-- an in-flight id would leave it behind the archive forever. SHARE MODE blocks new audit
-- inserts only while the function runs (a single statement, autocommitted by the caller).
CREATE FUNCTION audit_archive_horizon() RETURNS bigint
  LANGUAGE plpgsql SECURITY DEFINER
  SET search_path = public, pg_temp
  SET lock_timeout = '500ms'
AS $$
DECLARE
  seq_name text;
  v bigint;
  called boolean;
BEGIN
  LOCK TABLE public.audit_logs IN SHARE MODE;
  seq_name := pg_get_serial_sequence('public.audit_logs', 'id');
  EXECUTE format('SELECT last_value, is_called FROM %s', seq_name) INTO v, called;
  RETURN CASE WHEN called THEN v ELSE 0 END;
END
$$;

-- Tenants with audit rows in (p_after, p_horizon] or an unfinished export: names only, no
-- row data, so the application role may call it without a tenant context. Rows that only
-- record earlier exports (audit.export) do not make a tenant due on their own (otherwise
-- every periodic export would cause the next one); they ride along with the next export.
-- audit_logs has forced row-level security (022): like the sealer, this reads across tenants
-- only under app.audit_scope = 'all', set for its own duration.
CREATE FUNCTION audit_archive_pending_tenants(p_after bigint, p_horizon bigint) RETURNS TABLE (tenant_id text)
  LANGUAGE plpgsql VOLATILE SECURITY DEFINER
  SET search_path = public, pg_temp
AS $$
DECLARE
  prev_scope text := current_setting('app.audit_scope', true);
BEGIN
  PERFORM set_config('app.audit_scope', 'all', true);
  RETURN QUERY
    SELECT DISTINCT a.tenant_id FROM public.audit_logs a
    WHERE a.id > p_after AND a.id <= p_horizon AND a.action <> 'audit.export'
    UNION
    SELECT e.tenant_id FROM public.audit_exports e WHERE e.status = 'pending'
    ORDER BY 1;
  PERFORM set_config('app.audit_scope', coalesce(prev_scope, ''), true);
END
$$;

-- Tenants that have exports (archive:verify walks each).
CREATE FUNCTION audit_archive_tenants() RETURNS TABLE (tenant_id text)
  LANGUAGE sql STABLE SECURITY DEFINER
  SET search_path = public, pg_temp
AS $$
  SELECT DISTINCT e.tenant_id FROM public.audit_exports e ORDER BY 1
$$;

REVOKE ALL ON FUNCTION audit_archive_horizon() FROM PUBLIC;
REVOKE ALL ON FUNCTION audit_archive_pending_tenants(bigint, bigint) FROM PUBLIC;
REVOKE ALL ON FUNCTION audit_archive_tenants() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION audit_archive_horizon() TO fleet_app;
GRANT EXECUTE ON FUNCTION audit_archive_pending_tenants(bigint, bigint) TO fleet_app;
GRANT EXECUTE ON FUNCTION audit_archive_tenants() TO fleet_app;
