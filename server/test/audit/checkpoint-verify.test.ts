/**
 * What the signed checkpoints catch (CONTRACT.md §8, docs/AUDIT.md "Trust model"), with the
 * archive container on Azurite and a database of its own:
 *   - a rewrite by the database owner (triggers disabled, row changed, chain and tree
 *     recomputed, even the checkpoint rows deleted) is caught by the published copies;
 *   - the newest rows removed (truncation) is caught;
 *   - a crash between publishing and recording leaves nothing verification trips over.
 */
import { execFile } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type pg from 'pg';
import request from 'supertest';
import { BlobServiceClient } from '@azure/storage-blob';
import { createBlobStore } from '../../src/services/archive/blob-store';
import { createCheckpointService, environmentCheckpointKey } from '../../src/services/audit/checkpoints';
import { leafHash, nodeHash } from '../../src/services/audit/merkle';
import { createCheckpointSigner, parseEd25519PrivateKey } from '../../src/services/audit/signed-note';
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
  env = {
    DATABASE_URL: db.url,
    AZURE_STORAGE_CONNECTION_STRING: az.connectionString,
    AUDIT_ARCHIVE_CONTAINER: CONTAINER,
    AUDIT_CHECKPOINT_SIGNING_KEY: KEY,
    AUDIT_LOG_NAME: 'jest',
  };
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
  const { rows } = await c.query<{ seq: string; audit_id: string }>(
    'SELECT seq::text, audit_id::text FROM audit_chain WHERE tenant_id = $1 ORDER BY seq',
    [tenant],
  );
  for (const r of rows) {
    if (Number(r.seq) < from) continue;
    await c.query(
      `UPDATE audit_chain c SET prev_hash = p.row_hash, row_hash = audit_row_hash(l, c.seq, p.row_hash)
         FROM audit_logs l, audit_chain p
        WHERE c.tenant_id = $1 AND c.seq = $2 AND l.id = c.audit_id AND p.tenant_id = $1 AND p.seq = $2 - 1`,
      [tenant, r.seq],
    );
  }
  const hashes = (
    await c.query<{ row_hash: Buffer }>('SELECT row_hash FROM audit_chain WHERE tenant_id = $1 ORDER BY seq', [tenant])
  ).rows.map((r) => r.row_hash);
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
    await c.query('INSERT INTO audit_merkle (tenant_id, leaf, hashes) VALUES ($1, $2, $3)', [
      tenant,
      i,
      Buffer.concat(parts),
    ]);
  }
}

async function tenantWithCheckpoint(n: number) {
  const tenantId = uniqueTenant('cpv');
  const admin = await loginAs(t, { role: 'admin', tenantId });
  for (let i = 0; i < n; i += 1)
    await t.composition.services.audit.record({
      tenantId,
      action: 'doc.changed',
      resourceType: 'doc',
      resourceId: `d${i}`,
    });
  await sealAll(db.owner);
  await t.composition.services.checkpoints.publishNow({ tenantId });
  return admin;
}

const verify = (authorization: string) =>
  request(t.app).get('/api/v1/security/audit/verify').set('Authorization', authorization);

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
      const { rows } = await c.query<{ audit_id: string }>(
        'SELECT audit_id::text FROM audit_chain WHERE tenant_id = $1 AND seq = 3',
        [tenant],
      );
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
      const { rows } = await c.query<{ audit_id: string }>(
        'SELECT audit_id::text FROM audit_chain WHERE tenant_id = $1 AND seq = 2',
        [admin.tenantId],
      );
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
      const ids = (
        await c.query<{ audit_id: string }>('SELECT audit_id::text FROM audit_chain WHERE tenant_id = $1 AND seq > 6', [
          tenant,
        ])
      ).rows.map((r) => r.audit_id);
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
    for (let i = 0; i < 4; i += 1)
      await t.composition.services.audit.record({
        tenantId,
        action: 'doc.changed',
        resourceType: 'doc',
        resourceId: `c${i}`,
      });
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
    expect(
      (await db.owner.query('SELECT count(*)::int AS n FROM audit_checkpoints WHERE tenant_id = $1', [tenantId]))
        .rows[0].n,
    ).toBe(0);
    const r1 = await t.composition.services.checkpoints.verifyTrail(tenantId);
    expect(r1.valid).toBe(true);
    expect(r1.checkpoints?.publishedChecked).toBe(1);
    await t.composition.services.checkpoints.publishNow({ tenantId });
    expect(
      (await db.owner.query('SELECT count(*)::int AS n FROM audit_checkpoints WHERE tenant_id = $1', [tenantId]))
        .rows[0].n,
    ).toBe(1);
    expect((await t.composition.services.checkpoints.verifyTrail(tenantId)).valid).toBe(true);
  });

  it('when the database tree was rewritten, then publishing refuses to contradict an earlier published copy', async () => {
    const admin = await tenantWithCheckpoint(4);
    await asOwner(async (c) => {
      const { rows } = await c.query<{ audit_id: string }>(
        'SELECT audit_id::text FROM audit_chain WHERE tenant_id = $1 AND seq = 2',
        [admin.tenantId],
      );
      await c.query("UPDATE audit_logs SET resource_id = 'x' WHERE id = $1", [rows[0]?.audit_id]);
      await recomputeChainAndTree(c, admin.tenantId, 2);
      await c.query('DELETE FROM audit_checkpoints WHERE tenant_id = $1', [admin.tenantId]);
    });
    await expect(t.composition.services.checkpoints.publishNow({ tenantId: admin.tenantId })).rejects.toThrow(
      /another root/,
    );
  });
});

const ROOT = path.resolve(__dirname, '../../..');
const TSX = path.join(ROOT, 'node_modules/.bin/tsx');
const OFFLINE = path.join(ROOT, 'server/src/cli/audit-verify-offline.ts');

function runOffline(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      TSX,
      [OFFLINE, ...args],
      { cwd: ROOT, timeout: 60_000, env: { PATH: process.env.PATH ?? '', HOME: os.tmpdir() } },
      (err, stdout, stderr) => resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
  });
}

/** Downloads every blob under prefix into dir, keeping the names as paths. */
async function download(prefix: string, dir: string): Promise<string[]> {
  const c = BlobServiceClient.fromConnectionString(az.connectionString).getContainerClient(CONTAINER);
  const names: string[] = [];
  for await (const b of c.listBlobsFlat({ prefix })) {
    const file = path.join(dir, b.name);
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(file, await c.getBlockBlobClient(b.name).downloadToBuffer());
    names.push(file);
  }
  return names;
}

describe('npm run audit:verify-offline on a real archive export', () => {
  let dir: string;
  let tenantId: string;
  let keyFile: string;
  let rowsFile: string;

  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fleet-offline-'));
    tenantId = uniqueTenant('offline');
    const audit = t.composition.services.audit;
    const write = async (n: number, from: number) => {
      for (let i = from; i < from + n; i += 1) {
        await audit.record({
          tenantId,
          userId: '00000000-0000-4000-8000-00000000000a',
          action: 'doc.changed',
          resourceType: 'doc',
          resourceId: `doc-${i}`,
          before: { title: `old ${i}`, tags: ['a', 'b'], nested: { n: i, s: 'é "q"' } },
          after: { title: `new ${i}` },
          ipAddress: i % 2 ? '203.0.113.7' : '2001:db8::1',
          userAgent: 'jest/1.0',
          requestId: `req-${i}`,
          severity: 'medium',
        });
      }
      await sealAll(db.owner);
      await t.composition.services.checkpoints.publishNow({ tenantId });
    };
    await write(9, 0);
    await write(4, 9);
    const exp = await t.composition.services.monitoring.archive.exportTenant(tenantId);
    expect(exp).toBeTruthy();
    const rowBlobs = await download(`audit/${tenantId}/`, dir);
    await download(`checkpoints/${tenantId}/`, dir);
    expect(rowBlobs.length).toBeGreaterThan(0);
    rowsFile = path.join(dir, 'rows.ndjson');
    fs.writeFileSync(rowsFile, Buffer.concat(rowBlobs.map((f) => fs.readFileSync(f))));
    keyFile = path.join(dir, 'key.txt');
    fs.writeFileSync(keyFile, (await request(t.app).get('/api/v1/security/audit/checkpoint-key')).text);
  }, 60_000);
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('when the archive and the published checkpoints are intact, then it verifies every signed tree and exits 0', async () => {
    const r = await runOffline(['--key', keyFile, '--checkpoints', path.join(dir, 'checkpoints'), '--rows', rowsFile]);
    expect(r.stdout).toMatch(/2 of 2 signed checkpoint\(s\) rebuilt/);
    expect(r.stdout).toMatch(/audit log verified offline/);
    expect(r.code).toBe(0);
  });

  it('when the rows are shuffled, then the published leaf order still puts them in chain order', async () => {
    const shuffled = path.join(dir, 'shuffled.ndjson');
    const lines = fs.readFileSync(rowsFile, 'utf8').trim().split('\n').reverse();
    fs.writeFileSync(shuffled, `${lines.join('\n')}\n`);
    const r = await runOffline([
      '--key',
      keyFile,
      '--checkpoints',
      path.join(dir, 'checkpoints'),
      '--rows',
      shuffled,
      '--json',
    ]);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout).ok).toBe(true);
  });

  it('when one archived row was altered, then it fails naming the signed tree it no longer rebuilds, exit 1', async () => {
    const altered = path.join(dir, 'altered.ndjson');
    fs.writeFileSync(altered, fs.readFileSync(rowsFile, 'utf8').replace('"doc-4"', '"doc-X"'));
    const r = await runOffline(['--key', keyFile, '--checkpoints', path.join(dir, 'checkpoints'), '--rows', altered]);
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/VERIFICATION FAILED: .*do not rebuild the tree signed in/);
  });

  it('when a row is missing, then it fails', async () => {
    const missing = path.join(dir, 'missing.ndjson');
    fs.writeFileSync(
      missing,
      fs
        .readFileSync(rowsFile, 'utf8')
        .split('\n')
        .filter((l) => !l.includes('"doc-2"'))
        .join('\n'),
    );
    const r = await runOffline(['--key', keyFile, '--checkpoints', path.join(dir, 'checkpoints'), '--rows', missing]);
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/not in the archived rows/);
  });

  it('when no rows, or rows that reach none of the signed trees, are given, then it fails rather than report verified', async () => {
    const cps = path.join(dir, 'checkpoints');
    const emptyDir = fs.mkdtempSync(path.join(dir, 'no-rows-'));
    fs.writeFileSync(path.join(emptyDir, 'manifest.json'), '{}');
    const none = await runOffline(['--key', keyFile, '--checkpoints', cps, '--rows', emptyDir]);
    expect(none.code).toBe(2);
    expect(none.stderr).toMatch(/no archived rows/);

    const emptyFile = path.join(emptyDir, 'empty.ndjson');
    fs.writeFileSync(emptyFile, '');
    const empty = await runOffline(['--key', keyFile, '--checkpoints', cps, '--rows', emptyFile, '--json']);
    expect(empty.code).toBe(1);
    expect(JSON.parse(empty.stdout)).toMatchObject({
      ok: false,
      failure: expect.stringMatching(/not in the archived rows/),
    });

    // Without the published leaf order (.ids files) the rows are taken in id order: an empty or
    // too short export reaches no signed tree, which is a failure too, not "verified".
    const notesOnly = path.join(dir, 'notes-only');
    fs.cpSync(cps, notesOnly, { recursive: true, filter: (src) => !src.endsWith('.ids') });
    for (const rows of [emptyFile, rowsFile]) {
      const short = path.join(emptyDir, 'short.ndjson');
      fs.writeFileSync(short, rows === emptyFile ? '' : `${fs.readFileSync(rows, 'utf8').split('\n')[0]}\n`);
      const r = await runOffline(['--key', keyFile, '--checkpoints', notesOnly, '--rows', short]);
      expect(r.code).toBe(1);
      expect(r.stdout).toMatch(
        /VERIFICATION FAILED: .*reach none of its 2 signed non-empty checkpoint\(s\).*missing or incomplete/,
      );
      expect(r.stdout).not.toMatch(/audit log verified offline/);
    }
    const intact = await runOffline(['--key', keyFile, '--checkpoints', notesOnly, '--rows', rowsFile]);
    expect(intact.code).toBe(0);
  });

  it('when the key is another one, or a note was edited, then it fails; bad usage exits 2', async () => {
    const other = createCheckpointServiceKey();
    const r1 = await runOffline(['--key', other, '--checkpoints', path.join(dir, 'checkpoints'), '--rows', rowsFile]);
    expect(r1.code).toBe(1);
    expect(r1.stdout).toMatch(/no signature by a known key/);
    const edited = path.join(dir, 'edited');
    fs.cpSync(path.join(dir, 'checkpoints'), edited, { recursive: true });
    const noteFile = fs.readdirSync(path.join(edited, tenantId)).find((n) => /^\d+$/.test(n)) as string;
    const p = path.join(edited, tenantId, noteFile);
    fs.writeFileSync(p, fs.readFileSync(p, 'utf8').replace(`/${tenantId}\n`, `/${tenantId}x\n`));
    const r2 = await runOffline(['--key', keyFile, '--checkpoints', edited, '--rows', rowsFile]);
    expect(r2.code).toBe(1);
    expect(r2.stdout).toMatch(/does not verify/);
    expect((await runOffline(['--checkpoints', edited])).code).toBe(2);
    const twice = await runOffline([
      '--key',
      keyFile,
      '--checkpoints',
      '/nonexistent',
      '--checkpoints',
      edited,
      '--rows',
      rowsFile,
    ]);
    expect(twice.code).toBe(2);
    expect(twice.stderr).toMatch(/--checkpoints given more than once/);
    expect((await runOffline(['--key', 'nonsense', '--checkpoints', edited, '--rows', rowsFile])).code).toBe(2);
  });
});

function createCheckpointServiceKey(): string {
  const priv = generateKeyPairSync('ed25519').privateKey.export({ format: 'der', type: 'pkcs8' }).toString('base64');
  return createCheckpointSigner('fleet-security-api/jest', parseEd25519PrivateKey(priv)).verifierKey;
}
