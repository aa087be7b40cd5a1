/**
 * The cache in front of a remote key source (Key Vault):
 * - the current key is re-read every `ttlMs` (KEY_CACHE_TTL_SECONDS); within the TTL no call
 *   reaches the source, and a fresh cached key is available synchronously (peekCurrentKey);
 * - concurrent callers share one fetch per key (single flight);
 * - when a refresh fails, the cached key keeps being served — re-trying every
 *   `retryIntervalMs` — until `maxStaleMs` after its last successful fetch (the hard limit).
 *   The first failure of an episode is logged and sent to `onEvent` (key.master.refresh_failed);
 * - when no usable cached key is left, the environment fallback (FLEET_ENCRYPTION_KEY) is used
 *   if configured. Entering the fallback is a high-severity event (key.master.fallback) that
 *   must be recorded: if `onEvent` fails, the fallback key is NOT used (fail closed). The
 *   source is re-tried every `retryIntervalMs` and replaces the fallback as soon as it answers;
 * - other versions (for decryption) are fetched by version on demand, cached the same way,
 *   and versions the source does not know are remembered briefly (negative cache).
 * Time comes from the injected Clock.
 */
import type { Clock } from '../../../lib/clock';
import type { Logger } from '../../../lib/logger';
import { KeyUnavailableError, UnknownKeyVersionError, describeError } from '../errors';
import type { MasterKey } from '../master-key';
import type { EnvironmentKeyProvider } from './environment';
import type {
  KeyEventSink,
  KeyProviderEvent,
  KeyProviderStatus,
  KeyVersionInfo,
  MasterKeyProvider,
  RemoteKeySource,
} from './types';

export interface CachedKeyProviderOptions {
  source: RemoteKeySource;
  /** Used when the source fails and no cached key may be served. */
  fallback?: EnvironmentKeyProvider | null;
  ttlMs: number;
  /** Hard limit for serving a key past a failed refresh, from its last successful fetch. */
  maxStaleMs?: number;
  /** Pause between attempts while the source fails (default min(ttl, 30 s)). */
  retryIntervalMs?: number;
  /** How long "no such version" answers are remembered (default 60 s). */
  negativeTtlMs?: number;
  maxCachedVersions?: number;
  clock: Clock;
  logger: Logger;
  onEvent?: KeyEventSink;
}

interface Entry {
  key: MasterKey;
  fetchedAt: number;
  expiresAt: number;
  hardExpiresAt: number;
}

const HOUR = 3_600_000;

/** Default hard limit: 4 × TTL (at most 24 h), and never less than TTL + 15 minutes. */
export function defaultMaxStaleMs(ttlMs: number): number {
  return Math.max(Math.min(4 * ttlMs, 24 * HOUR), ttlMs + 15 * 60_000);
}

export interface CachedKeyProvider extends MasterKeyProvider {
  getCurrentKey(): Promise<MasterKey>;
  peekCurrentKey(): MasterKey | null;
  peekKeyVersion(version: string): MasterKey | null;
  rotate(): Promise<MasterKey>;
  listVersions(): Promise<KeyVersionInfo[]>;
  status(): KeyProviderStatus;
}

export function createCachedKeyProvider(o: CachedKeyProviderOptions): CachedKeyProvider {
  const { source, clock, logger } = o;
  const fallback = o.fallback ?? null;
  const ttlMs = o.ttlMs;
  if (!(ttlMs > 0)) throw new RangeError('ttlMs must be positive');
  const maxStaleMs = o.maxStaleMs ?? defaultMaxStaleMs(ttlMs);
  const retryMs = o.retryIntervalMs ?? Math.min(ttlMs, 30_000);
  const negativeTtlMs = o.negativeTtlMs ?? 60_000;
  const maxVersions = o.maxCachedVersions ?? 128;

  let current: Entry | null = null;
  /** Bumped by rotate(): a refresh that started before a rotation must not overwrite it. */
  let generation = 0;
  let fallbackActive = false;
  let failing = false;
  let lastError: string | null = null;
  const versions = new Map<string, Entry>();
  const missing = new Map<string, number>();
  const inflight = new Map<string, Promise<MasterKey>>();

  function singleFlight(k: string, fn: () => Promise<MasterKey>): Promise<MasterKey> {
    const running = inflight.get(k);
    if (running) return running;
    const p = fn().finally(() => inflight.delete(k));
    inflight.set(k, p);
    return p;
  }

  function newEntry(key: MasterKey, now: number): Entry {
    return { key, fetchedAt: now, expiresAt: now + ttlMs, hardExpiresAt: now + maxStaleMs };
  }

  function remember(e: Entry): void {
    versions.delete(e.key.version);
    versions.set(e.key.version, { ...e });
    while (versions.size > maxVersions) versions.delete(versions.keys().next().value as string);
  }

  async function emit(event: KeyProviderEvent, failClosed: boolean): Promise<void> {
    if (!o.onEvent) return;
    try {
      await o.onEvent(event);
    } catch (err) {
      logger.error('master key: could not record key event', { action: event.action, reason: describeError(err) });
      if (failClosed)
        throw new KeyUnavailableError(
          `the ${event.action} event could not be recorded, so the fallback key is not used`,
          { cause: err },
        );
    }
  }

  async function refreshCurrent(): Promise<MasterKey> {
    const prev = current;
    const gen = generation;
    try {
      const key = await source.fetchCurrent();
      const now = clock.now();
      if (gen === generation) current = newEntry(key, now);
      remember(newEntry(key, now));
      if (fallbackActive)
        logger.warn('master key: Key Vault answers again; the fallback key is no longer used for new data', {
          keyId: source.keyId,
          version: key.version,
        });
      else if (failing)
        logger.info('master key: refresh succeeded again', { keyId: source.keyId, version: key.version });
      fallbackActive = false;
      failing = false;
      lastError = null;
      return gen === generation || !current ? key : current.key;
    } catch (err) {
      const reason = err instanceof KeyUnavailableError ? err.message : describeError(err);
      lastError = reason;
      const now = clock.now();
      if (prev && !fallbackActive && now < prev.hardExpiresAt) {
        prev.expiresAt = Math.min(now + retryMs, prev.hardExpiresAt);
        logger.warn('master key refresh failed; serving the cached key', {
          keyId: source.keyId,
          version: prev.key.version,
          reason,
          hardLimit: new Date(prev.hardExpiresAt).toISOString(),
        });
        if (!failing) {
          failing = true;
          await emit(
            {
              action: 'key.master.refresh_failed',
              severity: 'high',
              keyId: source.keyId,
              servedVersion: prev.key.version,
              servedSource: prev.key.source,
              reason,
            },
            false,
          );
        }
        return prev.key;
      }
      if (prev && !fallbackActive) {
        logger.error('master key: the cached key passed its hard limit and the source is still failing', {
          keyId: source.keyId,
          version: prev.key.version,
          reason,
        });
        current = null;
      }
      if (fallback?.hasCurrent) {
        const fk = await fallback.getCurrentKey();
        if (!fallbackActive) {
          logger.error('master key: Key Vault unavailable; falling back to FLEET_ENCRYPTION_KEY', {
            keyId: source.keyId,
            fallbackVersion: fk.version,
            reason,
          });
          await emit(
            {
              action: 'key.master.fallback',
              severity: 'high',
              keyId: source.keyId,
              servedVersion: fk.version,
              servedSource: fk.source,
              reason,
            },
            true,
          );
          fallbackActive = true;
        } else {
          logger.warn('master key: Key Vault still unavailable; staying on the fallback key', {
            keyId: source.keyId,
            reason,
          });
        }
        failing = true;
        current = { key: fk, fetchedAt: now, expiresAt: now + retryMs, hardExpiresAt: Number.POSITIVE_INFINITY };
        return fk;
      }
      current = null;
      throw err instanceof KeyUnavailableError ? err : new KeyUnavailableError(reason, { cause: err });
    }
  }

  async function fetchVersion(version: string, cached: Entry | undefined): Promise<MasterKey> {
    try {
      const key = await source.fetchVersion(version);
      remember(newEntry(key, clock.now()));
      missing.delete(version);
      return key;
    } catch (err) {
      const now = clock.now();
      if (err instanceof UnknownKeyVersionError) {
        versions.delete(version);
        missing.set(version, now + negativeTtlMs);
        while (missing.size > maxVersions) missing.delete(missing.keys().next().value as string);
        throw err;
      }
      const reason = err instanceof KeyUnavailableError ? err.message : describeError(err);
      if (cached && now < cached.hardExpiresAt) {
        cached.expiresAt = Math.min(now + retryMs, cached.hardExpiresAt);
        logger.warn('master key version refresh failed; serving the cached version', {
          keyId: source.keyId,
          version,
          reason,
        });
        return cached.key;
      }
      throw err instanceof KeyUnavailableError ? err : new KeyUnavailableError(reason, { cause: err });
    }
  }

  return {
    getCurrentKey() {
      const c = current;
      if (c && clock.now() < c.expiresAt) return Promise.resolve(c.key);
      return singleFlight('current', refreshCurrent);
    },
    peekCurrentKey() {
      const c = current;
      return c && clock.now() < c.expiresAt ? c.key : null;
    },
    peekKeyVersion(version) {
      const now = clock.now();
      const c = current;
      if (c && c.key.version === version && now < c.expiresAt) return c.key;
      const f = fallback?.peekKeyVersion?.(version);
      if (f) return f;
      const e = versions.get(version);
      return e && now < e.expiresAt ? e.key : null;
    },
    async getKeyVersion(version) {
      const now = clock.now();
      const c = current;
      if (c && c.key.version === version && now < c.expiresAt) return c.key;
      if (fallback?.hasVersion(version)) return fallback.getKeyVersion(version);
      if (!source.isPlausibleVersion(version)) throw new UnknownKeyVersionError(version);
      const e = versions.get(version);
      if (e && now < e.expiresAt) return e.key;
      const miss = missing.get(version);
      if (miss !== undefined && now < miss) throw new UnknownKeyVersionError(version);
      return singleFlight(`v:${version}`, () => fetchVersion(version, e));
    },
    rotate() {
      return singleFlight('rotate', async () => {
        const key = await source.createVersion();
        generation += 1;
        const now = clock.now();
        current = newEntry(key, now);
        remember(current);
        fallbackActive = false;
        failing = false;
        lastError = null;
        logger.info('master key rotated', { keyId: source.keyId, version: key.version });
        return key;
      });
    },
    async listVersions() {
      const currentVersion = current && !fallbackActive ? current.key.version : null;
      const remote = await source.listVersions();
      const out: KeyVersionInfo[] = remote.map((v) => ({ ...v, current: v.version === currentVersion }));
      if (fallback?.listVersions) {
        for (const v of await fallback.listVersions()) out.push({ ...v, current: fallbackActive && v.current });
      }
      return out;
    },
    status() {
      const c = current;
      return {
        source: c ? c.key.source : source.source,
        cachedUntil: c ? c.expiresAt : null,
        degraded: fallbackActive || failing,
        lastError,
      };
    },
  };
}
