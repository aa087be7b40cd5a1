import type { Queryable } from '../../db/pool';
import type { Role } from '../../types/express';

export interface SessionWithUser {
  id: string;
  userId: string;
  tenantId: string;
  createdAt: Date;
  lastUsedAt: Date;
  idleExpiresAt: Date;
  absoluteExpiresAt: Date;
  revokedAt: Date | null;
  email: string;
  role: Role;
  isActive: boolean;
  displayName: string | null;
}

export const INSERT_SESSION = `
INSERT INTO sessions (user_id, tenant_id, created_at, last_used_at, idle_expires_at, absolute_expires_at, ip_address, user_agent)
VALUES ($1, $2, $3, $3, $4, $5, $6, $7)
RETURNING id`;

export async function insertSession(
  q: Queryable,
  s: { userId: string; tenantId: string; now: Date; idleExpiresAt: Date; absoluteExpiresAt: Date; ip: string | null; userAgent: string | null },
): Promise<string> {
  const { rows } = await q.query<{ id: string }>(INSERT_SESSION, [s.userId, s.tenantId, s.now, s.idleExpiresAt, s.absoluteExpiresAt, s.ip, s.userAgent]);
  return (rows[0] as { id: string }).id;
}

/** The per-request lookup: one primary-key probe joined to the user's current role and active flag. */
export const FIND_SESSION_FOR_AUTH = `
SELECT s.id, s.user_id, s.tenant_id, s.created_at, s.last_used_at, s.idle_expires_at, s.absolute_expires_at, s.revoked_at,
       u.email, u.role, u.is_active, u.display_name
FROM sessions s
JOIN users u ON u.id = s.user_id AND u.tenant_id = s.tenant_id
WHERE s.id = $1 AND s.tenant_id = $2 AND s.user_id = $3`;

interface SessionRow {
  id: string;
  user_id: string;
  tenant_id: string;
  created_at: Date;
  last_used_at: Date;
  idle_expires_at: Date;
  absolute_expires_at: Date;
  revoked_at: Date | null;
  email: string;
  role: Role;
  is_active: boolean;
  display_name: string | null;
}

export async function findSessionForAuth(q: Queryable, sessionId: string, tenantId: string, userId: string): Promise<SessionWithUser | null> {
  const { rows } = await q.query<SessionRow>(FIND_SESSION_FOR_AUTH, [sessionId, tenantId, userId]);
  const r = rows[0];
  if (!r) return null;
  return {
    id: r.id,
    userId: r.user_id,
    tenantId: r.tenant_id,
    createdAt: r.created_at,
    lastUsedAt: r.last_used_at,
    idleExpiresAt: r.idle_expires_at,
    absoluteExpiresAt: r.absolute_expires_at,
    revokedAt: r.revoked_at,
    email: r.email,
    role: r.role,
    isActive: r.is_active,
    displayName: r.display_name,
  };
}

export const TOUCH_SESSION = `
UPDATE sessions SET last_used_at = $3, idle_expires_at = $4
WHERE id = $1 AND tenant_id = $2 AND revoked_at IS NULL AND last_used_at < $3`;

export async function touchSession(q: Queryable, sessionId: string, tenantId: string, now: Date, idleExpiresAt: Date): Promise<void> {
  await q.query(TOUCH_SESSION, [sessionId, tenantId, now, idleExpiresAt]);
}

export const REVOKE_SESSION = `
UPDATE sessions SET revoked_at = $3, revoked_reason = $4
WHERE id = $1 AND tenant_id = $2 AND revoked_at IS NULL`;

export async function revokeSession(q: Queryable, sessionId: string, tenantId: string, now: Date, reason: string): Promise<boolean> {
  const r = await q.query(REVOKE_SESSION, [sessionId, tenantId, now, reason]);
  return (r.rowCount ?? 0) > 0;
}
