/**
 * Splunk HTTP Event Collector: POST <base>/services/collector/event, `Authorization: Splunk
 * <token>`, a batch is JSON envelopes back to back ({time, host, source, sourcetype, fields,
 * event}). HEC answers {text, code[, invalid-event-number]}:
 *  - code 0: every event indexed;
 *  - 400 with invalid-event-number n (codes 6, 12, 13, 15): HEC stops at the n-th (0-based)
 *    event: events before it were indexed, that event is dead-lettered with the reason, the
 *    events after it are re-queued without penalty;
 *  - 503 (code 9 busy, 18-20 queues full/unhealthy), 429, 408, 5xx: retried;
 *  - other 4xx (bad/disabled token 1-4, incorrect index 7, …): permanent, dead-lettered.
 */
import { randomUUID } from 'node:crypto';
import os from 'node:os';
import { shapeEventJson, type EventSchema } from '../schemas';
import type { DeliveryReport, EventOutcome, SiemConnector, SiemEvent } from '../types';
import { awaitAcks, type PendingAck, type SplunkAckOptions } from './splunk-ack';
import {
  allOutcomes,
  bodyExcerpt,
  chunkBySize,
  classifyError,
  classifyStatus,
  createHttpClient,
  outcomeOf,
  probe,
  type HttpConnectorOptions,
} from './http';

/** HEC's default max_content_length is far larger; stay well below common proxy limits. */
const SPLUNK_MAX_REQUEST_BYTES = 1_000_000;
const EVENT_LEVEL_CODES = new Set([6, 12, 13, 15]);

const SPLUNK_SOURCE = 'fleet-security-api';
const SPLUNK_SOURCETYPE = 'fleet:security';

export function splunkEnvelope(e: SiemEvent, host: string, schema: EventSchema = 'native'): string {
  const head = JSON.stringify({
    time: Date.parse(e.time) / 1000,
    host,
    source: SPLUNK_SOURCE,
    sourcetype: schema === 'native' ? SPLUNK_SOURCETYPE : `${SPLUNK_SOURCETYPE}:${schema}`,
    fields: { tenant_id: e.tenantId, severity: e.severity, event_type: e.eventType, event_id: e.id },
  });
  return `${head.slice(0, -1)},"event":${shapeEventJson(e, schema, host)}}`;
}

export function splunkUrls(endpointUrl: string): { event: string; health: string; ack: string } {
  const u = new URL(endpointUrl);
  const base = u.pathname.replace(/\/+$/, '').replace(/\/services\/collector(\/event)?$/, '');
  const origin = `${u.protocol}//${u.host}${base}`;
  return {
    event: `${origin}/services/collector/event`,
    health: `${origin}/services/collector/health`,
    ack: `${origin}/services/collector/ack`,
  };
}

interface HecBody {
  text?: string;
  code?: number;
  'invalid-event-number'?: number;
  ackId?: number;
}

function parseHec(data: unknown): HecBody {
  if (typeof data !== 'string') return {};
  try {
    const v = JSON.parse(data) as unknown;
    return v && typeof v === 'object' ? (v as HecBody) : {};
  } catch {
    return {};
  }
}

export interface SplunkConnectorOptions extends HttpConnectorOptions {
  /** Indexer acknowledgement (SIEM_SPLUNK_ACK): deliver only once HEC acknowledges indexing. */
  ack?: SplunkAckOptions & { channel?: string };
}

export function createSplunkConnector(opts: SplunkConnectorOptions): SiemConnector {
  const http = createHttpClient(opts);
  const client = http.axios;
  const urls = splunkUrls(opts.endpointUrl);
  const host = opts.hostname ?? os.hostname();
  // One channel per connector: HEC tracks ackIds per channel.
  const channel = opts.ack ? (opts.ack.channel ?? randomUUID()) : null;
  const headers: Record<string, string> = {
    'Content-Type': 'application/json',
    ...(opts.apiKey ? { Authorization: `Splunk ${opts.apiKey}` } : {}),
    ...(channel ? { 'X-Splunk-Request-Channel': channel } : {}),
  };

  async function sendChunk(
    chunk: SiemEvent[],
    bodies: Map<string, string>,
    outcomes: Map<string, EventOutcome>,
    pending: PendingAck[],
  ): Promise<string | undefined> {
    const payload = chunk.map((e) => bodies.get(e.id) as string).join('\n');
    let res;
    try {
      res = await client.post(urls.event, payload, { headers });
    } catch (err) {
      const c = classifyError(err, 'splunk');
      allOutcomes(chunk, outcomeOf(c), outcomes);
      return c.kind === 'ok' ? undefined : c.reason;
    }
    const c = classifyStatus(res, 'splunk');
    const hec = parseHec(res.data);
    if (c.kind === 'ok' && (hec.code === undefined || hec.code === 0)) {
      if (channel && typeof hec.ackId === 'number') {
        pending.push({ ackId: hec.ackId, chunk });
        return undefined;
      }
      allOutcomes(chunk, { kind: 'delivered' }, outcomes);
      // Accepted, but indexing cannot be confirmed: say so (status turns unhealthy) rather than resend forever.
      return channel ? 'splunk: HEC returned no ackId (indexer acknowledgement disabled on the token?)' : undefined;
    }
    const n = hec['invalid-event-number'];
    if (
      res.status === 400 &&
      typeof n === 'number' &&
      Number.isInteger(n) &&
      n >= 0 &&
      n < chunk.length &&
      EVENT_LEVEL_CODES.has(hec.code ?? -1)
    ) {
      const reason = `splunk: HEC code ${hec.code} ${bodyExcerpt(hec.text, 120)}`.trim();
      chunk.forEach((e, i) => {
        // With acknowledgement nothing of a refused request is confirmed as indexed: resend the events before it.
        if (i < n)
          outcomes.set(
            e.id,
            channel
              ? { kind: 'retry', reason: 'splunk: request refused before acknowledgement', penalize: false }
              : { kind: 'delivered' },
          );
        else if (i === n) outcomes.set(e.id, { kind: 'dead', reason });
        else
          outcomes.set(e.id, {
            kind: 'retry',
            reason: 'splunk: after a rejected event in the same request',
            penalize: false,
          });
      });
      return `splunk: HEC code ${hec.code}`;
    }
    const reason =
      hec.code !== undefined
        ? `splunk: HTTP ${res.status} HEC code ${hec.code}`
        : c.kind === 'ok'
          ? `splunk: unexpected answer`
          : c.reason;
    const outcome: EventOutcome =
      c.kind === 'retry'
        ? { kind: 'retry', reason, ...(c.retryAfterMs !== undefined ? { retryAfterMs: c.retryAfterMs } : {}) }
        : c.kind === 'ok'
          ? { kind: 'retry', reason }
          : { kind: 'dead', reason: `${reason} ${bodyExcerpt(hec.text, 120)}`.trim() };
    allOutcomes(chunk, outcome, outcomes);
    return reason;
  }

  return {
    provider: 'splunk',
    async send(events) {
      const outcomes = new Map<string, EventOutcome>();
      const bodies = new Map<string, string>();
      const sized = events.map((e) => {
        const body = splunkEnvelope(e, host, opts.schema);
        bodies.set(e.id, body);
        return { item: e, bytes: Buffer.byteLength(body) };
      });
      const { chunks, oversized } = chunkBySize(sized, {
        maxItems: Number.MAX_SAFE_INTEGER,
        maxBytes: SPLUNK_MAX_REQUEST_BYTES,
        maxItemBytes: SPLUNK_MAX_REQUEST_BYTES,
        separatorBytes: 1,
      });
      for (const e of oversized)
        outcomes.set(e.id, { kind: 'dead', reason: `splunk: event larger than ${SPLUNK_MAX_REQUEST_BYTES} bytes` });
      let error: string | undefined;
      const pending: PendingAck[] = [];
      for (const chunk of chunks) {
        const r = await sendChunk(chunk, bodies, outcomes, pending);
        error = error ?? r;
      }
      if (opts.ack && pending.length > 0)
        error = (await awaitAcks(client, urls.ack, headers, pending, outcomes, opts.ack)) ?? error;
      const report: DeliveryReport = { outcomes };
      if (error) report.error = error;
      return report;
    },
    healthCheck() {
      return probe(
        () => client.get(urls.health, { headers }),
        'splunk',
        (s) => s === 200,
      );
    },
    async close() {
      http.destroy();
    },
  };
}
