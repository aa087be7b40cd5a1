/**
 * Generic webhook: POST <SIEM_ENDPOINT_URL> with a JSON array of events.
 *   X-Fleet-Timestamp: <unix seconds>
 *   X-Fleet-Signature: sha256=<hex HMAC-SHA256(SIEM_API_KEY, timestamp + "." + body)>
 *   X-Fleet-Delivery:  <uuid of this request>
 * Receivers verify the signature over the raw body with a constant-time comparison and
 * refuse timestamps older than a few minutes (replay). Each event's `id` is stable across
 * retries (idempotency key). 2xx delivered; 408, 429, 5xx retried; other statuses permanent.
 */
import { createHmac, randomUUID } from 'node:crypto';
import { shapeEventJson } from '../schemas';
import type { DeliveryReport, EventOutcome, SiemConnector } from '../types';
import { chunkBySize, createHttpClient, postWholeChunk, probe, type HttpConnectorOptions } from './http';

const WEBHOOK_MAX_REQUEST_BYTES = 1_000_000;

export function webhookSignature(key: string, timestamp: string, body: string): string {
  return `sha256=${createHmac('sha256', key).update(`${timestamp}.${body}`, 'utf8').digest('hex')}`;
}

export function createWebhookConnector(opts: HttpConnectorOptions & { now?: () => number }): SiemConnector {
  const http = createHttpClient(opts);
  const key = opts.apiKey ?? '';
  const now = opts.now ?? Date.now;
  return {
    provider: 'webhook',
    async send(events) {
      const outcomes = new Map<string, EventOutcome>();
      const schema = opts.schema ?? 'native';
      const bodies = new Map(events.map((e) => [e.id, shapeEventJson(e, schema)]));
      const sized = events.map((e) => ({ item: e, bytes: Buffer.byteLength(bodies.get(e.id) as string) }));
      const { chunks, oversized } = chunkBySize(sized, {
        maxItems: Number.MAX_SAFE_INTEGER,
        maxBytes: WEBHOOK_MAX_REQUEST_BYTES,
        maxItemBytes: WEBHOOK_MAX_REQUEST_BYTES - 2,
        overheadBytes: 2,
        separatorBytes: 1,
      });
      for (const e of oversized)
        outcomes.set(e.id, { kind: 'dead', reason: `webhook: event larger than ${WEBHOOK_MAX_REQUEST_BYTES} bytes` });
      let error: string | undefined;
      for (const chunk of chunks) {
        const body = `[${chunk.map((e) => bodies.get(e.id)).join(',')}]`;
        const timestamp = String(Math.floor(now() / 1000));
        const headers = {
          'Content-Type': 'application/json',
          'X-Fleet-Timestamp': timestamp,
          'X-Fleet-Signature': webhookSignature(key, timestamp, body),
          'X-Fleet-Delivery': randomUUID(),
        };
        const failed = await postWholeChunk(
          () => http.axios.post(opts.endpointUrl, body, { headers }),
          chunk,
          'webhook',
          outcomes,
        );
        error = error ?? failed;
      }
      const report: DeliveryReport = { outcomes };
      if (error) report.error = error;
      return report;
    },
    healthCheck() {
      // Webhooks have no health endpoint: any HTTP answer below 500 proves the receiver is up.
      return probe(
        () => http.axios.head(opts.endpointUrl),
        'webhook',
        (s) => s < 500,
      );
    },
    async close() {
      http.destroy();
    },
  };
}
