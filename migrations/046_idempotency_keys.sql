-- Idempotency-Key (contract §6) for POST routes that create something: the first request's
-- outcome (status and body) kept for 24 hours, scoped to the caller (tenant + user, or API key)
-- and the route, written in the same transaction as what the request created, so a kept
-- response exists exactly when its effects committed. Every instance sees it (shared database).
-- Only the SHA-256 of the request body is kept, never the body.
CREATE TABLE idempotency_keys (
  tenant_id     text NOT NULL CHECK (length(tenant_id) BETWEEN 1 AND 128),
  -- 'user:<uuid>' or 'apikey:<id>'
  principal     text NOT NULL CHECK (length(principal) BETWEEN 1 AND 200),
  -- e.g. 'POST /audit/log'
  route         text NOT NULL CHECK (length(route) BETWEEN 1 AND 200),
  idem_key      text NOT NULL CHECK (idem_key ~ '^[!-~]{1,255}$'),
  request_hash  bytea NOT NULL CHECK (octet_length(request_hash) = 32),
  status        smallint NOT NULL CHECK (status BETWEEN 200 AND 299),
  response      json NOT NULL,
  created_at    timestamptz NOT NULL,
  expires_at    timestamptz NOT NULL,
  PRIMARY KEY (tenant_id, principal, route, idem_key)
);
CREATE INDEX idempotency_keys_expires_idx ON idempotency_keys (expires_at);

-- Tenant data: row-level security like the other tenant tables.
ALTER TABLE idempotency_keys ENABLE ROW LEVEL SECURITY;
CREATE POLICY idempotency_keys_tenant_isolation ON idempotency_keys
  USING (tenant_id = app_current_tenant())
  WITH CHECK (tenant_id = app_current_tenant());

GRANT SELECT, INSERT, UPDATE ON idempotency_keys TO fleet_app;

-- The periodic clean-up spans tenants: SECURITY DEFINER (runs as the owner, past row-level
-- security), deletes at most p_limit expired entries per call and returns how many. It reads
-- nothing back, so it discloses nothing.
CREATE FUNCTION idempotency_keys_prune(p_now timestamptz, p_limit integer)
  RETURNS integer
  LANGUAGE plpgsql VOLATILE SECURITY DEFINER
  SET search_path = pg_catalog, public
AS $$
DECLARE
  n integer;
BEGIN
  IF p_now IS NULL OR p_limit IS NULL OR p_limit < 1 OR p_limit > 100000 THEN
    RAISE EXCEPTION 'idempotency_keys_prune: p_now and p_limit (1..100000) are required' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  DELETE FROM public.idempotency_keys k
   WHERE k.ctid IN (SELECT ctid FROM public.idempotency_keys WHERE expires_at <= p_now LIMIT p_limit FOR UPDATE SKIP LOCKED);
  GET DIAGNOSTICS n = ROW_COUNT;
  RETURN n;
END
$$;
REVOKE ALL ON FUNCTION idempotency_keys_prune(timestamptz, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION idempotency_keys_prune(timestamptz, integer) TO fleet_app;
