/**
 * Idempotency-Key (contract §6; IETF draft "The Idempotency-Key HTTP Header Field", Stripe's
 * API) for POST routes that create something. The HTTP side (the header, the reply) is
 * middleware/idempotency.ts; here `run` takes the caller, the route, the key and the request
 * body, and `work` writes everything it creates through the transaction client it is given.
 *
 * With a key, in ONE tenant-scoped transaction:
 *   1. a transaction-scoped advisory lock on (tenant, principal, route, key), tried without
 *      waiting: held by another request → 409 CONFLICT + Retry-After (still in flight);
 *   2. a kept, unexpired outcome for the key: same request body → its status and body again
 *      with `Idempotent-Replayed: true`, nothing created; different body → 422
 *      IDEMPOTENCY_KEY_REUSED;
 *   3. otherwise `work(client)` runs and its outcome is kept (24 h) in the same transaction,
 *      so an outcome is kept exactly when what it created committed. A client whose
 *      connection dropped can retry with the same key: it gets the kept answer, or (when the
 *      first attempt rolled back) the request is processed once.
 * Error answers are not kept: the transaction rolls back and a retry with the key is
 * processed afresh. Without the header nothing changes: `work(undefined)` runs as before.
 * The scope is the caller: tenant + user (or API key when the request carries one) + route.
 */
import { createHash } from 'node:crypto';
import type { Actor } from '../../domain/actor';
import type { Pool, Queryable } from '../../db/pool';
import { withTenant } from '../../db/transaction';
import { ConflictError, IdempotencyKeyReusedError } from '../../lib/errors';
import type { Clock } from '../../lib/clock';
import type { Logger } from '../../lib/logger';
import { periodic } from '../../lib/periodic';
import * as repo from './repository';

export const REPLAYED_HEADER = 'Idempotent-Replayed';
/** How long an outcome is kept (contract §6). */
const IDEMPOTENCY_TTL_MS = 24 * 3600_000;
const PRUNE_INTERVAL_MS = 10 * 60_000;
const PRUNE_BATCH = 5000;
/** 1–255 visible ASCII characters (RFC 5234 VCHAR). */
const KEY_RE = /^[\x21-\x7e]{1,255}$/;

export interface Outcome {
  status: number;
  body: unknown;
  /**
   * What to keep for replays instead of `body`, when the body holds a secret shown once (a new
   * API key): secrets are never stored here, so a replay answers this instead.
   */
  keep?: unknown;
}

/** One idempotent request: the caller (tenant + user or API key) and route scope the key. */
export interface IdempotentRequest {
  actor: Actor;
  route: string;
  /** A valid key (keyProblem(key) === null). */
  key: string;
  body: unknown;
}

export interface IdempotencyService {
  /** Runs `work` once per key and returns its outcome, or the kept one (`replayed`). */
  run(
    request: IdempotentRequest,
    work: (q: Queryable) => Promise<Outcome>,
  ): Promise<{ replayed: boolean; status: number; body: unknown }>;
  /** Deletes expired entries now (the periodic job calls it); returns how many. */
  pruneNow(): Promise<number>;
  start(): Promise<void>;
  stop(): Promise<void>;
}

/** JSON with object keys sorted, so the same body hashes the same whatever its key order or spacing. */
export function canonicalJson(v: unknown): string {
  if (v === null || typeof v !== 'object') return JSON.stringify(v) ?? 'null';
  if (Array.isArray(v)) return `[${v.map(canonicalJson).join(',')}]`;
  const o = v as Record<string, unknown>;
  return `{${Object.keys(o)
    .filter((k) => o[k] !== undefined)
    .sort()
    .map((k) => `${JSON.stringify(k)}:${canonicalJson(o[k])}`)
    .join(',')}}`;
}

function requestHash(route: string, body: unknown): Buffer {
  return createHash('sha256')
    .update(route)
    .update('\n')
    .update(canonicalJson(body === undefined ? null : body))
    .digest();
}

/** Why a header value is not a usable key, or null when it is. */
export function keyProblem(raw: string | string[] | undefined): string | null {
  if (raw === undefined) return null;
  if (Array.isArray(raw)) return 'must be sent once';
  if (raw.length === 0) return 'must not be empty';
  if (raw.length > 255) return 'must be at most 255 characters';
  if (!KEY_RE.test(raw)) return 'must be visible ASCII characters only (no spaces, control or non-ASCII characters)';
  return null;
}

/** A repeat while the first request with the key is still being processed (contract §6). */
function stillProcessing(): ConflictError {
  return new ConflictError('A request with this Idempotency-Key is still being processed; retry later.', {
    retryAfterSeconds: 1,
  });
}

export function createIdempotencyService(deps: { pool: Pool; clock: Clock; logger: Logger }): IdempotencyService {
  const { pool, clock, logger } = deps;
  let lastPruneError: string | null = null;

  async function pruneNow(): Promise<number> {
    let total = 0;
    for (let i = 0; i < 100; i += 1) {
      const n = await repo.pruneExpired(pool, new Date(clock.now()), PRUNE_BATCH);
      total += n;
      if (n < PRUNE_BATCH) break;
    }
    return total;
  }

  const prune = periodic(
    async () => {
      const n = await pruneNow();
      lastPruneError = null;
      if (n > 0) logger.debug('idempotency keys pruned', { count: n });
    },
    {
      intervalMs: PRUNE_INTERVAL_MS,
      firstDelayMs: 0,
      onError: (err) => {
        const message = (err as Error).message;
        if (lastPruneError !== message)
          logger.warn('idempotency key clean-up failed; retried at the next interval', { err: message });
        lastPruneError = message;
      },
    },
  );

  return {
    async run({ actor, route, key, body }, work) {
      const scope: repo.KeyScope = {
        tenantId: actor.tenantId,
        principal: actor.apiKeyId ? `apikey:${actor.apiKeyId}` : `user:${actor.userId}`,
        route,
        key,
      };
      const hash = requestHash(route, body);
      return withTenant(pool, actor.tenantId, async (c) => {
        if (!(await repo.tryLockKey(c, scope))) {
          throw stillProcessing();
        }
        const now = new Date(clock.now());
        const kept = await repo.selectKept(c, scope, now);
        if (kept) {
          if (!Buffer.from(kept.request_hash).equals(hash)) {
            throw new IdempotencyKeyReusedError(
              'This Idempotency-Key was used with a different request body; use a new key for a new request.',
            );
          }
          return { replayed: true, status: kept.status, body: kept.response };
        }
        const out = await work(c);
        if (out.status < 200 || out.status > 299)
          throw new Error(`idempotent work answered ${out.status}; only successes are kept`);
        if (
          !(await repo.insertKept(
            c,
            scope,
            hash,
            out.status,
            out.keep === undefined ? out.body : out.keep,
            now,
            new Date(now.getTime() + IDEMPOTENCY_TTL_MS),
          ))
        ) {
          // Cannot happen under the lock; never answer twice for one key.
          throw stillProcessing();
        }
        return { replayed: false, status: out.status, body: out.body };
      });
    },

    pruneNow,

    async start() {
      prune.start();
    },

    async stop() {
      await prune.stop();
    },
  };
}
