/**
 * OCSF 1.3.0 shaping of SIEM events (https://schema.ocsf.io/1.3.0). Every event maps to one
 * of four classes (docs/SIEM_AND_ARCHIVE.md has the table):
 *   Authentication 3002 (IAM)     logins, logouts, token refresh/reuse/rejection, session ends
 *   Account Change 3001 (IAM)     user created/enabled/disabled, role changes, lockouts
 *   API Activity 6003 (App)       key events, audit-trail operations, access denials,
 *                                 system events and every client-recorded / submitted event
 *   Detection Finding 2004        security.alert.*
 * type_uid = class_uid × 100 + activity_id. What has no OCSF attribute goes to `unmapped`
 * (tenant, origin, resource, details, the audit row id), so nothing the native event carries
 * is lost. server/test/fixtures/ocsf holds the JSON Schema the tests validate against.
 */
import type { SiemEvent } from '../types';

const OCSF_VERSION = '1.3.0';
const PRODUCT = { name: 'Fleet Security API', vendor_name: 'Fleet', uid: 'fleet-security-api' } as const;

const OCSF_SEVERITY_ID: Record<SiemEvent['severity'], number> = { low: 2, medium: 3, high: 4, critical: 5 };
const SEVERITY_NAME: Record<number, string> = { 2: 'Low', 3: 'Medium', 4: 'High', 5: 'Critical' };

interface ClassDef {
  uid: number;
  name: string;
  categoryUid: number;
  categoryName: string;
}
const AUTHENTICATION: ClassDef = {
  uid: 3002,
  name: 'Authentication',
  categoryUid: 3,
  categoryName: 'Identity & Access Management',
};
const ACCOUNT_CHANGE: ClassDef = {
  uid: 3001,
  name: 'Account Change',
  categoryUid: 3,
  categoryName: 'Identity & Access Management',
};
const API_ACTIVITY: ClassDef = {
  uid: 6003,
  name: 'API Activity',
  categoryUid: 6,
  categoryName: 'Application Activity',
};
const DETECTION_FINDING: ClassDef = { uid: 2004, name: 'Detection Finding', categoryUid: 2, categoryName: 'Findings' };

export interface OcsfMapping {
  cls: ClassDef;
  activityId: number;
  activityName: string;
}

const AUTH_ACTIVITY: Record<string, [number, string]> = {
  'auth.login.success': [1, 'Logon'],
  'auth.login.failure': [1, 'Logon'],
  'auth.logout': [2, 'Logoff'],
  'auth.refresh': [3, 'Authentication Ticket'],
  'auth.refresh.reuse': [3, 'Authentication Ticket'],
  'auth.token.rejected': [99, 'Token Rejected'],
  'session.revoked': [2, 'Logoff'],
  'session.revoked.bulk': [2, 'Logoff'],
  'session.expired': [2, 'Logoff'],
};
const ACCOUNT_ACTIVITY: Record<string, [number, string]> = {
  'user.created': [1, 'Create'],
  'user.reactivated': [2, 'Enable'],
  'user.deactivated': [5, 'Disable'],
  // A role is this service's unit of permissions: changing it attaches the new role's policy.
  'user.role_changed': [7, 'Attach Policy'],
  'auth.lockout': [9, 'Lock'],
};
const API_ACTIVITY_BY_ACTION: Record<string, [number, string]> = {
  'key.master.read': [2, 'Read'],
  'key.master.fallback': [2, 'Read'],
  'key.master.refresh_failed': [2, 'Read'],
  'key.master.rotated': [3, 'Update'],
  'key.rewrap': [3, 'Update'],
  'audit.export': [2, 'Read'],
  'audit.export.failed': [2, 'Read'],
  'audit.verify': [2, 'Read'],
  'audit.verify.failed': [2, 'Read'],
  'audit.purge': [4, 'Delete'],
  'audit.siem.submitted': [1, 'Create'],
  'audit.siem.dead_letter': [4, 'Delete'],
};

/** Activity of an API Activity event from the last verb of a dotted action (client events). */
function apiActivityOf(eventType: string): [number, string] {
  const known = API_ACTIVITY_BY_ACTION[eventType];
  if (known) return known;
  const verb = eventType.slice(eventType.lastIndexOf('.') + 1);
  if (/^(create|created|add|added|insert|inserted|register|registered|submitted)$/.test(verb)) return [1, 'Create'];
  if (/^(read|viewed|view|get|list|listed|export|exported|download|downloaded|access|accessed)$/.test(verb))
    return [2, 'Read'];
  if (/^(update|updated|change|changed|modify|modified|rotate|rotated|set|enable|enabled|disable|disabled)$/.test(verb))
    return [3, 'Update'];
  if (/^(delete|deleted|remove|removed|purge|purged|revoke|revoked|destroy|destroyed)$/.test(verb))
    return [4, 'Delete'];
  return [99, 'Other'];
}

export function ocsfMappingOf(eventType: string): OcsfMapping {
  if (eventType.startsWith('security.alert.')) return { cls: DETECTION_FINDING, activityId: 1, activityName: 'Create' };
  const auth = AUTH_ACTIVITY[eventType];
  if (auth) return { cls: AUTHENTICATION, activityId: auth[0], activityName: auth[1] };
  const account = ACCOUNT_ACTIVITY[eventType];
  if (account) return { cls: ACCOUNT_CHANGE, activityId: account[0], activityName: account[1] };
  const [activityId, activityName] = apiActivityOf(eventType);
  return { cls: API_ACTIVITY, activityId, activityName };
}

function statusOf(e: SiemEvent): { status_id: number; status: string } {
  if (e.outcome === 'success') return { status_id: 1, status: 'Success' };
  if (e.outcome === 'failure' || e.outcome === 'denied') return { status_id: 2, status: 'Failure' };
  return { status_id: 0, status: 'Unknown' };
}

type Obj = Record<string, unknown>;

/** The user an IAM event is about: the target user of account changes, the subject of logins. */
function subjectUser(e: SiemEvent, accountChange: boolean): Obj {
  if (e.resourceType === 'user' && e.resourceId) {
    if (e.resourceId.includes('@')) return { name: e.resourceId, email_addr: e.resourceId };
    if (accountChange || !e.userId) return { uid: e.resourceId };
  }
  if (e.userId) return { uid: e.userId };
  return { name: 'unknown' };
}

function unmapped(e: SiemEvent): Obj {
  const u: Obj = { tenant_id: e.tenantId, event_type: e.eventType, origin: e.origin, severity: e.severity };
  if (e.outcome) u.outcome = e.outcome;
  if (e.auditLogId) u.audit_log_id = e.auditLogId;
  if (e.resourceType) u.resource = { type: e.resourceType, id: e.resourceId };
  if (e.details) u.details = e.details;
  return u;
}

/** The class/activity attributes of an event type (the same for every event of that type). */
function headOf(m: OcsfMapping): Obj {
  return {
    class_uid: m.cls.uid,
    class_name: m.cls.name,
    category_uid: m.cls.categoryUid,
    category_name: m.cls.categoryName,
    activity_id: m.activityId,
    activity_name: m.activityName,
    type_uid: m.cls.uid * 100 + m.activityId,
    type_name: `${m.cls.name}: ${m.activityName}`,
  };
}

/** Per event type: the mapping and its head serialized once (`{"class_uid":…,"type_name":"…"`, no closing brace). */
const heads = new Map<string, { m: OcsfMapping; json: string }>();
const MAX_CACHED_TYPES = 2000;

function cachedHead(eventType: string): { m: OcsfMapping; json: string } {
  let h = heads.get(eventType);
  if (!h) {
    const m = ocsfMappingOf(eventType);
    h = { m, json: JSON.stringify(headOf(m)).slice(0, -1) };
    if (heads.size < MAX_CACHED_TYPES) heads.set(eventType, h);
  }
  return h;
}

/** The OCSF event for one SIEM event. */
export function toOcsf(e: SiemEvent): Obj {
  const m = ocsfMappingOf(e.eventType);
  return Object.assign(headOf(m), ocsfCommon(e), ocsfRest(e, m));
}

/**
 * The OCSF event serialized: the same JSON as JSON.stringify(toOcsf(e)), with the per-type head
 * serialized once (serialization is most of the mapping's cost on the forwarding path).
 */
export function toOcsfJson(e: SiemEvent): string {
  const h = cachedHead(e.eventType);
  return `${h.json}${ocsfCommonJson(e)},${JSON.stringify(ocsfRest(e, h.m)).slice(1)}`;
}

const PRODUCT_JSON = JSON.stringify(PRODUCT);

function logNameOf(e: SiemEvent): string {
  return e.origin === 'api' ? 'submitted' : 'audit';
}

/** Severity, time, message and metadata: the same for every class. */
function ocsfCommon(e: SiemEvent): Obj {
  const severityId = OCSF_SEVERITY_ID[e.severity];
  const metadata: Obj = {
    uid: e.id,
    version: OCSF_VERSION,
    product: PRODUCT,
    tenant_uid: e.tenantId,
    log_name: logNameOf(e),
  };
  if (e.requestId) metadata.correlation_uid = e.requestId;
  return {
    severity_id: severityId,
    severity: SEVERITY_NAME[severityId],
    time: Date.parse(e.time),
    message: e.message,
    metadata,
  };
}

/** ocsfCommon serialized by hand around its constant parts (a leading comma, no braces). */
function ocsfCommonJson(e: SiemEvent): string {
  const severityId = OCSF_SEVERITY_ID[e.severity];
  const t = Date.parse(e.time);
  const correlation = e.requestId ? `,"correlation_uid":${JSON.stringify(e.requestId)}` : '';
  return (
    `,"severity_id":${severityId},"severity":"${SEVERITY_NAME[severityId]}","time":${Number.isFinite(t) ? t : 'null'},"message":${JSON.stringify(e.message)}` +
    `,"metadata":{"uid":${JSON.stringify(e.id)},"version":"${OCSF_VERSION}","product":${PRODUCT_JSON},"tenant_uid":${JSON.stringify(e.tenantId)},"log_name":"${logNameOf(e)}"${correlation}}`
  );
}

/** After the common part: status, class-specific attributes, unmapped. */
function ocsfRest(e: SiemEvent, m: OcsfMapping): Obj {
  const out: Obj = m.cls !== DETECTION_FINDING ? statusOf(e) : {};
  const actor: Obj | null = e.userId ? { user: { uid: e.userId } } : null;
  const src: Obj | null = e.ipAddress ? { ip: e.ipAddress } : null;
  const http: Obj | null = e.userAgent ? { user_agent: e.userAgent } : null;
  switch (m.cls) {
    case AUTHENTICATION:
      out.user = subjectUser(e, false);
      if (actor) out.actor = actor;
      if (src) out.src_endpoint = src;
      if (http) out.http_request = http;
      if (e.resourceType === 'session' && e.resourceId) out.session = { uid: e.resourceId };
      break;
    case ACCOUNT_CHANGE:
      out.user = subjectUser(e, true);
      if (actor) out.actor = actor;
      if (src) out.src_endpoint = src;
      if (http) out.http_request = http;
      if (e.eventType === 'user.role_changed') {
        const role = (e.details?.after as Obj | undefined)?.role;
        if (typeof role === 'string') out.policy = { name: role, desc: 'role' };
      }
      break;
    case API_ACTIVITY:
      out.actor = actor ?? { app_name: PRODUCT.uid };
      out.src_endpoint = src ?? { svc_name: PRODUCT.uid };
      out.api = { operation: e.eventType, ...(e.requestId ? { request: { uid: e.requestId } } : {}) };
      if (http) out.http_request = http;
      if (e.resourceType)
        out.resources = [
          { type: e.resourceType, ...(e.resourceId ? { uid: e.resourceId } : { name: e.resourceType }) },
        ];
      break;
    case DETECTION_FINDING: {
      const alertType = e.eventType.slice('security.alert.'.length);
      out.finding_info = { uid: e.id, title: alertTitle(e, alertType), types: [alertType] };
      out.status_id = 1;
      out.status = 'New';
      if (actor) out.actor = actor;
      // 1.3.0 has no src_endpoint on findings: the address is evidence.
      if (src) out.evidences = [{ src_endpoint: src, ...(actor ? { actor } : {}) }];
      if (e.resourceType)
        out.resources = [
          { type: e.resourceType, ...(e.resourceId ? { uid: e.resourceId } : { name: e.resourceType }) },
        ];
      break;
    }
  }
  out.unmapped = unmapped(e);
  return out;
}

function alertTitle(e: SiemEvent, alertType: string): string {
  const m = (e.details?.after as Obj | undefined)?.message;
  return typeof m === 'string' && m ? m.slice(0, 500) : alertType.replace(/_/g, ' ');
}
