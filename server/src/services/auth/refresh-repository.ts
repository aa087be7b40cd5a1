/**
 * Refresh tokens: stored only as SHA-256 hashes. A session is one family; each token is
 * spent once and records the token that replaced it.
 */
import type { Queryable } from '../../db/pool';
import { setTenantContext } from '../../db/transaction';
import type { Role } from '../../domain/actor';

const INSERT_REFRESH_TOKEN = `
INSERT INTO refresh_tokens (id, session_id, token_hash, created_at, expires_at)
VALUES ($1, $2, $3, $4, $5)`;

export async function insertRefreshToken(
  q: Queryable,
  t: { id: string; sessionId: string; hash: Buffer; now: Date; expiresAt: Date },
): Promise<void> {
  await q.query(INSERT_REFRESH_TOKEN, [t.id, t.sessionId, t.hash, t.now, t.expiresAt]);
}

export interface RefreshTokenState {
  id: string;
  sessionId: string;
  expiresAt: Date;
  usedAt: Date | null;
  /** The successor pair, encrypted (refresh reuse grace); null when not kept. */
  successorSealed: string | null;
  tenantId: string;
  userId: string;
  lastUsedAt: Date;
  absoluteExpiresAt: Date;
  revokedAt: Date | null;
  revokedReason: string | null;
  email: string;
  role: Role;
  isActive: boolean;
  displayName: string | null;
}

/**
 * The token, its session and the user's current state, locked: concurrent refreshes of one
 * family, and a refresh racing a revocation, are serialized on the session row.
 */
const FIND_REFRESH_TOKEN_FOR_UPDATE = `
SELECT rt.id, rt.session_id, rt.expires_at, rt.used_at, rt.successor_sealed,
       s.tenant_id, s.user_id, s.last_used_at, s.absolute_expires_at, s.revoked_at, s.revoked_reason,
       u.email, u.role, u.is_active, u.display_name
FROM refresh_tokens rt
JOIN sessions s ON s.id = rt.session_id
JOIN users u ON u.id = s.user_id AND u.tenant_id = s.tenant_id
WHERE rt.token_hash = $1
FOR UPDATE OF rt, s`;

interface Row {
  id: string;
  session_id: string;
  expires_at: Date;
  used_at: Date | null;
  successor_sealed: string | null;
  tenant_id: string;
  user_id: string;
  last_used_at: Date;
  absolute_expires_at: Date;
  revoked_at: Date | null;
  revoked_reason: string | null;
  email: string;
  role: Role;
  is_active: boolean;
  display_name: string | null;
}

/** The tenant a refresh token belongs to (migration 053's narrowly-scoped function), or null. */
const REFRESH_TOKEN_TENANT = `SELECT auth_refresh_token_tenant($1) AS t`;

/**
 * Inside the caller's transaction: finds the token's tenant, scopes the transaction to it
 * (row-level security on refresh_tokens, sessions and users) and locks the token and session.
 */
export async function findRefreshTokenForUpdate(q: Queryable, hash: Buffer): Promise<RefreshTokenState | null> {
  const tenant = (await q.query<{ t: string | null }>(REFRESH_TOKEN_TENANT, [hash])).rows[0]?.t;
  if (!tenant) return null;
  await setTenantContext(q, tenant);
  const { rows } = await q.query<Row>(FIND_REFRESH_TOKEN_FOR_UPDATE, [hash]);
  const r = rows[0];
  if (!r) return null;
  return {
    id: r.id,
    sessionId: r.session_id,
    expiresAt: r.expires_at,
    usedAt: r.used_at,
    successorSealed: r.successor_sealed,
    tenantId: r.tenant_id,
    userId: r.user_id,
    lastUsedAt: r.last_used_at,
    absoluteExpiresAt: r.absolute_expires_at,
    revokedAt: r.revoked_at,
    revokedReason: r.revoked_reason,
    email: r.email,
    role: r.role,
    isActive: r.is_active,
    displayName: r.display_name,
  };
}

const SPEND_REFRESH_TOKEN = `
UPDATE refresh_tokens SET used_at = $2, replaced_by = $3, successor_sealed = $4
WHERE id = $1 AND used_at IS NULL`;

/**
 * Marks a token spent; false when it already was (the caller holds the row lock, so this is a guard).
 * `successorSealed`: the encrypted successor pair kept for the reuse grace (null: none).
 */
export async function spendRefreshToken(
  q: Queryable,
  id: string,
  now: Date,
  replacedBy: string,
  successorSealed: string | null = null,
): Promise<boolean> {
  const r = await q.query(SPEND_REFRESH_TOKEN, [id, now, replacedBy, successorSealed]);
  return (r.rowCount ?? 0) > 0;
}

/** Drops kept successor pairs of a session's tokens spent before `before` (their grace is over). */
const CLEAR_OLD_SUCCESSORS = `
UPDATE refresh_tokens SET successor_sealed = NULL
WHERE session_id = $1 AND successor_sealed IS NOT NULL AND used_at < $2`;

export async function clearOldSuccessors(q: Queryable, sessionId: string, before: Date): Promise<void> {
  await q.query(CLEAR_OLD_SUCCESSORS, [sessionId, before]);
}
