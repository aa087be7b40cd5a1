/**
 * Signed checkpoints and proofs over HTTP (CONTRACT.md §8): GET /audit/checkpoint,
 * /audit/checkpoint-key, /audit/proof/inclusion, /audit/proof/consistency — checked with the
 * independent verifiers, and hostile input answered in the contract's error shape.
 */
import { generateKeyPairSync } from 'node:crypto';
import type pg from 'pg';
import request from 'supertest';
import { merkleLeaf, verifyConsistency, verifyInclusion } from '../../src/services/audit/merkle-verify';
import { parseVerifierKey, verifyCheckpointNote } from '../../src/services/audit/note-verify';
import { buildTestApp, type TestApp } from '../helpers/app';
import { createIsolatedDatabase, type IsolatedDatabase } from '../siem/helpers/db';
import { loginAs, type TestLogin } from '../helpers/auth';
import { uniqueTenant } from '../helpers/env';
import { sealAll } from './helpers';

const BASE = '/api/v1/security/audit';
export const newCheckpointKey = (): string =>
  generateKeyPairSync('ed25519').privateKey.export({ format: 'der', type: 'pkcs8' }).toString('base64');

let t: TestApp;
let owner: pg.Pool;
let db: IsolatedDatabase;

// A database of its own: the checkpoints signed here with a throw-away key must not meet
// other files' verification runs.
beforeAll(async () => {
  db = await createIsolatedDatabase('checkpoints');
  t = await buildTestApp({
    env: { DATABASE_URL: db.url, AUDIT_CHECKPOINT_SIGNING_KEY: newCheckpointKey(), AUDIT_LOG_NAME: 'jest' },
  });
  owner = db.owner;
}, 60_000);
afterAll(async () => {
  await t?.close();
  await db?.drop();
});

async function write(tenantId: string, n: number): Promise<string[]> {
  const ids: string[] = [];
  for (let i = 0; i < n; i += 1)
    ids.push(
      (
        await t.composition.services.audit.record({
          tenantId,
          action: 'doc.changed',
          resourceType: 'doc',
          resourceId: String(i),
        })
      ).id,
    );
  await sealAll(owner);
  return ids;
}

function expectError(res: request.Response, status: number, code: string): void {
  expect(res.status).toBe(status);
  expect(res.body).toMatchObject({ success: false, error: { code } });
  expect(typeof res.body.requestId).toBe('string');
}

describe('signed checkpoints and proofs', () => {
  let admin: TestLogin;
  let ids: string[];

  beforeAll(async () => {
    const tenantId = uniqueTenant('cp');
    admin = await loginAs(t, { role: 'admin', tenantId });
    ids = await write(tenantId, 7);
  });

  it('when a checkpoint is published, then GET /audit/checkpoint serves the note, which verifies with the key from GET /audit/checkpoint-key and names this tenant', async () => {
    const published = await t.composition.services.checkpoints.publishNow({ tenantId: admin.tenantId });
    expect(published?.[0]?.treeSize).toBeGreaterThanOrEqual(7);
    const keyRes = await request(t.app).get(`${BASE}/checkpoint-key`);
    expect(keyRes.status).toBe(200);
    expect(keyRes.headers['content-type']).toMatch(/^text\/plain/);
    const keyLine = keyRes.text.trim().split('\n')[0] as string;
    expect(keyLine).toMatch(/^fleet-security-api\/jest\+[0-9a-f]{8}\+[A-Za-z0-9+/]+=*$/);
    const res = await request(t.app).get(`${BASE}/checkpoint`).set('Authorization', admin.authorization);
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toMatch(/^text\/plain/);
    const cp = verifyCheckpointNote(res.text, [parseVerifierKey(keyLine)], `fleet-security-api/jest/${admin.tenantId}`);
    expect(cp.size).toBe(published?.[0]?.treeSize);
    expect(res.text).toMatch(
      new RegExp(
        `^fleet-security-api/jest/${admin.tenantId}\\n${cp.size}\\n[A-Za-z0-9+/]{43}=\\n\\n\u2014 fleet-security-api/jest [A-Za-z0-9+/]+=*\\n$`,
      ),
    );
  });

  it('when inclusion proofs are asked for each row at the checkpoint, then each verifies against the signed root', async () => {
    const note = (await request(t.app).get(`${BASE}/checkpoint`).set('Authorization', admin.authorization)).text;
    const key = parseVerifierKey((await request(t.app).get(`${BASE}/checkpoint-key`)).text.split('\n')[0] as string);
    const cp = verifyCheckpointNote(note, [key]);
    for (const id of ids) {
      const res = await request(t.app)
        .get(`${BASE}/proof/inclusion`)
        .query({ id })
        .set('Authorization', admin.authorization);
      expect(res.status).toBe(200);
      expect(res.body.treeSize).toBe(cp.size);
      const hashes = (res.body.hashes as string[]).map((h) => Buffer.from(h, 'base64'));
      expect(
        verifyInclusion(
          res.body.leafIndex,
          res.body.treeSize,
          merkleLeaf(Buffer.from(res.body.rowHash, 'base64')),
          hashes,
          cp.root,
        ),
      ).toBe(true);
    }
  });

  it('when the tree grows and a second checkpoint is published, then the consistency proof between the two signed sizes verifies', async () => {
    const key = parseVerifierKey((await request(t.app).get(`${BASE}/checkpoint-key`)).text.split('\n')[0] as string);
    const first = verifyCheckpointNote(
      (await request(t.app).get(`${BASE}/checkpoint`).set('Authorization', admin.authorization)).text,
      [key],
    );
    ids.push(...(await write(admin.tenantId, 5)));
    await t.composition.services.checkpoints.publishNow({ tenantId: admin.tenantId });
    const second = verifyCheckpointNote(
      (await request(t.app).get(`${BASE}/checkpoint`).set('Authorization', admin.authorization)).text,
      [key],
    );
    expect(second.size).toBeGreaterThan(first.size);
    const res = await request(t.app)
      .get(`${BASE}/proof/consistency`)
      .query({ from: first.size, to: second.size })
      .set('Authorization', admin.authorization);
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ success: true, from: first.size, to: second.size });
    const proof = (res.body.hashes as string[]).map((h) => Buffer.from(h, 'base64'));
    expect(verifyConsistency(first.size, second.size, first.root, second.root, proof)).toBe(true);
    // an explicit treeSize answers for that tree
    const inc = await request(t.app)
      .get(`${BASE}/proof/inclusion`)
      .query({ id: ids[0], treeSize: first.size })
      .set('Authorization', admin.authorization);
    expect(inc.status).toBe(200);
    expect(
      verifyInclusion(
        inc.body.leafIndex,
        first.size,
        merkleLeaf(Buffer.from(inc.body.rowHash, 'base64')),
        (inc.body.hashes as string[]).map((h) => Buffer.from(h, 'base64')),
        first.root,
      ),
    ).toBe(true);
  });

  it('when the input is hostile, then 400/404 in the contract shape, never a 500', async () => {
    const get = (path: string, query: Record<string, string>) =>
      request(t.app).get(`${BASE}${path}`).query(query).set('Authorization', admin.authorization);
    expectError(await get('/proof/inclusion', { id: 'abc' }), 400, 'VALIDATION_FAILED');
    expectError(await get('/proof/inclusion', { id: '0' }), 400, 'VALIDATION_FAILED');
    expectError(await get('/proof/inclusion', { id: '-3' }), 400, 'VALIDATION_FAILED');
    expectError(await get('/proof/inclusion', { id: '1e3' }), 400, 'VALIDATION_FAILED');
    expectError(await get('/proof/inclusion', { id: '99999999999999999999' }), 400, 'VALIDATION_FAILED');
    expectError(await get('/proof/inclusion', {}), 400, 'VALIDATION_FAILED');
    expectError(await get('/proof/inclusion', { id: ids[0] as string, extra: '1' }), 400, 'VALIDATION_FAILED');
    expectError(await get('/proof/inclusion', { id: ids[0] as string, treeSize: '0' }), 400, 'VALIDATION_FAILED');
    expectError(await get('/proof/inclusion', { id: ids[0] as string, treeSize: '1.5' }), 400, 'VALIDATION_FAILED');
    expectError(await get('/proof/inclusion', { id: ids[0] as string, treeSize: '100000' }), 400, 'VALIDATION_FAILED');
    expectError(await get('/proof/inclusion', { id: ids[5] as string, treeSize: '2' }), 400, 'VALIDATION_FAILED');
    expectError(await get('/proof/inclusion', { id: '9223372036854775807' }), 404, 'NOT_FOUND');
    expectError(await get('/proof/consistency', { from: '5', to: '3' }), 400, 'VALIDATION_FAILED');
    expectError(await get('/proof/consistency', { from: '0', to: '3' }), 400, 'VALIDATION_FAILED');
    expectError(await get('/proof/consistency', { from: '1', to: '100000' }), 400, 'VALIDATION_FAILED');
    expectError(await get('/proof/consistency', { from: 'x', to: '3' }), 400, 'VALIDATION_FAILED');
    expectError(await get('/proof/consistency', { from: '1' }), 400, 'VALIDATION_FAILED');
    const same = await get('/proof/consistency', { from: '3', to: '3' });
    expect(same.status).toBe(200);
    expect(same.body.hashes).toEqual([]);
  });

  it("when an admin of another tenant asks for this tenant's row, then 404 as if unknown; its own empty tenant has no checkpoint", async () => {
    const other = await loginAs(t, { role: 'admin', tenantId: uniqueTenant('cp-other') });
    expectError(
      await request(t.app)
        .get(`${BASE}/proof/inclusion`)
        .query({ id: ids[0] })
        .set('Authorization', other.authorization),
      404,
      'NOT_FOUND',
    );
    expectError(
      await request(t.app).get(`${BASE}/checkpoint`).set('Authorization', other.authorization),
      404,
      'NOT_FOUND',
    );
    expectError(
      await request(t.app)
        .get(`${BASE}/proof/consistency`)
        .query({ from: 1, to: 2 })
        .set('Authorization', other.authorization),
      400,
      'VALIDATION_FAILED',
    );
  });

  it('when the caller is not an admin or not authenticated, then 403 / 401', async () => {
    const user = await loginAs(t, { role: 'user', tenantId: admin.tenantId });
    expectError(
      await request(t.app).get(`${BASE}/checkpoint`).set('Authorization', user.authorization),
      403,
      'FORBIDDEN',
    );
    expectError(
      await request(t.app)
        .get(`${BASE}/proof/inclusion`)
        .query({ id: ids[0] })
        .set('Authorization', user.authorization),
      403,
      'FORBIDDEN',
    );
    expectError(await request(t.app).get(`${BASE}/checkpoint`), 401, 'UNAUTHENTICATED');
    expectError(
      await request(t.app).get(`${BASE}/proof/consistency`).query({ from: 1, to: 2 }),
      401,
      'UNAUTHENTICATED',
    );
  });

  it('when nothing grew, then no new checkpoint is due until an hour passed', async () => {
    const before = await owner.query('SELECT count(*)::int AS n FROM audit_checkpoints WHERE tenant_id = $1', [
      admin.tenantId,
    ]);
    const r = await t.composition.services.checkpoints.publishNow();
    expect(r?.some((p) => p.tenantId === admin.tenantId)).toBe(false);
    const after = await owner.query('SELECT count(*)::int AS n FROM audit_checkpoints WHERE tenant_id = $1', [
      admin.tenantId,
    ]);
    expect(after.rows[0].n).toBe(before.rows[0].n);
    const due = async (minutes: number) =>
      (
        await owner.query(
          "SELECT tenant_id FROM audit_checkpoints_due(now() + make_interval(mins => $1), '3600 seconds', 100000)",
          [minutes],
        )
      ).rows.map((r) => r.tenant_id);
    expect(await due(30)).not.toContain(admin.tenantId);
    expect(await due(61)).toContain(admin.tenantId); // an hour idle: re-published
  });
});

describe('without a signing key', () => {
  let plain: TestApp;
  beforeAll(async () => {
    plain = await buildTestApp({ env: { DATABASE_URL: db.url, AUDIT_CHECKPOINT_SIGNING_KEY: undefined } });
  });
  afterAll(async () => {
    await plain.close();
  });

  it('when no key is configured, then the key and checkpoint routes answer 503 and publishing does nothing', async () => {
    const admin = await loginAs(plain, { role: 'admin' });
    expectError(await request(plain.app).get(`${BASE}/checkpoint-key`), 503, 'SERVICE_UNAVAILABLE');
    expectError(
      await request(plain.app).get(`${BASE}/checkpoint`).set('Authorization', admin.authorization),
      503,
      'SERVICE_UNAVAILABLE',
    );
    expect(await plain.composition.services.checkpoints.publishNow()).toEqual([]);
  });
});

describe('with a SIEM configured', () => {
  let siemApp: TestApp;
  beforeAll(async () => {
    // Nothing listens there: the event only has to reach the outbox (delivery is the SIEM worker's, tested in test/siem).
    siemApp = await buildTestApp({
      env: {
        DATABASE_URL: db.url,
        AUDIT_CHECKPOINT_SIGNING_KEY: newCheckpointKey(),
        AUDIT_LOG_NAME: 'jest',
        SIEM_PROVIDER: 'webhook',
        SIEM_ENDPOINT_URL: 'http://127.0.0.1:9/hook',
        SIEM_API_KEY: 'k'.repeat(32),
      },
    });
  });
  afterAll(async () => {
    await siemApp.close();
  });

  it('when a checkpoint is published, then an audit.checkpoint event carrying the note is queued in the same transaction as the row', async () => {
    const tenantId = uniqueTenant('cp-siem');
    await siemApp.composition.services.audit.record({
      tenantId,
      action: 'doc.changed',
      resourceType: 'doc',
      resourceId: 'x',
    });
    await sealAll(owner);
    const [p] = (await siemApp.composition.services.checkpoints.publishNow({ tenantId })) ?? [];
    expect(p?.treeSize).toBe(1);
    const { rows } = await owner.query(
      "SELECT event_type, severity, payload FROM siem_outbox WHERE tenant_id = $1 AND event_type = 'audit.checkpoint'",
      [tenantId],
    );
    expect(rows).toHaveLength(1);
    const note = (await owner.query('SELECT note FROM audit_checkpoints WHERE tenant_id = $1', [tenantId])).rows[0]
      ?.note as string;
    expect(JSON.stringify(rows[0]?.payload)).toContain(JSON.stringify(note).slice(1, -1));
  });
});
