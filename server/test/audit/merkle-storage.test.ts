/**
 * The Merkle bookkeeping audit_seal() does as it seals (migrations/065_audit_merkle.sql):
 * the stored subtree hashes give, for every size, the root that the independent builder
 * computes from the chain's row hashes, and proofs read from storage verify.
 */
import type pg from 'pg';
import {
  consistencyProof,
  inclusionProofForAuditId,
  storedRoot,
  storedTreeSize,
} from '../../src/services/audit/merkle';
import { TreeBuilder, merkleLeaf, verifyConsistency, verifyInclusion } from '../../src/services/audit/merkle-verify';
import { ownerPool } from '../helpers/app';
import { uniqueTenant } from '../helpers/env';
import { appRolePool, insertRawRows, sealAll } from './helpers';

let app: pg.Pool;
let owner: pg.Pool;

beforeAll(() => {
  app = appRolePool();
  owner = ownerPool();
});
afterAll(async () => {
  await app.end();
  await owner.end();
});

async function inTenant<T>(tenantId: string, fn: (c: pg.PoolClient) => Promise<T>): Promise<T> {
  const c = await app.connect();
  try {
    await c.query('BEGIN');
    await c.query("SELECT set_config('app.tenant_id', $1, true)", [tenantId]);
    const out = await fn(c);
    await c.query('COMMIT');
    return out;
  } finally {
    c.release();
  }
}

async function chain(tenantId: string): Promise<Array<{ audit_id: string; row_hash: Buffer }>> {
  const { rows } = await owner.query(
    'SELECT audit_id::text, row_hash FROM audit_chain WHERE tenant_id = $1 ORDER BY seq',
    [tenantId],
  );
  return rows;
}

describe('Merkle storage written by the sealer', () => {
  const tenant = uniqueTenant('merkle');
  let entries: Array<{ audit_id: string; row_hash: Buffer }>;
  let roots: Buffer[];

  beforeAll(async () => {
    // Several seal calls, so the frontier is reloaded from storage between batches.
    for (const n of [1, 2, 5, 13, 20, 29]) {
      await insertRawRows(
        app,
        tenant,
        Array.from({ length: n }, (_, i) => ({ action: 'test.merkle', resourceId: `r${i}` })),
      );
      await sealAll(app);
    }
    entries = await chain(tenant);
    const b = new TreeBuilder();
    roots = [b.root()];
    for (const e of entries) {
      b.addRowHash(e.row_hash);
      roots.push(b.root());
    }
  });

  it('when 70 rows were sealed in six batches, then the stored tree has 70 leaves and its root at every size is the one rebuilt from the chain', async () => {
    expect(entries).toHaveLength(70);
    await inTenant(tenant, async (c) => {
      expect(await storedTreeSize(c, tenant)).toBe(70);
      for (let n = 1; n <= 70; n += 1) expect((await storedRoot(c, tenant, n)).equals(roots[n] as Buffer)).toBe(true);
    });
  });

  it('when inclusion proofs are read for every leaf of every size 1..70, then each verifies against the rebuilt root', async () => {
    await inTenant(tenant, async (c) => {
      for (let n = 1; n <= 70; n += 1) {
        for (let m = 0; m < n; m += 1) {
          const p = await inclusionProofForAuditId(c, tenant, (entries[m] as { audit_id: string }).audit_id, n);
          if (typeof p === 'string') throw new Error(p);
          expect(p.leafIndex).toBe(m);
          expect(p.rowHash.equals((entries[m] as { row_hash: Buffer }).row_hash)).toBe(true);
          expect(verifyInclusion(m, n, merkleLeaf(p.rowHash), p.hashes, roots[n] as Buffer)).toBe(true);
        }
      }
    });
  }, 180_000);

  it('when consistency proofs are read for all pairs up to 40, then each verifies', async () => {
    await inTenant(tenant, async (c) => {
      for (let n = 1; n <= 40; n += 1) {
        for (let m = 1; m <= n; m += 1) {
          const p = await consistencyProof(c, tenant, m, n);
          expect(verifyConsistency(m, n, roots[m] as Buffer, roots[n] as Buffer, p)).toBe(true);
        }
      }
    });
  }, 180_000);

  it("when another tenant asks for this tenant's row, then it is unknown (row-level security)", async () => {
    const other = uniqueTenant('merkle-other');
    await inTenant(other, async (c) => {
      expect(await inclusionProofForAuditId(c, other, (entries[0] as { audit_id: string }).audit_id, 1)).toBe(
        'unknown',
      );
      expect(await inclusionProofForAuditId(c, tenant, (entries[0] as { audit_id: string }).audit_id, 1)).toBe(
        'unknown',
      );
      expect(await storedTreeSize(c, tenant)).toBe(0);
    });
  });

  it('when the application role tries to change stored hashes, then it is refused; the owner is refused too (append-only)', async () => {
    await expect(
      inTenant(tenant, (c) => c.query('UPDATE audit_merkle SET hashes = hashes WHERE tenant_id = $1', [tenant])),
    ).rejects.toThrow(/permission denied/);
    await expect(owner.query('DELETE FROM audit_merkle WHERE tenant_id = $1', [tenant])).rejects.toThrow(/append-only/);
  });
});
