import { withTenant } from '../../src/db/transaction';
import type { Role } from '../../src/domain/actor';
import { uniqueEmail, uniqueTenant } from './env';
import type { TestApp } from './app';
import { openSession } from './session';

export interface TestLogin {
  token: string;
  /** `Bearer <token>`, ready for the Authorization header. */
  authorization: string;
  userId: string;
  sessionId: string;
  tenantId: string;
  email: string;
  role: Role;
}

/**
 * Provisions a user and opens a session for it through the real session and token services
 * (no identity provider involved). For tests of routes behind requireAuth.
 */
export async function loginAs(
  t: TestApp,
  opts: { role?: Role; tenantId?: string; email?: string; displayName?: string } = {},
): Promise<TestLogin> {
  const role = opts.role ?? 'user';
  const tenantId = opts.tenantId ?? uniqueTenant();
  const email = (opts.email ?? uniqueEmail()).toLowerCase();
  const pool = t.composition.pool;
  // In the tenant's context: users and sessions have forced row-level security (migration 053).
  const { userId, sessionId } = await withTenant(pool, tenantId, async (c) => {
    const { rows } = await c.query<{ id: string }>(
      `INSERT INTO users (tenant_id, email, role, display_name) VALUES ($1, $2, $3, $4)
       ON CONFLICT (tenant_id, email) DO UPDATE SET role = EXCLUDED.role RETURNING id`,
      [tenantId, email, role, opts.displayName ?? null],
    );
    const id = (rows[0] as { id: string }).id;
    const s = await openSession(t.composition, c, {
      userId: id,
      tenantId,
      ip: '127.0.0.1',
      userAgent: 'jest',
    });
    return { userId: id, sessionId: s.sessionId };
  });
  const { token } = t.composition.services.tokens.issue({ userId, sessionId, tenantId });
  return { token, authorization: `Bearer ${token}`, userId, sessionId, tenantId, email, role };
}
