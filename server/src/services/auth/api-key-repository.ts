/** SQL of service API keys (migrations/072). Every statement but the prefix lookup names the tenant. */
import type { Queryable } from '../../db/pool';

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
