/** GET /api/v1/security/audit/verify */
import type pg from 'pg';
import request from 'supertest';
import { buildTestApp, ownerPool, type TestApp } from '../helpers/app';
import { loginAs, type TestLogin } from '../helpers/auth';
import { uniqueTenant } from '../helpers/env';
import { sealAll, tamper } from './helpers';

const PATH = '/api/v1/security/audit/verify';
let t: TestApp;
let owner: pg.Pool;

beforeAll(async () => {
  t = await buildTestApp();
  owner = ownerPool();
});
afterAll(async () => {
  await owner.end();
  await t.close();
});

async function tenantWithRows(n: number): Promise<{ admin: TestLogin; ids: string[] }> {
  const tenantId = uniqueTenant('verify');
  const admin = await loginAs(t, { role: 'admin', tenantId });
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
  return { admin, ids };
}

async function lastAudit(tenantId: string, prefix: string): Promise<Record<string, unknown> | undefined> {
  const { rows } = await owner.query(
    'SELECT action, severity, result, error_message, after, user_id::text AS user_id FROM audit_logs WHERE tenant_id = $1 AND action LIKE $2 ORDER BY id DESC LIMIT 1',
    [tenantId, `${prefix}%`],
  );
  return rows[0];
}

describe('GET /audit/verify', () => {
  it('when an admin verifies an intact chain, then 200 valid with the count, and an audit.verify row is written', async () => {
    const { admin } = await tenantWithRows(4);
    const res = await request(t.app).get(PATH).set('Authorization', admin.authorization);
    expect(res.status).toBe(200);
    expect(res.body).toEqual({
      success: true,
      valid: true,
      checked: 4,
      firstBrokenId: null,
      reason: null,
      unsealed: 0,
      oldestUnsealedId: null,
      head: { seq: '4', hash: expect.stringMatching(/^[0-9a-f]{64}$/) },
    });
    expect(await lastAudit(admin.tenantId, 'audit.verify')).toMatchObject({
      action: 'audit.verify',
      severity: 'low',
      result: 'success',
      user_id: admin.userId,
    });
  });

  it('when a row of the tenant was modified, then valid is false with the first broken id, and a critical audit.verify.failed row is written', async () => {
    const { admin, ids } = await tenantWithRows(4);
    await tamper(owner, async (c) => {
      await c.query("UPDATE audit_logs SET resource_id = 'forged' WHERE id = $1", [ids[1]]);
    });
    const res = await request(t.app).get(PATH).set('Authorization', admin.authorization);
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({
      success: true,
      valid: false,
      checked: 2,
      firstBrokenId: ids[1],
      reason: expect.stringMatching(/modified/),
      head: null,
    });
    expect(await lastAudit(admin.tenantId, 'audit.verify')).toMatchObject({
      action: 'audit.verify.failed',
      severity: 'critical',
      result: 'failure',
      after: expect.objectContaining({ firstBrokenId: ids[1] }),
    });
  });

  it("when another tenant's chain is broken, then this tenant still verifies intact", async () => {
    const broken = await tenantWithRows(2);
    await tamper(owner, async (c) => {
      await c.query('DELETE FROM audit_logs WHERE id = $1', [broken.ids[0]]);
    });
    const { admin } = await tenantWithRows(2);
    const res = await request(t.app).get(PATH).set('Authorization', admin.authorization);
    expect(res.body).toMatchObject({ valid: true, checked: 2 });
  });

  it('when an exported head is given as the anchor, then it must match', async () => {
    const { admin } = await tenantWithRows(3);
    const head = await t.composition.services.audit.chainHead(admin.tenantId);
    const ok = await request(t.app)
      .get(PATH)
      .query({ anchorSeq: head?.seq, anchorHash: head?.hash })
      .set('Authorization', admin.authorization);
    expect(ok.body).toMatchObject({ valid: true, checked: 3 });
    const wrong = await request(t.app)
      .get(PATH)
      .query({ anchorSeq: head?.seq, anchorHash: 'ab'.repeat(32) })
      .set('Authorization', admin.authorization);
    expect(wrong.body).toMatchObject({ valid: false, reason: expect.stringMatching(/exported head/) });
  });

  it.each([
    [{ anchorSeq: '3' }],
    [{ anchorHash: 'ab'.repeat(32) }],
    [{ anchorSeq: '0', anchorHash: 'ab'.repeat(32) }],
    [{ anchorSeq: '1', anchorHash: 'xyz' }],
    [{ tenant: 'other' }],
  ])('when the query is %j, then 400', async (query) => {
    const { admin } = await tenantWithRows(1);
    const res = await request(t.app).get(PATH).query(query).set('Authorization', admin.authorization);
    expect(res.status).toBe(400);
    expect(res.body.error.code).toBe('VALIDATION_FAILED');
  });

  it.each(['user', 'viewer'] as const)('when a %s asks for verification, then 403', async (role) => {
    const login = await loginAs(t, { role });
    const res = await request(t.app).get(PATH).set('Authorization', login.authorization);
    expect(res.status).toBe(403);
    expect(res.body.error.code).toBe('FORBIDDEN');
  });
});
