import type { Role } from '../../src/types/express';
import { uniqueEmail, uniqueTenant } from './env';
import type { TestApp } from './app';

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
export async function loginAs(t: TestApp, opts: { role?: Role; tenantId?: string; email?: string; displayName?: string } = {}): Promise<TestLogin> {
  const role = opts.role ?? 'user';
  const tenantId = opts.tenantId ?? uniqueTenant();
  const email = (opts.email ?? uniqueEmail()).toLowerCase();
  const pool = t.composition.pool;
  const { rows } = await pool.query<{ id: string }>(
    `INSERT INTO users (tenant_id, email, role, display_name) VALUES ($1, $2, $3, $4)
     ON CONFLICT (tenant_id, email) DO UPDATE SET role = EXCLUDED.role RETURNING id`,
    [tenantId, email, role, opts.displayName ?? null],
  );
  const userId = (rows[0] as { id: string }).id;
  const { sessionId } = await t.composition.services.sessions.create(pool, { userId, tenantId, ip: '127.0.0.1', userAgent: 'jest' });
  const { token } = t.composition.services.tokens.issue({ userId, sessionId, tenantId });
  return { token, authorization: `Bearer ${token}`, userId, sessionId, tenantId, email, role };
}
