/**
 * The audit action catalog: every action the server itself records, with its default
 * severity, and the rules for actions clients record through POST /audit/log.
 */
import type { Severity } from './types';

export type AuditCategory = 'authentication' | 'session' | 'user' | 'access' | 'key' | 'audit' | 'alert' | 'system';

export interface CatalogEntry {
  severity: Severity;
  category: AuditCategory;
  description: string;
}

export const AUDIT_CATALOG = {
  // Authentication
  'auth.login.success': { severity: 'low', category: 'authentication', description: 'A user logged in.' },
  'auth.login.failure': {
    severity: 'medium',
    category: 'authentication',
    description:
      "A login failed (reason in error_message, resource_id = lower-cased email, tenant '_unknown' when no user matched).",
  },
  'auth.lockout': {
    severity: 'high',
    category: 'authentication',
    description: 'Too many failed logins: further attempts are locked for the window.',
  },
  'auth.logout': {
    severity: 'low',
    category: 'authentication',
    description: 'A user logged out; the session was revoked.',
  },
  'auth.refresh': {
    severity: 'low',
    category: 'authentication',
    description: 'A refresh token was exchanged for new tokens.',
  },
  'auth.refresh.reuse': {
    severity: 'critical',
    category: 'authentication',
    description: 'A spent refresh token was presented again; its family was revoked.',
  },
  'auth.token.rejected': {
    severity: 'medium',
    category: 'authentication',
    description: 'An access or ID token was refused.',
  },
  'auth.refresh.grace': {
    severity: 'low',
    category: 'authentication',
    description:
      'A spent refresh token was presented again within REFRESH_REUSE_GRACE_SECONDS; the same successor pair was returned and nothing was revoked.',
  },
  'auth.token.revoked': {
    severity: 'low',
    category: 'authentication',
    description: 'A token was revoked through POST /oauth/revoke (RFC 7009); its session ended.',
  },
  'auth.apikey.rejected': {
    severity: 'medium',
    category: 'authentication',
    description: 'An API key was refused (unknown, wrong secret, revoked or expired).',
  },
  'auth.mfa.enrolled': {
    severity: 'medium',
    category: 'authentication',
    description: 'A TOTP secret was generated for a user (not yet active).',
  },
  'auth.mfa.activated': {
    severity: 'high',
    category: 'authentication',
    description: 'A user activated TOTP with a valid code; recovery codes were issued.',
  },
  'auth.mfa.removed': {
    severity: 'high',
    category: 'authentication',
    description: 'A user removed their TOTP (after a step-up).',
  },
  'auth.mfa.step_up': {
    severity: 'low',
    category: 'authentication',
    description: 'A step-up with a TOTP or recovery code succeeded; a fresh access token with amr was issued.',
  },
  'auth.mfa.failure': {
    severity: 'medium',
    category: 'authentication',
    description: 'A TOTP or recovery code was refused (wrong, replayed or locked).',
  },
  'auth.mfa.locked': {
    severity: 'high',
    category: 'authentication',
    description: 'Five wrong codes: step-up is locked for 15 minutes.',
  },
  'access.step_up_required': {
    severity: 'medium',
    category: 'access',
    description: 'A route that needs a recent step-up was refused (403 STEP_UP_REQUIRED).',
  },
  // Sessions
  'session.revoked': { severity: 'medium', category: 'session', description: 'A session was revoked.' },
  'session.revoked.bulk': {
    severity: 'high',
    category: 'session',
    description: 'Many sessions were revoked at once (user, tenant or all).',
  },
  'session.expired': {
    severity: 'low',
    category: 'session',
    description: 'A session reached its idle or absolute timeout.',
  },
  // Users
  'user.created': { severity: 'medium', category: 'user', description: 'A user was provisioned.' },
  'user.role_changed': { severity: 'high', category: 'user', description: "A user's role changed." },
  'user.updated': {
    severity: 'low',
    category: 'user',
    description: "A user's display name changed (user:add --name).",
  },
  'user.deactivated': { severity: 'high', category: 'user', description: 'A user was deactivated.' },
  'user.reactivated': { severity: 'medium', category: 'user', description: 'A deactivated user was reactivated.' },
  // Access control
  'access.denied': {
    severity: 'medium',
    category: 'access',
    description: 'An authenticated request lacked the permission it needed.',
  },
  // Keys
  'key.api.created': {
    severity: 'high',
    category: 'key',
    description: 'A service API key was created (the secret is shown once and stored as a keyed hash).',
  },
  'key.api.revoked': { severity: 'high', category: 'key', description: 'A service API key was revoked.' },
  'key.api.used': {
    severity: 'low',
    category: 'key',
    description: 'A request was authenticated with a service API key (actor: the key id).',
  },
  'key.master.read': { severity: 'high', category: 'key', description: 'Master-key metadata was read.' },
  'key.master.rotated': { severity: 'critical', category: 'key', description: 'The master key was rotated.' },
  'key.master.fallback': {
    severity: 'high',
    category: 'key',
    description: 'The key vault was unavailable; the environment key was used.',
  },
  'key.master.refresh_failed': {
    severity: 'high',
    category: 'key',
    description: 'Refreshing the cached master key failed; the cached key is still served.',
  },
  'key.rewrap': {
    severity: 'high',
    category: 'key',
    description: 'Stored ciphertexts were re-encrypted under the current key version.',
  },
  // The audit trail itself
  'audit.export': {
    severity: 'medium',
    category: 'audit',
    description: 'Audit rows were exported to the immutable archive.',
  },
  'audit.export.failed': { severity: 'high', category: 'audit', description: 'An audit export failed.' },
  'audit.verify': { severity: 'low', category: 'audit', description: 'The audit hash chain was verified intact.' },
  'audit.verify.failed': {
    severity: 'critical',
    category: 'audit',
    description: 'The audit hash chain is broken (tampering or corruption).',
  },
  'audit.siem.submitted': {
    severity: 'low',
    category: 'audit',
    description: 'An administrator submitted events for SIEM forwarding.',
  },
  'audit.siem.dead_letter': {
    severity: 'high',
    category: 'audit',
    description: 'A SIEM event was refused permanently and moved to the dead letter.',
  },
  'audit.purge': {
    severity: 'critical',
    category: 'audit',
    description: 'Old audit rows were removed by the retention purge.',
  },
  // Tenant audit streams (docs/SIEM_AND_ARCHIVE.md)
  'audit.stream.created': {
    severity: 'high',
    category: 'audit',
    description: "A tenant administrator added an audit stream to the tenant's own SIEM.",
  },
  'audit.stream.updated': {
    severity: 'high',
    category: 'audit',
    description: 'An audit stream was changed (destination, schema, severity floor or credentials).',
  },
  'audit.stream.deleted': { severity: 'high', category: 'audit', description: 'An audit stream was removed.' },
  'audit.stream.tested': {
    severity: 'low',
    category: 'audit',
    description: 'A test event was queued for an audit stream.',
  },
  'audit.stream.dead_letter': {
    severity: 'high',
    category: 'audit',
    description: "An audit stream's SIEM refused events permanently; they were moved to the stream's dead letter.",
  },
  // Alerts raised by the monitoring rules
  'security.alert.brute_force': {
    severity: 'critical',
    category: 'alert',
    description: 'Repeated failed logins for one email or IP.',
  },
  'security.alert.refresh_reuse': {
    severity: 'critical',
    category: 'alert',
    description: 'Refresh-token reuse detected.',
  },
  'security.alert.key_event': { severity: 'high', category: 'alert', description: 'Master-key rotation or fallback.' },
  'security.alert.admin_escalation': {
    severity: 'high',
    category: 'alert',
    description: 'A user was given the admin role.',
  },
  'security.alert.denied_burst': {
    severity: 'high',
    category: 'alert',
    description: 'A burst of access denials from one user.',
  },
  // System
  'system.startup': { severity: 'low', category: 'system', description: 'The service started.' },
  'system.shutdown': { severity: 'low', category: 'system', description: 'The service stopped.' },
  'system.backup': { severity: 'medium', category: 'system', description: 'A database backup was written.' },
  'system.restore': { severity: 'high', category: 'system', description: 'The database was restored from a backup.' },
  'system.evidence_collected': {
    severity: 'medium',
    category: 'system',
    description: 'Incident evidence was collected.',
  },
  'system.config_warning': {
    severity: 'medium',
    category: 'system',
    description: 'The configuration has a warning (e.g. fallback key in production).',
  },
} as const satisfies Record<string, CatalogEntry>;

/** A server-side action from the catalog. */
export type AuditAction = keyof typeof AUDIT_CATALOG;

export const AUDIT_ACTIONS: readonly AuditAction[] = Object.freeze(Object.keys(AUDIT_CATALOG) as AuditAction[]);

/** Prefixes written only by the server itself (contract §3); clients may not use them. */
export const RESERVED_PREFIXES = Object.freeze(['auth.', 'session.', 'security.', 'key.', 'system.', 'user.'] as const);

/** The shape of every action name (server-side and client-recorded). */
export const ACTION_PATTERN = /^[a-z][a-z0-9_-]*(\.[a-z0-9_-]+)+$/;
const ACTION_MAX_LENGTH = 128;

/** Tenants the server writes under when no real tenant applies (real tenant ids cannot start with '_'). */
export const UNKNOWN_TENANT = '_unknown';
export const SYSTEM_TENANT = '_system';

export function isCatalogAction(action: string): action is AuditAction {
  return Object.prototype.hasOwnProperty.call(AUDIT_CATALOG, action);
}

export function isWellFormedAction(action: string): boolean {
  return action.length <= ACTION_MAX_LENGTH && ACTION_PATTERN.test(action);
}

/** Default severity: the catalog's for server-side actions, `low` for anything else. */
export function defaultSeverity(action: string): Severity {
  return isCatalogAction(action) ? AUDIT_CATALOG[action].severity : 'low';
}

/**
 * Why a client may not record this action, or null when it may. Refused: malformed names,
 * the reserved prefixes, and any server-side catalog action (so a client cannot forge
 * e.g. `access.denied` or `audit.verify.failed`).
 */
export function clientActionProblem(action: string): string | null {
  if (action.length > ACTION_MAX_LENGTH) return `must be at most ${ACTION_MAX_LENGTH} characters`;
  if (!ACTION_PATTERN.test(action))
    return 'must look like "domain.verb" (lower-case letters, digits, "_" or "-", dot-separated, at least two parts)';
  const prefix = RESERVED_PREFIXES.find((p) => action.startsWith(p));
  if (prefix) return `the prefix "${prefix}" is reserved for events the server records itself`;
  if (isCatalogAction(action)) return 'is a server-side action and cannot be recorded by clients';
  return null;
}
