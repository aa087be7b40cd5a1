/**
 * Opens a session row for a user the test (or bench) provisioned itself, with the timeouts the
 * session service would give it. Logins open sessions through the session service with their
 * first refresh token; tests of routes behind requireAuth need a session without one, which
 * production never creates, so the statement lives here rather than in the service.
 */
import type { Config } from '../../src/config';
import type { Queryable } from '../../src/db/pool';
import type { Clock } from '../../src/lib/clock';

export async function openSession(
  deps: { config: Config; clock: Clock },
  q: Queryable,
  input: { userId: string; tenantId: string; ip: string | null; userAgent: string | null },
): Promise<{ sessionId: string; absoluteExpiresAt: Date }> {
  const now = deps.clock.now();
  const idleMs = deps.config.session.idleTimeoutSec * 1000;
  const absMs = deps.config.session.absoluteTimeoutSec * 1000;
  const absoluteExpiresAt = new Date(now + absMs);
  const { rows } = await q.query<{ id: string }>(
    `INSERT INTO sessions (user_id, tenant_id, created_at, last_used_at, idle_expires_at, absolute_expires_at, ip_address, user_agent)
     VALUES ($1, $2, $3, $3, $4, $5, $6, $7)
     RETURNING id`,
    [
      input.userId,
      input.tenantId,
      new Date(now),
      new Date(Math.min(now + idleMs, now + absMs)),
      absoluteExpiresAt,
      input.ip,
      input.userAgent,
    ],
  );
  return { sessionId: (rows[0] as { id: string }).id, absoluteExpiresAt };
}
