-- The sealer's statements are planned for the tables as they are at each call.
--
-- audit_seal() is PL/pgSQL, which caches a generic plan per connection after a few calls.
-- A sealer connection that first ran against near-empty tables (a new deployment, a test)
-- kept that plan: a sequential scan of audit_logs and a hash anti-join over all of
-- audit_chain for every batch, so sealing slowed as the tables grew (measured: 22,000 rows/s
-- at 5,000 chained rows, 1,500 rows/s at 200,000, until an ANALYZE happened to invalidate the
-- plan; the chain then lagged a full minute behind a sustained load). Now:
--   * plan_cache_mode = force_custom_plan: every call is planned with the ids at hand and the
--     tables' current size (a 2,000-id batch is 2,000 primary-key probes);
--   * the batch's ids are picked first (an index-only scan in id order) and deleted by
--     primary key, so a queue table full of dead tuples is not scanned either.
-- Same results, same locking (one sealer at a time), same chain format.

CREATE OR REPLACE FUNCTION audit_seal(max_rows integer DEFAULT 1000) RETURNS integer
  LANGUAGE plpgsql SECURITY DEFINER
  SET search_path = public, pg_temp
  SET plan_cache_mode = force_custom_plan
AS $$
DECLARE
  prev_scope  text := current_setting('app.audit_scope', true);
  picked      bigint[];
  ids         bigint[];
  r           audit_logs;
  cur_tenant  text := NULL;
  head_seq    bigint;
  head_hash   bytea;
  h           bytea;
  n           integer := 0;
BEGIN
  IF max_rows IS NULL OR max_rows < 1 OR max_rows > 10000 THEN
    RAISE EXCEPTION 'audit_seal: max_rows must be between 1 and 10000' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  -- "fleetsea": one sealer at a time, cluster-wide; others return at once.
  IF NOT pg_try_advisory_xact_lock(7308325827335103841) THEN
    RETURN -1;
  END IF;
  -- Read every tenant (migration 022); restored before returning.
  PERFORM set_config('app.audit_scope', 'all', true);

  picked := ARRAY(SELECT p.audit_id FROM audit_pending p ORDER BY p.audit_id LIMIT max_rows);
  IF cardinality(picked) = 0 THEN
    PERFORM set_config('app.audit_scope', coalesce(prev_scope, ''), true);
    RETURN 0;
  END IF;
  WITH batch AS (
    DELETE FROM audit_pending WHERE audit_id = ANY (picked) RETURNING audit_id
  )
  SELECT coalesce(array_agg(audit_id), '{}') INTO ids FROM batch;

  FOR r IN
    SELECT l.* FROM audit_logs l
     WHERE l.id = ANY (ids)
       AND NOT EXISTS (SELECT 1 FROM audit_chain c WHERE c.audit_id = l.id)
     ORDER BY l.tenant_id, l.id
  LOOP
    IF cur_tenant IS DISTINCT FROM r.tenant_id THEN
      cur_tenant := r.tenant_id;
      SELECT c.seq, c.row_hash INTO head_seq, head_hash
        FROM audit_chain c WHERE c.tenant_id = cur_tenant ORDER BY c.seq DESC LIMIT 1;
      IF NOT FOUND THEN
        SELECT a.seq, a.row_hash INTO head_seq, head_hash
          FROM audit_chain_anchors a WHERE a.tenant_id = cur_tenant ORDER BY a.seq DESC LIMIT 1;
        IF NOT FOUND THEN
          head_seq := 0;
          head_hash := decode(repeat('00', 32), 'hex');
        END IF;
      END IF;
    END IF;
    head_seq := head_seq + 1;
    h := audit_row_hash(r, head_seq, head_hash);
    INSERT INTO audit_chain (audit_id, tenant_id, seq, prev_hash, row_hash)
    VALUES (r.id, r.tenant_id, head_seq, head_hash, h);
    head_hash := h;
    n := n + 1;
  END LOOP;

  IF n < cardinality(ids) THEN
    RAISE WARNING 'audit_seal: % queued id(s) had no unsealed audit row (already sealed or not visible)', cardinality(ids) - n;
  END IF;
  PERFORM set_config('app.audit_scope', coalesce(prev_scope, ''), true);
  RETURN n;
END
$$;
