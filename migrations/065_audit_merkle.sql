-- Verifiable audit log, part 1: each tenant's sealed chain is also an RFC 9162 Merkle tree
-- (CONTRACT.md §8, docs/AUDIT.md "Merkle tree"):
--
--   leaf(i)      = SHA-256(0x00 || row_hash of the entry at seq i+1)
--   node(L, x)   = SHA-256(0x01 || node(L-1, 2x) || node(L-1, 2x+1))   -- complete subtrees
--
-- audit_merkle keeps, for every leaf index i of a tenant, the hashes completed when that leaf
-- was appended: leaf(i), then node(1, i>>1), node(2, i>>2), ... for as many levels as i has
-- trailing one bits. So node(L, x) is stored in the row of leaf ((x + 1) << L) - 1, at byte
-- offset 32·L. Any root, inclusion proof or consistency proof needs O(log n) of these rows.
-- The rows are written by audit_seal() in the same transaction as the chain entries (one
-- bulk INSERT per call), are append-only like the chain, and are never purged (they hold
-- hashes only, and proofs for retained rows and old checkpoints need them).

CREATE TABLE audit_merkle (
  tenant_id  text NOT NULL,
  leaf       bigint NOT NULL CHECK (leaf >= 0),
  hashes     bytea NOT NULL CHECK (octet_length(hashes) >= 32 AND octet_length(hashes) % 32 = 0),
  PRIMARY KEY (tenant_id, leaf)
);

CREATE TRIGGER audit_merkle_refuse_update_delete
  BEFORE UPDATE OR DELETE ON audit_merkle
  FOR EACH ROW EXECUTE FUNCTION audit_refuse_any_change();
CREATE TRIGGER audit_merkle_refuse_update_delete_stmt
  BEFORE UPDATE OR DELETE ON audit_merkle
  FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_any_change();
CREATE TRIGGER audit_merkle_refuse_truncate
  BEFORE TRUNCATE ON audit_merkle
  FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_any_change();
ALTER TABLE audit_merkle ENABLE ALWAYS TRIGGER audit_merkle_refuse_update_delete;
ALTER TABLE audit_merkle ENABLE ALWAYS TRIGGER audit_merkle_refuse_update_delete_stmt;
ALTER TABLE audit_merkle ENABLE ALWAYS TRIGGER audit_merkle_refuse_truncate;

ALTER TABLE audit_merkle ENABLE ROW LEVEL SECURITY;
ALTER TABLE audit_merkle FORCE ROW LEVEL SECURITY;
CREATE POLICY audit_merkle_tenant_select ON audit_merkle FOR SELECT
  USING (tenant_id = app_current_tenant());
DO $$
BEGIN
  EXECUTE format($p$CREATE POLICY audit_merkle_owner_all_tenants ON audit_merkle FOR ALL TO %I
                    USING (current_setting('app.audit_scope', true) = 'all')
                    WITH CHECK (true)$p$, current_user);
END
$$;
REVOKE ALL ON audit_merkle FROM PUBLIC;
GRANT SELECT ON audit_merkle TO fleet_app;

-- Each tenant's current tree size, kept by audit_seal() (one upsert per tenant per call) so the
-- checkpoint publisher finds tenants whose tree grew without scanning audit_merkle. Not
-- evidence of anything: the tree itself is. Read only through audit_checkpoints_due() (066).
CREATE TABLE audit_tree_heads (
  tenant_id   text PRIMARY KEY,
  size        bigint NOT NULL CHECK (size >= 0),
  updated_at  timestamptz NOT NULL DEFAULT now()
);
REVOKE ALL ON audit_tree_heads FROM PUBLIC;

-- The frontier of a tenant's tree of p_size leaves: the hashes of the complete subtrees for
-- the set bits of p_size, indexed by level + 1 (NULL elsewhere); NULL when not all are stored.
CREATE OR REPLACE FUNCTION audit_merkle_load_frontier(p_tenant text, p_size bigint) RETURNS bytea[]
  LANGUAGE plpgsql STABLE
  SET search_path = public, pg_temp
AS $$
DECLARE
  fr    bytea[] := '{}';
  need  bigint[] := '{}';
  lvl   integer;
  rec   record;
  x     bigint;
  found integer := 0;
  bits  integer := 0;
BEGIN
  IF p_size <= 0 THEN
    RETURN fr;
  END IF;
  FOR lvl IN 0..62 LOOP
    EXIT WHEN (p_size >> lvl) = 0;
    IF ((p_size >> lvl) & 1) = 1 THEN
      need := need || (((p_size >> lvl) << lvl) - 1);
      bits := bits + 1;
    END IF;
  END LOOP;
  FOR rec IN SELECT m.leaf, m.hashes FROM audit_merkle m WHERE m.tenant_id = p_tenant AND m.leaf = ANY (need) LOOP
    -- the level this row serves: the trailing zero bits of leaf + 1
    x := rec.leaf + 1;
    lvl := 0;
    WHILE (x & 1) = 0 LOOP
      x := x >> 1;
      lvl := lvl + 1;
    END LOOP;
    IF octet_length(rec.hashes) < 32 * (lvl + 1) THEN
      RETURN NULL;
    END IF;
    fr[lvl + 1] := substring(rec.hashes FROM 32 * lvl + 1 FOR 32);
    found := found + 1;
  END LOOP;
  IF found <> bits THEN
    RETURN NULL; -- the tree is incomplete (e.g. rows purged before this migration): no tree
  END IF;
  RETURN fr;
END
$$;
REVOKE ALL ON FUNCTION audit_merkle_load_frontier(text, bigint) FROM PUBLIC;

-- The sealer, as in migration 043, plus the Merkle bookkeeping. Per appended entry: one
-- SHA-256 for the leaf and one per completed level (on average one), kept in arrays and
-- written with one INSERT per call.
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
  fr          bytea[];
  node        bytea;
  blob        bytea;
  lvl         integer;
  i           bigint;
  m_tenants   text[] := '{}';
  m_leaves    bigint[] := '{}';
  m_hashes    bytea[] := '{}';
BEGIN
  IF max_rows IS NULL OR max_rows < 1 OR max_rows > 10000 THEN
    RAISE EXCEPTION 'audit_seal: max_rows must be between 1 and 10000' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  -- "fleetsea": one sealer at a time, cluster-wide; others return at once.
  IF NOT pg_try_advisory_xact_lock(7308325827335103841) THEN
    RETURN -1;
  END IF;
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
      fr := audit_merkle_load_frontier(cur_tenant, head_seq);
    END IF;
    head_seq := head_seq + 1;
    h := audit_row_hash(r, head_seq, head_hash);
    INSERT INTO audit_chain (audit_id, tenant_id, seq, prev_hash, row_hash)
    VALUES (r.id, r.tenant_id, head_seq, head_hash, h);
    head_hash := h;
    n := n + 1;

    IF fr IS NOT NULL THEN
      i := head_seq - 1; -- this entry's leaf index = the tree size before it
      node := sha256('\x00'::bytea || h);
      blob := node;
      lvl := 0;
      WHILE ((i >> lvl) & 1) = 1 LOOP
        node := sha256('\x01'::bytea || fr[lvl + 1] || node);
        blob := blob || node;
        fr[lvl + 1] := NULL;
        lvl := lvl + 1;
      END LOOP;
      fr[lvl + 1] := node;
      m_tenants := m_tenants || cur_tenant;
      m_leaves := m_leaves || i;
      m_hashes := m_hashes || blob;
    END IF;
  END LOOP;

  IF cardinality(m_leaves) > 0 THEN
    INSERT INTO audit_merkle (tenant_id, leaf, hashes)
    SELECT * FROM unnest(m_tenants, m_leaves, m_hashes);
    INSERT INTO audit_tree_heads (tenant_id, size, updated_at)
    SELECT u.t, max(u.l) + 1, now() FROM unnest(m_tenants, m_leaves) AS u(t, l) GROUP BY u.t
    ON CONFLICT (tenant_id) DO UPDATE SET size = EXCLUDED.size, updated_at = EXCLUDED.updated_at;
  END IF;

  IF n < cardinality(ids) THEN
    RAISE WARNING 'audit_seal: % queued id(s) had no unsealed audit row (already sealed or not visible)', cardinality(ids) - n;
  END IF;
  PERFORM set_config('app.audit_scope', coalesce(prev_scope, ''), true);
  RETURN n;
END
$$;

-- Existing chains get their trees now (tenants whose oldest entries were purged before this
-- migration cannot: their trees are left absent, docs/AUDIT.md).
DO $$
DECLARE
  t       text;
  c       record;
  fr      bytea[];
  node    bytea;
  blob    bytea;
  lvl     integer;
  i       bigint;
  expect  bigint;
BEGIN
  PERFORM set_config('app.audit_scope', 'all', true);
  FOR t IN SELECT DISTINCT tenant_id FROM audit_chain LOOP
    IF EXISTS (SELECT 1 FROM audit_chain_anchors a WHERE a.tenant_id = t) THEN
      CONTINUE;
    END IF;
    fr := '{}';
    expect := 1;
    FOR c IN SELECT seq, row_hash FROM audit_chain WHERE tenant_id = t ORDER BY seq LOOP
      EXIT WHEN c.seq <> expect;
      i := c.seq - 1;
      node := sha256('\x00'::bytea || c.row_hash);
      blob := node;
      lvl := 0;
      WHILE ((i >> lvl) & 1) = 1 LOOP
        node := sha256('\x01'::bytea || fr[lvl + 1] || node);
        blob := blob || node;
        fr[lvl + 1] := NULL;
        lvl := lvl + 1;
      END LOOP;
      fr[lvl + 1] := node;
      INSERT INTO audit_merkle (tenant_id, leaf, hashes) VALUES (t, i, blob);
      expect := expect + 1;
    END LOOP;
    IF expect > 1 THEN
      INSERT INTO audit_tree_heads (tenant_id, size) VALUES (t, expect - 1);
    END IF;
  END LOOP;
  PERFORM set_config('app.audit_scope', '', true);
END
$$;
