/**
 * SIEM_PROVIDER=sentinel: the real @azure/monitor-ingestion client and @azure/identity
 * ClientSecretCredential against a local HTTPS stand-in of Entra ID and the Logs Ingestion API
 * (bearer token audience checked), built from configuration as in production.
 */
import { loadConfig } from '../../src/config';
import { createConnector } from '../../src/services/siem/connectors';
import { createSentinelConnector, sentinelRow } from '../../src/services/siem/connectors/sentinel';
import { normalizeEvent } from '../../src/services/siem/events';
import type { SiemConnector, SiemEvent } from '../../src/services/siem/types';
import { testEnv, uniqueTenant } from '../helpers/env';
import { createIsolatedDatabase, type IsolatedDatabase } from './helpers/db';
import { buildStack, type Stack } from './helpers/harness';
import { startFakeLogsIngestion, type FakeLogsIngestion } from './helpers/fake-logs-ingestion';

let dce: FakeLogsIngestion;
let env: Record<string, string>;
let c: SiemConnector;

function events(n: number, message = 'event'): SiemEvent[] {
  const tenantId = uniqueTenant();
  return Array.from({ length: n }, (_, i) =>
    normalizeEvent(
      {
        tenantId,
        eventType: 'auth.login.failure',
        severity: 'high',
        message: `${message} ${i}`,
        ipAddress: '203.0.113.9',
      },
      Date.now(),
    ),
  );
}

function kinds(r: { outcomes: Map<string, { kind: string }> }, list: SiemEvent[]): string[] {
  return [...new Set(list.map((e) => r.outcomes.get(e.id)?.kind ?? 'missing'))];
}

beforeAll(async () => {
  dce = await startFakeLogsIngestion();
  env = {
    SIEM_PROVIDER: 'sentinel',
    SIEM_ENDPOINT_URL: dce.url,
    SIEM_DCR_ID: dce.dcrId,
    SIEM_STREAM_NAME: dce.streamName,
    SIEM_AZURE_TENANT_ID: dce.tenantId,
    SIEM_AZURE_CLIENT_ID: dce.clientId,
    SIEM_AZURE_CLIENT_SECRET: dce.clientSecret,
    SIEM_AZURE_AUTHORITY_HOST: dce.url,
    SIEM_TLS_CA_FILE: dce.caFile,
  };
  const loaded = loadConfig(testEnv(env));
  if (!loaded.config) throw new Error(JSON.stringify(loaded.errors));
  c = createConnector(loaded.config, { timeoutMs: 10_000 }) as SiemConnector;
});
afterAll(async () => {
  await c?.close();
  await dce?.close();
});
beforeEach(() => dce.reset());

describe('configuration', () => {
  it.each([
    ['no DCR id', { SIEM_DCR_ID: undefined }, 'SIEM_DCR_ID'],
    ['a DCR name instead of its immutable id', { SIEM_DCR_ID: 'my-rule' }, 'SIEM_DCR_ID'],
    ['a stream name without Custom-', { SIEM_STREAM_NAME: 'FleetEvents' }, 'SIEM_STREAM_NAME'],
    ['a client id without its secret', { SIEM_AZURE_CLIENT_SECRET: undefined }, 'SIEM_AZURE_CLIENT_SECRET'],
    ['an http:// endpoint', { SIEM_ENDPOINT_URL: 'http://dce.example.com' }, 'SIEM_ENDPOINT_URL'],
    [
      'an http:// authority host',
      { SIEM_AZURE_AUTHORITY_HOST: 'http://login.example.com' },
      'SIEM_AZURE_AUTHORITY_HOST',
    ],
  ])('when the configuration has %s, then it is refused naming the variable', (_what, over, variable) => {
    const r = loadConfig(testEnv({ ...env, ...over }));
    expect(r.config).toBeNull();
    expect(r.errors.map((e) => e.variable)).toContain(variable);
  });
});

describe('Logs Ingestion API', () => {
  it('when events are sent, then a token for https://monitor.azure.com is obtained with the client secret and one row per event reaches the DCR stream', async () => {
    const list = events(3);
    const r = await c.send(list);
    expect(kinds(r, list)).toEqual(['delivered']);
    expect(dce.tokenRequests).toEqual([{ scope: 'https://monitor.azure.com/.default', ok: true }]);
    expect(dce.requests).toEqual([
      expect.objectContaining({
        path: `/dataCollectionRules/${dce.dcrId}/streams/${dce.streamName}`,
        status: 204,
        rows: 3,
        audience: 'https://monitor.azure.com',
      }),
    ]);
    expect(dce.rows.map((x) => x.EventId)).toEqual(list.map((e) => e.id));
    expect(dce.rows[0]).toMatchObject({
      TimeGenerated: list[0]?.time,
      EventType: 'auth.login.failure',
      Severity: 'high',
      FleetTenantId: list[0]?.tenantId,
      IpAddress: '203.0.113.9',
      Event: null,
    });
    await expect(c.healthCheck()).resolves.toBeUndefined();
  });

  it('when a batch is larger than 1 MB, then it goes out in several calls of at most 1 MB each', async () => {
    const list = events(30, 'x'.repeat(1900)).map((e) => ({ ...e, details: { blob: 'y'.repeat(60_000) } }));
    const r = await c.send(list);
    expect(kinds(r, list)).toEqual(['delivered']);
    expect(dce.requests.length).toBeGreaterThan(1);
    for (const q of dce.requests) expect(q.bytes).toBeLessThanOrEqual(1_000_000);
    expect(dce.rows).toHaveLength(30);
  });

  it('when the API throttles with 429 and Retry-After, then the events are retried no sooner than it says; a 503 is retried too', async () => {
    dce.failNext(1, { status: 429, headers: { 'Retry-After': '42' } });
    const list = events(2);
    const r = await c.send(list);
    expect(r.outcomes.get(list[0]!.id)).toMatchObject({
      kind: 'retry',
      reason: 'sentinel: HTTP 429',
      retryAfterMs: 42_000,
    });
    dce.failNext(1, { status: 503 });
    const r2 = await c.send(list);
    expect(r2.outcomes.get(list[0]!.id)).toMatchObject({ kind: 'retry', reason: 'sentinel: HTTP 503' });
    expect(dce.rows).toHaveLength(0);
  });

  it('when the token was issued for another audience, then the API answers 401 and the events are refused permanently', async () => {
    const gov = createSentinelConnector({
      endpointUrl: dce.url,
      dcrId: dce.dcrId,
      streamName: dce.streamName,
      azure: { tenantId: dce.tenantId, clientId: dce.clientId, clientSecret: dce.clientSecret, authorityHost: dce.url },
      audience: 'https://monitor.azure.us',
      tlsCaFile: dce.caFile,
    });
    const list = events(1);
    const r = await gov.send(list);
    expect(r.outcomes.get(list[0]!.id)).toMatchObject({
      kind: 'dead',
      reason: expect.stringContaining('sentinel: HTTP 401'),
    });
    expect(dce.requests[0]).toMatchObject({ status: 401, audience: 'https://monitor.azure.us' });
  });

  it('when the client secret is wrong, then no token is issued, nothing is ingested and the events are retried', async () => {
    const bad = createSentinelConnector({
      endpointUrl: dce.url,
      dcrId: dce.dcrId,
      streamName: dce.streamName,
      azure: { tenantId: dce.tenantId, clientId: dce.clientId, clientSecret: 'wrong', authorityHost: dce.url },
      tlsCaFile: dce.caFile,
    });
    const list = events(1);
    const r = await bad.send(list);
    expect(r.outcomes.get(list[0]!.id)).toMatchObject({ kind: 'retry' });
    expect(dce.requests).toHaveLength(0);
    await expect(bad.healthCheck()).rejects.toThrow(/token/);
  });

  it('when SIEM_EVENT_SCHEMA is ocsf, then each row also carries the OCSF event', () => {
    const e = events(1)[0] as SiemEvent;
    expect(sentinelRow(e, 'ocsf').Event).toMatchObject({ class_uid: 3002, metadata: { uid: e.id } });
  });
});

describe('through the outbox', () => {
  let db: IsolatedDatabase;
  let s: Stack;
  beforeAll(async () => {
    db = await createIsolatedDatabase('sentinel');
    s = await buildStack(db, env);
  }, 60_000);
  afterAll(async () => {
    await s?.close();
    await db?.drop();
  });

  it('when a high audit row is written, then the worker delivers it to Sentinel with its stable event id', async () => {
    const tenantId = uniqueTenant();
    await s.monitoring.siem.syncSettings();
    const rec = await s.audit.record({
      tenantId,
      action: 'user.role_changed',
      resourceType: 'user',
      resourceId: 'u1',
      severity: 'high',
    });
    const r = await s.monitoring.siem.flushOnce();
    expect(r).toMatchObject({ delivered: 1 });
    expect(dce.rows).toEqual([
      expect.objectContaining({ EventType: 'user.role_changed', AuditLogId: rec.id, FleetTenantId: tenantId }),
    ]);
  });
});
