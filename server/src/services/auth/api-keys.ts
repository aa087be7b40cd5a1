/**
 * Service API keys (CONTRACT §11): `fsk_<prefix>_<secret>`, 12 base-36 characters of prefix
 * (the lookup key, shown in listings) and 32 random bytes of secret (256 bits, base64url).
 * Only `HMAC-SHA256(subkey of the master key, "fleet-api-key:v1:<prefix>:<secret>")` is stored,
 * with the master-key version that made it, so a database dump alone cannot test guesses and a
 * master-key rotation keeps old keys working. Lookup: the row by prefix (unique index), then a
 * constant-time comparison of the HMAC; an unknown prefix costs the same HMAC.
 *
 * Every request reads the row (no cache; the reads of requests arriving together share one
 * statement): a revoked or expired key fails on the next request on every instance.
 * `last_used_at` is written at most once a minute per key.
 */
import { randomBytes, randomInt } from 'node:crypto';
import type { Pool, Queryable } from '../../db/pool';
import { withTenant } from '../../db/transaction';
import type { Clock } from '../../lib/clock';
import { notFound } from '../../lib/errors';
import type { AuditService } from '../audit/service';
import type { EncryptionService } from '../encryption';
import {
  createApiKeyLookup,
  insertApiKey,
  listApiKeys,
  revokeApiKey,
  touchApiKey,
  type ApiKeyRow,
} from './api-key-repository';
import { metaColumns, type RequestMeta } from '../../domain/actor';
import type { ApiScope } from './rbac';

const API_KEY_RE = /^fsk_([a-z0-9]{12})_([A-Za-z0-9_-]{43})$/;
const PREFIX_ALPHABET = 'abcdefghijklmnopqrstuvwxyz0123456789';
/** last_used_at precision. */
const API_KEY_TOUCH_INTERVAL_MS = 60_000;

export interface ApiKeyView {
  id: string;
  name: string;
  scopes: string[];
  prefix: string;
  createdAt: string;
  expiresAt: string | null;
}

export interface ApiKeyListEntry extends ApiKeyView {
  lastUsedAt: string | null;
  revokedAt: string | null;
  createdBy: string;
  status: 'active' | 'revoked' | 'expired';
}

export type ApiKeyAuthResult = { ok: true; key: ApiKeyRow } | { ok: false; reason: string; key: ApiKeyRow | null };

export interface ApiKeyService {
  /** With `q` (a transaction of the actor's tenant, e.g. the Idempotency-Key one) the row and its audit row are written through it; else in a transaction of their own. */
  create(
    actor: { tenantId: string; userId: string },
    input: { name: string; scopes: readonly ApiScope[]; expiresAt: Date | null },
    meta: RequestMeta,
    q?: Queryable,
  ): Promise<{ apiKey: ApiKeyView; key: string }>;
  list(tenantId: string): Promise<ApiKeyListEntry[]>;
  /** Revokes a live key of the tenant; NOT_FOUND otherwise (also for another tenant's key). */
  revoke(actor: { tenantId: string; userId: string }, id: string, meta: RequestMeta): Promise<void>;
  /** Checks a presented key (format, row, HMAC, revocation, expiry) and records use. */
  authenticate(presented: string): Promise<ApiKeyAuthResult>;
}

const hmacInput = (prefix: string, secret: string): string => `fleet-api-key:v1:${prefix}:${secret}`;

function newPrefix(): string {
  let s = '';
  for (let i = 0; i < 12; i++) s += PREFIX_ALPHABET[randomInt(PREFIX_ALPHABET.length)];
  return s;
}

function view(k: ApiKeyRow): ApiKeyView {
  return {
    id: k.id,
    name: k.name,
    scopes: k.scopes,
    prefix: k.prefix,
    createdAt: k.createdAt.toISOString(),
    expiresAt: k.expiresAt?.toISOString() ?? null,
  };
}

export function createApiKeyService(deps: {
  pool: Pool;
  clock: Clock;
  audit: AuditService;
  encryption: EncryptionService;
}): ApiKeyService {
  const { pool, clock, audit, encryption } = deps;
  const findByPrefix = createApiKeyLookup(pool);

  return {
    async create(actor, input, meta, q) {
      const prefix = newPrefix();
      const secret = randomBytes(32).toString('base64url');
      const secretHash = await encryption.createSignature(hmacInput(prefix, secret));
      const now = new Date(clock.now());
      const write = async (c: Queryable) => {
        const k = await insertApiKey(c, {
          tenantId: actor.tenantId,
          name: input.name,
          prefix,
          secretHash,
          scopes: input.scopes,
          createdBy: actor.userId,
          now,
          expiresAt: input.expiresAt,
        });
        await audit.record(
          {
            tenantId: actor.tenantId,
            userId: actor.userId,
            action: 'key.api.created',
            resourceType: 'api_key',
            resourceId: k.id,
            severity: 'high',
            after: { name: k.name, prefix: k.prefix, scopes: k.scopes, expiresAt: k.expiresAt?.toISOString() ?? null },
            ...metaColumns(meta),
          },
          c,
        );
        return k;
      };
      const row = q ? await write(q) : await withTenant(pool, actor.tenantId, write);
      return { apiKey: view(row), key: `fsk_${prefix}_${secret}` };
    },

    async list(tenantId) {
      const now = clock.now();
      const rows = await withTenant(pool, tenantId, (c) => listApiKeys(c, tenantId));
      return rows.map((k) => ({
        ...view(k),
        lastUsedAt: k.lastUsedAt?.toISOString() ?? null,
        revokedAt: k.revokedAt?.toISOString() ?? null,
        createdBy: k.createdBy,
        status: k.revokedAt ? 'revoked' : k.expiresAt && k.expiresAt.getTime() <= now ? 'expired' : 'active',
      }));
    },

    async revoke(actor, id, meta) {
      await withTenant(pool, actor.tenantId, async (c) => {
        const k = await revokeApiKey(c, id, actor.tenantId, new Date(clock.now()), actor.userId);
        if (!k) throw notFound('API key');
        await audit.record(
          {
            tenantId: actor.tenantId,
            userId: actor.userId,
            action: 'key.api.revoked',
            resourceType: 'api_key',
            resourceId: k.id,
            severity: 'high',
            after: { name: k.name, prefix: k.prefix },
            ...metaColumns(meta),
          },
          c,
        );
      });
    },

    async authenticate(presented) {
      const m = API_KEY_RE.exec(presented);
      if (!m) return { ok: false, reason: 'malformed API key', key: null };
      const [, prefix, secret] = m as unknown as [string, string, string];
      const row = await findByPrefix(prefix);
      // An unknown prefix costs the same HMAC as a known one.
      const match = row
        ? await encryption.verifySignature(hmacInput(prefix, secret), row.secretHash)
        : await encryption.createSignature(hmacInput(prefix, secret)).then(() => false);
      if (!row) return { ok: false, reason: 'unknown API key', key: null };
      if (!match) return { ok: false, reason: 'API key secret does not match', key: row };
      const now = clock.now();
      if (row.revokedAt) return { ok: false, reason: 'API key revoked', key: row };
      if (row.expiresAt && now >= row.expiresAt.getTime()) return { ok: false, reason: 'API key expired', key: row };
      if (!row.lastUsedAt || now - row.lastUsedAt.getTime() >= API_KEY_TOUCH_INTERVAL_MS) {
        await touchApiKey(pool, row.id, new Date(now), new Date(now - API_KEY_TOUCH_INTERVAL_MS));
      }
      return { ok: true, key: row };
    },
  };
}
