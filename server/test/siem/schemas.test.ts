/**
 * SIEM_EVENT_SCHEMA: OCSF 1.3.0 and ECS 8.11 shaping, validated against JSON Schemas derived
 * from the official OCSF dictionary and ECS field reference (server/test/fixtures/{ocsf,ecs},
 * Apache-2.0), for every server-side audit action, alerts and client-submitted events; and
 * what each connector puts on the wire with each schema (local receivers).
 */
import fs from 'node:fs';
import path from 'node:path';
import Ajv2020 from 'ajv/dist/2020';
import addFormats from 'ajv-formats';
import { AUDIT_ACTIONS, AUDIT_CATALOG } from '../../src/services/audit/catalog';
import { datadogEntry } from '../../src/services/siem/connectors/datadog';
import { elasticDocument } from '../../src/services/siem/connectors/elastic';
import { createSplunkConnector, splunkEnvelope } from '../../src/services/siem/connectors/splunk';
import { createWebhookConnector } from '../../src/services/siem/connectors/webhook';
import { toEcs } from '../../src/services/siem/schemas/ecs';
import { ocsfMappingOf, toOcsf, toOcsfJson } from '../../src/services/siem/schemas/ocsf';
import { loadConfig } from '../../src/config';
import type { SiemEvent } from '../../src/services/siem/types';
import { testEnv } from '../helpers/env';
import { startHecReceiver, startWebhookReceiver } from './helpers/receivers';

const FIXTURES = path.join(__dirname, '..', 'fixtures');
const ocsfSchema = JSON.parse(
  fs.readFileSync(path.join(FIXTURES, 'ocsf', 'ocsf-1.3.0-subset.schema.json'), 'utf8'),
) as Record<string, unknown>;
const ecsSchema = JSON.parse(
  fs.readFileSync(path.join(FIXTURES, 'ecs', 'ecs-8.11.0-subset.schema.json'), 'utf8'),
) as Record<string, unknown>;
const ecsFields = (
  JSON.parse(fs.readFileSync(path.join(FIXTURES, 'ecs', 'ecs-8.11.0-fields.json'), 'utf8')) as {
    fields: Record<string, { allowed_values?: Array<{ name: string; expected_event_types?: string[] }> }>;
  }
).fields;

const ajv = new Ajv2020({ allErrors: true, strict: false });
addFormats(ajv);
const validateOcsf = ajv.compile(ocsfSchema);
const validateEcs = ajv.compile(ecsSchema);

function errorsOf(v: { errors?: unknown }): string {
  return JSON.stringify(v.errors, null, 1)?.slice(0, 2000) ?? '';
}

function sample(over: Partial<SiemEvent> = {}): SiemEvent {
  return {
    id: '3f1e2d4c-5b6a-4789-9abc-def012345678',
    time: '2026-01-02T03:04:05.678Z',
    tenantId: 'acme',
    eventType: 'auth.login.failure',
    severity: 'high',
    message: 'login failed',
    origin: 'audit',
    outcome: 'failure',
    userId: '11111111-2222-4333-8444-555555555555',
    ipAddress: '203.0.113.7',
    userAgent: 'curl/8',
    requestId: 'req-1',
    resourceType: 'user',
    resourceId: 'a@example.com',
    auditLogId: '42',
    details: { reason: 'bad signature' },
    ...over,
  };
}

/** Every server-side action, an alert, client-recorded and submitted events; with and without the optional context. */
function corpus(): SiemEvent[] {
  const types = [
    ...AUDIT_ACTIONS,
    'fleet.device.created',
    'fleet.device.deleted',
    'billing.invoice.viewed',
    'app.config.changed',
    'custom.thing.happened',
  ];
  const out: SiemEvent[] = [];
  for (const t of types) {
    const severity = (AUDIT_CATALOG as Record<string, { severity: SiemEvent['severity'] }>)[t]?.severity ?? 'low';
    out.push(
      sample({
        eventType: t,
        severity,
        origin: t.startsWith('security.alert.') ? 'alert' : 'audit',
        outcome: 'success',
      }),
    );
    out.push(
      sample({
        eventType: t,
        severity,
        outcome: 'denied',
        userId: null,
        ipAddress: null,
        userAgent: null,
        requestId: null,
        resourceType: null,
        resourceId: null,
        details: null,
        auditLogId: null,
      }),
    );
    out.push(
      sample({
        eventType: t,
        severity,
        outcome: null,
        origin: 'api',
        ipAddress: '2001:db8::1',
        resourceType: 'session',
        resourceId: 'sess-1',
      }),
    );
  }
  return out;
}

describe('OCSF 1.3.0', () => {
  it('when every kind of event is shaped, then each validates against the OCSF schema of its class', () => {
    for (const e of corpus()) {
      const o = toOcsf(e);
      const ok = validateOcsf(o);
      if (!ok) throw new Error(`${e.eventType}: ${errorsOf(validateOcsf)}\n${JSON.stringify(o)}`);
    }
  });

  it('when an event is shaped, then it carries the contract fields: class, category, activity, type_uid, severity_id, time in ms and metadata {uid, version, product}', () => {
    const o = toOcsf(sample());
    expect(o).toMatchObject({
      class_uid: 3002,
      category_uid: 3,
      activity_id: 1,
      type_uid: 300201,
      severity_id: 4,
      status_id: 2,
      time: Date.parse('2026-01-02T03:04:05.678Z'),
      metadata: {
        uid: '3f1e2d4c-5b6a-4789-9abc-def012345678',
        version: '1.3.0',
        product: { name: 'Fleet Security API', vendor_name: 'Fleet' },
        tenant_uid: 'acme',
        correlation_uid: 'req-1',
      },
      src_endpoint: { ip: '203.0.113.7' },
      http_request: { user_agent: 'curl/8' },
      actor: { user: { uid: '11111111-2222-4333-8444-555555555555' } },
      unmapped: {
        tenant_id: 'acme',
        audit_log_id: '42',
        details: { reason: 'bad signature' },
        resource: { type: 'user', id: 'a@example.com' },
      },
    });
  });

  it.each([
    ['auth.login.success', 3002, 1],
    ['auth.login.failure', 3002, 1],
    ['auth.logout', 3002, 2],
    ['session.revoked', 3002, 2],
    ['session.revoked.bulk', 3002, 2],
    ['session.expired', 3002, 2],
    ['auth.refresh', 3002, 3],
    ['auth.refresh.reuse', 3002, 3],
    ['auth.token.rejected', 3002, 99],
    ['user.created', 3001, 1],
    ['user.reactivated', 3001, 2],
    ['user.deactivated', 3001, 5],
    ['user.role_changed', 3001, 7],
    ['auth.lockout', 3001, 9],
    ['key.master.rotated', 6003, 3],
    ['key.master.read', 6003, 2],
    ['audit.purge', 6003, 4],
    ['access.denied', 6003, 99],
    ['fleet.device.created', 6003, 1],
    ['security.alert.brute_force', 2004, 1],
  ])('when the action is %s, then the class is %i with activity %i', (action, cls, activity) => {
    const m = ocsfMappingOf(action);
    expect([m.cls.uid, m.activityId]).toEqual([cls, activity]);
    expect(toOcsf(sample({ eventType: action })).type_uid).toBe(cls * 100 + activity);
  });

  it('when a session is revoked by an admin, then the subject is the session owner context and the session uid is set', () => {
    const o = toOcsf(
      sample({ eventType: 'session.revoked', resourceType: 'session', resourceId: 'sess-9', outcome: 'success' }),
    );
    expect(o).toMatchObject({
      class_uid: 3002,
      activity_id: 2,
      activity_name: 'Logoff',
      session: { uid: 'sess-9' },
      status_id: 1,
    });
  });

  it('when a role changes, then Account Change names the target user and the new role as the attached policy', () => {
    const o = toOcsf(
      sample({
        eventType: 'user.role_changed',
        resourceId: '99999999-2222-4333-8444-555555555555',
        details: { after: { role: 'admin' } },
        outcome: 'success',
      }),
    );
    expect(o).toMatchObject({
      class_uid: 3001,
      user: { uid: '99999999-2222-4333-8444-555555555555' },
      actor: { user: { uid: '11111111-2222-4333-8444-555555555555' } },
      policy: { name: 'admin' },
    });
  });

  it('when an alert is shaped, then it is a Detection Finding with finding_info {uid, title, types} and the address as evidence', () => {
    const o = toOcsf(
      sample({
        eventType: 'security.alert.brute_force',
        severity: 'critical',
        origin: 'alert',
        details: { after: { message: '10 failed logins' } },
      }),
    );
    expect(o).toMatchObject({
      class_uid: 2004,
      category_uid: 2,
      type_uid: 200401,
      severity_id: 5,
      evidences: [{ src_endpoint: { ip: '203.0.113.7' } }],
      finding_info: { uid: '3f1e2d4c-5b6a-4789-9abc-def012345678', title: '10 failed logins', types: ['brute_force'] },
    });
  });

  it('when an event is shaped for OCSF, then hostile text stays data (no field of the event can add OCSF attributes)', () => {
    const o = toOcsf(
      sample({
        eventType: 'fleet.x.created',
        message: '"},"class_uid":1,{"',
        details: { class_uid: 1, __proto__: { polluted: true } } as Record<string, unknown>,
      }),
    );
    expect(o.class_uid).toBe(6003);
    expect(validateOcsf(o)).toBe(true);
  });
});

describe('ECS 8.11', () => {
  it('when every kind of event is shaped, then each validates against the ECS field reference and every event.type is one ECS expects for its categories', () => {
    const expected = new Map(
      (ecsFields['event.category']?.allowed_values ?? []).map((v) => [v.name, v.expected_event_types ?? []]),
    );
    for (const e of corpus()) {
      const d = toEcs(e, 'fleet-host');
      if (!validateEcs(d)) throw new Error(`${e.eventType}: ${errorsOf(validateEcs)}\n${JSON.stringify(d)}`);
      const ev = d.event as { category: string[]; type: string[] };
      for (const c of ev.category)
        for (const t of ev.type)
          if (!expected.get(c)?.includes(t))
            throw new Error(`${e.eventType}: event.type ${t} is not expected for category ${c}`);
    }
  });

  it('when an event is shaped, then @timestamp, event {id, kind, category, type, action, outcome}, user, source.ip, user_agent.original and organization.id are set', () => {
    const d = toEcs(sample({ eventType: 'auth.login.failure', userId: null }), 'h');
    expect(d).toMatchObject({
      '@timestamp': '2026-01-02T03:04:05.678Z',
      event: {
        id: '3f1e2d4c-5b6a-4789-9abc-def012345678',
        kind: 'event',
        category: ['authentication'],
        type: ['start'],
        action: 'auth.login.failure',
        outcome: 'failure',
      },
      user: { name: 'a@example.com', email: 'a@example.com' },
      source: { ip: '203.0.113.7' },
      user_agent: { original: 'curl/8' },
      organization: { id: 'acme' },
    });
    expect(toEcs(sample({ eventType: 'security.alert.denied_burst' })).event).toMatchObject({
      kind: 'alert',
      category: ['intrusion_detection'],
    });
    expect(toEcs(sample({ eventType: 'auth.logout', outcome: 'success' })).event).toMatchObject({
      category: ['authentication', 'session'],
      type: ['end'],
      outcome: 'success',
    });
  });
});

describe('connectors with SIEM_EVENT_SCHEMA', () => {
  it('when the setting is absent, then native stays the default; an unknown value is refused with a clear message', () => {
    expect(loadConfig(testEnv({})).config?.siem.eventSchema).toBe('native');
    expect(loadConfig(testEnv({ SIEM_EVENT_SCHEMA: 'ocsf' })).config?.siem.eventSchema).toBe('ocsf');
    const bad = loadConfig(testEnv({ SIEM_EVENT_SCHEMA: 'cef' }));
    expect(bad.config).toBeNull();
    expect(bad.errors).toEqual(
      expect.arrayContaining([
        expect.objectContaining({
          variable: 'SIEM_EVENT_SCHEMA',
          message: expect.stringContaining('native, ocsf, ecs'),
        }),
      ]),
    );
  });

  it('when shaping per connector, then Splunk, Datadog and Elastic carry the standard event (native unchanged)', () => {
    const e = sample();
    expect((JSON.parse(splunkEnvelope(e, 'h', 'ocsf')) as { event: unknown; sourcetype: string }).event).toEqual(
      toOcsf(e),
    );
    expect((JSON.parse(splunkEnvelope(e, 'h', 'ocsf')) as { sourcetype: string }).sourcetype).toBe(
      'fleet:security:ocsf',
    );
    expect((JSON.parse(splunkEnvelope(e, 'h')) as { event: unknown }).event).toEqual(e);
    expect(datadogEntry(e, 'h', 'test', 'ecs')).toMatchObject({
      ddsource: 'fleet-security-api',
      status: 'error',
      event: { id: e.id, action: e.eventType },
    });
    expect(validateEcs(elasticDocument(e, 'h', 'ecs'))).toBe(true);
    expect(elasticDocument(e, 'h', 'ocsf')).toMatchObject({ '@timestamp': e.time, class_uid: 3002 });
  });

  it('when Splunk is configured with ocsf, then HEC receives OCSF events that validate', async () => {
    const hec = await startHecReceiver('tok');
    const c = createSplunkConnector({ endpointUrl: hec.url, apiKey: 'tok', schema: 'ocsf' });
    try {
      const list = [
        sample({ id: '3f1e2d4c-5b6a-4789-9abc-000000000001' }),
        sample({ id: '3f1e2d4c-5b6a-4789-9abc-000000000002', eventType: 'security.alert.key_event' }),
      ];
      const r = await c.send(list);
      expect([...r.outcomes.values()].map((o) => o.kind)).toEqual(['delivered', 'delivered']);
      expect(hec.envelopes.map((x) => (x.event.metadata as { uid: string }).uid)).toEqual(list.map((e) => e.id));
      for (const x of hec.envelopes) expect(validateOcsf(x.event)).toBe(true);
    } finally {
      await c.close();
      await hec.close();
    }
  });

  it('when the webhook is configured with ecs, then the signed body is an array of ECS documents', async () => {
    const wh = await startWebhookReceiver('k');
    const c = createWebhookConnector({ endpointUrl: wh.endpoint, apiKey: 'k', schema: 'ecs' });
    try {
      await c.send([sample()]);
      expect(wh.refused()).toBe(0);
      expect(wh.events).toHaveLength(1);
      expect(validateEcs(wh.events[0])).toBe(true);
    } finally {
      await c.close();
      await wh.close();
    }
  });
});

describe('serialization', () => {
  it('when an event is serialized by the fast OCSF path, then it is exactly the JSON of the OCSF object (for every kind of event)', () => {
    for (const e of corpus()) expect(JSON.parse(toOcsfJson(e))).toEqual(toOcsf(e));
    for (const e of corpus()) expect(toOcsfJson(e)).toBe(JSON.stringify(toOcsf(e)));
  });
});
