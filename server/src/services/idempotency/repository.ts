/** SQL of idempotency keys (migration 046). One function per statement. */
import type { Queryable } from '../../db/pool';

export interface KeyScope {
  tenantId: string;
  principal: string;
  route: string;
  key: string;
}

/**
 * Serializes requests with one key until the transaction ends, across instances. `try`: a
 * second request with the key does not wait; it is told the first is still in flight.
 */
const TRY_LOCK_KEY = `SELECT pg_try_advisory_xact_lock(hashtextextended($1, 7307)) AS locked`;

export async function tryLockKey(q: Queryable, s: KeyScope): Promise<boolean> {
  // Unit-separator-joined: no part can contain it (keys are visible ASCII, the rest are ids).
  const { rows } = await q.query<{ locked: boolean }>(TRY_LOCK_KEY, [
    [s.tenantId, s.principal, s.route, s.key].join('\u001f'),
  ]);
  return rows[0]?.locked === true;
}

export interface KeptResponse {
  request_hash: Buffer;
  status: number;
  response: unknown;
}

const SELECT_KEPT = `
SELECT request_hash, status, response FROM idempotency_keys
WHERE tenant_id = $1 AND principal = $2 AND route = $3 AND idem_key = $4 AND expires_at > $5`;

/** The kept outcome of a first request with this key, unless it expired. */
export async function selectKept(q: Queryable, s: KeyScope, now: Date): Promise<KeptResponse | null> {
  const { rows } = await q.query<KeptResponse>(SELECT_KEPT, [s.tenantId, s.principal, s.route, s.key, now]);
  return rows[0] ?? null;
}

/** Keeps the outcome; replaces an expired entry the clean-up has not removed yet. */
const INSERT_KEPT = `
INSERT INTO idempotency_keys (tenant_id, principal, route, idem_key, request_hash, status, response, created_at, expires_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
ON CONFLICT (tenant_id, principal, route, idem_key) DO UPDATE SET
  request_hash = EXCLUDED.request_hash, status = EXCLUDED.status, response = EXCLUDED.response,
  created_at = EXCLUDED.created_at, expires_at = EXCLUDED.expires_at
WHERE idempotency_keys.expires_at <= EXCLUDED.created_at`;

export async function insertKept(
  q: Queryable,
  s: KeyScope,
  requestHash: Buffer,
  status: number,
  response: unknown,
  now: Date,
  expiresAt: Date,
): Promise<boolean> {
  const r = await q.query(INSERT_KEPT, [
    s.tenantId,
    s.principal,
    s.route,
    s.key,
    requestHash,
    status,
    JSON.stringify(response),
    now,
    expiresAt,
  ]);
  return (r.rowCount ?? 0) === 1;
}

const PRUNE = `SELECT idempotency_keys_prune($1, $2) AS n`;

/** Deletes up to `limit` expired entries (all tenants); returns how many. */
export async function pruneExpired(q: Queryable, now: Date, limit: number): Promise<number> {
  const { rows } = await q.query<{ n: number }>(PRUNE, [now, limit]);
  return rows[0]?.n ?? 0;
}
