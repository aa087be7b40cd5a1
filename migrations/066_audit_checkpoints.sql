-- Verifiable audit log, part 2: signed checkpoints (CONTRACT.md §8, docs/AUDIT.md).
-- Each row is one published checkpoint note of a tenant's tree (C2SP tlog-checkpoint signed
-- per C2SP signed-note). The signing key is never here. A tenant has a new row whenever its
-- tree grew (at most every AUDIT_CHECKPOINT_INTERVAL) and at least hourly while idle (the
-- same size and root again: a timestamped statement that the log had not grown). Rows are
-- inserted only after the note was written to the archive container (when configured), so a
-- crash never leaves a row whose published copy is missing. Append-only.
CREATE TABLE audit_checkpoints (
  id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  tenant_id   text NOT NULL CHECK (length(tenant_id) BETWEEN 1 AND 128),
  tree_size   bigint NOT NULL CHECK (tree_size >= 0),
  root_hash   bytea NOT NULL CHECK (octet_length(root_hash) = 32),
  key_id      text NOT NULL CHECK (key_id ~ '^[0-9a-f]{8}$'),
  verifier_key text NOT NULL CHECK (length(verifier_key) <= 1024),
  note        text NOT NULL CHECK (length(note) <= 8192),
  blob_name   text CHECK (blob_name IS NULL OR length(blob_name) <= 1024),
  created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX audit_checkpoints_tenant_idx ON audit_checkpoints (tenant_id, id DESC);

CREATE TRIGGER audit_checkpoints_refuse_update_delete
  BEFORE UPDATE OR DELETE ON audit_checkpoints
  FOR EACH ROW EXECUTE FUNCTION audit_refuse_any_change();
CREATE TRIGGER audit_checkpoints_refuse_update_delete_stmt
  BEFORE UPDATE OR DELETE ON audit_checkpoints
  FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_any_change();
CREATE TRIGGER audit_checkpoints_refuse_truncate
  BEFORE TRUNCATE ON audit_checkpoints
  FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_any_change();
ALTER TABLE audit_checkpoints ENABLE ALWAYS TRIGGER audit_checkpoints_refuse_update_delete;
ALTER TABLE audit_checkpoints ENABLE ALWAYS TRIGGER audit_checkpoints_refuse_update_delete_stmt;
ALTER TABLE audit_checkpoints ENABLE ALWAYS TRIGGER audit_checkpoints_refuse_truncate;

ALTER TABLE audit_checkpoints ENABLE ROW LEVEL SECURITY;
ALTER TABLE audit_checkpoints FORCE ROW LEVEL SECURITY;
CREATE POLICY audit_checkpoints_tenant_select ON audit_checkpoints FOR SELECT
  USING (tenant_id = app_current_tenant());
CREATE POLICY audit_checkpoints_tenant_insert ON audit_checkpoints FOR INSERT
  WITH CHECK (tenant_id = app_current_tenant());
DO $$
BEGIN
  EXECUTE format($p$CREATE POLICY audit_checkpoints_owner_all_tenants ON audit_checkpoints FOR SELECT TO %I
                    USING (current_setting('app.audit_scope', true) = 'all')$p$, current_user);
END
$$;
REVOKE ALL ON audit_checkpoints FROM PUBLIC;
GRANT SELECT, INSERT ON audit_checkpoints TO fleet_app;

-- Tenants due for a checkpoint: their tree grew since their last checkpoint, or their last
-- checkpoint is older than p_idle. Names and sizes only, so the application role may call it
-- without a tenant context.
CREATE FUNCTION audit_checkpoints_due(p_now timestamptz, p_idle interval, p_limit integer)
  RETURNS TABLE (tenant_id text, size bigint, last_size bigint, last_at timestamptz)
  LANGUAGE plpgsql VOLATILE SECURITY DEFINER
  SET search_path = public, pg_temp
AS $$
DECLARE
  prev_scope text := current_setting('app.audit_scope', true);
BEGIN
  PERFORM set_config('app.audit_scope', 'all', true);
  RETURN QUERY
    SELECT h.tenant_id, h.size, c.tree_size, c.created_at
      FROM public.audit_tree_heads h
      LEFT JOIN LATERAL (
        SELECT x.tree_size, x.created_at FROM public.audit_checkpoints x
         WHERE x.tenant_id = h.tenant_id ORDER BY x.id DESC LIMIT 1) c ON true
     WHERE h.size > 0 AND (c.tree_size IS NULL OR h.size > c.tree_size OR c.created_at <= p_now - p_idle)
     ORDER BY c.created_at NULLS FIRST, h.tenant_id  -- the longest-waiting first: no tenant starves
     LIMIT p_limit;
  PERFORM set_config('app.audit_scope', coalesce(prev_scope, ''), true);
END
$$;
REVOKE ALL ON FUNCTION audit_checkpoints_due(timestamptz, interval, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION audit_checkpoints_due(timestamptz, interval, integer) TO fleet_app;
