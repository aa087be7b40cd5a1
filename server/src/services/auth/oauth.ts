/**
 * RFC 7662 token introspection and RFC 7009 token revocation (CONTRACT §10).
 *
 * Introspection answers `active: true` only while the token's session lives (not logged out,
 * not revoked, not idle or past its absolute timeout, the user active) and the token belongs to
 * the caller's tenant; anything else is `{ active: false }`, with no hint why (RFC 7662 §2.2).
 * Revocation ends the session of a valid access or refresh token; an unknown or invalid token
 * is not an error (RFC 7009 §2.2).
 */
import { createHash } from 'node:crypto';
import type { Pool, Queryable } from '../../db/pool';
import { withTenant } from '../../db/transaction';
import type { Clock } from '../../lib/clock';
import type { AuditService } from '../audit/service';
import { REFRESH_TOKEN_RE } from './auth-service';
import type { SessionService } from './sessions';
import type { TokenService } from './tokens';
import type { RequestMeta, Role } from '../../domain/actor';

export type TokenTypeHint = 'access_token' | 'refresh_token';

export type Introspection =
  | { active: false }
  | {
      active: true;
      sub: string;
      tenant_id: string;
      role: Role;
      sid: string;
      exp: number;
      iat: number;
      token_type: TokenTypeHint;
      iss: string;
      aud: string;
    };

export interface OAuthService {
  introspect(token: string, callerTenantId: string, hint: TokenTypeHint | null): Promise<Introspection>;
  /** Ends the token's session when the token is valid; true when a session was ended now. */
  revoke(token: string, hint: TokenTypeHint | null, meta: RequestMeta): Promise<boolean>;
}

/**
 * A refresh token's session and user, read without locks (introspection, revocation). The
 * token's tenant is not known yet and the tables have forced row-level security (migration
 * 096): read through the narrowly-scoped function, by the token's hash only.
 */
const FIND_REFRESH_SESSION = `
SELECT created_at, expires_at, used_at, session_id, tenant_id, user_id,
       last_used_at, absolute_expires_at, revoked_at, role, is_active
FROM auth_refresh_session($1)`;

interface RefreshSessionRow {
  created_at: Date;
  expires_at: Date;
  used_at: Date | null;
  session_id: string;
  tenant_id: string;
  user_id: string;
  last_used_at: Date;
  absolute_expires_at: Date;
  revoked_at: Date | null;
  role: Role;
  is_active: boolean;
}

async function findRefreshSession(q: Queryable, token: string): Promise<RefreshSessionRow | null> {
  const { rows } = await q.query<RefreshSessionRow>(FIND_REFRESH_SESSION, [
    createHash('sha256').update(token, 'utf8').digest(),
  ]);
  return rows[0] ?? null;
}

const JWT_SHAPE = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/;

export function createOAuthService(deps: {
  pool: Pool;
  clock: Clock;
  audit: AuditService;
  tokens: TokenService;
  sessions: SessionService;
  issuer: string;
  audience: string;
}): OAuthService {
  const { pool, clock, audit, tokens, sessions } = deps;
  const timeouts = sessions.timeouts;
  const inactive = { active: false } as const;

  async function introspectAccess(token: string, tenantId: string): Promise<Introspection> {
    const v = tokens.verify(token);
    if (!v.claims || v.claims.tid !== tenantId) return inactive;
    const s = await sessions.authenticate(v.claims);
    if (!s.auth) return inactive;
    return {
      active: true,
      sub: v.claims.sub,
      tenant_id: v.claims.tid,
      role: s.auth.role,
      sid: v.claims.sid,
      exp: v.claims.exp,
      iat: v.claims.iat,
      token_type: 'access_token',
      iss: deps.issuer,
      aud: deps.audience,
    };
  }

  async function introspectRefresh(token: string, tenantId: string): Promise<Introspection> {
    const r = await findRefreshSession(pool, token);
    const now = clock.now();
    if (!r || r.tenant_id !== tenantId || r.used_at || r.revoked_at || !r.is_active) return inactive;
    const timedOut = timeouts.passed(now, {
      lastUsedMs: r.last_used_at.getTime(),
      absoluteExpiresMs: r.absolute_expires_at.getTime(),
    });
    if (now >= r.expires_at.getTime() || timedOut) return inactive;
    return {
      active: true,
      sub: r.user_id,
      tenant_id: r.tenant_id,
      role: r.role,
      sid: r.session_id,
      exp: Math.floor(r.expires_at.getTime() / 1000),
      iat: Math.floor(r.created_at.getTime() / 1000),
      token_type: 'refresh_token',
      iss: deps.issuer,
      aud: deps.audience,
    };
  }

  /** The session a token names, when the token is genuine (signature or stored hash). */
  async function sessionOf(
    token: string,
    hint: TokenTypeHint | null,
  ): Promise<{ sessionId: string; tenantId: string; userId: string; kind: TokenTypeHint } | null> {
    const tryAccess = () => {
      if (!JWT_SHAPE.test(token)) return null;
      const v = tokens.verify(token);
      return v.claims
        ? { sessionId: v.claims.sid, tenantId: v.claims.tid, userId: v.claims.sub, kind: 'access_token' as const }
        : null;
    };
    const tryRefresh = async () => {
      if (!REFRESH_TOKEN_RE.test(token)) return null;
      const r = await findRefreshSession(pool, token);
      return r
        ? { sessionId: r.session_id, tenantId: r.tenant_id, userId: r.user_id, kind: 'refresh_token' as const }
        : null;
    };
    // The hint only orders the lookups (RFC 7009 §2.1).
    if (hint === 'refresh_token') return (await tryRefresh()) ?? tryAccess();
    return tryAccess() ?? (await tryRefresh());
  }

  return {
    async introspect(token, callerTenantId, hint) {
      if (hint === 'refresh_token') {
        const r = REFRESH_TOKEN_RE.test(token) ? await introspectRefresh(token, callerTenantId) : inactive;
        return r.active || !JWT_SHAPE.test(token) ? r : introspectAccess(token, callerTenantId);
      }
      if (JWT_SHAPE.test(token)) return introspectAccess(token, callerTenantId);
      if (REFRESH_TOKEN_RE.test(token)) return introspectRefresh(token, callerTenantId);
      return inactive;
    },

    async revoke(token, hint, meta) {
      const s = await sessionOf(token, hint);
      if (!s) return false;
      return withTenant(pool, s.tenantId, async (c) => {
        const ended = await sessions.revoke(c, s.sessionId, s.tenantId, 'revoked (RFC 7009)');
        if (ended) {
          await audit.record(
            {
              tenantId: s.tenantId,
              userId: s.userId,
              action: 'auth.token.revoked',
              resourceType: 'session',
              resourceId: s.sessionId,
              severity: 'low',
              after: { tokenType: s.kind, sessionRevoked: true },
              ipAddress: meta.ip,
              userAgent: meta.userAgent,
              requestId: meta.requestId,
            },
            c,
          );
        }
        return ended;
      });
    },
  };
}
