import type { KeySource, MasterKey } from '../master-key';

export interface KeyVersionInfo {
  version: string;
  source: KeySource;
  enabled: boolean;
  createdAt: Date | null;
  current: boolean;
}

export interface KeyProviderStatus {
  /** Where the current key comes from right now (environment while falling back). */
  source: KeySource;
  /** When the cached current key is next re-read from its source (epoch ms), null when not cached. */
  cachedUntil: number | null;
  /** true while serving a stale key through a refresh failure or the fallback key. */
  degraded: boolean;
  lastError: string | null;
}

/**
 * Where master keys come from. Implementations: staticKeyProvider (tests, embedding),
 * environmentKeyProvider (FLEET_ENCRYPTION_KEY), createCachedKeyProvider (Key Vault with
 * cache, single flight, stale-on-error and environment fallback).
 */
export interface MasterKeyProvider {
  /** The key new data is encrypted under. */
  getCurrentKey(): Promise<MasterKey>;
  /** The current key when it is cached and fresh (no I/O), else null. Optional fast path. */
  peekCurrentKey?(): MasterKey | null;
  /** A given version, for decryption. Rejects with UnknownKeyVersionError when it does not exist. */
  getKeyVersion(version: string): Promise<MasterKey>;
  /** That version when it is held in memory and fresh (no I/O), else null. Optional fast path. */
  peekKeyVersion?(version: string): MasterKey | null;
  /** Creates a new version and makes it current. Rejects with RotationNotSupportedError where impossible. */
  rotate?(): Promise<MasterKey>;
  listVersions?(): Promise<KeyVersionInfo[]>;
  status?(): KeyProviderStatus;
}

/** A raw key source behind the cache (Key Vault). Every call goes to the source. */
export interface RemoteKeySource {
  readonly source: KeySource;
  readonly keyId: string;
  /** Cheap syntactic check, so impossible versions never cause a network call. */
  isPlausibleVersion(version: string): boolean;
  fetchCurrent(): Promise<MasterKey>;
  /** Rejects with UnknownKeyVersionError for a missing or disabled version. */
  fetchVersion(version: string): Promise<MasterKey>;
  createVersion(): Promise<MasterKey>;
  listVersions(): Promise<Array<Omit<KeyVersionInfo, 'current'>>>;
}

export type KeyProviderEventAction = 'key.master.refresh_failed' | 'key.master.fallback';

export interface KeyProviderEvent {
  action: KeyProviderEventAction;
  severity: 'high';
  keyId: string;
  /** Version served instead (the stale cached one, or the fallback key's). */
  servedVersion: string;
  servedSource: KeySource;
  reason: string;
}

/** Receives key events (the composition root writes them to the audit trail). */
export type KeyEventSink = (event: KeyProviderEvent) => Promise<void>;
