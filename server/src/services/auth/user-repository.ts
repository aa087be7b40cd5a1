import type { Pool, PoolClient, Queryable } from '../../db/pool';
import type { Role } from '../../domain/actor';

export interface UserRecord {
  id: string;
  tenantId: string;
  email: string;
  role: Role;
  displayName: string | null;
  isActive: boolean;
  /** The identity provider subject bound at the first login (null until then). */
  auth0Sub: string | null;
}

interface UserRow {
  id: string;
  tenant_id: string;
  email: string;
  role: Role;
  display_name: string | null;
  is_active: boolean;
  auth0_sub: string | null;
}

const COLUMNS = 'id, tenant_id, email, role, display_name, is_active, auth0_sub';

function toUser(r: UserRow): UserRecord {
  return {
    id: r.id,
    tenantId: r.tenant_id,
    email: r.email,
    role: r.role,
    displayName: r.display_name,
    isActive: r.is_active,
    auth0Sub: r.auth0_sub,
  };
}

/**
 * Every tenant's user with this e-mail (login names no tenant). Bounded; uses users_email_idx.
 * Across tenants through the narrowly-scoped function of migration 053 (users has forced
 * row-level security: a plain query without a tenant context sees nothing).
 */
const FIND_USERS_BY_EMAIL = `SELECT ${COLUMNS} FROM auth_users_by_email($1)`;

export async function findUsersByEmail(q: Pool | PoolClient, email: string): Promise<UserRecord[]> {
  // Named (prepared) statement: on the login path, planned once per connection.
  const { rows } = await q.query<UserRow>({
    name: 'fleet_auth_users_by_email',
    text: FIND_USERS_BY_EMAIL,
    values: [email],
  });
  return rows.map(toUser);
}

const FIND_USER_FOR_UPDATE = `SELECT ${COLUMNS} FROM users WHERE tenant_id = $1 AND email = $2 FOR UPDATE`;

export async function findUserForUpdate(q: Queryable, tenantId: string, email: string): Promise<UserRecord | null> {
  const { rows } = await q.query<UserRow>(FIND_USER_FOR_UPDATE, [tenantId, email]);
  return rows[0] ? toUser(rows[0]) : null;
}

const INSERT_USER = `
INSERT INTO users (tenant_id, email, role, display_name)
VALUES ($1, $2, $3, $4)
RETURNING ${COLUMNS}`;

export async function insertUser(
  q: Queryable,
  u: { tenantId: string; email: string; role: Role; displayName: string | null },
): Promise<UserRecord> {
  const { rows } = await q.query<UserRow>(INSERT_USER, [u.tenantId, u.email, u.role, u.displayName]);
  return toUser(rows[0] as UserRow);
}

/** Role, display name and active flag; $6 true also clears the bound IdP subject (reactivation). */
const UPDATE_USER = `
UPDATE users SET role = $3, display_name = $4, is_active = $5, auth0_sub = CASE WHEN $6::boolean THEN NULL ELSE auth0_sub END
WHERE id = $1 AND tenant_id = $2
RETURNING ${COLUMNS}`;

export async function updateUser(
  q: Queryable,
  u: { id: string; tenantId: string; role: Role; displayName: string | null; isActive: boolean; clearSubject: boolean },
): Promise<UserRecord> {
  const { rows } = await q.query<UserRow>(UPDATE_USER, [
    u.id,
    u.tenantId,
    u.role,
    u.displayName,
    u.isActive,
    u.clearSubject,
  ]);
  return toUser(rows[0] as UserRow);
}

/**
 * Binds the IdP subject at the first successful login. True when the user is now bound to
 * `sub` (bound here, or already bound to the same sub by a concurrent login); false when a
 * concurrent first login bound another subject first (the row lock makes this one wait for it,
 * and the re-checked condition then fails: 0 rows).
 */
const BIND_USER_SUBJECT = `UPDATE users SET auth0_sub = $3 WHERE id = $1 AND tenant_id = $2 AND (auth0_sub IS NULL OR auth0_sub = $3)`;

export async function bindUserSubject(q: Queryable, id: string, tenantId: string, sub: string): Promise<boolean> {
  const r = await q.query(BIND_USER_SUBJECT, [id, tenantId, sub]);
  return (r.rowCount ?? 0) > 0;
}

/** Active users with this e-mail in other tenants (logins for it would be ambiguous). */
const COUNT_ACTIVE_ELSEWHERE = `SELECT auth_count_active_elsewhere($1, $2) AS n`;

export async function countActiveElsewhere(q: Queryable, email: string, tenantId: string): Promise<number> {
  const { rows } = await q.query<{ n: number }>(COUNT_ACTIVE_ELSEWHERE, [email, tenantId]);
  return rows[0]?.n ?? 0;
}
