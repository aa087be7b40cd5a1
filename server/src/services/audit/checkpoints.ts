/**
 * Signed checkpoints of each tenant's audit Merkle tree (CONTRACT.md §8, docs/AUDIT.md).
 *
 * Every AUDIT_CHECKPOINT_INTERVAL one instance (a cluster-wide advisory lock) looks for
 * tenants whose tree grew since their last checkpoint, or whose last checkpoint is an hour
 * old, and for each:
 *   1. reads the tree size and root from the stored subtree hashes (O(log n));
 *   2. signs the tlog-checkpoint body (Ed25519, signed-note);
 *   3. writes it write-once (If-None-Match: *) to the archive container as
 *      checkpoints/<tenant>/<size>, under an immutability policy when configured;
 *   4. then, in one transaction: the audit_checkpoints row and the `audit.checkpoint` SIEM
 *      event (outbox).
 * A crash between 3 and 4 leaves a published note for a size the database has no row for:
 * a true statement about the tree, which verification accepts (it checks every published
 * note against the tree); the next run publishes again. Nothing is ever recorded in the
 * database before its published copy exists.
 */
import { SecretClient, type SecretClientOptions } from '@azure/keyvault-secrets';
import type { Config } from '../../config';
import type { Pool, Queryable } from '../../db/pool';
import { discardClient, withClient, withTenant } from '../../db/transaction';
import type { Clock } from '../../lib/clock';
import type { Logger } from '../../lib/logger';
import { periodic } from '../../lib/periodic';
import type { BlobStore } from '../archive/blob-store';
import { storedRoot, storedTreeSize } from './merkle';
import {
  checkpointBody,
  checkpointKeyName,
  checkpointOrigin,
  createCheckpointSigner,
  parseEd25519PrivateKey,
  type CheckpointSigner,
} from './signed-note';
import { parseVerifierKey, type VerifierKey } from './note-verify';
import { withTenantSnapshot } from './service';
import { readPublishedNotes, verifyTrailIn, type TrailVerifyDeps, type TrailVerifyResult } from './tree-verify';
import type { VerifyOptions } from './chain';

/** "fleetchk": one checkpoint publisher at a time, cluster-wide. */
const CHECKPOINT_LOCK = '7308325827335103595';
const IDLE_REPUBLISH_MS = 3_600_000;
const TENANTS_PER_RUN = 1000;

export interface CheckpointRow {
  id: string;
  tenantId: string;
  treeSize: number;
  rootHash: Buffer;
  keyId: string;
  verifierKey: string;
  note: string;
  blobName: string | null;
  createdAt: Date;
}

/** Where the signing key comes from: one call per use; implementations cache. */
export interface CheckpointKeySource {
  readonly kind: 'azure-key-vault' | 'environment';
  current(): Promise<CheckpointSigner>;
}

export function environmentCheckpointKey(logName: string, pkcs8: string): CheckpointKeySource {
  const signer = createCheckpointSigner(checkpointKeyName(logName), parseEd25519PrivateKey(pkcs8));
  return { kind: 'environment', current: async () => signer };
}

export interface KeyVaultCheckpointKeyOptions {
  vaultUrl: string;
  secretName: string;
  logName: string;
  credential: ConstructorParameters<typeof SecretClient>[1];
  clientOptions?: SecretClientOptions;
  ttlMs: number;
  clock: Clock;
  timeoutMs?: number;
}

/**
 * The key as a Key Vault secret (PKCS#8, base64); its current version signs. Rotation: write a
 * new version (docs/AUDIT.md "Key rotation"); the cache picks it up within the TTL.
 */
export function keyVaultCheckpointKey(o: KeyVaultCheckpointKeyOptions): CheckpointKeySource {
  const client = new SecretClient(o.vaultUrl, o.credential, o.clientOptions);
  let cached: { signer: CheckpointSigner; until: number } | null = null;
  return {
    kind: 'azure-key-vault',
    async current() {
      if (cached && cached.until > o.clock.now()) return cached.signer;
      try {
        const secret = await client.getSecret(o.secretName, {
          abortSignal: AbortSignal.timeout(o.timeoutMs ?? 10_000),
        });
        if (typeof secret.value !== 'string') throw new Error('the secret has no value');
        const signer = createCheckpointSigner(checkpointKeyName(o.logName), parseEd25519PrivateKey(secret.value));
        cached = { signer, until: o.clock.now() + o.ttlMs };
        return signer;
      } catch (err) {
        if (cached) return cached.signer; // a vault outage does not stop publishing with the known key
        throw new Error(
          `the checkpoint key ${o.secretName} could not be read from Key Vault (${(err as Error).name})`,
          { cause: err },
        );
      }
    },
  };
}

const INSERT_CHECKPOINT = `
INSERT INTO audit_checkpoints (tenant_id, tree_size, root_hash, key_id, verifier_key, note, blob_name, created_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
RETURNING id::text`;

const CHECKPOINT_COLUMNS = `id::text AS id, tenant_id, tree_size::text AS tree_size, root_hash, key_id, verifier_key, note, blob_name, created_at`;
const SELECT_LATEST_CHECKPOINT = `SELECT ${CHECKPOINT_COLUMNS} FROM audit_checkpoints WHERE tenant_id = $1 ORDER BY id DESC LIMIT 1`;
const SELECT_CHECKPOINTS = `SELECT ${CHECKPOINT_COLUMNS} FROM audit_checkpoints WHERE tenant_id = $1 ORDER BY id`;
const SELECT_LEAF_IDS = `SELECT audit_id::text AS id FROM audit_chain WHERE tenant_id = $1 AND seq > $2 AND seq <= $3 ORDER BY seq`;
const SELECT_DUE = `SELECT tenant_id, size::text AS size FROM audit_checkpoints_due($1, $2::interval, $3)`;

interface RawCheckpoint {
  id: string;
  tenant_id: string;
  tree_size: string;
  root_hash: Buffer;
  key_id: string;
  verifier_key: string;
  note: string;
  blob_name: string | null;
  created_at: Date;
}
const toRow = (r: RawCheckpoint): CheckpointRow => ({
  id: r.id,
  tenantId: r.tenant_id,
  treeSize: Number(r.tree_size),
  rootHash: r.root_hash,
  keyId: r.key_id,
  verifierKey: r.verifier_key,
  note: r.note,
  blobName: r.blob_name,
  createdAt: r.created_at,
});

export async function latestCheckpoint(q: Queryable, tenantId: string): Promise<CheckpointRow | null> {
  const { rows } = await q.query<RawCheckpoint>(SELECT_LATEST_CHECKPOINT, [tenantId]);
  return rows[0] ? toRow(rows[0]) : null;
}

export async function listCheckpoints(q: Queryable, tenantId: string): Promise<CheckpointRow[]> {
  const { rows } = await q.query<RawCheckpoint>(SELECT_CHECKPOINTS, [tenantId]);
  return rows.map(toRow);
}

const checkpointBlobName = (tenantId: string, size: number): string =>
  `checkpoints/${encodeURIComponent(tenantId)}/${size}`;

export interface PublishResult {
  tenantId: string;
  treeSize: number;
  blob: 'created' | 'exists' | 'none';
}

export interface CheckpointSiemSink {
  (
    q: Queryable,
    e: {
      tenantId: string;
      treeSize: number;
      note: string;
      keyId: string;
      origin: string;
      blobName: string | null;
      at: Date;
    },
  ): Promise<void>;
}

export interface CheckpointServiceDeps {
  pool: Pool;
  logger: Logger;
  clock: Clock;
  config: Pick<Config, 'auditLog' | 'archive'>;
  key: CheckpointKeySource | null;
  blobStore: BlobStore | null;
  /** Forwards `audit.checkpoint` through the SIEM outbox (null: no SIEM configured). */
  siem: CheckpointSiemSink | null;
}

export interface CheckpointStatus {
  enabled: boolean;
  running: boolean;
  lastRunAt: Date | null;
  lastPublished: number;
  lastError: string | null;
}

export interface CheckpointService {
  readonly enabled: boolean;
  origin(tenantId: string): string;
  /** The current verifier key, then AUDIT_CHECKPOINT_TRUSTED_KEYS (GET /audit/checkpoint-key). */
  verifierKeys(): Promise<string[]>;
  latest(tenantId: string): Promise<CheckpointRow | null>;
  /** Publishes due checkpoints now (all tenants; or one tenant, due or not). null: another instance holds the lock. */
  publishNow(opts?: { tenantId?: string }): Promise<PublishResult[] | null>;
  /** The keys verification trusts: the current signing key and AUDIT_CHECKPOINT_TRUSTED_KEYS (never keys read from the database). */
  trustedKeys(): Promise<VerifierKey[]>;
  /** What verifyTrailIn needs for one tenant (reads the published copies); null when checkpoints are off. */
  trailDeps(tenantId: string): Promise<TrailVerifyDeps | null>;
  /** Chain + checkpoints + published copies of one tenant, in one snapshot (GET /audit/verify). */
  verifyTrail(tenantId: string, opts?: Pick<VerifyOptions, 'anchor'>): Promise<TrailVerifyResult>;
  start(): Promise<void>;
  stop(): Promise<void>;
  status(): CheckpointStatus;
}

/** Published copies read per tenant by verification (the newest, by size). */
export const PUBLISHED_NOTES_CHECKED = 20;

class CheckpointConflictError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CheckpointConflictError';
  }
}

export function createCheckpointService(deps: CheckpointServiceDeps): CheckpointService {
  const { pool, logger, clock, config } = deps;
  const logName = config.auditLog.name;
  const origin = (tenantId: string) => checkpointOrigin(logName, tenantId);
  const st: CheckpointStatus = {
    enabled: deps.key !== null,
    running: false,
    lastRunAt: null,
    lastPublished: 0,
    lastError: null,
  };

  async function publishTenant(signer: CheckpointSigner, tenantId: string): Promise<PublishResult | null> {
    const snapshot = await withTenant(pool, tenantId, async (c) => {
      const size = await storedTreeSize(c, tenantId);
      if (size === 0) return null;
      const prev = (await latestCheckpoint(c, tenantId))?.treeSize ?? 0;
      // The audit ids of the new leaves, in tree order: published beside the note so that an
      // auditor holding archived rows (id order) can put them in chain order (docs/AUDIT.md).
      const ids =
        deps.blobStore && size > prev
          ? (await c.query<{ id: string }>(SELECT_LEAF_IDS, [tenantId, prev, size])).rows.map((r) => r.id)
          : [];
      return { size, root: await storedRoot(c, tenantId, size), prev, ids };
    });
    if (!snapshot) return null;
    const note = signer.signBody(checkpointBody(origin(tenantId), snapshot.size, snapshot.root));
    const at = new Date(clock.now());
    let blob: PublishResult['blob'] = 'none';
    let blobName: string | null = null;
    const store = deps.blobStore;
    if (store) {
      blobName = checkpointBlobName(tenantId, snapshot.size);
      await store.ensureContainer();
      if (snapshot.ids.length > 0) {
        const order = `from ${snapshot.prev}\n${snapshot.ids.join('\n')}\n`;
        await store.putIfAbsent(
          `${blobName}.ids`,
          Buffer.from(order, 'utf8'),
          { origin: origin(tenantId), from: String(snapshot.prev), treesize: String(snapshot.size) },
          'text/plain; charset=utf-8',
        );
      }
      blob = await store.putIfAbsent(
        blobName,
        Buffer.from(note, 'utf8'),
        { origin: origin(tenantId), treesize: String(snapshot.size), keyid: signer.keyIdHex },
        'text/plain; charset=utf-8',
      );
      if (blob === 'exists') {
        // Published before (an earlier run, the hourly re-publication, or a crash before step 4):
        // it must state the same root, whoever signed it.
        const existing = await store.get(blobName);
        const text = existing?.content.toString('utf8') ?? '';
        const m = /^[^\n]*\n\d+\n([A-Za-z0-9+/=]+)\n/.exec(text);
        if (!m || m[1] !== snapshot.root.toString('base64')) {
          throw new CheckpointConflictError(
            `the published checkpoint ${blobName} states another root than the database's tree of that size: the stored tree differs from published history`,
          );
        }
      } else if (config.archive.immutabilityDays) {
        try {
          await store.setImmutability(blobName, new Date(clock.now() + config.archive.immutabilityDays * 86_400_000));
        } catch (err) {
          logger.warn('audit checkpoint: immutability policy not set (the blob is still write-once by name)', {
            blob: blobName,
            reason: (err as Error).message,
          });
        }
      }
    }
    await withTenant(pool, tenantId, async (c) => {
      await c.query(INSERT_CHECKPOINT, [
        tenantId,
        snapshot.size,
        snapshot.root,
        signer.keyIdHex,
        signer.verifierKey,
        note,
        blobName,
        at,
      ]);
      if (deps.siem)
        await deps.siem(c, {
          tenantId,
          treeSize: snapshot.size,
          note,
          keyId: signer.keyIdHex,
          origin: origin(tenantId),
          blobName,
          at,
        });
    });
    return { tenantId, treeSize: snapshot.size, blob };
  }

  async function runOnce(opts: { tenantId?: string } = {}): Promise<PublishResult[] | null> {
    const key = deps.key;
    if (!key) return [];
    // The lock is a session lock: it lives on this client, which withClient destroys instead of
    // pooling when its connection was lost (or the unlock failed), so no lock is left behind.
    return withClient(pool, async (lockClient) => {
      const onError = (err: Error) => logger.warn('audit checkpoint lock connection lost', { reason: err.message });
      lockClient.on('error', onError);
      let locked = false;
      try {
        const { rows } = await lockClient.query<{ ok: boolean }>('SELECT pg_try_advisory_lock($1::bigint) AS ok', [
          CHECKPOINT_LOCK,
        ]);
        locked = rows[0]?.ok === true;
        if (!locked) return null;
        const signer = await key.current();
        let tenants: string[];
        if (opts.tenantId) tenants = [opts.tenantId];
        else {
          const due = await pool.query<{ tenant_id: string }>(SELECT_DUE, [
            new Date(clock.now()),
            `${IDLE_REPUBLISH_MS / 1000} seconds`,
            TENANTS_PER_RUN,
          ]);
          tenants = due.rows.map((r) => r.tenant_id);
        }
        const out: PublishResult[] = [];
        for (const t of tenants) {
          try {
            const r = await publishTenant(signer, t);
            if (r) out.push(r);
          } catch (err) {
            if (err instanceof CheckpointConflictError)
              logger.error('audit checkpoint conflict', { tenantId: t, reason: err.message });
            throw err;
          }
        }
        st.lastPublished = out.length;
        return out;
      } finally {
        if (locked)
          await lockClient
            .query('SELECT pg_advisory_unlock($1::bigint)', [CHECKPOINT_LOCK])
            .catch(() => discardClient(lockClient));
        lockClient.off('error', onError);
        st.lastRunAt = new Date(clock.now());
      }
    });
  }

  const loop = periodic(
    async () => {
      await runOnce();
      st.lastError = null;
    },
    {
      intervalMs: config.auditLog.checkpointIntervalMs,
      onError: (err) => {
        const message = (err as Error).message;
        if (st.lastError !== message) logger.error('audit checkpoint run failed', { reason: message });
        st.lastError = message;
      },
    },
  );

  /** The current verifier key, then AUDIT_CHECKPOINT_TRUSTED_KEYS, without repeats. */
  async function verifierKeys(): Promise<string[]> {
    const texts = [...config.auditLog.trustedKeys];
    if (deps.key) texts.unshift((await deps.key.current()).verifierKey);
    return [...new Set(texts)];
  }

  async function trustedKeys(): Promise<VerifierKey[]> {
    return (await verifierKeys()).map(parseVerifierKey);
  }

  async function trailDeps(tenantId: string): Promise<TrailVerifyDeps | null> {
    if (!deps.key) return null;
    const published = deps.blobStore
      ? await readPublishedNotes(deps.blobStore, tenantId, PUBLISHED_NOTES_CHECKED)
      : null;
    return { keys: await trustedKeys(), origin: origin(tenantId), published };
  }

  return {
    enabled: deps.key !== null,
    origin,
    trustedKeys,
    trailDeps,
    async verifyTrail(tenantId, opts = {}) {
      const td = await trailDeps(tenantId);
      return withTenantSnapshot(pool, tenantId, (c) => verifyTrailIn(c, tenantId, td, opts));
    },
    verifierKeys,
    latest(tenantId) {
      return withTenant(pool, tenantId, (c) => latestCheckpoint(c, tenantId));
    },
    publishNow(opts) {
      return runOnce(opts);
    },
    async start() {
      if (!deps.key || st.running) return;
      st.running = true;
      loop.start();
    },
    async stop() {
      st.running = false;
      await loop.stop();
    },
    status() {
      return { ...st };
    },
  };
}
