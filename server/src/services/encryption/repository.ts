/** SQL of the encrypted_secrets table (migration 030). `$n` parameters only, one function per statement. */
import type { Queryable } from '../../db/pool';

export interface SecretRow {
  id: string;
  tenant_id: string;
  name: string;
  key_version: string;
  description: string | null;
  created_at: Date;
  updated_at: Date;
  rewrapped_at: Date | null;
}
export interface SecretRowWithCiphertext extends SecretRow {
  ciphertext: string;
}

const COLUMNS = 'id, tenant_id, name, key_version, description, created_at, updated_at, rewrapped_at';

const UPSERT_SECRET = `
INSERT INTO encrypted_secrets (tenant_id, name, key_version, ciphertext, description)
VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (tenant_id, name) DO UPDATE
  SET key_version = EXCLUDED.key_version,
      ciphertext = EXCLUDED.ciphertext,
      description = COALESCE(EXCLUDED.description, encrypted_secrets.description),
      updated_at = now(),
      rewrapped_at = NULL
RETURNING ${COLUMNS}`;

export async function upsertSecret(
  q: Queryable,
  tenantId: string,
  name: string,
  keyVersion: string,
  ciphertext: string,
  description: string | null,
): Promise<SecretRow> {
  const { rows } = await q.query<SecretRow>(UPSERT_SECRET, [tenantId, name, keyVersion, ciphertext, description]);
  return rows[0] as SecretRow;
}

const SELECT_SECRET = `SELECT ${COLUMNS}, ciphertext FROM encrypted_secrets WHERE tenant_id = $1 AND name = $2`;

export async function selectSecret(
  q: Queryable,
  tenantId: string,
  name: string,
): Promise<SecretRowWithCiphertext | null> {
  const { rows } = await q.query<SecretRowWithCiphertext>(SELECT_SECRET, [tenantId, name]);
  return rows[0] ?? null;
}

const LIST_SECRETS = `SELECT ${COLUMNS} FROM encrypted_secrets WHERE tenant_id = $1 ORDER BY name`;

export async function listSecrets(q: Queryable, tenantId: string): Promise<SecretRow[]> {
  const { rows } = await q.query<SecretRow>(LIST_SECRETS, [tenantId]);
  return rows;
}

const DELETE_SECRET = 'DELETE FROM encrypted_secrets WHERE tenant_id = $1 AND name = $2';

export async function deleteSecret(q: Queryable, tenantId: string, name: string): Promise<boolean> {
  const r = await q.query(DELETE_SECRET, [tenantId, name]);
  return (r.rowCount ?? 0) > 0;
}

const KEY_USAGE = 'SELECT tenant_id, key_version, row_count FROM encrypted_secrets_key_usage()';

export interface KeyUsageRow {
  tenant_id: string;
  key_version: string;
  row_count: string;
}

/** Row counts per tenant and key version, across tenants (a SECURITY DEFINER function; counts only). */
export async function keyUsage(q: Queryable): Promise<KeyUsageRow[]> {
  const { rows } = await q.query<KeyUsageRow>(KEY_USAGE);
  return rows;
}

/** Rows of one tenant not under `targetVersion`, after `afterId`, locked for this transaction. */
const CLAIM_STALE_SECRETS = `
SELECT ${COLUMNS}, ciphertext FROM encrypted_secrets
WHERE tenant_id = $1 AND key_version <> $2 AND id > $3
ORDER BY id
LIMIT $4
FOR UPDATE SKIP LOCKED`;

export async function claimStaleSecrets(
  q: Queryable,
  tenantId: string,
  targetVersion: string,
  afterId: string,
  limit: number,
): Promise<SecretRowWithCiphertext[]> {
  const { rows } = await q.query<SecretRowWithCiphertext>(CLAIM_STALE_SECRETS, [
    tenantId,
    targetVersion,
    afterId,
    limit,
  ]);
  return rows;
}

const REWRAP_SECRET = `
UPDATE encrypted_secrets SET key_version = $3, ciphertext = $4, rewrapped_at = now()
WHERE tenant_id = $1 AND id = $2 AND key_version = $5`;

export async function rewrapSecret(
  q: Queryable,
  tenantId: string,
  id: string,
  newVersion: string,
  ciphertext: string,
  oldVersion: string,
): Promise<boolean> {
  const r = await q.query(REWRAP_SECRET, [tenantId, id, newVersion, ciphertext, oldVersion]);
  return (r.rowCount ?? 0) === 1;
}
