/**
 * Elasticsearch bulk API: POST <base>/_bulk, `Content-Type: application/x-ndjson`, one
 * `{"create":{"_index":…,"_id":<event id>}}` action line and one ECS document per event.
 * `create` with the event id as _id makes replays idempotent: a 409 version conflict for an
 * item means it is already indexed and counts as delivered. With `errors: true` each item is
 * judged on its own status: 429/5xx items are retried alone, other 4xx items (mapping errors)
 * are dead-lettered with the error type and reason.
 * The index is the first path segment of SIEM_ENDPOINT_URL (https://es:9200/my-index), by
 * default `fleet-security-events` (a data stream name works too: `create` is what they need).
 * SIEM_API_KEY, when set, is sent as `Authorization: ApiKey <key>`; user:password in the URL
 * as basic authentication.
 */
import os from 'node:os';
import { CEF_SEVERITY } from '../events';
import { toEcs, toOcsf } from '../schemas';
import type { DeliveryReport, EventOutcome, SiemConnector, SiemEvent } from '../types';
import {
  allOutcomes,
  bodyExcerpt,
  chunkBySize,
  classifyError,
  classifyStatus,
  createHttpClient,
  outcomeOf,
  probe,
  splitUrlCredentials,
  type HttpConnectorOptions,
} from './http';

const ELASTIC_DEFAULT_INDEX = 'fleet-security-events';
const ELASTIC_MAX_REQUEST_BYTES = 10_000_000;
const ECS_VERSION = '8.11.0';

const CATEGORY: Array<[string, string[]]> = [
  ['auth.', ['authentication']],
  ['session.', ['session']],
  ['user.', ['iam']],
  ['access.', ['iam']],
  ['key.', ['configuration']],
  ['security.alert.', ['intrusion_detection']],
];

export function ecsDocument(e: SiemEvent, host: string): Record<string, unknown> {
  const category = CATEGORY.find(([p]) => e.eventType.startsWith(p))?.[1];
  return {
    '@timestamp': e.time,
    ecs: { version: ECS_VERSION },
    event: {
      id: e.id,
      kind: e.origin === 'alert' ? 'alert' : 'event',
      ...(category ? { category } : {}),
      action: e.eventType,
      outcome: e.outcome === 'success' ? 'success' : e.outcome === null ? 'unknown' : 'failure',
      severity: CEF_SEVERITY[e.severity],
      dataset: 'fleet.security',
      provider: 'fleet-security-api',
    },
    message: e.message,
    log: { level: e.severity },
    organization: { id: e.tenantId },
    service: { name: 'fleet-security-api' },
    host: { name: host },
    ...(e.userId ? { user: { id: e.userId } } : {}),
    ...(e.ipAddress ? { source: { ip: e.ipAddress } } : {}),
    ...(e.userAgent ? { user_agent: { original: e.userAgent } } : {}),
    ...(e.requestId ? { http: { request: { id: e.requestId } } } : {}),
    fleet: {
      tenant_id: e.tenantId,
      severity: e.severity,
      origin: e.origin,
      outcome: e.outcome,
      audit_log_id: e.auditLogId,
      ...(e.resourceType ? { resource: { type: e.resourceType, id: e.resourceId } } : {}),
      ...(e.details ? { details: e.details } : {}),
    },
  };
}

/** native keeps the document this connector always sent; ecs and ocsf use the standard mappings. */
export function elasticDocument(
  e: SiemEvent,
  host: string,
  schema: 'native' | 'ocsf' | 'ecs',
): Record<string, unknown> {
  if (schema === 'ecs') return toEcs(e, host);
  // Data streams need @timestamp; the rest is the OCSF event as is.
  if (schema === 'ocsf') return { '@timestamp': e.time, ...toOcsf(e) };
  return ecsDocument(e, host);
}

export function elasticTarget(endpointUrl: string): {
  bulkUrl: string;
  rootUrl: string;
  index: string;
  username: string | null;
  password: string | null;
} {
  const { url, username, password } = splitUrlCredentials(endpointUrl);
  const segments = url.pathname.split('/').filter(Boolean);
  const index = segments[0] && segments[0] !== '_bulk' ? decodeURIComponent(segments[0]) : ELASTIC_DEFAULT_INDEX;
  const rootUrl = `${url.protocol}//${url.host}`;
  return { bulkUrl: `${rootUrl}/_bulk`, rootUrl: `${rootUrl}/`, index, username, password };
}

interface BulkItem {
  status?: number;
  _id?: string;
  error?: { type?: string; reason?: string };
}

export function createElasticConnector(opts: HttpConnectorOptions): SiemConnector {
  const http = createHttpClient(opts);
  const target = elasticTarget(opts.endpointUrl);
  const host = opts.hostname ?? os.hostname();
  const auth: Record<string, string> = {};
  if (opts.apiKey) auth.Authorization = `ApiKey ${opts.apiKey}`;
  else if (target.username !== null)
    auth.Authorization = `Basic ${Buffer.from(`${target.username}:${target.password ?? ''}`).toString('base64')}`;
  const headers = { ...auth, 'Content-Type': 'application/x-ndjson' };

  async function sendChunk(
    chunk: SiemEvent[],
    lines: Map<string, string>,
    outcomes: Map<string, EventOutcome>,
  ): Promise<string | undefined> {
    const payload = chunk.map((e) => lines.get(e.id)).join('');
    let res;
    try {
      res = await http.axios.post(target.bulkUrl, payload, { headers });
    } catch (err) {
      const c = classifyError(err, 'elastic');
      allOutcomes(chunk, outcomeOf(c), outcomes);
      return c.kind === 'ok' ? undefined : c.reason;
    }
    const c = classifyStatus(res, 'elastic');
    if (c.kind !== 'ok') {
      allOutcomes(
        chunk,
        outcomeOf(c.kind === 'dead' ? { kind: 'dead', reason: `${c.reason} ${bodyExcerpt(res.data, 160)}`.trim() } : c),
        outcomes,
      );
      return c.reason;
    }
    let body: { errors?: boolean; items?: Array<Record<string, BulkItem>> };
    try {
      body = JSON.parse(String(res.data)) as typeof body;
    } catch {
      allOutcomes(chunk, { kind: 'retry', reason: 'elastic: unparseable bulk response' }, outcomes);
      return 'elastic: unparseable bulk response';
    }
    const items = Array.isArray(body.items) ? body.items : [];
    if (items.length !== chunk.length) {
      allOutcomes(chunk, { kind: 'retry', reason: 'elastic: bulk response item count mismatch' }, outcomes);
      return 'elastic: bulk response item count mismatch';
    }
    let error: string | undefined;
    chunk.forEach((e, i) => {
      const wrapper = items[i] ?? {};
      const item: BulkItem = wrapper.create ?? wrapper.index ?? Object.values(wrapper)[0] ?? {};
      const s = typeof item.status === 'number' ? item.status : 0;
      if ((s >= 200 && s < 300) || s === 409) {
        // 409 on create: a document with this _id exists, i.e. an earlier attempt got through.
        outcomes.set(e.id, { kind: 'delivered' });
        return;
      }
      const why = item.error
        ? `${item.error.type ?? 'error'}: ${bodyExcerpt(item.error.reason ?? '', 160)}`
        : `status ${s}`;
      if (s === 408 || s === 429 || s >= 500 || s === 0) {
        outcomes.set(e.id, { kind: 'retry', reason: `elastic: item ${why}` });
        error = error ?? `elastic: item status ${s}`;
      } else {
        outcomes.set(e.id, { kind: 'dead', reason: `elastic: item ${why}` });
        error = error ?? `elastic: item status ${s}`;
      }
    });
    return error;
  }

  return {
    provider: 'elastic',
    async send(events) {
      const outcomes = new Map<string, EventOutcome>();
      const lines = new Map<string, string>();
      const sized = events.map((e) => {
        const action = JSON.stringify({ create: { _index: target.index, _id: e.id } });
        const text = `${action}\n${JSON.stringify(elasticDocument(e, host, opts.schema ?? 'native'))}\n`;
        lines.set(e.id, text);
        return { item: e, bytes: Buffer.byteLength(text) };
      });
      const { chunks, oversized } = chunkBySize(sized, {
        maxItems: Number.MAX_SAFE_INTEGER,
        maxBytes: ELASTIC_MAX_REQUEST_BYTES,
        maxItemBytes: ELASTIC_MAX_REQUEST_BYTES,
      });
      for (const e of oversized)
        outcomes.set(e.id, {
          kind: 'dead',
          reason: `elastic: document larger than ${ELASTIC_MAX_REQUEST_BYTES} bytes`,
        });
      let error: string | undefined;
      for (const chunk of chunks) {
        const r = await sendChunk(chunk, lines, outcomes);
        error = error ?? r;
      }
      const report: DeliveryReport = { outcomes };
      if (error) report.error = error;
      return report;
    },
    healthCheck() {
      return probe(
        () => http.axios.get(target.rootUrl, { headers: auth }),
        'elastic',
        (s) => s === 200,
      );
    },
    async close() {
      http.destroy();
    },
  };
}
