/**
 * Login, refresh, logout and session management.
 *
 * Login: lockout check (audit trail; only correctly signed tokens that failed a check count,
 * see lockout.ts) → ID-token verification (oidc.ts) → the provisioned,
 * active user for the e-mail (tenant and role from the database) → one transaction:
 * session + refresh token + auth.login.success. Every refusal is the same 401 to the
 * client; the reason goes to the auth.login.failure row and the log.
 *
 * Refresh: the presented token is looked up by its SHA-256 hash and locked with its session.
 * A live token is spent and replaced (rotation). A spent token is reuse: the whole session is
 * revoked (its access and refresh tokens die) and auth.refresh.reuse + security.alert.refresh_reuse
 * (both critical) are written in the same transaction.
 */
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import type { Config } from '../../config';
import type { Pool, Queryable } from '../../db/pool';
import { setTenantContext, withTenant, withTransaction } from '../../db/transaction';
import type { Clock } from '../../lib/clock';
import { RateLimitedError, notFound, serviceUnavailable, unauthenticated } from '../../lib/errors';
import type { Logger } from '../../lib/logger';
import { metaColumns, type AuthContext, type RequestMeta, type Role } from '../../domain/actor';
import type { FailureAggregator } from '../audit/failure-aggregator';
import type { AuditService } from '../audit/service';
import { UNKNOWN_TENANT } from '../audit/catalog';
import type { AuditEvent } from '../audit/types';
import { lockoutState, type LockoutLimits, type LockoutMarker, type LockoutState } from './lockout';
import { IdpUnavailableError, type IdTokenVerifier } from './oidc';
import { hasPermission, permissionsOf, type Permission } from './rbac';
import type { EncryptionService } from '../encryption';
import { openSuccessor, sealSuccessor } from './refresh-grace';
import {
  clearOldSuccessors,
  findRefreshTokenForUpdate,
  insertRefreshToken,
  spendRefreshToken,
  type RefreshTokenState,
} from './refresh-repository';
import { listActiveSessions, revokeLiveSession, revokeSession, touchSession } from './session-repository';
import { EXPIRY_REASONS, isExpiryReason, type SessionService } from './sessions';
import type { TokenService } from './tokens';
import { bindUserSubject, findUsersByEmail, type UserRecord } from './user-repository';

/** 32 random bytes, base64url. */
export const REFRESH_TOKEN_RE = /^[A-Za-z0-9_-]{43}$/;

export interface PublicUser {
  id: string;
  email: string;
  role: Role;
  tenantId: string;
  displayName: string | null;
  permissions: Permission[];
}

export interface IssuedSession {
  token: string;
  refreshToken: string;
  tokenType: 'Bearer';
  expiresIn: number;
  user: PublicUser;
  sessionId: string;
  /** The refresh token (and session) end here: the cookie's expiry. */
  refreshExpiresAt: Date;
}

export interface SessionListEntry {
  id: string;
  createdAt: string;
  lastUsedAt: string;
  ipAddress: string | null;
  userAgent: string | null;
  current: boolean;
}

export interface AuthService {
  /** False when no identity provider (nor the development issuer) is configured. */
  readonly loginAvailable: boolean;
  login(input: { email: string; idToken: string }, meta: RequestMeta): Promise<IssuedSession>;
  refresh(input: { refreshToken: string }, meta: RequestMeta): Promise<IssuedSession>;
  logout(auth: AuthContext, meta: RequestMeta): Promise<void>;
  listSessions(auth: AuthContext): Promise<SessionListEntry[]>;
  /** Own session, or any in the tenant with sessions:revoke:tenant; otherwise NOT_FOUND. */
  revokeSession(auth: AuthContext, sessionId: string, meta: RequestMeta): Promise<void>;
}

export interface AuthServiceDeps {
  pool: Pool;
  config: Config;
  clock: Clock;
  logger: Logger;
  audit: AuditService;
  tokens: TokenService;
  sessions: SessionService;
  /** null: login answers 503 (no IdP configured, e.g. tests that do not need login). */
  idTokens: IdTokenVerifier | null;
  /** Aggregates repeated junk failures (uncounted logins, unknown refresh tokens); without it each is one row. */
  failures?: FailureAggregator;
  /** Seals the successor pair kept for the refresh reuse grace; without it there is no grace. */
  encryption?: EncryptionService;
}

export function publicUser(u: {
  userId: string;
  email: string;
  role: Role;
  tenantId: string;
  displayName: string | null;
}): PublicUser {
  return {
    id: u.userId,
    email: u.email,
    role: u.role,
    tenantId: u.tenantId,
    displayName: u.displayName,
    permissions: permissionsOf(u.role),
  };
}

const sha256 = (s: string): Buffer => createHash('sha256').update(s, 'utf8').digest();

/** The ID token was used for a login before (thrown inside the login transaction to roll it back). */
class IdTokenReplayed extends Error {}
/** A concurrent first login bound another IdP subject to this user (rolls the login back). */
class SubjectBoundConcurrently extends Error {}

/**
 * Records a used ID token (by hash) until it expires; false if it was used before. Also drops
 * a few expired entries, so the table stays the size of the last token lifetime's logins
 * (SKIP LOCKED: concurrent logins never wait for, or deadlock over, each other's clean-up).
 */
async function claimIdToken(c: Queryable, tokenHash: Buffer, expiresAtMs: number): Promise<boolean> {
  const r = await c.query({
    name: 'fleet_auth_claim_id_token',
    text: `WITH expired AS (
             DELETE FROM login_id_tokens WHERE token_hash IN (SELECT token_hash FROM login_id_tokens WHERE expires_at < now() LIMIT 20 FOR UPDATE SKIP LOCKED)
           )
           INSERT INTO login_id_tokens (token_hash, expires_at) VALUES ($1, $2) ON CONFLICT (token_hash) DO NOTHING`,
    values: [tokenHash, new Date(expiresAtMs)],
  });
  return (r.rowCount ?? 0) === 1;
}

export function createAuthService(deps: AuthServiceDeps): AuthService {
  const { pool, config, clock, audit, tokens, sessions } = deps;
  const limits: LockoutLimits = {
    ipMax: config.login.maxFailures,
    ipWindowMs: config.login.lockoutWindowMs,
    emailMax: config.login.emailMaxFailures,
    emailWindowMs: config.login.emailLockoutWindowMs,
  };
  /** A correctly signed token for this very e-mail that failed a later check: counts for the network and the e-mail. */
  const COUNT_BOTH: LockoutMarker = { ip: true, email: true };
  const timeouts = sessions.timeouts;
  const graceMs = config.identity.refreshReuseGraceSec * 1000;
  const encryption = deps.encryption ?? null;

  /**
   * Audits a refused login and throws 401. `counted` is null for attempts that never carried a
   * correctly signed token (junk): audited, but they never count toward the lockout.
   */
  async function refuseLogin(
    email: string,
    reason: string,
    candidate: UserRecord | null,
    lock: LockoutState,
    meta: RequestMeta,
    counted: LockoutMarker | null,
  ): Promise<never> {
    const tenantId = candidate?.tenantId ?? UNKNOWN_TENANT;
    const marker: LockoutMarker = { ip: Boolean(counted?.ip && meta.ip), email: Boolean(counted?.email) };
    const failure: AuditEvent = {
      tenantId,
      userId: candidate?.id ?? null,
      action: 'auth.login.failure',
      resourceType: 'user',
      resourceId: email,
      result: 'failure',
      severity: 'medium',
      errorMessage: reason.slice(0, 500),
      after: { lockout: marker },
      ...metaColumns(meta),
    };
    if (counted === null && deps.failures) {
      // Junk (no correctly signed token): never counted, so no lockout row can follow; repeated
      // identical ones from one source are aggregated (failure-aggregator.ts).
      await deps.failures.record(failure);
      throw unauthenticated(`login refused: ${reason}`);
    }
    await withTenant(pool, tenantId, async (c) => {
      await audit.record(failure, c);
      const crossed: Array<{ scope: 'email' | 'ip'; failures: number; windowSeconds: number }> = [];
      if (marker.email && lock.emailFailures < limits.emailMax && lock.emailFailures + 1 >= limits.emailMax) {
        crossed.push({
          scope: 'email',
          failures: limits.emailMax,
          windowSeconds: Math.round(limits.emailWindowMs / 1000),
        });
      }
      if (marker.ip && lock.ipFailures < limits.ipMax && lock.ipFailures + 1 >= limits.ipMax) {
        crossed.push({ scope: 'ip', failures: limits.ipMax, windowSeconds: Math.round(limits.ipWindowMs / 1000) });
      }
      if (crossed.length > 0) {
        const first = crossed[0] as (typeof crossed)[number];
        await audit.record(
          {
            tenantId,
            userId: candidate?.id ?? null,
            action: 'auth.lockout',
            resourceType: 'user',
            resourceId: email,
            result: 'failure',
            severity: 'high',
            errorMessage:
              crossed
                .map(
                  (x) =>
                    `${x.failures} failed logins within ${x.windowSeconds} s for this ${x.scope === 'ip' ? 'network' : 'e-mail'}`,
                )
                .join('; ') + '; further attempts are refused',
            after: {
              email,
              ip: meta.ip,
              scope: crossed.map((x) => x.scope),
              failures: first.failures,
              windowSeconds: first.windowSeconds,
              limits: crossed,
            },
            ...metaColumns(meta),
          },
          c,
        );
      }
    });
    throw unauthenticated(`login refused: ${reason}`);
  }

  function newRefreshToken(): { id: string; token: string; hash: Buffer } {
    const token = randomBytes(32).toString('base64url');
    return { id: randomUUID(), token, hash: sha256(token) };
  }

  async function login(input: { email: string; idToken: string }, meta: RequestMeta): Promise<IssuedSession> {
    const verifier = deps.idTokens;
    if (!verifier)
      throw serviceUnavailable(
        'Login is unavailable: no identity provider is configured.',
        'no identity provider configured',
      );
    const email = input.email;
    const now = clock.now();
    const [lock, candidates] = await Promise.all([
      lockoutState(pool, { email, ip: meta.ip, now, limits }),
      findUsersByEmail(pool, email),
    ]);
    if (lock.locked) {
      throw new RateLimitedError(
        'Too many failed login attempts; try again later.',
        lock.retryAfterSec,
        `login locked out (${lock.scope.join(', ')})`,
      );
    }
    const only = candidates.length === 1 ? (candidates[0] as UserRecord) : null;

    let verified;
    try {
      verified = await verifier.verify(input.idToken, email);
    } catch (err) {
      if (err instanceof IdpUnavailableError)
        throw serviceUnavailable('The identity provider is unavailable; try again later.', err.message);
      throw err;
    }
    if (!verified.ok) {
      const counted = verified.signed ? { ip: true, email: verified.signed.email === email } : null;
      return refuseLogin(email, `ID token rejected: ${verified.reason}`, only, lock, meta, counted);
    }
    const identity = verified.identity;

    const active = candidates.filter((u) => u.isActive);
    if (candidates.length === 0) return refuseLogin(email, 'user not provisioned', null, lock, meta, COUNT_BOTH);
    if (active.length > 1)
      return refuseLogin(
        email,
        `e-mail is active in ${active.length} tenants; login refused as ambiguous`,
        null,
        lock,
        meta,
        COUNT_BOTH,
      );
    if (active.length === 0) return refuseLogin(email, 'user deactivated', only, lock, meta, COUNT_BOTH);
    const user = active[0] as UserRecord;
    if (user.auth0Sub !== null && user.auth0Sub !== identity.sub) {
      return refuseLogin(
        email,
        'identity provider subject differs from the one bound to this user',
        user,
        lock,
        meta,
        COUNT_BOTH,
      );
    }

    const refresh = newRefreshToken();
    let created;
    try {
      created = await withTenant(pool, user.tenantId, async (c) => {
        // First: claim the ID token. A second login with it (or a concurrent one: it waits for
        // this transaction) finds the row and is refused; the claim commits with the session.
        if (!(await claimIdToken(c, identity.tokenHash, identity.expiresAtMs))) throw new IdTokenReplayed();
        if (user.auth0Sub === null && !(await bindUserSubject(c, user.id, user.tenantId, identity.sub)))
          throw new SubjectBoundConcurrently();
        const s = await sessions.createWithRefreshToken(
          c,
          { userId: user.id, tenantId: user.tenantId, ip: meta.ip, userAgent: meta.userAgent },
          refresh,
        );
        await audit.record(
          {
            tenantId: user.tenantId,
            userId: user.id,
            action: 'auth.login.success',
            resourceType: 'user',
            resourceId: email,
            result: 'success',
            severity: 'low',
            after: { sessionId: s.sessionId, issuer: identity.issuer, role: user.role },
            ...metaColumns(meta),
          },
          c,
        );
        return s;
      });
    } catch (err) {
      if (err instanceof IdTokenReplayed)
        return refuseLogin(
          email,
          'ID token already used (an ID token opens one session)',
          user,
          lock,
          meta,
          COUNT_BOTH,
        );
      if (err instanceof SubjectBoundConcurrently) {
        return refuseLogin(
          email,
          'identity provider subject differs from the one a concurrent first login bound to this user',
          user,
          lock,
          meta,
          COUNT_BOTH,
        );
      }
      throw err;
    }
    const access = tokens.issue({ userId: user.id, sessionId: created.sessionId, tenantId: user.tenantId });
    return {
      token: access.token,
      refreshToken: refresh.token,
      tokenType: 'Bearer',
      expiresIn: access.expiresIn,
      user: publicUser({
        userId: user.id,
        email: user.email,
        role: user.role,
        tenantId: user.tenantId,
        displayName: user.displayName,
      }),
      sessionId: created.sessionId,
      refreshExpiresAt: created.absoluteExpiresAt,
    };
  }

  type RefreshOutcome =
    | { kind: 'ok'; row: RefreshTokenState; token: string; access: { token: string; expiresIn: number } }
    | { kind: 'unknown' }
    | { kind: 'refused'; reason: string };

  async function refresh(input: { refreshToken: string }, meta: RequestMeta): Promise<IssuedSession> {
    const rejectUnknown = async (reason: string): Promise<never> => {
      await (deps.failures ?? audit).record({
        tenantId: UNKNOWN_TENANT,
        action: 'auth.token.rejected',
        resourceType: 'refresh_token',
        result: 'failure',
        severity: 'medium',
        errorMessage: reason,
        ...metaColumns(meta),
      });
      throw unauthenticated(reason);
    };
    if (!REFRESH_TOKEN_RE.test(input.refreshToken)) return rejectUnknown('malformed refresh token');
    const hash = sha256(input.refreshToken);
    const now = clock.now();
    const nowDate = new Date(now);

    const outcome = await withTransaction<RefreshOutcome>(pool, async (c) => {
      const row = await findRefreshTokenForUpdate(c, hash);
      if (!row) return { kind: 'unknown' };
      await setTenantContext(c, row.tenantId);
      const base: Omit<AuditEvent, 'action'> = {
        tenantId: row.tenantId,
        userId: row.userId,
        resourceType: 'session',
        resourceId: row.sessionId,
        ...metaColumns(meta),
      };

      const refuse = async (reason: string): Promise<RefreshOutcome> => {
        await audit.record(
          {
            ...base,
            action: 'auth.token.rejected',
            resourceType: 'refresh_token',
            resourceId: row.id,
            result: 'failure',
            severity: 'medium',
            errorMessage: reason,
          },
          c,
        );
        return { kind: 'refused', reason };
      };
      const expire = async (kind: 'idle' | 'absolute'): Promise<RefreshOutcome> => {
        const reason = EXPIRY_REASONS[kind];
        if (await revokeSession(c, row.sessionId, row.tenantId, nowDate, reason)) {
          await audit.record(
            { ...base, action: 'session.expired', result: 'success', severity: 'low', errorMessage: reason },
            c,
          );
        }
        return { kind: 'refused', reason: `session ${reason}` };
      };
      if (row.usedAt) {
        // Within the grace (two tabs racing): the same successor pair, from stored state; nothing revoked.
        if (graceMs > 0 && encryption && row.successorSealed && now - row.usedAt.getTime() <= graceMs) {
          if (row.revokedAt)
            return refuse(
              `spent refresh token of a revoked session (${row.revokedReason ?? 'no reason'}) within the reuse grace`,
            );
          if (!row.isActive) return refuse('user deactivated');
          const pair = await openSuccessor(
            encryption,
            { tenantId: row.tenantId, sessionId: row.sessionId, tokenId: row.id },
            row.successorSealed,
          );
          if (!pair) return refuse('the kept successor of a spent refresh token could not be decrypted');
          await audit.record(
            {
              ...base,
              action: 'auth.refresh.grace',
              result: 'success',
              severity: 'low',
              after: { tokenId: row.id, spentAt: row.usedAt.toISOString(), graceSeconds: graceMs / 1000 },
            },
            c,
          );
          return {
            kind: 'ok',
            row,
            token: pair.refreshToken,
            access: { token: pair.accessToken, expiresIn: pair.expiresIn },
          };
        }
        const revoked = row.revokedAt
          ? false
          : await revokeSession(c, row.sessionId, row.tenantId, nowDate, 'refresh token reuse');
        const after = { tokenId: row.id, spentAt: row.usedAt.toISOString(), sessionRevoked: revoked };
        await audit.record(
          {
            ...base,
            action: 'auth.refresh.reuse',
            result: 'failure',
            severity: 'critical',
            errorMessage: `spent refresh token presented again; session ${revoked ? 'revoked' : 'was already revoked'}`,
            after,
          },
          c,
        );
        await audit.record(
          {
            ...base,
            action: 'security.alert.refresh_reuse',
            result: 'failure',
            severity: 'critical',
            errorMessage: 'refresh token reuse: the token may have been stolen',
            after,
          },
          c,
        );
        return { kind: 'refused', reason: 'refresh token reuse' };
      }
      if (row.revokedAt) {
        if (isExpiryReason(row.revokedReason))
          return { kind: 'refused', reason: `session already ended (${row.revokedReason})` };
        return refuse(`refresh token of a revoked session (${row.revokedReason ?? 'no reason'})`);
      }
      if (!row.isActive) return refuse('user deactivated');
      const timedOut = timeouts.passed(now, {
        lastUsedMs: row.lastUsedAt.getTime(),
        absoluteExpiresMs: row.absoluteExpiresAt.getTime(),
      });
      if (timedOut) return expire(timedOut);
      if (now >= row.expiresAt.getTime()) return refuse('refresh token expired');

      const next = newRefreshToken();
      const access = tokens.issue({ userId: row.userId, sessionId: row.sessionId, tenantId: row.tenantId });
      const sealed =
        graceMs > 0 && encryption
          ? await sealSuccessor(
              encryption,
              { tenantId: row.tenantId, sessionId: row.sessionId, tokenId: row.id },
              { refreshToken: next.token, accessToken: access.token, expiresIn: access.expiresIn },
            )
          : null;
      await insertRefreshToken(c, {
        id: next.id,
        sessionId: row.sessionId,
        hash: next.hash,
        now: nowDate,
        expiresAt: row.absoluteExpiresAt,
      });
      if (!(await spendRefreshToken(c, row.id, nowDate, next.id, sealed)))
        throw new Error('refresh token spent concurrently despite the row lock');
      if (graceMs > 0) await clearOldSuccessors(c, row.sessionId, new Date(now - graceMs));
      await touchSession(
        c,
        row.sessionId,
        row.tenantId,
        nowDate,
        timeouts.idleExpiry(now, row.absoluteExpiresAt.getTime()),
      );
      await audit.record(
        {
          ...base,
          action: 'auth.refresh',
          result: 'success',
          severity: 'low',
          after: { previousTokenId: row.id, tokenId: next.id },
        },
        c,
      );
      return { kind: 'ok', row, token: next.token, access: { token: access.token, expiresIn: access.expiresIn } };
    });

    if (outcome.kind === 'unknown') return rejectUnknown('unknown refresh token');
    if (outcome.kind === 'refused') throw unauthenticated(`refresh refused: ${outcome.reason}`);
    const { row, access } = outcome;
    return {
      token: access.token,
      refreshToken: outcome.token,
      tokenType: 'Bearer',
      expiresIn: access.expiresIn,
      user: publicUser({
        userId: row.userId,
        email: row.email,
        role: row.role,
        tenantId: row.tenantId,
        displayName: row.displayName,
      }),
      sessionId: row.sessionId,
      refreshExpiresAt: row.absoluteExpiresAt,
    };
  }

  return {
    loginAvailable: deps.idTokens !== null,
    login,
    refresh,
    async logout(auth, meta) {
      await withTenant(pool, auth.tenantId, async (c) => {
        const revoked = await sessions.revoke(c, auth.sessionId, auth.tenantId, 'logout');
        await audit.record(
          {
            tenantId: auth.tenantId,
            userId: auth.userId,
            action: 'auth.logout',
            resourceType: 'session',
            resourceId: auth.sessionId,
            result: 'success',
            severity: 'low',
            after: { sessionRevoked: revoked },
            ...metaColumns(meta),
          },
          c,
        );
      });
    },
    async listSessions(auth) {
      const now = clock.now();
      const rows = await withTenant(pool, auth.tenantId, (c) =>
        listActiveSessions(c, auth.tenantId, auth.userId, new Date(now), timeouts.idleCutoff(now), 100),
      );
      return rows.map((r) => ({
        id: r.id,
        createdAt: r.createdAt.toISOString(),
        lastUsedAt: r.lastUsedAt.toISOString(),
        ipAddress: r.ipAddress,
        userAgent: r.userAgent,
        current: r.id === auth.sessionId,
      }));
    },
    async revokeSession(auth, sessionId, meta) {
      const now = clock.now();
      const anyInTenant = hasPermission(auth.role, 'sessions:revoke:tenant');
      await withTenant(pool, auth.tenantId, async (c) => {
        const r = await revokeLiveSession(c, {
          sessionId,
          tenantId: auth.tenantId,
          now: new Date(now),
          idleCutoff: timeouts.idleCutoff(now),
          actorUserId: auth.userId,
          anyInTenant,
          reason: anyInTenant ? 'revoked by an admin' : 'revoked by its user',
        });
        if (!r) throw notFound('Session');
        await audit.record(
          {
            tenantId: auth.tenantId,
            userId: auth.userId,
            action: 'session.revoked',
            resourceType: 'session',
            resourceId: sessionId,
            result: 'success',
            severity: 'medium',
            after: {
              ownerUserId: r.userId,
              revokedBy: auth.userId,
              scope: r.userId === auth.userId ? 'own' : 'tenant',
            },
            ...metaColumns(meta),
          },
          c,
        );
      });
    },
  };
}
