/**
 * The one role → permission matrix. Used by requirePermission() and by GET /user.
 * Every permission is scoped to the caller's own tenant; nobody sees another tenant.
 */
import type { Role } from '../../types/express';

export const PERMISSIONS = [
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
] as const;
export type Permission = (typeof PERMISSIONS)[number];

export const ROLES: readonly Role[] = ['admin', 'user', 'viewer'];

const MATRIX: Readonly<Record<Role, ReadonlySet<Permission>>> = Object.freeze({
  admin: new Set<Permission>(PERMISSIONS),
  user: new Set<Permission>(['profile:read', 'sessions:read:own', 'sessions:revoke:own', 'audit:write', 'audit:read:own']),
  viewer: new Set<Permission>(['profile:read', 'sessions:read:own', 'sessions:revoke:own', 'audit:read:own']),
});

export function isRole(v: unknown): v is Role {
  return v === 'admin' || v === 'user' || v === 'viewer';
}

export function hasPermission(role: Role, p: Permission): boolean {
  return MATRIX[role]?.has(p) ?? false;
}

/** Sorted, for stable API output. */
export function permissionsOf(role: Role): Permission[] {
  return [...(MATRIX[role] ?? [])].sort();
}
