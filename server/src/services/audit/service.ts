import { isIP } from 'node:net';
import type pg from 'pg';
import { actorColumns, type Actor } from '../../domain/actor';
import type { Pool, PoolClient, Queryable } from '../../db/pool';
import { withTenant, withTransaction } from '../../db/transaction';
import type { Logger } from '../../lib/logger';
import { isBigintId, isStorableTimestamp } from '../../lib/timestamps';
import { redactString } from '../../lib/redact';
import { defaultSeverity, isWellFormedAction } from './catalog';
import { verifyTenantChain, type VerifyOptions } from './chain';
import {
  insertAuditLog,
  selectAuditPage,
  selectAuditTenants,
  selectChainHead,
  selectFailedLoginCounts,
  type AuditRow,
  type PageQuery,
} from './repository';
import { createAuditGroupCommit } from './group-commit';
import { sanitizeText, scrubAuditValue, truncateText } from './scrub';
import { RESULTS, SEVERITIES } from './types';
import type {
  AuditEvent,
  AuditHook,
  AuditHookOptions,
  AuditLogFilter,
  AuditPage,
  ChainHead,
  FailedAuthCounts,
  PageOptions,
  RecordedAudit,
  StoredAuditEvent,
  VerifyResult,
} from './types';

const DEFAULT_PAGE_SIZE = 50;
export const MAX_PAGE_SIZE = 500;

/** An event an actor caused: the actor columns come from the actor (AuditService.recordAs). */
export type ActorEvent = Omit<
  AuditEvent,
  'tenantId' | 'userId' | 'apiKeyId' | 'ipAddress' | 'userAgent' | 'requestId'
> & {
  tenantId?: string;
};

export interface AuditService {
  /**
   * Writes one audit row. Pass the caller's transaction client as `q` so the row commits
   * with the change it records (fail closed: if it cannot be written, the operation fails).
   * That transaction's app.tenant_id must be the event's tenant (withTenant), or the
   * database refuses the row (row-level security). Without `q` the row is written in its
   * own tenant-scoped transaction.
   */
  record(event: AuditEvent, q?: Queryable): Promise<RecordedAudit>;
  /**
   * Same, for what `actor` did: the user or API key, IP, user agent and request id come from the
   * actor, and the tenant too unless the event names the trail (master-key events: the platform's).
   */
  recordAs(actor: Actor, event: ActorEvent, q?: Queryable): Promise<RecordedAudit>;
  /** Runs after every insert (or those `opts.when` accepts), in the same transaction. */
  addHook(hook: AuditHook, opts?: AuditHookOptions): void;

  /** One page of a tenant's rows, newest first, filtered. */
  listLogs(tenantId: string, filter: AuditLogFilter & { ipAddress?: string }, page?: PageOptions): Promise<AuditPage>;
  getUserAuditLogs(
    tenantId: string,
    userId: string,
    opts?: PageOptions & Pick<AuditLogFilter, 'from' | 'to' | 'action'>,
  ): Promise<AuditPage>;
  getResourceAuditLogs(
    tenantId: string,
    resourceType: string,
    resourceId: string,
    opts?: PageOptions & Pick<AuditLogFilter, 'from' | 'to'>,
  ): Promise<AuditPage>;
  /** High and critical events of a tenant. */
  getSecurityEvents(tenantId: string, opts?: PageOptions & Pick<AuditLogFilter, 'from' | 'to'>): Promise<AuditPage>;
  /** A tenant's failed logins (auth.login.failure, result failure), by email and/or IP. */
  getFailedAuthAttempts(
    opts: { tenantId: string; email?: string; ip?: string; since: Date | string } & PageOptions,
  ): Promise<AuditPage>;
  /**
   * Failed logins since `since` across tenants (a login has no tenant yet), counted by the
   * lower-cased email and by IP address; what the brute-force lockout compares with its limit.
   */
  countFailedAuthAttempts(
    opts: { email?: string | null; ip?: string | null; since: Date | string },
    q?: Queryable,
  ): Promise<FailedAuthCounts>;

  /** Verifies one tenant's chain in a consistent snapshot. */
  verify(tenantId: string, opts?: VerifyOptions): Promise<VerifyResult>;
  /** The newest sealed entry of a tenant's chain (for the archive's digest chain). */
  chainHead(tenantId: string, q?: Queryable): Promise<ChainHead | null>;
}

interface RegisteredHook {
  hook: AuditHook;
  when?: (e: StoredAuditEvent) => boolean;
}

const USER_AGENT_MAX = 1024;
const ERROR_MESSAGE_MAX = 2000;
const RESOURCE_ID_MAX = 256;
const TEXT_MAX = 128;

function optionalText(v: string | null | undefined, max: number): string | null {
  if (v === undefined || v === null) return null;
  return truncateText(sanitizeText(String(v)), max);
}

/**
 * Free text a caller may have pasted a credential into: masked like strings in before/after,
 * then cut to the column limit (masking can lengthen it).
 */
function freeText(v: string | null | undefined, max: number): string | null {
  if (v === undefined || v === null) return null;
  return truncateText(redactString(sanitizeText(String(v))), max);
}

/** Normalises an event into the row that is stored (and the event hooks see). */
function prepareAuditEvent(event: AuditEvent): { row: AuditRow; stored: StoredAuditEvent } {
  if (!event || typeof event !== 'object') throw new TypeError('audit event must be an object');
  if (typeof event.tenantId !== 'string' || event.tenantId.length === 0 || event.tenantId.length > TEXT_MAX)
    throw new TypeError('audit event needs a tenantId');
  if (typeof event.action !== 'string' || !isWellFormedAction(event.action))
    throw new TypeError(`audit action ${JSON.stringify(event.action)} is not a well-formed action name`);
  if (typeof event.resourceType !== 'string' || event.resourceType.length === 0)
    throw new TypeError('audit event needs a resourceType');
  const severity = event.severity ?? defaultSeverity(event.action);
  if (!SEVERITIES.includes(severity))
    throw new TypeError(`audit severity ${JSON.stringify(severity)} is not one of ${SEVERITIES.join(', ')}`);
  const result = event.result ?? 'success';
  if (!RESULTS.includes(result))
    throw new TypeError(`audit result ${JSON.stringify(result)} is not one of ${RESULTS.join(', ')}`);
  const ip = event.ipAddress ?? null;
  if (ip !== null && isIP(ip) === 0) throw new TypeError('audit ipAddress is not an IP address');
  const before = scrubAuditValue(event.before);
  const after = scrubAuditValue(event.after);
  const row: AuditRow = {
    tenantId: event.tenantId,
    userId: event.userId ?? null,
    action: event.action,
    resourceType: truncateText(sanitizeText(event.resourceType), TEXT_MAX),
    // An identifier (an e-mail for login failures, which the lockout counts by): never rewritten.
    resourceId: optionalText(event.resourceId, RESOURCE_ID_MAX),
    before: before.json,
    after: after.json,
    ipAddress: ip,
    userAgent: optionalText(event.userAgent, USER_AGENT_MAX),
    result,
    errorMessage: freeText(event.errorMessage, ERROR_MESSAGE_MAX),
    severity,
    requestId: optionalText(event.requestId, TEXT_MAX),
    apiKeyId: event.apiKeyId ?? null,
  };
  const stored: StoredAuditEvent = {
    tenantId: row.tenantId,
    userId: row.userId,
    action: row.action,
    resourceType: row.resourceType,
    resourceId: row.resourceId,
    before: before.value,
    after: after.value,
    ipAddress: row.ipAddress,
    userAgent: row.userAgent,
    result: row.result,
    errorMessage: row.errorMessage,
    severity: row.severity,
    requestId: row.requestId,
    apiKeyId: row.apiKeyId,
  };
  return { row, stored };
}

// ---- cursors: base64url("<created_at text with microseconds>|<id>") ----

const CURSOR_RE = /^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z)\|(\d{1,19})$/;

function encodeCursor(createdAt: string, id: string): string {
  return Buffer.from(`${createdAt}|${id}`, 'utf8').toString('base64url');
}

/** null when the cursor is not one this service issued. */
function decodeCursor(cursor: string): { createdAt: string; id: string } | null {
  if (cursor.length > 200 || !/^[A-Za-z0-9_-]+$/.test(cursor)) return null;
  const m = CURSOR_RE.exec(Buffer.from(cursor, 'base64url').toString('utf8'));
  if (!m || !isStorableTimestamp(m[1] as string) || !isBigintId(m[2] as string)) return null;
  return { createdAt: m[1] as string, id: m[2] as string };
}

export class InvalidCursorError extends Error {
  constructor() {
    super('invalid cursor');
    this.name = 'InvalidCursorError';
  }
}

function pageLimit(limit: number | undefined): number {
  const n = limit ?? DEFAULT_PAGE_SIZE;
  if (!Number.isInteger(n) || n < 1 || n > MAX_PAGE_SIZE)
    throw new RangeError(`limit must be an integer from 1 to ${MAX_PAGE_SIZE}`);
  return n;
}

const SNAPSHOT = { isolation: 'repeatable read', readOnly: true } as const;

/** A read-only, repeatable-read transaction scoped to one tenant (a consistent snapshot). */
export function withTenantSnapshot<T>(pool: Pool, tenantId: string, fn: (c: PoolClient) => Promise<T>): Promise<T> {
  return withTransaction(pool, fn, { ...SNAPSHOT, tenantId });
}

/**
 * Runs fn in one repeatable-read snapshot that sees every tenant: for the owner connection
 * (CLI), which reads across tenants only after setting app.audit_scope (migration 022).
 */
export function withAllTenantsSnapshot<T>(
  client: PoolClient | pg.Client,
  fn: (q: Queryable) => Promise<T>,
): Promise<T> {
  return withTransaction(client, fn, { ...SNAPSHOT, allTenants: true });
}

/** Every tenant with audit data (needs the owner's all-tenants scope). */
export function listAuditTenants(q: Queryable): Promise<string[]> {
  return selectAuditTenants(q);
}

export function createAuditService(deps: { pool: Pool; logger: Logger }): AuditService {
  const groupCommit = createAuditGroupCommit(deps.pool);
  const hooks: RegisteredHook[] = [];

  async function runHooks(
    wanted: RegisteredHook[],
    stored: StoredAuditEvent,
    recorded: RecordedAudit,
    q: Queryable,
  ): Promise<void> {
    for (const h of wanted) await h.hook(stored, recorded, q);
  }

  async function page(
    tenantId: string,
    base: Omit<PageQuery, 'tenantId' | 'after' | 'limit'>,
    opts: PageOptions = {},
  ): Promise<AuditPage> {
    const limit = pageLimit(opts.limit);
    let after: PageQuery['after'] = null;
    if (opts.cursor) {
      after = decodeCursor(opts.cursor);
      if (!after) throw new InvalidCursorError();
    }
    const entries = await withTenant(deps.pool, tenantId, (c) =>
      selectAuditPage(c, { ...base, tenantId, after, limit: limit + 1 }),
    );
    const more = entries.length > limit;
    if (more) entries.length = limit;
    const last = entries[entries.length - 1];
    return { entries, nextCursor: more && last ? encodeCursor(last.createdAt, last.id) : null };
  }

  const none = {
    userId: null,
    action: null,
    resourceType: null,
    resourceId: null,
    result: null,
    severities: null,
    from: null,
    to: null,
    ipAddress: null,
  };

  const service: AuditService = {
    async record(event, q) {
      const { row, stored } = prepareAuditEvent(event);
      const wanted = hooks.filter((h) => !h.when || h.when(stored));
      if (q) {
        const recorded = await insertAuditLog(q, row);
        await runHooks(wanted, stored, recorded, q);
        return recorded;
      }
      if (wanted.length === 0) return groupCommit(row);
      return withTenant(deps.pool, row.tenantId, async (client) => {
        const recorded = await insertAuditLog(client, row);
        await runHooks(wanted, stored, recorded, client);
        return recorded;
      });
    },
    recordAs(actor, event, q) {
      return service.record({ ...event, ...actorColumns(actor), tenantId: event.tenantId ?? actor.tenantId }, q);
    },
    addHook(hook, opts = {}) {
      hooks.push({ hook, when: opts.when });
    },

    listLogs(tenantId, f, p) {
      return page(
        tenantId,
        {
          userId: f.userId ?? null,
          action: f.action ?? null,
          resourceType: f.resourceType ?? null,
          resourceId: f.resourceId ?? null,
          result: f.result ?? null,
          severities: f.severities && f.severities.length > 0 ? f.severities : null,
          from: f.from ?? null,
          to: f.to ?? null,
          ipAddress: f.ipAddress ?? null,
        },
        p,
      );
    },
    getUserAuditLogs(tenantId, userId, o = {}) {
      return page(tenantId, { ...none, userId, action: o.action ?? null, from: o.from ?? null, to: o.to ?? null }, o);
    },
    getResourceAuditLogs(tenantId, resourceType, resourceId, o = {}) {
      return page(tenantId, { ...none, resourceType, resourceId, from: o.from ?? null, to: o.to ?? null }, o);
    },
    getSecurityEvents(tenantId, o = {}) {
      return page(tenantId, { ...none, severities: ['high', 'critical'], from: o.from ?? null, to: o.to ?? null }, o);
    },
    getFailedAuthAttempts(o) {
      if (o.ip !== undefined && isIP(o.ip) === 0) return Promise.reject(new TypeError('ip is not an IP address'));
      return page(
        o.tenantId,
        {
          ...none,
          action: 'auth.login.failure',
          result: 'failure',
          resourceId: o.email !== undefined ? o.email.toLowerCase() : null,
          ipAddress: o.ip ?? null,
          from: o.since,
        },
        o,
      );
    },
    async countFailedAuthAttempts(o, q) {
      const email = o.email ? o.email.toLowerCase() : null;
      const ip = o.ip ? o.ip : null;
      if (ip !== null && isIP(ip) === 0) throw new TypeError('ip is not an IP address');
      if (email === null && ip === null) return { byEmail: 0, byIp: 0 };
      return selectFailedLoginCounts(q ?? deps.pool, email, ip, o.since);
    },

    verify(tenantId, opts) {
      return withTenantSnapshot(deps.pool, tenantId, (c) => verifyTenantChain(c, tenantId, opts));
    },
    async chainHead(tenantId, q) {
      const read = (c: Queryable) => selectChainHead(c, tenantId);
      const head = q ? await read(q) : await withTenant(deps.pool, tenantId, read);
      return head ? { tenantId, ...head } : null;
    },
  };
  return service;
}
