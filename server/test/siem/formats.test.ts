/** Wire formats and pure helpers of SIEM forwarding and the archive (no network, no database). */
import { createHmac } from 'node:crypto';
import { BACKOFF_CAP_MS, backoffCeilingMs, backoffDelayMs, parseRetryAfter } from '../../src/services/siem/backoff';
import {
  cefExtensionEscape,
  cefExtensionUnescape,
  cefHeaderEscape,
  formatCef,
  formatSyslog,
  MAX_SYSLOG_MESSAGE_BYTES,
  octetFrame,
} from '../../src/services/siem/connectors/cef';
import { datadogEntry } from '../../src/services/siem/connectors/datadog';
import { ecsDocument, elasticTarget } from '../../src/services/siem/connectors/elastic';
import { chunkBySize } from '../../src/services/siem/connectors/http';
import { splunkEnvelope, splunkUrls } from '../../src/services/siem/connectors/splunk';
import { webhookSignature } from '../../src/services/siem/connectors/webhook';
import { auditEventId, uuidv5 } from '../../src/services/siem/event-id';
import { eventFromAudit, normalizeEvent, truncate } from '../../src/services/siem/events';
import { isForwarded } from '../../src/services/siem/service';
import type { SiemEvent } from '../../src/services/siem/types';
import { blobName, canonicalJson, exportDigest, renderNdjson, splitLines } from '../../src/services/archive/format';

const AWKWARD = 'pipe | equals = backslash \\ newline\nCR\r tab\t nul\u0000 unicode é ü 漢字 🚀 "quote" ]bracket';

function sampleEvent(over: Partial<SiemEvent> = {}): SiemEvent {
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

/** Splits a CEF extension into key/value pairs, honouring escapes (a receiver's view). */
function parseCefExtension(ext: string): Record<string, string> {
  const out: Record<string, string> = {};
  const re = /(?:^|\s)([A-Za-z0-9_]+)=((?:\\.|[^\\])*?)(?=\s[A-Za-z0-9_]+=|$)/g;
  let m: RegExpExecArray | null;
  while ((m = re.exec(ext)) !== null) out[m[1] as string] = cefExtensionUnescape(m[2] as string);
  return out;
}

/** Splits a CEF header on unescaped pipes. */
function splitCefHeader(cef: string): string[] {
  const parts: string[] = [];
  let cur = '';
  for (let i = 0; i < cef.length; i++) {
    const ch = cef[i] as string;
    if (ch === '\\' && parts.length < 7) {
      cur += ch + (cef[i + 1] ?? '');
      i++;
    } else if (ch === '|' && parts.length < 7) {
      parts.push(cur);
      cur = '';
    } else cur += ch;
  }
  parts.push(cur);
  return parts;
}

describe('CEF escaping', () => {
  it('when a header field holds pipes and backslashes, then they are escaped and line breaks become spaces', () => {
    expect(cefHeaderEscape('a|b\\c\nd\re')).toBe('a\\|b\\\\c d e');
  });

  it('when an extension value holds =, \\ and line breaks, then they are escaped and pipes are left alone', () => {
    expect(cefExtensionEscape('k=v|x\\y\nz\rw')).toBe('k\\=v|x\\\\y\\nz\\rw');
  });

  it('when an extension value is escaped and unescaped, then the text round-trips (control characters other than CR/LF become spaces)', () => {
    const escaped = cefExtensionEscape(AWKWARD);
    for (const ch of ['\n', '\r', '\t', '\u0000']) expect(escaped.includes(ch)).toBe(false);
    expect(cefExtensionUnescape(escaped)).toBe(AWKWARD.replace('\t', ' ').replace('\u0000', ' '));
  });

  it('when an event is formatted, then the header has 7 unescaped pipes and the extension parses back to the event fields', () => {
    const e = sampleEvent({ message: AWKWARD, eventType: 'vehicle.tamper.detected', severity: 'critical' });
    const cef = formatCef(e, { hostname: 'host-1' });
    const parts = splitCefHeader(cef);
    expect(parts).toHaveLength(8);
    expect(parts.slice(0, 5)).toEqual(['CEF:0', 'Fleet', 'Fleet Security API', '1.0.0', 'vehicle.tamper.detected']);
    expect(parts[6]).toBe('10');
    expect(parts[5]).not.toMatch(/[\r\n]/);
    const ext = parseCefExtension(parts[7] as string);
    expect(ext.msg).toBe(AWKWARD.replace('\t', ' ').replace('\u0000', ' '));
    expect(ext.externalId).toBe(e.id);
    expect(ext.rt).toBe(String(Date.parse(e.time)));
    expect(ext.src).toBe('203.0.113.7');
    expect(ext.cs1).toBe('acme');
    expect(ext.cs1Label).toBe('tenantId');
    expect(ext.outcome).toBe('failure');
    expect(JSON.parse(ext.cs6 as string)).toEqual({ reason: 'bad signature' });
  });

  it('when the source address is IPv6, then it goes to c6a2 with its label instead of src', () => {
    const ext = parseCefExtension(
      splitCefHeader(formatCef(sampleEvent({ ipAddress: '2001:db8::1' }), { hostname: 'h' }))[7] as string,
    );
    expect(ext.src).toBeUndefined();
    expect(ext.c6a2).toBe('2001:db8::1');
    expect(ext.c6a2Label).toBe('Source IPv6 Address');
  });

  it('when only a resource id (or only a type, or neither) is given, then cs3 carries what there is and no label is sent without a value', () => {
    const cef = (over: Parameters<typeof sampleEvent>[0]) =>
      parseCefExtension(splitCefHeader(formatCef(sampleEvent(over), { hostname: 'h' }))[7] as string);
    expect(cef({ resourceType: null, resourceId: 'V-43' })).toMatchObject({ cs3Label: 'resource', cs3: 'V-43' });
    expect(cef({ resourceType: 'vehicle', resourceId: null })).toMatchObject({ cs3Label: 'resource', cs3: 'vehicle' });
    expect(cef({ resourceType: 'vehicle', resourceId: 'V-43' })).toMatchObject({ cs3: 'vehicle:V-43' });
    const none = cef({ resourceType: null, resourceId: null });
    expect(none.cs3).toBeUndefined();
    expect(none.cs3Label).toBeUndefined();
  });
});

describe('RFC 5424 syslog and RFC 6587 framing', () => {
  it('when an event is formatted, then PRI, version, timestamp, app, MSGID and structured data follow RFC 5424', () => {
    const msg = formatSyslog(sampleEvent({ tenantId: 'ten"ant]\\x' }), { hostname: 'host one', pid: 77 });
    const m = /^<(\d+)>1 (\S+) (\S+) (\S+) (\S+) (\S+) (\[.*?[^\\]\]) (CEF:0\|.*)$/s.exec(msg);
    expect(m).not.toBeNull();
    const [, pri, ts, host, app, procid, msgid, sd] = m as RegExpExecArray;
    expect(Number(pri)).toBe(10 * 8 + 3);
    expect(ts).toBe('2026-01-02T03:04:05.678Z');
    expect(host).toBe('host-one');
    expect(app).toBe('fleet-security-api');
    expect(procid).toBe('77');
    expect(msgid).toBe('auth.login.failure');
    expect(sd).toBe(
      '[fleet@32473 eventId="3f1e2d4c-5b6a-4789-9abc-def012345678" tenant="ten\\"ant\\]\\\\x" severity="high"]',
    );
  });

  it('when a message is framed, then the prefix is its length in bytes (not characters) and a space', () => {
    const frame = octetFrame('é🚀');
    expect(frame.toString('utf8')).toBe('6 é🚀');
  });

  it('when an event would exceed the message size limit, then details are dropped and the message shortened to fit', () => {
    const big = sampleEvent({
      message: 'x'.repeat(20_000),
      userAgent: 'u'.repeat(5000),
      details: { blob: 'y'.repeat(1900) },
    });
    const msg = formatSyslog(big, { hostname: 'h' });
    expect(Buffer.byteLength(msg)).toBeLessThanOrEqual(MAX_SYSLOG_MESSAGE_BYTES);
    expect(msg).toContain('externalId=3f1e2d4c-5b6a-4789-9abc-def012345678');
  });
});

describe('HTTP connector formats', () => {
  it('when a Splunk envelope is built, then it carries time in epoch seconds, host, source, sourcetype, indexed fields and the event', () => {
    const env = JSON.parse(splunkEnvelope(sampleEvent(), 'h1')) as Record<string, unknown>;
    expect(env).toEqual({
      time: Date.parse('2026-01-02T03:04:05.678Z') / 1000,
      host: 'h1',
      source: 'fleet-security-api',
      sourcetype: 'fleet:security',
      fields: {
        tenant_id: 'acme',
        severity: 'high',
        event_type: 'auth.login.failure',
        event_id: '3f1e2d4c-5b6a-4789-9abc-def012345678',
      },
      event: sampleEvent(),
    });
  });

  it('when SIEM_ENDPOINT_URL is the base or already the collector path, then the event and health URLs are the HEC ones', () => {
    expect(splunkUrls('https://splunk:8088')).toEqual({
      event: 'https://splunk:8088/services/collector/event',
      health: 'https://splunk:8088/services/collector/health',
      ack: 'https://splunk:8088/services/collector/ack',
    });
    expect(splunkUrls('https://splunk:8088/services/collector/event').event).toBe(
      'https://splunk:8088/services/collector/event',
    );
    expect(splunkUrls('https://splunk:8088/services/collector').event).toBe(
      'https://splunk:8088/services/collector/event',
    );
  });

  it('when a Datadog entry is built, then it uses the reserved attributes and standard attributes', () => {
    const d = datadogEntry(sampleEvent(), 'h1', 'production');
    expect(d).toMatchObject({
      ddsource: 'fleet-security-api',
      service: 'fleet-security-api',
      hostname: 'h1',
      message: 'login failed',
      status: 'error',
      timestamp: Date.parse('2026-01-02T03:04:05.678Z'),
      evt: { id: sampleEvent().id, name: 'auth.login.failure', outcome: 'failure' },
      usr: { id: sampleEvent().userId },
      network: { client: { ip: '203.0.113.7' } },
    });
    expect(String(d.ddtags).split(',')).toEqual([
      'env:production',
      'tenant:acme',
      'severity:high',
      'event_type:auth.login.failure',
      'origin:audit',
    ]);
  });

  it('when an ECS document is built, then it has @timestamp, event.id/action/outcome/kind and ECS field names', () => {
    const doc = ecsDocument(sampleEvent({ origin: 'alert', eventType: 'security.alert.brute_force' }), 'h1');
    expect(doc).toMatchObject({
      '@timestamp': '2026-01-02T03:04:05.678Z',
      ecs: { version: '8.11.0' },
      event: {
        id: sampleEvent().id,
        kind: 'alert',
        action: 'security.alert.brute_force',
        outcome: 'failure',
        category: ['intrusion_detection'],
        severity: 8,
      },
      source: { ip: '203.0.113.7' },
      user: { id: sampleEvent().userId },
      user_agent: { original: 'curl/8' },
      organization: { id: 'acme' },
      http: { request: { id: 'req-1' } },
    });
  });

  it('when the Elastic URL has a path and credentials, then the index is the first segment and credentials leave the URL', () => {
    expect(elasticTarget('https://u:p%40ss@es.local:9200/fleet-logs')).toEqual({
      bulkUrl: 'https://es.local:9200/_bulk',
      rootUrl: 'https://es.local:9200/',
      index: 'fleet-logs',
      username: 'u',
      password: 'p@ss',
    });
    expect(elasticTarget('http://127.0.0.1:9200').index).toBe('fleet-security-events');
  });

  it('when a webhook body is signed, then the signature is HMAC-SHA256 over timestamp "." body with the key', () => {
    const body = '[{"id":"x"}]';
    expect(webhookSignature('k3y', '1700000000', body)).toBe(
      `sha256=${createHmac('sha256', 'k3y').update(`1700000000.${body}`).digest('hex')}`,
    );
  });

  it('when items are chunked, then no chunk exceeds the item or byte limits and oversized items are set apart', () => {
    const items = Array.from({ length: 25 }, (_, i) => ({ item: i, bytes: i === 7 ? 5000 : 100 }));
    const { chunks, oversized } = chunkBySize(items, {
      maxItems: 10,
      maxBytes: 450,
      maxItemBytes: 1000,
      overheadBytes: 2,
      separatorBytes: 1,
    });
    expect(oversized).toEqual([7]);
    expect(chunks.flat()).toEqual(items.map((i) => i.item).filter((i) => i !== 7));
    for (const c of chunks) {
      expect(c.length).toBeLessThanOrEqual(10);
      expect(2 + c.length * 100 + (c.length - 1)).toBeLessThanOrEqual(450);
    }
  });
});

describe('backoff', () => {
  it('when the attempt grows, then the ceiling doubles from 2 s and stops at 5 minutes', () => {
    expect([1, 2, 3, 8, 9, 20].map(backoffCeilingMs)).toEqual([
      2000,
      4000,
      8000,
      256_000,
      BACKOFF_CAP_MS,
      BACKOFF_CAP_MS,
    ]);
  });

  it('when jitter is applied, then the delay is uniform between 0 and the ceiling (full jitter)', () => {
    expect(backoffDelayMs(3, () => 0)).toBe(0);
    expect(backoffDelayMs(3, () => 0.5)).toBe(4000);
    expect(backoffDelayMs(3, () => 0.999999)).toBeLessThan(8000);
  });

  it('when the receiver sent Retry-After, then it is a lower bound, still capped', () => {
    expect(backoffDelayMs(1, () => 0, 30_000)).toBe(30_000);
    expect(backoffDelayMs(1, () => 0, 3_600_000)).toBe(BACKOFF_CAP_MS);
    expect(parseRetryAfter('120', 0)).toBe(120_000);
    expect(parseRetryAfter(new Date(Date.UTC(2030, 0, 1, 0, 1)).toUTCString(), Date.UTC(2030, 0, 1))).toBe(60_000);
    expect(parseRetryAfter('soon', 0)).toBeUndefined();
  });
});

describe('event ids and normalization', () => {
  it('when an id is derived from an audit row, then it is a stable RFC 4122 v5 UUID', () => {
    expect(auditEventId('42')).toBe(auditEventId('42'));
    expect(auditEventId('42')).not.toBe(auditEventId('43'));
    expect(auditEventId('42')).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    // RFC 4122 appendix B test vector (DNS namespace, "www.example.com") as corrected in the errata.
    expect(uuidv5('www.example.com', '6ba7b810-9dad-11d1-80b4-00c04fd430c8')).toBe(
      '2ed6657d-e927-568b-95e1-2665a8aea6a2',
    );
  });

  it('when an audit row is mirrored, then outcome, identity fields and capped before/after are carried', () => {
    const e = eventFromAudit(
      {
        tenantId: 't',
        action: 'user.role_changed',
        resourceType: 'user',
        resourceId: 'u1',
        severity: 'high',
        before: { role: 'user' },
        after: { role: 'admin', blob: 'z'.repeat(10_000) },
        userId: null,
        result: 'success',
      },
      { id: '9', createdAt: new Date('2026-01-01T00:00:00Z') },
    );
    expect(e).toMatchObject({
      id: auditEventId('9'),
      eventType: 'user.role_changed',
      origin: 'audit',
      outcome: 'success',
      auditLogId: '9',
      time: '2026-01-01T00:00:00.000Z',
    });
    expect(e.details).toEqual({ before: { role: 'user' }, after: { truncated: true, bytes: expect.any(Number) } });
  });

  it('when a message is longer than the cap, then it is truncated on a code point boundary', () => {
    const e = normalizeEvent({ tenantId: 't', eventType: 'a.b', severity: 'low', message: '🚀'.repeat(3000) }, 0);
    expect(Array.from(e.message)).toHaveLength(2000);
    expect(e.message.isWellFormed()).toBe(true);
    expect(truncate('abc', 5)).toBe('abc');
  });

  it('when deciding what the audit hook forwards, then high/critical and alerts go, the forwarder’s own rows and low/medium do not', () => {
    expect(isForwarded('auth.refresh.reuse', 'critical')).toBe(true);
    expect(isForwarded('user.role_changed', 'high')).toBe(true);
    expect(isForwarded('security.alert.x', 'medium')).toBe(true);
    expect(isForwarded('auth.login.failure', 'medium')).toBe(false);
    expect(isForwarded('audit.siem.dead_letter', 'high')).toBe(false);
  });
});

describe('archive format', () => {
  const row = {
    id: '7',
    tenantId: 'acme',
    userId: null,
    action: 'auth.login.failure',
    resourceType: 'user',
    resourceId: 'a"b@example.com',
    before: null,
    after: '{"k": "v\\n", "n": 1}',
    ipAddress: '127.0.0.1',
    userAgent: 'ua',
    result: 'failure' as const,
    errorMessage: 'bad\nthing',
    severity: 'medium' as const,
    requestId: null,
    createdAt: '2026-03-04T05:06:07.123456Z',
  };

  it('when rows are rendered, then each is one JSON line in the fixed key order ending with a newline', () => {
    const buf = renderNdjson([row, { ...row, id: '8' }]);
    const lines = splitLines(buf);
    expect(lines).toHaveLength(2);
    expect(buf.toString('utf8').endsWith('\n')).toBe(true);
    const o = JSON.parse(lines[0] as string) as Record<string, unknown>;
    expect(Object.keys(o)).toEqual([
      'id',
      'tenant_id',
      'user_id',
      'action',
      'resource_type',
      'resource_id',
      'before',
      'after',
      'ip_address',
      'user_agent',
      'result',
      'error_message',
      'severity',
      'request_id',
      'created_at',
    ]);
    expect(o.after).toEqual({ k: 'v\n', n: 1 });
    expect(o.error_message).toBe('bad\nthing');
  });

  it('when the digest inputs change in any field, then the digest changes', () => {
    const base = {
      tenantId: 't',
      seq: 1,
      firstId: '1',
      lastId: '9',
      count: 9,
      sha256: 'a'.repeat(64),
      prevDigest: '0'.repeat(64),
      chainHead: null,
    };
    const d = exportDigest(base);
    expect(d).toMatch(/^[0-9a-f]{64}$/);
    for (const change of [
      { seq: 2 },
      { firstId: '2' },
      { lastId: '8' },
      { count: 8 },
      { sha256: 'b'.repeat(64) },
      { prevDigest: '1'.repeat(64) },
      { chainHead: 'x' },
      { tenantId: 'u' },
    ]) {
      expect(exportDigest({ ...base, ...change })).not.toBe(d);
    }
  });

  it('when a blob name is built, then it is audit/<tenant>/<yyyy>/<mm>/<dd>/<firstId>-<lastId>.ndjson', () => {
    expect(blobName('acme', '2026-03-04T05:06:07.123456Z', '10', '20')).toBe('audit/acme/2026/03/04/10-20.ndjson');
    expect(blobName('a/b', '2026-03-04T00:00:00Z', '1', '1')).toBe('audit/a%2Fb/2026/03/04/1-1.ndjson');
  });

  it('when two JSON documents differ only in key order, then their canonical forms are equal', () => {
    expect(canonicalJson({ b: 1, a: { d: [1, { y: 2, x: 1 }], c: null } })).toBe(
      canonicalJson({ a: { c: null, d: [1, { x: 1, y: 2 }] }, b: 1 }),
    );
  });
});
