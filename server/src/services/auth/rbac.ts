/**
 * The one permission matrix: role or API-key scope → permissions. Used by requirePermission(),
 * GET /user and every route decision; documented in docs/SECURITY_API.md ("Permission matrix").
 * Every permission is scoped to the caller's own tenant; nobody sees another tenant.
 */
import type { AuthContext, Role } from '../../domain/actor';

const PERMISSIONS = [
  'profile:read',
  'sessions:read:own',
  'sessions:revoke:own',
  'sessions:revoke:tenant',
  'audit:write',
  'audit:read:own',
  'audit:read:tenant',
  'audit:verify',
  'audit:export',
  'siem:write',
  'siem:read',
  'keys:read',
  'keys:rotate',
  'users:manage',
  'apikeys:manage',
  'tokens:introspect',
] as const;
export type Permission = (typeof PERMISSIONS)[number];

/** Scopes a service API key may hold (CONTRACT §11). */
export const API_SCOPES = ['audit:write', 'audit:read', 'siem:write', 'tokens:introspect'] as const;
export type ApiScope = (typeof API_SCOPES)[number];

type Principal = Role | `scope:${ApiScope}`;

const MATRIX: Readonly<Record<Principal, ReadonlySet<Permission>>> = Object.freeze({
  admin: new Set<Permission>(PERMISSIONS),
  user: new Set<Permission>([
    'profile:read',
    'sessions:read:own',
    'sessions:revoke:own',
    'audit:write',
    'audit:read:own',
  ]),
  viewer: new Set<Permission>(['profile:read', 'sessions:read:own', 'sessions:revoke:own', 'audit:read:own']),
  // API keys hold no role: only what their scopes grant.
  'scope:audit:write': new Set<Permission>(['audit:write']),
  'scope:audit:read': new Set<Permission>(['audit:read:own', 'audit:read:tenant']),
  'scope:siem:write': new Set<Permission>(['siem:write']),
  'scope:tokens:introspect': new Set<Permission>(['tokens:introspect']),
});

export function isRole(v: unknown): v is Role {
  return v === 'admin' || v === 'user' || v === 'viewer';
}

function isApiScope(v: unknown): v is ApiScope {
  return typeof v === 'string' && (API_SCOPES as readonly string[]).includes(v);
}

export function hasPermission(role: Role, p: Permission): boolean {
  return MATRIX[role]?.has(p) ?? false;
}

/** Whether an authenticated caller (user by role, API key by scopes) holds p. */
export function principalHas(auth: Pick<AuthContext, 'role' | 'apiKeyId' | 'scopes'>, p: Permission): boolean {
  if (auth.apiKeyId !== undefined) return (auth.scopes ?? []).some((s) => isApiScope(s) && MATRIX[`scope:${s}`].has(p));
  return hasPermission(auth.role, p);
}

/** Sorted, for stable API output. */
export function permissionsOf(role: Role): Permission[] {
  return [...(MATRIX[role] ?? [])].sort();
}

/** The whole matrix, for the documentation test (docs/SECURITY_API.md must list it). */
export function permissionMatrix(): Array<{ principal: Principal; permissions: Permission[] }> {
  return (Object.keys(MATRIX) as Principal[]).map((principal) => ({
    principal,
    permissions: [...MATRIX[principal]].sort(),
  }));
}
