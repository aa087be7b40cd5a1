/**
 * User provisioning (npm run user:add / user:deactivate). Login requires a provisioned,
 * active user; tenant and role always come from here, never from the ID token.
 * Every change writes its audit row in the same transaction:
 *   user.created (medium) · user.role_changed (high) · user.reactivated (medium) ·
 *   user.deactivated (high) + session.revoked.bulk (high) when sessions were ended.
 */
import type { Pool } from '../../db/pool';
import { withTenant } from '../../db/transaction';
import type { Clock } from '../../lib/clock';
import type { Role } from '../../domain/actor';
import type { AuditService } from '../audit/service';
import { isRole } from './rbac';
import { revokeUserSessions } from './session-repository';
import { countActiveElsewhere, findUserForUpdate, insertUser, updateUser, type UserRecord } from './user-repository';

/** ASCII e-mail (internationalized domains as punycode); compared lower-cased. */
export const EMAIL_RE =
  /^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}[A-Za-z0-9])?)+$/;
export const TENANT_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

export class UserInputError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UserInputError';
  }
}

/** The user named does not exist (not a usage error: the command line was well formed). */
class UserNotFoundError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UserNotFoundError';
  }
}

/** Who made the change (written to the audit row; there is no user session behind a CLI). */
export interface Actor {
  /** e.g. "cli:user:add" */
  source: string;
  /** The operating-system account that ran the command, when known. */
  operator?: string | null;
}

export interface ProvisionResult {
  user: UserRecord;
  outcome: 'created' | 'updated' | 'unchanged';
  /** Audit actions written. */
  events: string[];
  /** Active users with the same e-mail in other tenants: their logins are refused as ambiguous. */
  activeElsewhere: number;
}

export interface DeactivateResult {
  user: UserRecord;
  outcome: 'deactivated' | 'unchanged';
  sessionsRevoked: number;
  events: string[];
}

export interface UserService {
  provision(
    input: { email: string; role: string; tenantId: string; displayName?: string | null },
    actor: Actor,
  ): Promise<ProvisionResult>;
  deactivate(
    input: { email: string; tenantId: string; reason?: string | null },
    actor: Actor,
  ): Promise<DeactivateResult>;
}

export function normalizeEmail(raw: string): string {
  const email = raw.trim().toLowerCase();
  if (email.length > 254 || !EMAIL_RE.test(email))
    throw new UserInputError('--email must be an e-mail address (ASCII, at most 254 characters)');
  return email;
}

/** The default platform tenant (CONTRACT §9): the one reserved `_` name users can be provisioned in. */
const DEFAULT_PLATFORM_TENANT = '_platform';

function checkTenant(t: string): string {
  if (!TENANT_RE.test(t) && t !== DEFAULT_PLATFORM_TENANT)
    throw new UserInputError(
      '--tenant must be 1-64 letters, digits, dots, dashes or underscores, starting with a letter or digit (or _platform, the platform tenant)',
    );
  return t;
}

/**
 * Control characters (newlines, terminal escapes) and the invisible or direction-changing
 * formatting characters (zero-width, bidirectional overrides and isolates, BOM): text an
 * operator types that is printed on terminals and shown to other users must read as it is.
 */
const HIDDEN_OR_CONTROL = /[\p{Cc}\u2028\u2029\u200B-\u200F\u202A-\u202E\u2060-\u2064\u2066-\u2069\uFEFF]/u;

/** 1–200 characters of visible text (trimmed), or a UserInputError naming the option. */
function checkText(option: string, n: string): string {
  const v = n.trim();
  if (v.length === 0 || v.length > 200 || HIDDEN_OR_CONTROL.test(v) || !v.isWellFormed())
    throw new UserInputError(
      `${option} must be 1-200 characters of text, without control, invisible or bidirectional formatting characters`,
    );
  return v;
}

function checkName(n: string | null | undefined): string | null | undefined {
  if (n === undefined || n === null) return n;
  return checkText('--name', n);
}

export function validateDeactivateInput(input: { email: string; tenantId: string; reason?: string | null }): {
  email: string;
  tenantId: string;
  reason: string | null;
} {
  return {
    email: normalizeEmail(input.email),
    tenantId: checkTenant(input.tenantId),
    reason: input.reason === undefined || input.reason === null ? null : checkText('--reason', input.reason),
  };
}

/** Checks provisioning input without touching the database (the CLIs call it before connecting). */
export function validateProvisionInput(input: {
  email: string;
  role: string;
  tenantId: string;
  displayName?: string | null;
}): { email: string; role: Role; tenantId: string; displayName: string | null | undefined } {
  const email = normalizeEmail(input.email);
  const tenantId = checkTenant(input.tenantId);
  if (!isRole(input.role)) throw new UserInputError('--role must be admin, user or viewer');
  return { email, role: input.role, tenantId, displayName: checkName(input.displayName) };
}

export function createUserService(deps: { pool: Pool; audit: AuditService; clock: Clock }): UserService {
  const { pool, audit } = deps;
  const userAgent = (a: Actor) =>
    `fleet-cli ${a.source}${a.operator ? ` (operator ${a.operator})` : ''}`.slice(0, 1024);
  const snapshot = (u: UserRecord) => ({
    email: u.email,
    role: u.role,
    tenantId: u.tenantId,
    displayName: u.displayName,
    isActive: u.isActive,
  });

  return {
    async provision(input, actor) {
      const { email, tenantId, role, displayName } = validateProvisionInput(input);
      return withTenant(pool, tenantId, async (c) => {
        const base = {
          tenantId,
          resourceType: 'user',
          result: 'success' as const,
          userAgent: userAgent(actor),
          ipAddress: null,
          userId: null,
        };
        const existing = await findUserForUpdate(c, tenantId, email);
        const events: string[] = [];
        let user: UserRecord;
        let outcome: ProvisionResult['outcome'];
        if (!existing) {
          user = await insertUser(c, { tenantId, email, role, displayName: displayName ?? null });
          await audit.record(
            {
              ...base,
              action: 'user.created',
              severity: 'medium',
              resourceId: user.id,
              after: { ...snapshot(user), actor: actor.source },
            },
            c,
          );
          events.push('user.created');
          outcome = 'created';
        } else {
          const reactivate = !existing.isActive;
          const roleChange = existing.role !== role;
          const nameChange = displayName !== undefined && displayName !== existing.displayName;
          if (!reactivate && !roleChange && !nameChange) {
            user = existing;
            outcome = 'unchanged';
          } else {
            user = await updateUser(c, {
              id: existing.id,
              tenantId,
              role,
              displayName: displayName !== undefined ? displayName : existing.displayName,
              isActive: true,
              // A reactivated account binds afresh to the IdP subject of its next login.
              clearSubject: reactivate,
            });
            if (reactivate) {
              await audit.record(
                {
                  ...base,
                  action: 'user.reactivated',
                  severity: 'medium',
                  resourceId: user.id,
                  before: snapshot(existing),
                  after: { ...snapshot(user), actor: actor.source },
                },
                c,
              );
              events.push('user.reactivated');
            }
            if (roleChange) {
              await audit.record(
                {
                  ...base,
                  action: 'user.role_changed',
                  severity: 'high',
                  resourceId: user.id,
                  before: snapshot(existing),
                  after: { ...snapshot(user), actor: actor.source },
                },
                c,
              );
              events.push('user.role_changed');
            }
            // Not a security attribute, but a change to an account an operator made: recorded.
            if (nameChange) {
              await audit.record(
                {
                  ...base,
                  action: 'user.updated',
                  severity: 'low',
                  resourceId: user.id,
                  before: { displayName: existing.displayName },
                  after: { displayName: user.displayName, actor: actor.source },
                },
                c,
              );
              events.push('user.updated');
            }
            outcome = 'updated';
          }
        }
        const activeElsewhere = await countActiveElsewhere(c, email, tenantId);
        return { user, outcome, events, activeElsewhere };
      });
    },

    async deactivate(input, actor) {
      const { email, tenantId, reason: given } = validateDeactivateInput(input);
      const reason = given ?? 'user deactivated';
      return withTenant(pool, tenantId, async (c) => {
        const existing = await findUserForUpdate(c, tenantId, email);
        if (!existing) throw new UserNotFoundError(`no user ${email} in tenant ${tenantId}`);
        const base = {
          tenantId,
          resourceType: 'user',
          resourceId: existing.id,
          result: 'success' as const,
          userAgent: userAgent(actor),
          ipAddress: null,
          userId: null,
        };
        // Even an already inactive user gets any leftover sessions ended.
        const user = existing.isActive
          ? await updateUser(c, {
              id: existing.id,
              tenantId,
              role: existing.role,
              displayName: existing.displayName,
              isActive: false,
              clearSubject: false,
            })
          : existing;
        const revoked = await revokeUserSessions(
          c,
          tenantId,
          existing.id,
          new Date(deps.clock.now()),
          'user deactivated',
        );
        const events: string[] = [];
        if (existing.isActive) {
          await audit.record(
            {
              ...base,
              action: 'user.deactivated',
              severity: 'high',
              before: snapshot(existing),
              after: { ...snapshot(user), actor: actor.source, reason, sessionsRevoked: revoked.length },
            },
            c,
          );
          events.push('user.deactivated');
        }
        if (revoked.length > 0) {
          await audit.record(
            {
              ...base,
              action: 'session.revoked.bulk',
              severity: 'high',
              after: {
                reason: 'user deactivated',
                userId: existing.id,
                count: revoked.length,
                sessionIds: revoked.slice(0, 100),
              },
            },
            c,
          );
          events.push('session.revoked.bulk');
        }
        return {
          user,
          outcome: existing.isActive ? 'deactivated' : 'unchanged',
          sessionsRevoked: revoked.length,
          events,
        };
      });
    },
  };
}
