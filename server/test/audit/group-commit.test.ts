import { buildTestApp, ownerPool, type TestApp } from '../helpers/app';
import { uniqueTenant } from '../helpers/env';
import type pg from 'pg';

describe('audit group commit (rows recorded in one turn are written together)', () => {
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

  const event = (tenantId: string, i: number, extra: Record<string, unknown> = {}) => ({
    tenantId,
    userId: null,
    action: 'fleet.vehicle.updated',
    resourceType: 'vehicle',
    resourceId: `V-${i}`,
    after: { i, note: `row ${i} 'quoted' \u00e9` },
    ipAddress: '10.0.0.1',
    userAgent: 'jest',
    requestId: `gc-${i}`,
    ...extra,
  });

  test('when rows of several tenants are recorded together, then each caller gets the id of its own row, stored under its own tenant, and the chains verify', async () => {
    const tenants = [uniqueTenant('gca'), uniqueTenant('gcb'), uniqueTenant('gcc')];
    const audit = t.composition.services.audit;
    const recorded = await Promise.all(
      Array.from({ length: 90 }, (_, i) => audit.record(event(tenants[i % 3] as string, i))),
    );
    expect(new Set(recorded.map((r) => r.id)).size).toBe(90);
    const { rows } = await owner.query<{
      id: string;
      tenant_id: string;
      resource_id: string;
      request_id: string;
      after: { i: number; note: string };
    }>('SELECT id::text, tenant_id, resource_id, request_id, after FROM audit_logs WHERE id = ANY($1::bigint[])', [
      recorded.map((r) => r.id),
    ]);
    const byId = new Map(rows.map((r) => [r.id, r]));
    recorded.forEach((r, i) => {
      const row = byId.get(r.id);
      expect(row).toMatchObject({ tenant_id: tenants[i % 3], resource_id: `V-${i}`, request_id: `gc-${i}` });
      expect(row?.after).toEqual({ i, note: `row ${i} 'quoted' \u00e9` });
    });
    await t.composition.services.auditSealer.sealNow();
    for (const tenant of tenants) {
      const v = await audit.verify(tenant);
      expect(v).toMatchObject({ valid: true, checked: 30 });
    }
  });

  test('when the database refuses one row of a batch, then only that caller fails and the others are written', async () => {
    const tenant = uniqueTenant('gcf');
    const audit = t.composition.services.audit;
    const results = await Promise.allSettled([
      audit.record(event(tenant, 1)),
      audit.record(event(tenant, 2, { userId: 'not-a-uuid' })),
      audit.record(event(tenant, 3)),
    ]);
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
    const { rows } = await owner.query<{ request_id: string }>(
      'SELECT request_id FROM audit_logs WHERE tenant_id = $1 ORDER BY id',
      [tenant],
    );
    expect(rows.map((r) => r.request_id)).toEqual(['gc-1', 'gc-3']);
  });
});
