/**
 * Encrypted secrets per tenant (table encrypted_secrets): integration credentials the service
 * must use but should never hold in plaintext at rest (SIEM tokens, storage keys, webhook
 * secrets). Values are encrypted with the encryption service's text form; the AAD binds each
 * value to its tenant and name, so a ciphertext copied to another row or tenant does not
 * decrypt. There is no HTTP route that returns a value: values are write-only from outside and
 * read only by server code. Callers audit their own domain action (e.g. "SIEM credential
 * changed"), passing their transaction client as `q` so the change and its audit row commit together.
 */
import type { Pool, Queryable } from '../../db/pool';
import { withTenant } from '../../db/transaction';
import { keyVersionOfEncryptedString } from './envelope';
import * as repo from './repository';
import type { EncryptionService } from './service';

export const SECRET_NAME_PATTERN = /^[a-z0-9][a-z0-9._-]{0,127}$/;
const MAX_SECRET_VALUE_BYTES = 64 * 1024;

export interface SecretMetadata {
  id: string;
  tenantId: string;
  name: string;
  keyVersion: string;
  description: string | null;
  createdAt: Date;
  updatedAt: Date;
  rewrappedAt: Date | null;
}

export interface SecretStore {
  /** Creates or replaces a secret. With `q`, runs in the caller's tenant transaction. */
  put(
    tenantId: string,
    name: string,
    value: string,
    opts?: { description?: string | null },
    q?: Queryable,
  ): Promise<SecretMetadata>;
  /** The decrypted value, or null when there is none. DecryptionError if the stored value was altered. */
  get(tenantId: string, name: string, q?: Queryable): Promise<string | null>;
  /** Metadata only, never values. */
  list(tenantId: string, q?: Queryable): Promise<SecretMetadata[]>;
  remove(tenantId: string, name: string, q?: Queryable): Promise<boolean>;
}

/** The AAD of a stored secret: table, tenant and name, NUL-separated (neither may contain NUL). */
export function secretAad(tenantId: string, name: string): Buffer {
  return Buffer.from(`fleet:encrypted_secrets:v1\u0000${tenantId}\u0000${name}`, 'utf8');
}

function toSecretMetadata(r: repo.SecretRow): SecretMetadata {
  return {
    id: r.id,
    tenantId: r.tenant_id,
    name: r.name,
    keyVersion: r.key_version,
    description: r.description,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
    rewrappedAt: r.rewrapped_at,
  };
}

function checkName(name: string): void {
  if (typeof name !== 'string' || !SECRET_NAME_PATTERN.test(name)) {
    throw new TypeError(
      'secret names are 1-128 characters: lower-case letters, digits, dot, dash, underscore; starting with a letter or digit',
    );
  }
}

export function createSecretStore(deps: { pool: Pool; encryption: EncryptionService }): SecretStore {
  const { pool, encryption } = deps;
  const run = <T>(tenantId: string, q: Queryable | undefined, fn: (q: Queryable) => Promise<T>): Promise<T> =>
    q ? fn(q) : withTenant(pool, tenantId, (client) => fn(client));

  return {
    async put(tenantId, name, value, opts = {}, q) {
      checkName(name);
      if (typeof value !== 'string' || value.length === 0) throw new TypeError('a secret value is a non-empty string');
      if (Buffer.byteLength(value, 'utf8') > MAX_SECRET_VALUE_BYTES)
        throw new RangeError(`a secret value is at most ${MAX_SECRET_VALUE_BYTES} bytes`);
      const text = await encryption.encryptToString(value, { aad: secretAad(tenantId, name) });
      const version = keyVersionOfEncryptedString(text) as string;
      const row = await run(tenantId, q, (c) =>
        repo.upsertSecret(c, tenantId, name, version, text, opts.description ?? null),
      );
      return toSecretMetadata(row);
    },
    async get(tenantId, name, q) {
      checkName(name);
      const row = await run(tenantId, q, (c) => repo.selectSecret(c, tenantId, name));
      if (!row) return null;
      return encryption.decryptFromString(row.ciphertext, { aad: secretAad(row.tenant_id, row.name) });
    },
    async list(tenantId, q) {
      const rows = await run(tenantId, q, (c) => repo.listSecrets(c, tenantId));
      return rows.map(toSecretMetadata);
    },
    async remove(tenantId, name, q) {
      checkName(name);
      return run(tenantId, q, (c) => repo.deleteSecret(c, tenantId, name));
    },
  };
}
