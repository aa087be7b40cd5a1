-- Audit trail, part 2: the tamper-evident, per-tenant hash chain.
--
-- Writers never wait for the chain. An audit row is inserted unchained in the caller's
-- transaction (plain INSERTs from scripts work the same way); an AFTER INSERT trigger puts
-- its id into audit_pending in that same transaction, so the id becomes visible exactly when
-- the row commits. A background sealer (audit_seal(), one at a time cluster-wide through an
-- advisory lock) takes committed pending ids and appends one audit_chain entry per row:
--
--   row_hash = SHA-256( 'fleet-audit-chain-v1' || 0x0A || prev_hash || NS(seq) || NS(id)
--              || NS(tenant_id) || NS(user_id) || NS(action) || NS(resource_type)
--              || NS(resource_id) || NS(before) || NS(after) || NS(ip_address)
--              || NS(user_agent) || NS(result) || NS(error_message) || NS(severity)
--              || NS(request_id) || NS(created_at) )
--
-- NS(v) is a netstring of v's UTF-8 text ('<byte length>:<bytes>,'), or '-,' for NULL.
-- Texts: bigint/uuid/inet/jsonb in PostgreSQL's canonical text output, created_at as
-- 'YYYY-MM-DDTHH:MI:SS.ffffffZ' in UTC. prev_hash of a tenant's first row is 32 zero bytes
-- (or the anchor left by a retention purge). seq counts 1, 2, 3... per tenant.
-- The chain order is the order rows were sealed (commit-safe: a row is placed only after it
-- committed, and every committed row is placed exactly once); it is not the id order.

CREATE TABLE audit_pending (
  audit_id     bigint PRIMARY KEY,
  enqueued_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE audit_chain (
  audit_id   bigint PRIMARY KEY,
  tenant_id  text NOT NULL,
  seq        bigint NOT NULL CHECK (seq > 0),
  prev_hash  bytea NOT NULL CHECK (octet_length(prev_hash) = 32),
  row_hash   bytea NOT NULL CHECK (octet_length(row_hash) = 32),
  sealed_at  timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT audit_chain_tenant_seq_unique UNIQUE (tenant_id, seq)
);

-- Where a tenant's chain resumes after a retention purge removed its oldest rows.
CREATE TABLE audit_chain_anchors (
  tenant_id      text NOT NULL,
  seq            bigint NOT NULL CHECK (seq > 0),
  row_hash       bytea NOT NULL CHECK (octet_length(row_hash) = 32),
  purged_rows    bigint NOT NULL CHECK (purged_rows >= 0),
  purged_before  timestamptz NOT NULL,
  reason         text NOT NULL CHECK (length(reason) BETWEEN 1 AND 500),
  purged_by      text NOT NULL,
  purged_at      timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, seq)
);

-- The chain and its anchors are append-only as well.
CREATE TRIGGER audit_chain_refuse_update_delete
  BEFORE UPDATE OR DELETE ON audit_chain
  FOR EACH ROW EXECUTE FUNCTION audit_refuse_change();
CREATE TRIGGER audit_chain_refuse_truncate
  BEFORE TRUNCATE ON audit_chain
  FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_change();
CREATE TRIGGER audit_chain_refuse_update_delete_stmt
  BEFORE UPDATE OR DELETE ON audit_chain
  FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_change();
ALTER TABLE audit_chain ENABLE ALWAYS TRIGGER audit_chain_refuse_update_delete;
ALTER TABLE audit_chain ENABLE ALWAYS TRIGGER audit_chain_refuse_update_delete_stmt;
ALTER TABLE audit_chain ENABLE ALWAYS TRIGGER audit_chain_refuse_truncate;

CREATE OR REPLACE FUNCTION audit_refuse_any_change() RETURNS trigger
  LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'audit trail is append-only: % on % is refused', TG_OP, TG_TABLE_NAME
    USING ERRCODE = 'insufficient_privilege';
END
$$;
CREATE TRIGGER audit_chain_anchors_refuse_update_delete
  BEFORE UPDATE OR DELETE ON audit_chain_anchors
  FOR EACH ROW EXECUTE FUNCTION audit_refuse_any_change();
CREATE TRIGGER audit_chain_anchors_refuse_truncate
  BEFORE TRUNCATE ON audit_chain_anchors
  FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_any_change();
CREATE TRIGGER audit_chain_anchors_refuse_update_delete_stmt
  BEFORE UPDATE OR DELETE ON audit_chain_anchors
  FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_any_change();
ALTER TABLE audit_chain_anchors ENABLE ALWAYS TRIGGER audit_chain_anchors_refuse_update_delete;
ALTER TABLE audit_chain_anchors ENABLE ALWAYS TRIGGER audit_chain_anchors_refuse_update_delete_stmt;
ALTER TABLE audit_chain_anchors ENABLE ALWAYS TRIGGER audit_chain_anchors_refuse_truncate;

-- Every inserted audit row is queued for sealing in the inserting transaction.
-- Invoker rights: the application role holds INSERT (only) on audit_pending.
CREATE OR REPLACE FUNCTION audit_logs_enqueue() RETURNS trigger
  LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO public.audit_pending (audit_id) VALUES (NEW.id);
  RETURN NULL;
END
$$;
CREATE TRIGGER audit_logs_enqueue
  AFTER INSERT ON audit_logs
  FOR EACH ROW EXECUTE FUNCTION audit_logs_enqueue();
ALTER TABLE audit_logs ENABLE ALWAYS TRIGGER audit_logs_enqueue;

-- Netstring of a text value (NULL -> '-,').
CREATE OR REPLACE FUNCTION audit_ns(v text) RETURNS bytea
  LANGUAGE sql STABLE PARALLEL SAFE AS $$
  SELECT CASE WHEN v IS NULL THEN '\x2d2c'::bytea
    ELSE convert_to(octet_length(convert_to(v, 'UTF8'))::text || ':', 'UTF8') || convert_to(v, 'UTF8') || '\x2c'::bytea
  END
$$;

-- The canonical text of a timestamp in the chain encoding.
CREATE OR REPLACE FUNCTION audit_ts_text(t timestamptz) RETURNS text
  LANGUAGE sql STABLE PARALLEL SAFE AS $$
  SELECT to_char(t AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
$$;

-- The hash of one chain entry (see the format above).
CREATE OR REPLACE FUNCTION audit_row_hash(l audit_logs, p_seq bigint, p_prev bytea) RETURNS bytea
  LANGUAGE sql STABLE PARALLEL SAFE AS $$
  SELECT sha256(
    convert_to(E'fleet-audit-chain-v1\n', 'UTF8') || p_prev
    || audit_ns(p_seq::text) || audit_ns(l.id::text) || audit_ns(l.tenant_id) || audit_ns(l.user_id::text)
    || audit_ns(l.action) || audit_ns(l.resource_type) || audit_ns(l.resource_id)
    || audit_ns(l.before::text) || audit_ns(l.after::text) || audit_ns(l.ip_address::text)
    || audit_ns(l.user_agent) || audit_ns(l.result) || audit_ns(l.error_message)
    || audit_ns(l.severity) || audit_ns(l.request_id) || audit_ns(audit_ts_text(l.created_at)))
$$;

-- The sealer. Appends chain entries for up to max_rows committed, unsealed rows (oldest
-- pending ids first; within one call grouped by tenant, in id order). Returns how many
-- rows it sealed, or -1 when another sealer holds the lock (several instances are safe).
-- Runs as the owner: the application role can trigger sealing but cannot write the chain.
CREATE OR REPLACE FUNCTION audit_seal(max_rows integer DEFAULT 1000) RETURNS integer
  LANGUAGE plpgsql SECURITY DEFINER
  SET search_path = public, pg_temp
AS $$
DECLARE
  prev_scope  text := current_setting('app.audit_scope', true);
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
  -- Read every tenant (migration 022); restored before returning. (A function-level
  -- SET clause cannot name a custom setting when the owner is not a superuser.)
  PERFORM set_config('app.audit_scope', 'all', true);

  WITH batch AS (
    DELETE FROM audit_pending
     WHERE audit_id IN (SELECT p.audit_id FROM audit_pending p ORDER BY p.audit_id LIMIT max_rows)
    RETURNING audit_id
  )
  SELECT coalesce(array_agg(audit_id), '{}') INTO ids FROM batch;
  IF cardinality(ids) = 0 THEN
    PERFORM set_config('app.audit_scope', coalesce(prev_scope, ''), true);
    RETURN 0;
  END IF;

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

-- The newest chain entry of a tenant (for the archive's digest chain). Invoker rights:
-- row-level security decides what the caller may see.
CREATE OR REPLACE FUNCTION audit_chain_head(p_tenant text)
  RETURNS TABLE (seq bigint, row_hash bytea, audit_id bigint, sealed_at timestamptz)
  LANGUAGE sql STABLE AS $$
  SELECT c.seq, c.row_hash, c.audit_id, c.sealed_at
    FROM audit_chain c WHERE c.tenant_id = p_tenant ORDER BY c.seq DESC LIMIT 1
$$;

-- Audit rows with their chain columns (NULL while unsealed).
CREATE VIEW audit_log_entries WITH (security_invoker = true) AS
SELECT l.id, l.tenant_id, l.user_id, l.action, l.resource_type, l.resource_id, l.before, l.after,
       l.ip_address, l.user_agent, l.result, l.error_message, l.severity, l.request_id, l.created_at,
       c.seq AS chain_seq, c.prev_hash AS chain_prev_hash, c.row_hash AS chain_hash, c.sealed_at
  FROM audit_logs l LEFT JOIN audit_chain c ON c.audit_id = l.id;

REVOKE ALL ON audit_pending, audit_chain, audit_chain_anchors, audit_log_entries FROM PUBLIC;
GRANT INSERT ON audit_pending TO fleet_app;
GRANT SELECT ON audit_chain, audit_chain_anchors, audit_log_entries TO fleet_app;

REVOKE ALL ON FUNCTION audit_seal(integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION audit_seal(integer) TO fleet_app;
