/**
 * What the signed checkpoints catch (CONTRACT.md §8, docs/AUDIT.md "Trust model"), with the
 * archive container on Azurite and a database of its own:
 *   - a rewrite by the database owner (triggers disabled, row changed, chain and tree
 *     recomputed, even the checkpoint rows deleted) is caught by the published copies;
 *   - the newest rows removed (truncation) is caught;
 *   - a crash between publishing and recording leaves nothing verification trips over.
 */
import { generateKeyPairSync } from 'node:crypto';
import type pg from 'pg';
import request from 'supertest';
import { BlobServiceClient } from '@azure/storage-blob';
import { createBlobStore } from '../../src/services/archive/blob-store';
import { createCheckpointService, environmentCheckpointKey } from '../../src/services/audit/checkpoints';
import { leafHash, nodeHash } from '../../src/services/audit/merkle';
import { buildTestApp, type TestApp } from '../helpers/app';
import { loginAs } from '../helpers/auth';
import { testEnv, uniqueTenant } from '../helpers/env';
import { createIsolatedDatabase, type IsolatedDatabase } from '../siem/helpers/db';
import { startAzurite, type Azurite } from '../siem/helpers/azurite';
import { sealAll } from './helpers';
import { loadConfig } from '../../src/config';

const CONTAINER = 'audit-checkpoints-test';
const KEY = generateKeyPairSync('ed25519').privateKey.export({ format: 'der', type: 'pkcs8' }).toString('base64');

let db: IsolatedDatabase;
let az: Azurite;
let t: TestApp;
let env: Record<string, string>;

beforeAll(async () => {
  db = await createIsolatedDatabase('cpverify');
  az = await startAzurite();
  env = { DATABASE_URL: db.url, AZURE_STORAGE_CONNECTION_STRING: az.connectionString, AUDIT_ARCHIVE_CONTAINER: CONTAINER, AUDIT_CHECKPOINT_SIGNING_KEY: KEY, AUDIT_LOG_NAME: 'jest' };
  t = await buildTestApp({ env });
}, 60_000);
afterAll(async () => {
  await t?.close();
  await az?.stop();
  await db?.drop();
});

const TRIGGERS: Array<[string, string]> = [
  ['audit_logs', 'audit_logs_refuse_update_delete'],
  ['audit_logs', 'audit_logs_refuse_update_delete_stmt'],
  ['audit_chain', 'audit_chain_refuse_update_delete'],
  ['audit_chain', 'audit_chain_refuse_update_delete_stmt'],
  ['audit_merkle', 'audit_merkle_refuse_update_delete'],
  ['audit_merkle', 'audit_merkle_refuse_update_delete_stmt'],
  ['audit_checkpoints', 'audit_checkpoints_refuse_update_delete'],
  ['audit_checkpoints', 'audit_checkpoints_refuse_update_delete_stmt'],
];

/** What a database owner can do: every append-only trigger off, inside one transaction. */
async function asOwner(fn: (c: pg.PoolClient) => Promise<void>): Promise<void> {
  const c = await db.owner.connect();
  try {
    await c.query('BEGIN');
    for (const [table, trig] of TRIGGERS) await c.query(`ALTER TABLE ${table} DISABLE TRIGGER ${trig}`);
    await fn(c);
    for (const [table, trig] of TRIGGERS) await c.query(`ALTER TABLE ${table} ENABLE ALWAYS TRIGGER ${trig}`);
    await c.query('COMMIT');
  } catch (err) {
    await c.query('ROLLBACK');
    throw err;
  } finally {
    c.release();
  }
}

/** Recomputes a tenant's chain from seq `from` on and its whole Merkle storage, as an owner covering tracks would. */
async function recomputeChainAndTree(c: pg.PoolClient, tenant: string, from: number): Promise<void> {
  const { rows } = await c.query<{ seq: string; audit_id: string }>('SELECT seq::text, audit_id::text FROM audit_chain WHERE tenant_id = $1 ORDER BY seq', [tenant]);
  for (const r of rows) {
    if (Number(r.seq) < from) continue;
    await c.query(
      `UPDATE audit_chain c SET prev_hash = p.row_hash, row_hash = audit_row_hash(l, c.seq, p.row_hash)
         FROM audit_logs l, audit_chain p
        WHERE c.tenant_id = $1 AND c.seq = $2 AND l.id = c.audit_id AND p.tenant_id = $1 AND p.seq = $2 - 1`,
      [tenant, r.seq],
    );
  }
  const hashes = (await c.query<{ row_hash: Buffer }>('SELECT row_hash FROM audit_chain WHERE tenant_id = $1 ORDER BY seq', [tenant])).rows.map((r) => r.row_hash);
  await c.query('DELETE FROM audit_merkle WHERE tenant_id = $1', [tenant]);
  const frontier: Array<Buffer | undefined> = [];
  for (const [i, rh] of hashes.entries()) {
    let node = leafHash(rh);
    const parts = [node];
    let level = 0;
    while (Math.floor(i / 2 ** level) % 2 === 1) {
      node = nodeHash(frontier[level] as Buffer, node);
      parts.push(node);
      frontier[level] = undefined;
      level += 1;
    }
    frontier[level] = node;
    await c.query('INSERT INTO audit_merkle (tenant_id, leaf, hashes) VALUES ($1, $2, $3)', [tenant, i, Buffer.concat(parts)]);
  }
}

async function tenantWithCheckpoint(n: number) {
  const tenantId = uniqueTenant('cpv');
  const admin = await loginAs(t, { role: 'admin', tenantId });
  for (let i = 0; i < n; i += 1) await t.composition.services.audit.record({ tenantId, action: 'doc.changed', resourceType: 'doc', resourceId: `d${i}` });
  await sealAll(db.owner);
  await t.composition.services.checkpoints.publishNow({ tenantId });
  return admin;
}

const verify = (authorization: string) => request(t.app).get('/api/v1/security/audit/verify').set('Authorization', authorization);

describe('verification against signed checkpoints', () => {
  it('when nothing was touched, then verify is valid and reports the checkpoints it checked, including the published copy', async () => {
    const admin = await tenantWithCheckpoint(6);
    const res = await verify(admin.authorization);
    expect(res.status).toBe(200);
    expect(res.body.valid).toBe(true);
    expect(res.body.checkpoints).toMatchObject({ problem: null, published: 1, publishedChecked: 1 });
    expect(res.body.checkpoints.checked).toBeGreaterThanOrEqual(2);
    const raw = BlobServiceClient.fromConnectionString(az.connectionString).getContainerClient(CONTAINER);
    const names: string[] = [];
    for await (const b of raw.listBlobsFlat({ prefix: `checkpoints/${admin.tenantId}/` })) names.push(b.name);
    expect(names.some((n) => /\/\d+$/.test(n))).toBe(true);
    expect(names.some((n) => /\/\d+\.ids$/.test(n))).toBe(true);
  });

  it('when the owner rewrites a row, recomputes the chain and the tree, and deletes the checkpoint rows, then the chain alone looks intact but the published copy catches it', async () => {
    const admin = await tenantWithCheckpoint(8);
    const tenant = admin.tenantId;
    await asOwner(async (c) => {
      const { rows } = await c.query<{ audit_id: string }>('SELECT audit_id::text FROM audit_chain WHERE tenant_id = $1 AND seq = 3', [tenant]);
      await c.query("UPDATE audit_logs SET resource_id = 'forged' WHERE id = $1", [rows[0]?.audit_id]);
      await recomputeChainAndTree(c, tenant, 3);
      await c.query('DELETE FROM audit_checkpoints WHERE tenant_id = $1', [tenant]);
    });
    const chainOnly = await t.composition.services.audit.verify(tenant);
    expect(chainOnly.valid).toBe(true); // the keyless chain cannot see it
    const res = await verify(admin.authorization);
    expect(res.body.valid).toBe(false);
    expect(res.body.reason).toMatch(/published checkpoint .* history was rewritten/);
  });

  it('when the owner rewrites a row but leaves the checkpoint rows, then the stored checkpoint catches it too', async () => {
    const admin = await tenantWithCheckpoint(5);
    await asOwner(async (c) => {
      const { rows } = await c.query<{ audit_id: string }>('SELECT audit_id::text FROM audit_chain WHERE tenant_id = $1 AND seq = 2', [admin.tenantId]);
      await c.query("UPDATE audit_logs SET action = 'doc.viewed' WHERE id = $1", [rows[0]?.audit_id]);
      await recomputeChainAndTree(c, admin.tenantId, 2);
    });
    const r = await t.composition.services.checkpoints.verifyTrail(admin.tenantId);
    expect(r.valid).toBe(false);
    expect(r.reason).toMatch(/history was rewritten/);
  });

  it('when the newest rows are removed with their chain entries and tree leaves, then verify reports entries removed from the end', async () => {
    const admin = await tenantWithCheckpoint(9);
    const tenant = admin.tenantId;
    await asOwner(async (c) => {
      const ids = (await c.query<{ audit_id: string }>('SELECT audit_id::text FROM audit_chain WHERE tenant_id = $1 AND seq > 6', [tenant])).rows.map((r) => r.audit_id);
      await c.query('DELETE FROM audit_chain WHERE tenant_id = $1 AND seq > 6', [tenant]);
      await c.query('DELETE FROM audit_logs WHERE id = ANY($1::bigint[])', [ids]);
      await c.query('DELETE FROM audit_merkle WHERE tenant_id = $1 AND leaf >= 6', [tenant]);
      await c.query('DELETE FROM audit_checkpoints WHERE tenant_id = $1', [tenant]);
    });
    const r = await t.composition.services.checkpoints.verifyTrail(tenant);
    expect(r.valid).toBe(false);
    expect(r.reason).toMatch(/removed from the end/);
  });

  it('when publishing crashes after the blob was written and before the database row, then verification is still valid and the next run records it', async () => {
    const tenantId = uniqueTenant('cpv-crash');
    for (let i = 0; i < 4; i += 1) await t.composition.services.audit.record({ tenantId, action: 'doc.changed', resourceType: 'doc', resourceId: `c${i}` });
    await sealAll(db.owner);
    const config = loadConfig(testEnv(env)).config;
    if (!config) throw new Error('config');
    const crashing = createCheckpointService({
      pool: t.composition.pool,
      logger: t.composition.logger,
      clock: t.clock,
      config,
      key: environmentCheckpointKey('jest', KEY),
      blobStore: createBlobStore(config.archive),
      siem: async () => {
        throw new Error('simulated crash');
      },
    });
    await expect(crashing.publishNow({ tenantId })).rejects.toThrow(/simulated crash/);
    expect((await db.owner.query('SELECT count(*)::int AS n FROM audit_checkpoints WHERE tenant_id = $1', [tenantId])).rows[0].n).toBe(0);
    const r1 = await t.composition.services.checkpoints.verifyTrail(tenantId);
    expect(r1.valid).toBe(true);
    expect(r1.checkpoints?.publishedChecked).toBe(1);
    await t.composition.services.checkpoints.publishNow({ tenantId });
    expect((await db.owner.query('SELECT count(*)::int AS n FROM audit_checkpoints WHERE tenant_id = $1', [tenantId])).rows[0].n).toBe(1);
    expect((await t.composition.services.checkpoints.verifyTrail(tenantId)).valid).toBe(true);
  });

  it('when the database tree was rewritten, then publishing refuses to contradict an earlier published copy', async () => {
    const admin = await tenantWithCheckpoint(4);
    await asOwner(async (c) => {
      const { rows } = await c.query<{ audit_id: string }>('SELECT audit_id::text FROM audit_chain WHERE tenant_id = $1 AND seq = 2', [admin.tenantId]);
      await c.query("UPDATE audit_logs SET resource_id = 'x' WHERE id = $1", [rows[0]?.audit_id]);
      await recomputeChainAndTree(c, admin.tenantId, 2);
      await c.query('DELETE FROM audit_checkpoints WHERE tenant_id = $1', [admin.tenantId]);
    });
    await expect(t.composition.services.checkpoints.publishNow({ tenantId: admin.tenantId })).rejects.toThrow(/another root/);
  });
});
