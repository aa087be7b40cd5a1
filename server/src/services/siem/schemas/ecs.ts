/**
 * ECS 8.11 shaping of SIEM events (https://www.elastic.co/guide/en/ecs/8.11/). event.kind,
 * event.category and event.type use only ECS's allowed values, and every event.type is one
 * ECS expects for its categories (docs/SIEM_AND_ARCHIVE.md has the table). Fields ECS has
 * no place for live under the custom `fleet` namespace. server/test/fixtures/ecs holds the
 * vendored field reference the tests validate against.
 */
import { CEF_SEVERITY } from '../events';
import type { SiemEvent } from '../types';

const ECS_SCHEMA_VERSION = '8.11.0';

interface EcsClass {
  category: string[];
  type: string[];
}

const BY_ACTION: Record<string, EcsClass> = {
  'auth.login.success': { category: ['authentication', 'session'], type: ['start'] },
  'auth.login.failure': { category: ['authentication'], type: ['start'] },
  'auth.logout': { category: ['authentication', 'session'], type: ['end'] },
  'auth.refresh': { category: ['authentication', 'session'], type: ['info'] },
  'auth.refresh.reuse': { category: ['authentication', 'session'], type: ['info'] },
  'auth.token.rejected': { category: ['authentication'], type: ['info'] },
  'auth.lockout': { category: ['iam'], type: ['user', 'change'] },
  'session.revoked': { category: ['session'], type: ['end'] },
  'session.revoked.bulk': { category: ['session'], type: ['end'] },
  'session.expired': { category: ['session'], type: ['end'] },
  'user.created': { category: ['iam'], type: ['user', 'creation'] },
  'user.role_changed': { category: ['iam'], type: ['user', 'change'] },
  'user.deactivated': { category: ['iam'], type: ['user', 'change'] },
  'user.reactivated': { category: ['iam'], type: ['user', 'change'] },
  'access.denied': { category: ['api'], type: ['denied'] },
  'key.master.read': { category: ['configuration'], type: ['access'] },
  'key.master.fallback': { category: ['configuration'], type: ['info'] },
  'key.master.refresh_failed': { category: ['configuration'], type: ['info'] },
  'key.master.rotated': { category: ['configuration'], type: ['change'] },
  'key.rewrap': { category: ['configuration'], type: ['change'] },
  'audit.export': { category: ['database'], type: ['access'] },
  'audit.export.failed': { category: ['database'], type: ['error'] },
  'audit.verify': { category: ['database'], type: ['info'] },
  'audit.verify.failed': { category: ['database'], type: ['error'] },
  'audit.purge': { category: ['database'], type: ['change'] },
  'audit.siem.submitted': { category: ['api'], type: ['creation'] },
  'audit.siem.dead_letter': { category: ['api'], type: ['info'] },
  'system.startup': { category: ['host'], type: ['start'] },
  'system.shutdown': { category: ['host'], type: ['end'] },
  'system.backup': { category: ['database'], type: ['access'] },
  'system.restore': { category: ['database'], type: ['change'] },
  'system.evidence_collected': { category: ['host'], type: ['info'] },
  'system.config_warning': { category: ['configuration'], type: ['info'] },
};

/** Category and type of client-recorded and submitted events: `api`, typed by the action's last verb. */
function apiClass(eventType: string): EcsClass {
  const verb = eventType.slice(eventType.lastIndexOf('.') + 1);
  if (/^(create|created|add|added|insert|inserted|register|registered|submitted)$/.test(verb))
    return { category: ['api'], type: ['creation'] };
  if (/^(read|viewed|view|get|list|listed|export|exported|download|downloaded|access|accessed)$/.test(verb))
    return { category: ['api'], type: ['access'] };
  if (/^(update|updated|change|changed|modify|modified|rotate|rotated|set|enable|enabled|disable|disabled)$/.test(verb))
    return { category: ['api'], type: ['change'] };
  if (/^(delete|deleted|remove|removed|purge|purged|revoke|revoked|destroy|destroyed)$/.test(verb))
    return { category: ['api'], type: ['deletion'] };
  if (/^(denied|deny|refused|forbidden)$/.test(verb)) return { category: ['api'], type: ['denied'] };
  return { category: ['api'], type: ['info'] };
}

function ecsClassOf(eventType: string): EcsClass & { kind: 'alert' | 'event' } {
  if (eventType.startsWith('security.alert.'))
    return { kind: 'alert', category: ['intrusion_detection'], type: ['info'] };
  return { kind: 'event', ...(BY_ACTION[eventType] ?? apiClass(eventType)) };
}

type Obj = Record<string, unknown>;

function userFields(e: SiemEvent): Obj | null {
  const user: Obj = {};
  if (e.userId) user.id = e.userId;
  if (e.resourceType === 'user' && e.resourceId) {
    if (e.resourceId.includes('@')) {
      // Logins and lockouts name the account by e-mail before a user is known.
      if (!e.userId) {
        user.name = e.resourceId;
        user.email = e.resourceId;
      } else user.target = { name: e.resourceId, email: e.resourceId };
    } else if (e.resourceId !== e.userId) user.target = { id: e.resourceId };
  }
  if (e.eventType === 'user.role_changed') {
    const role = (e.details?.after as Obj | undefined)?.role;
    if (typeof role === 'string') user.changes = { roles: [role] };
  }
  return Object.keys(user).length > 0 ? user : null;
}

/** The ECS document for one SIEM event. */
export function toEcs(e: SiemEvent, host?: string): Obj {
  const c = ecsClassOf(e.eventType);
  const user = userFields(e);
  const doc: Obj = {
    '@timestamp': e.time,
    ecs: { version: ECS_SCHEMA_VERSION },
    event: {
      id: e.id,
      kind: c.kind,
      category: c.category,
      type: c.type,
      action: e.eventType,
      outcome: e.outcome === 'success' ? 'success' : e.outcome === null ? 'unknown' : 'failure',
      severity: CEF_SEVERITY[e.severity],
      dataset: 'fleet.security',
      provider: 'fleet-security-api',
      module: 'fleet',
    },
    message: e.message,
    log: { level: e.severity },
    organization: { id: e.tenantId },
    service: { name: 'fleet-security-api' },
  };
  if (host) doc.host = { name: host };
  if (user) doc.user = user;
  if (e.ipAddress) doc.source = { ip: e.ipAddress };
  if (e.userAgent) doc.user_agent = { original: e.userAgent };
  if (e.requestId) doc.http = { request: { id: e.requestId } };
  const related: Obj = {};
  const names = [e.userId, (user?.name as string | undefined) ?? null].filter(
    (v): v is string => typeof v === 'string',
  );
  if (names.length > 0) related.user = [...new Set(names)];
  if (e.ipAddress) related.ip = [e.ipAddress];
  if (Object.keys(related).length > 0) doc.related = related;
  doc.fleet = {
    tenant_id: e.tenantId,
    severity: e.severity,
    origin: e.origin,
    outcome: e.outcome,
    audit_log_id: e.auditLogId,
    ...(e.resourceType ? { resource: { type: e.resourceType, id: e.resourceId } } : {}),
    ...(e.details ? { details: e.details } : {}),
  };
  return doc;
}
