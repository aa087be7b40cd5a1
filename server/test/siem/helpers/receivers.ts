/**
 * Local SIEM receivers for tests: small HTTP servers on 127.0.0.1 that speak each SIEM's
 * ingestion API (paths, authentication, body formats, status codes and error bodies) and
 * record what they accepted. Failure modes are programmable per test.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface RawRequest {
  method: string;
  path: string;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

export interface Reply {
  status: number;
  headers?: Record<string, string>;
  body?: string;
}

export interface Receiver {
  url: string;
  port: number;
  requests: RawRequest[];
  /** Answer the next n ingestion requests with this reply instead of processing them. */
  failNext(n: number, reply: Reply): void;
  /** Accept the next request's events but answer it with this reply (a lost acknowledgement). */
  acceptButReply(n: number, reply: Reply): void;
  /** Stop answering: accept the connection and never respond (for client timeouts). */
  hang(on: boolean): void;
  /** Answer every request after this many milliseconds. */
  delay(ms: number): void;
  /** Forgets recorded requests and programmed failures. */
  reset(): void;
  /** Close the listening socket (connection refused) / listen again on the same port. */
  down(): Promise<void>;
  up(): Promise<void>;
  close(): Promise<void>;
}

type Handler = (req: RawRequest) => Reply;

function json(status: number, body: unknown, headers: Record<string, string> = {}): Reply {
  return {
    status,
    headers: { 'Content-Type': 'application/json; charset=UTF-8', ...headers },
    body: JSON.stringify(body),
  };
}

async function startReceiver(handler: Handler, opts: { ingestPaths: RegExp }): Promise<Receiver> {
  const requests: RawRequest[] = [];
  const failQueue: Reply[] = [];
  const ackLossQueue: Reply[] = [];
  let hanging = false;
  let delayMs = 0;
  const sockets = new Set<import('node:net').Socket>();
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const raw: RawRequest = {
        method: req.method ?? 'GET',
        path: req.url ?? '/',
        headers: req.headers,
        body: Buffer.concat(chunks),
      };
      requests.push(raw);
      if (hanging) return;
      let reply: Reply;
      const ingest = opts.ingestPaths.test(raw.path.split('?')[0] as string) && raw.method === 'POST';
      if (ingest && failQueue.length > 0) reply = failQueue.shift() as Reply;
      else if (ingest && ackLossQueue.length > 0) {
        handler(raw);
        reply = ackLossQueue.shift() as Reply;
      } else reply = handler(raw);
      const send = () => {
        res.writeHead(reply.status, reply.headers ?? {});
        res.end(reply.body ?? '');
      };
      if (delayMs > 0) setTimeout(send, delayMs);
      else send();
    });
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const port = (server.address() as AddressInfo).port;
  const closeServer = () =>
    new Promise<void>((resolve) => {
      for (const s of sockets) s.destroy();
      server.close(() => resolve());
    });
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    requests,
    failNext(n, reply) {
      for (let i = 0; i < n; i++) failQueue.push(reply);
    },
    acceptButReply(n, reply) {
      for (let i = 0; i < n; i++) ackLossQueue.push(reply);
    },
    hang(on) {
      hanging = on;
    },
    delay(ms) {
      delayMs = ms;
    },
    reset() {
      requests.length = 0;
      failQueue.length = 0;
      ackLossQueue.length = 0;
      hanging = false;
      delayMs = 0;
    },
    down: closeServer,
    up: () =>
      new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(port, '127.0.0.1', () => {
          server.off('error', reject);
          resolve();
        });
      }),
    close: closeServer,
  };
}

// ---------------------------------------------------------------- Splunk HEC

/** Splits HEC's batch format (JSON objects back to back, optionally separated by whitespace). */
export function splitConcatenatedJson(text: string): { objects: unknown[]; errorAt: number | null } {
  const objects: unknown[] = [];
  let i = 0;
  while (i < text.length) {
    while (i < text.length && /\s/.test(text[i] as string)) i++;
    if (i >= text.length) break;
    if (text[i] !== '{') return { objects, errorAt: objects.length };
    let depth = 0;
    let inStr = false;
    let j = i;
    for (; j < text.length; j++) {
      const ch = text[j];
      if (inStr) {
        if (ch === '\\') j++;
        else if (ch === '"') inStr = false;
      } else if (ch === '"') inStr = true;
      else if (ch === '{') depth++;
      else if (ch === '}') {
        depth--;
        if (depth === 0) break;
      }
    }
    try {
      objects.push(JSON.parse(text.slice(i, j + 1)));
    } catch {
      return { objects, errorAt: objects.length };
    }
    i = j + 1;
  }
  return { objects, errorAt: null };
}

export interface HecReceiver extends Receiver {
  /** Accepted envelopes, in order. */
  envelopes: Array<{
    time: number;
    host: string;
    source: string;
    sourcetype: string;
    fields?: Record<string, unknown>;
    event: Record<string, unknown>;
  }>;
  busy(on: boolean): void;
  /** Events matching are refused as "Invalid data format" (code 6) with their invalid-event-number. */
  rejectWhen(pred: ((event: Record<string, unknown>) => boolean) | null): void;
  /**
   * Indexer acknowledgement (a token with useACK): requests need X-Splunk-Request-Channel and
   * are answered with an ackId per channel; POST /services/collector/ack reports an id true once
   * `delayMs` passed, never when `drop(ackId, channel)` said so (a lost acknowledgement).
   * null turns it off.
   */
  ackMode(opts: { delayMs: number; drop?: (ackId: number, channel: string) => boolean } | null): void;
  /** Acknowledgement queries received: { channel, acks asked }. */
  ackQueries: Array<{ channel: string; acks: number[] }>;
}

export async function startHecReceiver(token: string): Promise<HecReceiver> {
  const envelopes: HecReceiver['envelopes'] = [];
  let busy = false;
  let reject: ((e: Record<string, unknown>) => boolean) | null = null;
  let ack: { delayMs: number; drop?: (ackId: number, channel: string) => boolean } | null = null;
  const acks = new Map<string, { next: number; pending: Map<number, { readyAt: number; dropped: boolean }> }>();
  const ackQueries: HecReceiver['ackQueries'] = [];
  const r = await startReceiver(
    (req) => {
      const path = req.path.split('?')[0];
      const channel = String(req.headers['x-splunk-request-channel'] ?? '');
      if (req.method === 'POST' && path === '/services/collector/ack') {
        if (!ack) return json(400, { text: 'ACK is disabled', code: 14 });
        if (req.headers.authorization !== `Splunk ${token}`) return json(403, { text: 'Invalid token', code: 4 });
        if (!channel) return json(400, { text: 'Data channel is missing', code: 10 });
        const asked = ((JSON.parse(req.body.toString('utf8')) as { acks?: number[] }).acks ?? []).filter((n) =>
          Number.isInteger(n),
        );
        ackQueries.push({ channel, acks: asked });
        const ch = acks.get(channel);
        const now = Date.now();
        return json(200, {
          acks: Object.fromEntries(
            asked.map((id) => {
              const p = ch?.pending.get(id);
              return [String(id), !!p && !p.dropped && p.readyAt <= now];
            }),
          ),
        });
      }
      if (req.method === 'GET' && path === '/services/collector/health') {
        return busy
          ? json(503, { text: 'HEC is unhealthy, queues are full', code: 18 })
          : json(200, { text: 'HEC is healthy', code: 17 });
      }
      if (req.method !== 'POST' || path !== '/services/collector/event')
        return json(404, { text: 'The requested URL was not found on this server.', code: 404 });
      const auth = req.headers.authorization;
      if (!auth) return json(401, { text: 'Token is required', code: 2 });
      if (auth !== `Splunk ${token}`) return json(403, { text: 'Invalid token', code: 4 });
      if (busy) return json(503, { text: 'Server is busy', code: 9 });
      if (ack && !channel) return json(400, { text: 'Data channel is missing', code: 10 });
      const text = req.body.toString('utf8');
      if (text.trim() === '') return json(400, { text: 'No data', code: 5 });
      const { objects, errorAt } = splitConcatenatedJson(text);
      for (const [i, o] of objects.entries()) {
        const env = o as Record<string, unknown>;
        if (!('event' in env))
          return json(400, { text: 'Event field is required', code: 12, 'invalid-event-number': i });
        if (env.event === '' || env.event === null)
          return json(400, { text: 'Event field cannot be blank', code: 13, 'invalid-event-number': i });
        if (reject && reject(env.event as Record<string, unknown>))
          return json(400, { text: 'Invalid data format', code: 6, 'invalid-event-number': i });
        envelopes.push(env as HecReceiver['envelopes'][number]);
      }
      if (errorAt !== null) return json(400, { text: 'Invalid data format', code: 6, 'invalid-event-number': errorAt });
      if (ack) {
        const ch = acks.get(channel) ?? { next: 0, pending: new Map() };
        acks.set(channel, ch);
        const ackId = ch.next++;
        ch.pending.set(ackId, { readyAt: Date.now() + ack.delayMs, dropped: ack.drop?.(ackId, channel) ?? false });
        return json(200, { text: 'Success', code: 0, ackId });
      }
      return json(200, { text: 'Success', code: 0 });
    },
    { ingestPaths: /^\/services\/collector\/event$/ },
  );
  const baseReset = r.reset;
  return Object.assign(r, {
    envelopes,
    reset() {
      baseReset();
      envelopes.length = 0;
      busy = false;
      reject = null;
      ack = null;
      acks.clear();
      ackQueries.length = 0;
    },
    busy(on: boolean) {
      busy = on;
    },
    rejectWhen(pred: ((event: Record<string, unknown>) => boolean) | null) {
      reject = pred;
    },
    ackMode(opts: { delayMs: number; drop?: (ackId: number, channel: string) => boolean } | null) {
      ack = opts;
      acks.clear();
    },
    ackQueries,
  });
}

// ---------------------------------------------------------------- Datadog Logs v2

export interface DatadogReceiver extends Receiver {
  logs: Array<Record<string, unknown>>;
  /** Sizes (entries, bytes) of every accepted request. */
  batches: Array<{ entries: number; bytes: number }>;
}

export async function startDatadogReceiver(apiKey: string): Promise<DatadogReceiver> {
  const logs: Array<Record<string, unknown>> = [];
  const batches: DatadogReceiver['batches'] = [];
  const r = await startReceiver(
    (req) => {
      if (req.method !== 'POST' || req.path.split('?')[0] !== '/api/v2/logs')
        return json(404, { errors: ['Not found'] });
      if (req.headers['dd-api-key'] !== apiKey)
        return json(403, { errors: [{ status: '403', title: 'Forbidden', detail: 'Forbidden' }] });
      if (!String(req.headers['content-type'] ?? '').startsWith('application/json'))
        return json(400, { errors: [{ status: '400', title: 'Bad Request', detail: 'unsupported content type' }] });
      if (req.body.length > 5_000_000)
        return json(413, { errors: [{ status: '413', title: 'Payload Too Large', detail: 'payload exceeds 5MB' }] });
      let body: unknown;
      try {
        body = JSON.parse(req.body.toString('utf8'));
      } catch {
        return json(400, { errors: [{ status: '400', title: 'Bad Request', detail: 'invalid JSON' }] });
      }
      const entries = Array.isArray(body) ? body : [body];
      if (entries.length > 1000)
        return json(400, {
          errors: [{ status: '400', title: 'Bad Request', detail: 'too many log entries (max 1000)' }],
        });
      for (const e of entries)
        if (Buffer.byteLength(JSON.stringify(e)) > 1_000_000)
          return json(413, { errors: [{ status: '413', title: 'Payload Too Large', detail: 'log exceeds 1MB' }] });
      logs.push(...(entries as Array<Record<string, unknown>>));
      if (entries.length > 0) batches.push({ entries: entries.length, bytes: req.body.length });
      return json(202, {});
    },
    { ingestPaths: /^\/api\/v2\/logs$/ },
  );
  const baseReset = r.reset;
  return Object.assign(r, {
    logs,
    batches,
    reset() {
      baseReset();
      logs.length = 0;
      batches.length = 0;
    },
  });
}

// ---------------------------------------------------------------- Elasticsearch _bulk

export interface ElasticReceiver extends Receiver {
  /** Indexed documents by `${index}/${id}`. */
  docs: Map<string, Record<string, unknown>>;
  /** Items whose _id matches get this per-item failure once each time it is set (consumed on use). */
  failItems(
    pred:
      ((id: string, doc: Record<string, unknown>) => { status: number; type: string; reason: string } | null) | null,
  ): void;
  /** Every _id ever presented in a bulk request (with repeats). */
  seenIds: string[];
}

export async function startElasticReceiver(apiKey: string | null): Promise<ElasticReceiver> {
  const docs = new Map<string, Record<string, unknown>>();
  const seenIds: string[] = [];
  let fail:
    ((id: string, doc: Record<string, unknown>) => { status: number; type: string; reason: string } | null) | null =
    null;
  const r = await startReceiver(
    (req) => {
      const path = req.path.split('?')[0];
      if (apiKey && req.headers.authorization !== `ApiKey ${apiKey}`) {
        return json(
          401,
          {
            error: {
              root_cause: [{ type: 'security_exception', reason: 'unable to authenticate' }],
              type: 'security_exception',
              reason: 'unable to authenticate',
            },
            status: 401,
          },
          { 'WWW-Authenticate': 'ApiKey' },
        );
      }
      if (req.method === 'GET' && path === '/')
        return json(200, {
          name: 'local',
          cluster_name: 'test',
          version: { number: '8.11.0' },
          tagline: 'You Know, for Search',
        });
      if (req.method !== 'POST' || path !== '/_bulk') return json(404, { error: 'no handler', status: 404 });
      const ct = String(req.headers['content-type'] ?? '');
      if (!ct.startsWith('application/x-ndjson') && !ct.startsWith('application/json')) {
        return json(406, { error: `Content-Type header [${ct}] is not supported`, status: 406 });
      }
      const text = req.body.toString('utf8');
      if (!text.endsWith('\n'))
        return json(400, {
          error: {
            type: 'illegal_argument_exception',
            reason: 'The bulk request must be terminated by a newline [\\n]',
          },
          status: 400,
        });
      const lines = text.split('\n').slice(0, -1);
      const items: unknown[] = [];
      let errors = false;
      for (let i = 0; i < lines.length; i += 2) {
        const action = JSON.parse(lines[i] as string) as { create?: { _index: string; _id: string } };
        const doc = JSON.parse(lines[i + 1] ?? 'null') as Record<string, unknown>;
        if (!action.create)
          return json(400, { error: { type: 'illegal_argument_exception', reason: 'expected create' }, status: 400 });
        const { _index, _id } = action.create;
        seenIds.push(_id);
        const key = `${_index}/${_id}`;
        const injected = fail ? fail(_id, doc) : null;
        if (injected) {
          errors = true;
          items.push({
            create: { _index, _id, status: injected.status, error: { type: injected.type, reason: injected.reason } },
          });
        } else if (docs.has(key)) {
          errors = true;
          items.push({
            create: {
              _index,
              _id,
              status: 409,
              error: {
                type: 'version_conflict_engine_exception',
                reason: `[${_id}]: version conflict, document already exists (current version [1])`,
              },
            },
          });
        } else {
          docs.set(key, doc);
          items.push({ create: { _index, _id, _version: 1, result: 'created', status: 201 } });
        }
      }
      return json(200, { took: 1, errors, items });
    },
    { ingestPaths: /^\/_bulk$/ },
  );
  const baseReset = r.reset;
  return Object.assign(r, {
    docs,
    seenIds,
    reset() {
      baseReset();
      docs.clear();
      seenIds.length = 0;
      fail = null;
    },
    failItems(pred: typeof fail) {
      fail = pred;
    },
  });
}

// ---------------------------------------------------------------- signed webhook

export interface WebhookReceiver extends Receiver {
  events: Array<Record<string, unknown>>;
  /** Requests refused for a bad signature or stale timestamp. */
  refused(): number;
}

/** Verifies X-Fleet-Signature the way a receiver should: over the raw body, constant-time, fresh timestamp. */
export function verifyWebhook(key: string, headers: http.IncomingHttpHeaders, body: Buffer, now = Date.now()): boolean {
  const ts = String(headers['x-fleet-timestamp'] ?? '');
  const sig = String(headers['x-fleet-signature'] ?? '');
  if (!/^\d+$/.test(ts) || Math.abs(now / 1000 - Number(ts)) > 300) return false;
  const expected = Buffer.from(`sha256=${createHmac('sha256', key).update(`${ts}.`).update(body).digest('hex')}`);
  const got = Buffer.from(sig);
  return got.length === expected.length && timingSafeEqual(got, expected);
}

export async function startWebhookReceiver(
  key: string,
  path = '/hooks/siem',
): Promise<WebhookReceiver & { endpoint: string }> {
  const events: Array<Record<string, unknown>> = [];
  const state = { refused: 0 };
  const r = await startReceiver(
    (req) => {
      if (req.path.split('?')[0] !== path) return json(404, { error: 'not found' });
      if (req.method === 'HEAD') return { status: 405 };
      if (req.method !== 'POST') return json(405, { error: 'method not allowed' });
      if (!verifyWebhook(key, req.headers, req.body)) {
        state.refused += 1;
        return json(401, { error: 'invalid signature' });
      }
      const body = JSON.parse(req.body.toString('utf8')) as Array<Record<string, unknown>>;
      events.push(...body);
      return { status: 204 };
    },
    { ingestPaths: new RegExp(`^${path.replace(/\//g, '\\/')}$`) },
  );
  const baseReset = r.reset;
  return Object.assign(r, {
    events,
    reset() {
      baseReset();
      events.length = 0;
      state.refused = 0;
    },
    endpoint: `${r.url}${path}`,
    refused: () => state.refused,
  });
}
