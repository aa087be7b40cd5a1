/** SQL of service API keys (migrations/072). Every statement but the prefix lookup names the tenant. */
import type { Queryable } from '../../db/pool';
import { perTurn, slices } from '../../lib/turn-batch';

export interface ApiKeyRow {
  id: string;
  tenantId: string;
  name: string;
  prefix: string;
  secretHash: string;
  scopes: string[];
  createdBy: string;
  createdAt: Date;
  expiresAt: Date | null;
  revokedAt: Date | null;
  lastUsedAt: Date | null;
}

interface Row {
  id: string;
  tenant_id: string;
  name: string;
  prefix: string;
  secret_hash: string;
  scopes: string[];
  created_by: string;
  created_at: Date;
  expires_at: Date | null;
  revoked_at: Date | null;
  last_used_at: Date | null;
}

const COLUMNS =
  'id, tenant_id, name, prefix, secret_hash, scopes, created_by, created_at, expires_at, revoked_at, last_used_at';

function toKey(r: Row): ApiKeyRow {
  return {
    id: r.id,
    tenantId: r.tenant_id,
    name: r.name,
    prefix: r.prefix,
    secretHash: r.secret_hash,
    scopes: r.scopes,
    createdBy: r.created_by,
    createdAt: r.created_at,
    expiresAt: r.expires_at,
    revokedAt: r.revoked_at,
    lastUsedAt: r.last_used_at,
  };
}

const INSERT_API_KEY = `
INSERT INTO api_keys (tenant_id, name, prefix, secret_hash, scopes, created_by, created_at, expires_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
RETURNING ${COLUMNS}`;

export async function insertApiKey(
  q: Queryable,
  k: {
    tenantId: string;
    name: string;
    prefix: string;
    secretHash: string;
    scopes: readonly string[];
    createdBy: string;
    now: Date;
    expiresAt: Date | null;
  },
): Promise<ApiKeyRow> {
  const { rows } = await q.query<Row>(INSERT_API_KEY, [
    k.tenantId,
    k.name,
    k.prefix,
    k.secretHash,
    k.scopes,
    k.createdBy,
    k.now,
    k.expiresAt,
  ]);
  return toKey(rows[0] as Row);
}

/**
 * The incoming key's row by its (unique) prefix; read on every request, never cached. The
 * key's tenant is not known yet and api_keys has forced row-level security (migration 095):
 * read through the narrowly-scoped function auth_api_key_by_prefix (one row by exact prefix).
 */
const FIND_API_KEY_BY_PREFIX = `SELECT ${COLUMNS} FROM auth_api_key_by_prefix($1)`;

export async function findApiKeyByPrefix(q: Queryable, prefix: string): Promise<ApiKeyRow | null> {
  const { rows } = await q.query<Row>({
    name: 'fleet_api_key_by_prefix',
    text: FIND_API_KEY_BY_PREFIX,
    values: [prefix],
  });
  return rows[0] ? toKey(rows[0]) : null;
}

/**
 * The same lookup for several prefixes in one statement (each one call of the narrowly-scoped
 * function, by exact prefix), tagged with its position in the array.
 */
export const FIND_API_KEYS_BY_PREFIXES = `SELECT p.ord, k.id, k.tenant_id, k.name, k.prefix, k.secret_hash, k.scopes, k.created_by, k.created_at, k.expires_at, k.revoked_at, k.last_used_at
FROM unnest($1::text[]) WITH ORDINALITY AS p(prefix, ord)
CROSS JOIN LATERAL auth_api_key_by_prefix(p.prefix) AS k`;

/** Most distinct prefixes one batched statement carries. */
export const API_KEY_LOOKUP_BATCH_MAX = 64;

export type ApiKeyLookup = (prefix: string) => Promise<ApiKeyRow | null>;

interface PendingKeyLookup {
  prefix: string;
  resolve(k: ApiKeyRow | null): void;
  reject(err: unknown): void;
}

/**
 * The per-request key lookup, batched like the session check (createSessionLookup): lookups
 * requested during one event-loop turn are read together when the turn ends, one statement
 * for all, one read per distinct prefix. Every request still gets a fresh read issued after it
 * arrived (a revocation committed before the request is seen by it); nothing is cached.
 */
export function createApiKeyLookup(q: Queryable): ApiKeyLookup {
  function run(batch: Map<string, PendingKeyLookup[]>): void {
    const prefixes = [...batch.keys()];
    const settle = (found: Map<string, Row>) => {
      for (const [prefix, waiters] of batch) {
        const r = found.get(prefix);
        for (const w of waiters) w.resolve(r ? toKey(r) : null);
      }
    };
    const fail = (err: unknown) => {
      for (const waiters of batch.values()) for (const w of waiters) w.reject(err);
    };
    if (prefixes.length === 1) {
      const prefix = prefixes[0] as string;
      q.query<Row>({ name: 'fleet_api_key_by_prefix', text: FIND_API_KEY_BY_PREFIX, values: [prefix] }).then(
        (res) => settle(new Map(res.rows[0] ? [[prefix, res.rows[0]]] : [])),
        fail,
      );
      return;
    }
    q.query<Row & { ord: string }>({
      name: 'fleet_api_keys_by_prefixes',
      text: FIND_API_KEYS_BY_PREFIXES,
      values: [prefixes],
    }).then((res) => settle(new Map(res.rows.map((r) => [prefixes[Number(r.ord) - 1] as string, r]))), fail);
  }
  const submit = perTurn<PendingKeyLookup>((all) => {
    const byPrefix = new Map<string, PendingKeyLookup[]>();
    for (const p of all) {
      const list = byPrefix.get(p.prefix);
      if (list) list.push(p);
      else byPrefix.set(p.prefix, [p]);
    }
    for (const part of slices([...byPrefix], API_KEY_LOOKUP_BATCH_MAX)) run(new Map(part));
  });
  return (prefix) => new Promise<ApiKeyRow | null>((resolve, reject) => submit({ prefix, resolve, reject }));
}

const LIST_API_KEYS = `SELECT ${COLUMNS} FROM api_keys WHERE tenant_id = $1 ORDER BY created_at DESC, id LIMIT 500`;

export async function listApiKeys(q: Queryable, tenantId: string): Promise<ApiKeyRow[]> {
  const { rows } = await q.query<Row>(LIST_API_KEYS, [tenantId]);
  return rows.map(toKey);
}

const REVOKE_API_KEY = `
UPDATE api_keys SET revoked_at = $3, revoked_by = $4
WHERE id = $1 AND tenant_id = $2 AND revoked_at IS NULL
RETURNING ${COLUMNS}`;

/** The revoked row, or null when no live key of the tenant has that id. */
export async function revokeApiKey(
  q: Queryable,
  id: string,
  tenantId: string,
  now: Date,
  by: string,
): Promise<ApiKeyRow | null> {
  const { rows } = await q.query<Row>(REVOKE_API_KEY, [id, tenantId, now, by]);
  return rows[0] ? toKey(rows[0]) : null;
}

/** Records use at most once a minute per key (the condition makes concurrent writers a no-op). */
/** Through auth_api_key_touch (migration 095): one statement, no tenant transaction needed. */
const TOUCH_API_KEY = `SELECT auth_api_key_touch($1, $2, $3)`;

export async function touchApiKey(q: Queryable, id: string, now: Date, olderThan: Date): Promise<void> {
  await q.query({ name: 'fleet_api_key_touch', text: TOUCH_API_KEY, values: [id, now, olderThan] });
}
