-- Append-only protection beyond audit_logs, and a server-side clock for audit rows (issue 15).
--
-- * audit_exports: rows are never deleted or truncated, by anyone (the triggers are ENABLE
--   ALWAYS and fire for the owner too); the only change is the completion bookkeeping of a
--   pending export (pending -> complete, completed_at, immutable_until), every recorded
--   range, digest and blob name stays as written. Deleting export rows would silence
--   archive:verify.
-- * audit_chain_anchors (already refusing UPDATE/DELETE/TRUNCATE, migration 021): INSERT is
--   refused too except from the retention purge function, which sets app.audit_anchor for
--   that one statement. A hand-made anchor would let verification skip rows.
-- * audit_logs: the application role may no longer choose created_at or id (no column
--   privilege; OVERRIDING SYSTEM VALUE needs one on id), and a BEFORE INSERT trigger stamps
--   created_at with the server's clock (transaction start, as the column default) for every
--   inserter that is not the table owner (the owner keeps restores and imports exact).
--
-- What these triggers do not stop: the owner can drop them (owners can alter their tables).
-- See docs/SECURITY_API.md, "Threat model (database)".

CREATE OR REPLACE FUNCTION audit_exports_guard() RETURNS trigger
  LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'UPDATE' THEN
    IF OLD.status = 'pending' AND NEW.status = 'complete'
       AND (NEW.id, NEW.tenant_id, NEW.seq, NEW.first_id, NEW.last_id, NEW.row_count, NEW.first_created_at, NEW.last_created_at,
            NEW.range_from, NEW.range_to, NEW.container, NEW.blob_name, NEW.sha256, NEW.prev_digest, NEW.chain_head, NEW.digest,
            NEW.created_by, NEW.created_at)
           IS NOT DISTINCT FROM
           (OLD.id, OLD.tenant_id, OLD.seq, OLD.first_id, OLD.last_id, OLD.row_count, OLD.first_created_at, OLD.last_created_at,
            OLD.range_from, OLD.range_to, OLD.container, OLD.blob_name, OLD.sha256, OLD.prev_digest, OLD.chain_head, OLD.digest,
            OLD.created_by, OLD.created_at)
    THEN
      RETURN NEW;
    END IF;
  END IF;
  RAISE EXCEPTION 'audit exports are append-only: % on % is refused', TG_OP, TG_TABLE_NAME
    USING ERRCODE = 'insufficient_privilege',
          HINT = 'Only a pending export may be marked complete; export records are never changed or removed.';
END
$$;

CREATE TRIGGER audit_exports_guard_row
  BEFORE UPDATE OR DELETE ON audit_exports
  FOR EACH ROW EXECUTE FUNCTION audit_exports_guard();
-- Per statement as well: a DELETE that row-level security leaves with no visible row is still refused.
CREATE TRIGGER audit_exports_refuse_delete_stmt
  BEFORE DELETE ON audit_exports
  FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_change();
CREATE TRIGGER audit_exports_refuse_truncate
  BEFORE TRUNCATE ON audit_exports
  FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_change();
ALTER TABLE audit_exports ENABLE ALWAYS TRIGGER audit_exports_guard_row;
ALTER TABLE audit_exports ENABLE ALWAYS TRIGGER audit_exports_refuse_delete_stmt;
ALTER TABLE audit_exports ENABLE ALWAYS TRIGGER audit_exports_refuse_truncate;
REVOKE DELETE, TRUNCATE, REFERENCES, TRIGGER ON audit_exports FROM fleet_app;

CREATE OR REPLACE FUNCTION audit_anchor_guard() RETURNS trigger
  LANGUAGE plpgsql AS $$
BEGIN
  IF current_setting('app.audit_anchor', true) = 'on' THEN
    RETURN NEW;
  END IF;
  RAISE EXCEPTION 'audit chain anchors are written only by audit_purge()'
    USING ERRCODE = 'insufficient_privilege';
END
$$;
CREATE TRIGGER audit_chain_anchors_insert_only_by_purge
  BEFORE INSERT ON audit_chain_anchors
  FOR EACH ROW EXECUTE FUNCTION audit_anchor_guard();
ALTER TABLE audit_chain_anchors ENABLE ALWAYS TRIGGER audit_chain_anchors_insert_only_by_purge;

CREATE OR REPLACE FUNCTION audit_purge(p_tenant text, p_before timestamptz, p_reason text)
  RETURNS TABLE (purged_rows bigint, through_seq bigint)
  LANGUAGE plpgsql SECURITY DEFINER
  SET search_path = public, pg_temp
AS $$
DECLARE
  prev_scope  text := current_setting('app.audit_scope', true);
  prev_purge  text := current_setting('app.audit_purge', true);
  first_kept  bigint;
  last_seq    bigint;
  last_hash   bytea;
  n           bigint;
BEGIN
  IF p_tenant IS NULL OR p_before IS NULL OR p_reason IS NULL OR length(p_reason) NOT BETWEEN 1 AND 500 THEN
    RAISE EXCEPTION 'audit_purge: tenant, before and a reason (1-500 characters) are required' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF p_before > now() - interval '1 day' THEN
    RAISE EXCEPTION 'audit_purge: refusing to purge rows newer than one day' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  PERFORM pg_advisory_xact_lock(7308325827335103841);
  -- Read every tenant, and let the append-only triggers pass this function's deletes;
  -- both restored before returning.
  PERFORM set_config('app.audit_scope', 'all', true);
  PERFORM set_config('app.audit_purge', 'on', true);

  SELECT min(c.seq) INTO first_kept
    FROM audit_chain c LEFT JOIN audit_logs l ON l.id = c.audit_id
   WHERE c.tenant_id = p_tenant AND (l.id IS NULL OR l.created_at >= p_before);
  SELECT c.seq, c.row_hash INTO last_seq, last_hash
    FROM audit_chain c
   WHERE c.tenant_id = p_tenant AND (first_kept IS NULL OR c.seq < first_kept)
   ORDER BY c.seq DESC LIMIT 1;
  IF NOT FOUND THEN
    PERFORM set_config('app.audit_scope', coalesce(prev_scope, ''), true);
    PERFORM set_config('app.audit_purge', coalesce(prev_purge, ''), true);
    purged_rows := 0;
    through_seq := NULL;
    RETURN NEXT;
    RETURN;
  END IF;

  DELETE FROM audit_logs l USING audit_chain c
   WHERE c.audit_id = l.id AND c.tenant_id = p_tenant AND c.seq <= last_seq;
  GET DIAGNOSTICS n = ROW_COUNT;
  DELETE FROM audit_chain c WHERE c.tenant_id = p_tenant AND c.seq <= last_seq;
  PERFORM set_config('app.audit_purge', coalesce(prev_purge, ''), true);
  -- The one writer of anchors (migration 051 refuses every other INSERT).
  PERFORM set_config('app.audit_anchor', 'on', true);
  INSERT INTO audit_chain_anchors (tenant_id, seq, row_hash, purged_rows, purged_before, reason, purged_by)
  VALUES (p_tenant, last_seq, last_hash, n, p_before, p_reason, session_user);
  PERFORM set_config('app.audit_anchor', '', true);
  INSERT INTO audit_logs (tenant_id, action, resource_type, resource_id, after, result, severity)
  VALUES (p_tenant, 'audit.purge', 'audit_log', p_tenant,
          jsonb_build_object('purgedRows', n, 'throughSeq', last_seq, 'before', audit_ts_text(p_before),
                             'reason', p_reason, 'by', session_user),
          'success', 'critical');
  PERFORM set_config('app.audit_scope', coalesce(prev_scope, ''), true);

  purged_rows := n;
  through_seq := last_seq;
  RETURN NEXT;
END
$$;
REVOKE ALL ON FUNCTION audit_purge(text, timestamptz, text) FROM PUBLIC;

-- audit_logs: no chosen id or created_at for the application role. A column REVOKE cannot
-- narrow a table-level grant, so the table grant is replaced by column grants.
REVOKE INSERT ON audit_logs FROM fleet_app;
GRANT INSERT (tenant_id, user_id, action, resource_type, resource_id, before, after, ip_address, user_agent,
              result, error_message, severity, request_id) ON audit_logs TO fleet_app;

CREATE OR REPLACE FUNCTION audit_logs_server_clock() RETURNS trigger
  LANGUAGE plpgsql AS $$
BEGIN
  -- The table owner (and superusers) keep the value they give: restores, imports, tests.
  -- The column default (now()) needs no check: the application's rows cost one comparison.
  IF NEW.created_at IS DISTINCT FROM now()
     AND NOT pg_has_role(current_user, (SELECT c.relowner FROM pg_class c WHERE c.oid = TG_RELID), 'MEMBER') THEN
    NEW.created_at := now();
  END IF;
  RETURN NEW;
END
$$;
CREATE TRIGGER audit_logs_server_clock
  BEFORE INSERT ON audit_logs
  FOR EACH ROW EXECUTE FUNCTION audit_logs_server_clock();
ALTER TABLE audit_logs ENABLE ALWAYS TRIGGER audit_logs_server_clock;
