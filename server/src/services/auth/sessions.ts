/**
 * Session lifecycle used on every authenticated request: create, authenticate (revoked,
 * idle and absolute timeouts, the user's current role and active flag), touch, revoke,
 * expire (recorded once as session.expired).
 */
import type { Config } from '../../config';
import type { Pool, Queryable } from '../../db/pool';
import { withTenant } from '../../db/transaction';
import type { Clock } from '../../lib/clock';
import type { AuthContext } from '../../domain/actor';
import type { AuditService } from '../audit/service';
import { createSessionLookup, insertSessionWithRefreshToken, revokeSession, touchSession } from './session-repository';
import type { AccessClaims } from './tokens';

/** last_used_at is written at most this often per session (idle-timeout precision). */
const TOUCH_INTERVAL_MS = 60_000;

/** revoked_reason values written when a timeout is detected (not a security decision: not re-audited). */
export const EXPIRY_REASONS = { idle: 'idle timeout', absolute: 'absolute timeout' } as const;

/**
 * The session timeout policy, the one place it is decided: a session ends at its absolute
 * expiry, or when unused for the idle timeout; each use moves the idle expiry on, never past
 * the absolute one. Refresh, introspection, listing and revocation ask it too.
 */
export interface SessionTimeouts {
  readonly idleMs: number;
  readonly absoluteMs: number;
  /** The timeout a session has passed at `now` (the absolute one first), or null. */
  passed(now: number, s: { lastUsedMs: number; absoluteExpiresMs: number }): 'idle' | 'absolute' | null;
  /** The idle expiry of a session used at `now`. */
  idleExpiry(now: number, absoluteExpiresMs: number): Date;
  /** Sessions last used before this are past their idle timeout. */
  idleCutoff(now: number): Date;
}

export function sessionTimeouts(config: Config): SessionTimeouts {
  const idleMs = config.session.idleTimeoutSec * 1000;
  const absoluteMs = config.session.absoluteTimeoutSec * 1000;
  return {
    idleMs,
    absoluteMs,
    passed(now, s) {
      if (now >= s.absoluteExpiresMs) return 'absolute';
      if (now >= s.lastUsedMs + idleMs) return 'idle';
      return null;
    },
    idleExpiry: (now, absoluteExpiresMs) => new Date(Math.min(now + idleMs, absoluteExpiresMs)),
    idleCutoff: (now) => new Date(now - idleMs),
  };
}

/** A revoked_reason written by a timeout (not a security decision). */
export function isExpiryReason(reason: string | null): boolean {
  return reason === EXPIRY_REASONS.idle || reason === EXPIRY_REASONS.absolute;
}

export type SessionRejection = 'unknown' | 'revoked' | 'expired' | 'inactive' | 'idle' | 'absolute';

export interface RejectedSession {
  auth: null;
  reason: string;
  /** unknown: no such session; revoked: revoked for a security reason; expired: revoked earlier by a timeout;
   *  inactive: user deactivated; idle/absolute: a timeout detected now (not yet recorded). */
  kind: SessionRejection;
}

export interface SessionService {
  /** Opens a session with its first refresh token (stored as its SHA-256 hash) in the same statement. */
  createWithRefreshToken(
    q: Queryable,
    input: { userId: string; tenantId: string; ip: string | null; userAgent: string | null },
    refresh: { id: string; hash: Buffer },
  ): Promise<{ sessionId: string; absoluteExpiresAt: Date }>;
  /** The live auth context for verified claims, or why the session is not usable. */
  authenticate(
    claims: AccessClaims,
  ): Promise<{ auth: AuthContext; reason?: undefined; kind?: undefined } | RejectedSession>;
  revoke(q: Queryable, sessionId: string, tenantId: string, reason: string): Promise<boolean>;
  /**
   * Records a timeout detected on use: revokes the session with the timeout as reason and
   * writes session.expired in the same transaction; only the first caller writes the row.
   */
  expire(input: {
    sessionId: string;
    tenantId: string;
    userId: string;
    kind: 'idle' | 'absolute';
    ip: string | null;
    userAgent: string | null;
    requestId: string | null;
  }): Promise<boolean>;
  timeouts: SessionTimeouts;
}

export function createSessionService(deps: {
  pool: Pool;
  config: Config;
  clock: Clock;
  audit?: AuditService;
}): SessionService {
  const timeouts = sessionTimeouts(deps.config);
  const absMs = timeouts.absoluteMs;
  const lookup = createSessionLookup(deps.pool);
  return {
    timeouts,
    async createWithRefreshToken(q, input, refresh) {
      const now = deps.clock.now();
      const absoluteExpiresAt = new Date(now + absMs);
      const sessionId = await insertSessionWithRefreshToken(q, {
        ...input,
        now: new Date(now),
        idleExpiresAt: timeouts.idleExpiry(now, now + absMs),
        absoluteExpiresAt,
        refreshId: refresh.id,
        refreshHash: refresh.hash,
      });
      return { sessionId, absoluteExpiresAt };
    },
    async authenticate(claims) {
      const s = await lookup(claims.sid, claims.tid, claims.sub);
      if (!s) return { auth: null, reason: 'unknown session', kind: 'unknown' };
      const now = deps.clock.now();
      if (s.revoked) {
        const expired = isExpiryReason(s.revokedReason);
        return {
          auth: null,
          reason: `session revoked (${s.revokedReason ?? 'no reason'})`,
          kind: expired ? 'expired' : 'revoked',
        };
      }
      if (!s.isActive) return { auth: null, reason: 'user deactivated', kind: 'inactive' };
      const timedOut = timeouts.passed(now, s);
      if (timedOut === 'absolute') return { auth: null, reason: 'session past its absolute timeout', kind: 'absolute' };
      if (timedOut === 'idle') return { auth: null, reason: 'session idle timeout', kind: 'idle' };
      if (now - s.lastUsedMs >= TOUCH_INTERVAL_MS) {
        await withTenant(deps.pool, s.tenantId, (c) =>
          touchSession(c, s.id, s.tenantId, new Date(now), timeouts.idleExpiry(now, s.absoluteExpiresMs)),
        );
      }
      return {
        auth: {
          userId: s.userId,
          tenantId: s.tenantId,
          email: s.email,
          role: s.role,
          sessionId: s.id,
          displayName: s.displayName,
        },
      };
    },
    revoke(q, sessionId, tenantId, reason) {
      return revokeSession(q, sessionId, tenantId, new Date(deps.clock.now()), reason);
    },
    expire(input) {
      const audit = deps.audit;
      if (!audit) throw new Error('session service built without an audit service');
      return withTenant(deps.pool, input.tenantId, async (c) => {
        const reason = EXPIRY_REASONS[input.kind];
        const changed = await revokeSession(c, input.sessionId, input.tenantId, new Date(deps.clock.now()), reason);
        if (changed) {
          await audit.record(
            {
              tenantId: input.tenantId,
              userId: input.userId,
              action: 'session.expired',
              resourceType: 'session',
              resourceId: input.sessionId,
              result: 'success',
              severity: 'low',
              errorMessage: reason,
              ipAddress: input.ip,
              userAgent: input.userAgent,
              requestId: input.requestId,
            },
            c,
          );
        }
        return changed;
      });
    },
  };
}
