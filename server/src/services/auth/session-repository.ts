import { perTurn, slices } from '../../lib/turn-batch';
import type { Pool, PoolClient, Queryable } from '../../db/pool';
import type { Role } from '../../domain/actor';

/**
 * What the per-request session check needs, and nothing else: the session's state, its
 * times as whole epoch milliseconds, as a Date holds them (numbers, not Dates: no date parsing on the hot path) and the
 * user's current role and active flag. Id, user and tenant are the lookup's own keys.
 */
export interface SessionForAuth {
  id: string;
  userId: string;
  tenantId: string;
  lastUsedMs: number;
  absoluteExpiresMs: number;
  revoked: boolean;
  revokedReason: string | null;
  email: string;
  role: Role;
  isActive: boolean;
  displayName: string | null;
}

/**
 * One login: the session and its first refresh token in a single statement (one round trip).
 * The token's expiry is the session's absolute expiry.
 */
const INSERT_SESSION_WITH_REFRESH_TOKEN = `
WITH s AS (
  INSERT INTO sessions (user_id, tenant_id, created_at, last_used_at, idle_expires_at, absolute_expires_at, ip_address, user_agent)
  VALUES ($1, $2, $3, $3, $4, $5, $6, $7)
  RETURNING id
), rt AS (
  INSERT INTO refresh_tokens (id, session_id, token_hash, created_at, expires_at)
  SELECT $8, s.id, $9, $3, $5 FROM s
)
-- The id from the session insert: a RETURNING on refresh_tokens would be checked against its
-- row-level security read policy, which cannot see the session inserted by this statement.
SELECT id AS session_id FROM s`;

export async function insertSessionWithRefreshToken(
  q: Queryable,
  s: {
    userId: string;
    tenantId: string;
    now: Date;
    idleExpiresAt: Date;
    absoluteExpiresAt: Date;
    ip: string | null;
    userAgent: string | null;
    refreshId: string;
    refreshHash: Buffer;
  },
): Promise<string> {
  const { rows } = await q.query<{ session_id: string }>(INSERT_SESSION_WITH_REFRESH_TOKEN, [
    s.userId,
    s.tenantId,
    s.now,
    s.idleExpiresAt,
    s.absoluteExpiresAt,
    s.ip,
    s.userAgent,
    s.refreshId,
    s.refreshHash,
  ]);
  return (rows[0] as { session_id: string }).session_id;
}

/**
 * The per-request lookup: one primary-key probe joined to the user's current role and active
 * flag. Run as a named (prepared) statement: parsed and planned once per connection, which
 * halves its cost on every authenticated request.
 */
/*
 * auth_find_sessions (migration 053) finds the session by its primary key alone and checks tenant and user
 * outside a LIMITed subquery, so no plan can walk the tenant's index instead (docs/SECURITY_API.md §15).
 */
// sessions and users have forced row-level security (migration 053): the per-request check
// runs through auth_find_sessions(), which holds the same query (a primary-key probe, then the
// tenant and user checks) and returns a session only for its own tenant and user.
export const FIND_SESSION_FOR_AUTH = `SELECT revoked, revoked_reason, last_used_ms, absolute_expires_ms, email, role, is_active, display_name
FROM auth_find_sessions(ARRAY[$1::uuid], ARRAY[$2::text], ARRAY[$3::uuid])`;

interface SessionRow {
  revoked: boolean;
  revoked_reason: string | null;
  last_used_ms: number;
  absolute_expires_ms: number;
  email: string;
  role: Role;
  is_active: boolean;
  display_name: string | null;
}

export async function findSessionForAuth(
  q: Pool | PoolClient,
  sessionId: string,
  tenantId: string,
  userId: string,
): Promise<SessionForAuth | null> {
  const { rows } = await q.query<SessionRow>({
    name: 'fleet_auth_find_session',
    text: FIND_SESSION_FOR_AUTH,
    values: [sessionId, tenantId, userId],
  });
  const r = rows[0];
  return r ? toSession(r, sessionId, tenantId, userId) : null;
}

/**
 * The same check for several sessions in one statement: the keys arrive as three arrays and
 * come back tagged with their position; each key is one primary-key probe (see sessionById).
 * Used by createSessionLookup to batch the lookups of requests that arrived in the same
 * event-loop turn.
 */
export const FIND_SESSIONS_FOR_AUTH = `SELECT ord, revoked, revoked_reason, last_used_ms, absolute_expires_ms, email, role, is_active, display_name
FROM auth_find_sessions($1::uuid[], $2::text[], $3::uuid[])`;

/** Most lookups one batched statement carries. */
const SESSION_LOOKUP_BATCH_MAX = 64;

export type SessionLookup = (sessionId: string, tenantId: string, userId: string) => Promise<SessionForAuth | null>;

interface PendingLookup {
  sessionId: string;
  tenantId: string;
  userId: string;
  resolve(s: SessionForAuth | null): void;
  reject(err: unknown): void;
}

function toSession(r: SessionRow, sessionId: string, tenantId: string, userId: string): SessionForAuth {
  return {
    id: sessionId,
    userId,
    tenantId,
    lastUsedMs: r.last_used_ms,
    absoluteExpiresMs: r.absolute_expires_ms,
    revoked: r.revoked,
    revokedReason: r.revoked_reason,
    email: r.email,
    role: r.role,
    isActive: r.is_active,
    displayName: r.display_name,
  };
}

/**
 * The per-request session check, batched: lookups requested during one event-loop turn go
 * to the database together, in one statement, when the turn ends (setImmediate). Every
 * request still gets a fresh read issued after it arrived (a revocation, demotion or
 * deactivation committed before the request is seen by it); under load, one round trip
 * serves several requests instead of one each. A lone lookup uses the single-row query.
 */
export function createSessionLookup(pool: Pool): SessionLookup {
  function run(batch: PendingLookup[]): void {
    if (batch.length === 1) {
      const one = batch[0] as PendingLookup;
      findSessionForAuth(pool, one.sessionId, one.tenantId, one.userId).then(one.resolve, one.reject);
      return;
    }
    pool
      .query<SessionRow & { ord: number }>({
        name: 'fleet_auth_find_sessions',
        text: FIND_SESSIONS_FOR_AUTH,
        values: [batch.map((b) => b.sessionId), batch.map((b) => b.tenantId), batch.map((b) => b.userId)],
      })
      .then(
        ({ rows }) => {
          const found = new Array<SessionRow | undefined>(batch.length);
          for (const r of rows) found[r.ord - 1] = r;
          batch.forEach((b, i) => {
            const r = found[i];
            b.resolve(r ? toSession(r, b.sessionId, b.tenantId, b.userId) : null);
          });
        },
        (err: unknown) => {
          for (const b of batch) b.reject(err);
        },
      );
  }
  const submit = perTurn<PendingLookup>((all) => slices(all, SESSION_LOOKUP_BATCH_MAX).forEach(run));
  return (sessionId, tenantId, userId) =>
    new Promise<SessionForAuth | null>((resolve, reject) => submit({ sessionId, tenantId, userId, resolve, reject }));
}

const TOUCH_SESSION = `
UPDATE sessions SET last_used_at = $3, idle_expires_at = $4
WHERE id = $1 AND tenant_id = $2 AND revoked_at IS NULL AND last_used_at < $3`;

export async function touchSession(
  q: Queryable,
  sessionId: string,
  tenantId: string,
  now: Date,
  idleExpiresAt: Date,
): Promise<void> {
  await q.query(TOUCH_SESSION, [sessionId, tenantId, now, idleExpiresAt]);
}

const REVOKE_SESSION = `
UPDATE sessions SET revoked_at = $3, revoked_reason = $4
WHERE id = $1 AND tenant_id = $2 AND revoked_at IS NULL`;

export async function revokeSession(
  q: Queryable,
  sessionId: string,
  tenantId: string,
  now: Date,
  reason: string,
): Promise<boolean> {
  const r = await q.query(REVOKE_SESSION, [sessionId, tenantId, now, reason]);
  return (r.rowCount ?? 0) > 0;
}

export interface SessionView {
  id: string;
  userId: string;
  createdAt: Date;
  lastUsedAt: Date;
  ipAddress: string | null;
  userAgent: string | null;
}

/** A user's live sessions: not revoked, not past the absolute timeout, used after the idle cut-off. */
const LIST_ACTIVE_SESSIONS = `
SELECT id, user_id, created_at, last_used_at, host(ip_address) AS ip_address, user_agent
FROM sessions
WHERE tenant_id = $1 AND user_id = $2 AND revoked_at IS NULL AND absolute_expires_at > $3 AND last_used_at > $4
ORDER BY created_at DESC, id
LIMIT $5`;

export async function listActiveSessions(
  q: Queryable,
  tenantId: string,
  userId: string,
  now: Date,
  idleCutoff: Date,
  limit: number,
): Promise<SessionView[]> {
  const { rows } = await q.query<{
    id: string;
    user_id: string;
    created_at: Date;
    last_used_at: Date;
    ip_address: string | null;
    user_agent: string | null;
  }>(LIST_ACTIVE_SESSIONS, [tenantId, userId, now, idleCutoff, limit]);
  return rows.map((r) => ({
    id: r.id,
    userId: r.user_id,
    createdAt: r.created_at,
    lastUsedAt: r.last_used_at,
    ipAddress: r.ip_address,
    userAgent: r.user_agent,
  }));
}

/**
 * Revokes one live session of the tenant: the caller's own (user_id = $5), or any when
 * $6 (tenant-wide permission) is true. Returns the owner, or null when there is no such
 * live session in this tenant.
 */
const REVOKE_LIVE_SESSION = `
UPDATE sessions SET revoked_at = $3, revoked_reason = $7
WHERE id = $1 AND tenant_id = $2 AND revoked_at IS NULL AND absolute_expires_at > $3 AND last_used_at > $4
  AND (user_id = $5 OR $6::boolean)
RETURNING user_id`;

export async function revokeLiveSession(
  q: Queryable,
  s: {
    sessionId: string;
    tenantId: string;
    now: Date;
    idleCutoff: Date;
    actorUserId: string;
    anyInTenant: boolean;
    reason: string;
  },
): Promise<{ userId: string } | null> {
  const { rows } = await q.query<{ user_id: string }>(REVOKE_LIVE_SESSION, [
    s.sessionId,
    s.tenantId,
    s.now,
    s.idleCutoff,
    s.actorUserId,
    s.anyInTenant,
    s.reason,
  ]);
  return rows[0] ? { userId: rows[0].user_id } : null;
}

const REVOKE_USER_SESSIONS = `
UPDATE sessions SET revoked_at = $3, revoked_reason = $4
WHERE tenant_id = $1 AND user_id = $2 AND revoked_at IS NULL
RETURNING id`;

/** Revokes every session of one user (deactivation); returns the revoked ids. */
export async function revokeUserSessions(
  q: Queryable,
  tenantId: string,
  userId: string,
  now: Date,
  reason: string,
): Promise<string[]> {
  const { rows } = await q.query<{ id: string }>(REVOKE_USER_SESSIONS, [tenantId, userId, now, reason]);
  return rows.map((r) => r.id);
}
