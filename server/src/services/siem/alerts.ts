/**
 * Alerting rules over the audit trail ("security event monitoring"). Each rule runs as an
 * audit hook inside the transaction of the audit row that triggers it and raises an alert
 * with SiemService.sendAlert: a `security.alert.<rule>` audit row in the same transaction,
 * which the forwarding hook puts in the SIEM outbox.
 *
 * | rule             | trigger                                                          | severity |
 * |------------------|------------------------------------------------------------------|----------|
 * | brute_force      | ≥ LOGIN_MAX_FAILURES (5) auth.login.failure per IP or per email   | critical |
 * |                  | within LOGIN_LOCKOUT_WINDOW (15 min); once per subject and window |          |
 * | refresh_reuse    | raised by the auth service itself with auth.refresh.reuse, in the | critical |
 * |                  | same transaction (auth-service.ts); forwarded like every alert    |          |
 * | key_event        | every key.master.rotated; key.master.fallback once per 15 min     | high     |
 * | admin_escalation | user.role_changed whose after.role is admin (before was not)      | high     |
 * | denied_burst     | ≥ 10 access.denied by one user (or IP) within 5 minutes           | high     |
 *
 * Counting rules keep one signal row per event in siem_alert_signals (a brute force from one
 * IP spans tenants, which row-level security on audit_logs would hide) and serialize counting
 * per subject with a transaction-scoped advisory lock, so the n-th event sees the n-1 before it.
 */
import type { Clock } from '../../lib/clock';
import type { Logger } from '../../lib/logger';
import type { AuditEvent, AuditHook, RecordedAudit, Severity } from '../audit/types';
import type { Pool, Queryable } from '../../db/pool';
import { asSiemWorker, withSiemWorker } from '../../db/transaction';
import type { SiemMetrics } from './metrics';
import * as repo from './repository';
import type { SiemService } from './service';

const DENIED_BURST_THRESHOLD = 10;
const DENIED_BURST_WINDOW_MS = 5 * 60_000;
const KEY_FALLBACK_SUPPRESS_MS = 15 * 60_000;
/** Signals and suppression state older than this are pruned. */
const ALERT_DATA_RETENTION_MS = 24 * 3_600_000;

export interface AlertRulesOptions {
  bruteForce: { threshold: number; windowMs: number };
  deniedBurst?: { threshold: number; windowMs: number };
}

/** The audit actions the rules look at (the hook runs for these only). */
const WATCHED_ACTIONS: ReadonlySet<string> = new Set([
  'auth.login.failure',
  'access.denied',
  'key.master.rotated',
  'key.master.fallback',
  'user.role_changed',
]);

export interface AlertRules {
  hook: AuditHook;
  watches(action: string): boolean;
  /** Deletes signals and suppression state past every window. */
  prune(): Promise<void>;
}

type Hooked = Parameters<AuditHook>[0];

function asRecord(v: unknown): Record<string, unknown> | null {
  return v && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : null;
}

function minutes(ms: number): string {
  const m = Math.round(ms / 60_000);
  return `${m} minute${m === 1 ? '' : 's'}`;
}

export function createAlertRules(deps: {
  siem: Pick<SiemService, 'sendAlert'>;
  clock: Clock;
  logger: Logger;
  metrics: SiemMetrics;
  pool: Pool;
  options: AlertRulesOptions;
}): AlertRules {
  const { siem, clock, metrics } = deps;
  const log = deps.logger.child({ component: 'alerts' });
  const brute = deps.options.bruteForce;
  const denied = deps.options.deniedBurst ?? { threshold: DENIED_BURST_THRESHOLD, windowMs: DENIED_BURST_WINDOW_MS };

  /** Records a signal and returns the count when this event makes the rule fire (once per window). */
  async function countAndClaim(
    q: Queryable,
    rule: string,
    subject: string,
    event: Hooked,
    recorded: RecordedAudit,
    threshold: number,
    windowMs: number,
  ): Promise<number | null> {
    const at = new Date(clock.now());
    await repo.lockSubject(q, rule, subject);
    await repo.insertSignal(q, { rule, subject, tenantId: event.tenantId, auditLogId: recorded.id, at });
    const n = await repo.countSignals(q, rule, subject, new Date(at.getTime() - windowMs), at);
    if (n < threshold) return null;
    return (await repo.claimAlert(q, rule, subject, at, new Date(at.getTime() - windowMs))) ? n : null;
  }

  async function raise(
    q: Queryable,
    rule: string,
    severity: Severity,
    message: string,
    event: AuditEvent,
    recorded: RecordedAudit,
    extra: { resourceType: string; resourceId: string | null; details: Record<string, unknown> },
  ): Promise<void> {
    await siem.sendAlert(rule, severity, message, {
      tenantId: event.tenantId,
      q,
      userId: event.userId ?? null,
      ipAddress: event.ipAddress ?? null,
      userAgent: event.userAgent ?? null,
      requestId: event.requestId ?? null,
      resourceType: extra.resourceType,
      resourceId: extra.resourceId,
      details: { rule, triggeringAuditLogId: recorded.id, triggeringAction: event.action, ...extra.details },
    });
    metrics.alerts.inc({ rule });
    log.warn('security alert raised', { rule, severity, tenantId: event.tenantId, triggeringAuditLogId: recorded.id });
  }

  async function bruteForce(q: Queryable, event: Hooked, recorded: RecordedAudit): Promise<void> {
    const subjects: Array<{ kind: 'ip' | 'email'; value: string }> = [];
    if (event.ipAddress) subjects.push({ kind: 'ip', value: event.ipAddress });
    if (event.resourceId) subjects.push({ kind: 'email', value: event.resourceId.toLowerCase() });
    for (const s of subjects) {
      const n = await countAndClaim(
        q,
        'brute_force',
        `${s.kind}:${s.value}`,
        event,
        recorded,
        brute.threshold,
        brute.windowMs,
      );
      if (n === null) continue;
      await raise(
        q,
        'brute_force',
        'critical',
        `${n} failed logins for ${s.kind === 'ip' ? 'IP address' : 'email'} ${s.value} within ${minutes(brute.windowMs)}`,
        event,
        recorded,
        {
          resourceType: s.kind === 'ip' ? 'ip_address' : 'user',
          resourceId: s.value,
          details: {
            subject: s.kind,
            value: s.value,
            count: n,
            threshold: brute.threshold,
            windowSeconds: brute.windowMs / 1000,
          },
        },
      );
    }
  }

  async function deniedBurst(q: Queryable, event: Hooked, recorded: RecordedAudit): Promise<void> {
    const subject = event.userId
      ? `user:${event.tenantId}:${event.userId}`
      : event.ipAddress
        ? `ip:${event.ipAddress}`
        : null;
    if (!subject) return;
    const n = await countAndClaim(q, 'denied_burst', subject, event, recorded, denied.threshold, denied.windowMs);
    if (n === null) return;
    await raise(
      q,
      'denied_burst',
      'high',
      `${n} denied requests from ${event.userId ? `user ${event.userId}` : `IP address ${event.ipAddress}`} within ${minutes(denied.windowMs)}`,
      event,
      recorded,
      {
        resourceType: event.userId ? 'user' : 'ip_address',
        resourceId: event.userId ?? event.ipAddress ?? null,
        details: {
          count: n,
          threshold: denied.threshold,
          windowSeconds: denied.windowMs / 1000,
          lastDenied: event.resourceId ?? null,
        },
      },
    );
  }

  // Counting spans tenants (one IP, many tenants) and siem_alert_state has no tenant: the rules
  // run with the SIEM worker scope inside the audit transaction, restored afterwards.
  const hook: AuditHook = (event, recorded, q) =>
    event.action.startsWith('security.alert.') ? Promise.resolve() : asSiemWorker(q, () => rules(event, recorded, q));

  const rules: AuditHook = async (event, recorded, q) => {
    const action = event.action;
    if (action.startsWith('security.alert.')) return;
    switch (action) {
      case 'auth.login.failure':
        return bruteForce(q, event, recorded);
      case 'access.denied':
        return deniedBurst(q, event, recorded);
      case 'key.master.rotated':
        return raise(q, 'key_event', 'high', 'The master encryption key was rotated', event, recorded, {
          resourceType: event.resourceType,
          resourceId: event.resourceId ?? null,
          details: { keyEvent: 'rotated', after: asRecord(event.after) },
        });
      case 'key.master.fallback': {
        const at = new Date(clock.now());
        if (!(await repo.claimAlert(q, 'key_event', 'fallback', at, new Date(at.getTime() - KEY_FALLBACK_SUPPRESS_MS))))
          return;
        return raise(
          q,
          'key_event',
          'high',
          'The master key fell back from Key Vault to the environment key',
          event,
          recorded,
          {
            resourceType: event.resourceType,
            resourceId: event.resourceId ?? null,
            details: { keyEvent: 'fallback', reason: event.errorMessage ?? null },
          },
        );
      }
      case 'user.role_changed': {
        const after = asRecord(event.after);
        const before = asRecord(event.before);
        if (after?.role !== 'admin' || before?.role === 'admin') return;
        return raise(
          q,
          'admin_escalation',
          'high',
          `A user was given the admin role${before?.role ? ` (was ${String(before.role)})` : ''}`,
          event,
          recorded,
          {
            resourceType: event.resourceType,
            resourceId: event.resourceId ?? null,
            details: {
              targetUser: event.resourceId ?? null,
              previousRole: before?.role ?? null,
              newRole: 'admin',
              changedBy: event.userId ?? null,
            },
          },
        );
      }
      default:
        return;
    }
  };

  return {
    hook,
    watches: (action) => WATCHED_ACTIONS.has(action),
    async prune() {
      await withSiemWorker(deps.pool, (c) => repo.pruneAlertData(c, new Date(clock.now() - ALERT_DATA_RETENTION_MS)));
    },
  };
}
