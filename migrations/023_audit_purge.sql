-- Audit trail, part 4: the retention purge — the one way audit rows ever leave the table.
--
-- audit_purge(tenant, before, reason) removes the oldest *sealed* rows of one tenant whose
-- created_at is before `before`, as a contiguous prefix of the tenant's chain, and in the
-- same transaction
--   * records an anchor (last purged seq and its hash) so verification resumes from there,
--   * writes an `audit.purge` (critical) audit row into that tenant's trail.
-- Only the owner may run it (EXECUTE is not granted to the application role); rows newer
-- than one day are never purged. It serialises with the sealer through the same lock.

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
  INSERT INTO audit_chain_anchors (tenant_id, seq, row_hash, purged_rows, purged_before, reason, purged_by)
  VALUES (p_tenant, last_seq, last_hash, n, p_before, p_reason, session_user);
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
