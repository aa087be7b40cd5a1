/**
 * Session lifecycle used on every authenticated request: create, authenticate (revoked,
 * idle and absolute timeouts, the user's current role and active flag), touch, revoke.
 */
import type { Config } from '../../config';
import type { Pool, Queryable } from '../../db/pool';
import type { Clock } from '../../lib/clock';
import type { AuthContext } from '../../types/express';
import { findSessionForAuth, insertSession, revokeSession, touchSession } from './session-repository';
import type { AccessClaims } from './tokens';

/** last_used_at is written at most this often per session (idle-timeout precision). */
export const TOUCH_INTERVAL_MS = 60_000;

export interface SessionService {
  create(q: Queryable, input: { userId: string; tenantId: string; ip: string | null; userAgent: string | null }): Promise<{ sessionId: string; absoluteExpiresAt: Date }>;
  /** The live auth context for verified claims, or a reason why the session is not usable. */
  authenticate(claims: AccessClaims): Promise<{ auth: AuthContext; reason?: undefined } | { auth: null; reason: string }>;
  revoke(q: Queryable, sessionId: string, tenantId: string, reason: string): Promise<boolean>;
}

export function createSessionService(deps: { pool: Pool; config: Config; clock: Clock }): SessionService {
  const idleMs = deps.config.session.idleTimeoutSec * 1000;
  const absMs = deps.config.session.absoluteTimeoutSec * 1000;
  return {
    async create(q, input) {
      const now = deps.clock.now();
      const absoluteExpiresAt = new Date(now + absMs);
      const sessionId = await insertSession(q, {
        ...input,
        now: new Date(now),
        idleExpiresAt: new Date(Math.min(now + idleMs, now + absMs)),
        absoluteExpiresAt,
      });
      return { sessionId, absoluteExpiresAt };
    },
    async authenticate(claims) {
      const s = await findSessionForAuth(deps.pool, claims.sid, claims.tid, claims.sub);
      if (!s) return { auth: null, reason: 'unknown session' };
      const now = deps.clock.now();
      if (s.revokedAt) return { auth: null, reason: 'session revoked' };
      if (!s.isActive) return { auth: null, reason: 'user deactivated' };
      if (now >= s.absoluteExpiresAt.getTime()) return { auth: null, reason: 'session past its absolute timeout' };
      if (now >= s.lastUsedAt.getTime() + idleMs) return { auth: null, reason: 'session idle timeout' };
      if (now - s.lastUsedAt.getTime() >= TOUCH_INTERVAL_MS) {
        await touchSession(deps.pool, s.id, s.tenantId, new Date(now), new Date(Math.min(now + idleMs, s.absoluteExpiresAt.getTime())));
      }
      return {
        auth: { userId: s.userId, tenantId: s.tenantId, email: s.email, role: s.role, sessionId: s.id, displayName: s.displayName },
      };
    },
    revoke(q, sessionId, tenantId, reason) {
      return revokeSession(q, sessionId, tenantId, new Date(deps.clock.now()), reason);
    },
  };
}
