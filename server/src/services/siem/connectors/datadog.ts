/**
 * Datadog Logs API v2: POST <intake>/api/v2/logs with `DD-API-KEY`, a JSON array of at most
 * 1000 entries and 5 MB (uncompressed); one log at most 1 MB. Entries carry the reserved
 * attributes ddsource, service, hostname, ddtags, message, status and timestamp, plus
 * Datadog standard attributes (evt.*, usr.id, network.client.ip, http.useragent).
 * Answers: 202 accepted; 408, 429, 5xx retried; 400, 401, 403, 413 and other 4xx permanent.
 * The intake has no per-entry errors, so a request is delivered or failed as a whole.
 */
import os from 'node:os';
import { DATADOG_STATUS } from '../events';
import { shapeEvent, type EventSchema } from '../schemas';
import type { DeliveryReport, EventOutcome, SiemConnector, SiemEvent } from '../types';
import { chunkBySize, createHttpClient, postWholeChunk, probe, type HttpConnectorOptions } from './http';

const DATADOG_MAX_ENTRIES = 1000;
const DATADOG_MAX_PAYLOAD_BYTES = 5_000_000;
const DATADOG_MAX_ENTRY_BYTES = 1_000_000;
const DATADOG_SOURCE = 'fleet-security-api';

function tag(v: string): string {
  return v.toLowerCase().replace(/[^a-z0-9_.\-/:]/g, '_');
}

export function datadogEntry(
  e: SiemEvent,
  host: string,
  environment: string,
  schema: EventSchema = 'native',
): Record<string, unknown> {
  if (schema !== 'native') {
    // The standard event's fields as log attributes, next to Datadog's reserved attributes.
    return { ...(shapeEvent(e, schema, host) as Record<string, unknown>), ...datadogReserved(e, host, environment) };
  }
  return {
    ...datadogReserved(e, host, environment),
    evt: {
      id: e.id,
      name: e.eventType,
      outcome: e.outcome ?? undefined,
      category: e.origin === 'alert' ? 'alert' : 'security',
    },
    usr: e.userId ? { id: e.userId } : undefined,
    network: e.ipAddress ? { client: { ip: e.ipAddress } } : undefined,
    http:
      e.userAgent || e.requestId
        ? { useragent: e.userAgent ?? undefined, request_id: e.requestId ?? undefined }
        : undefined,
    fleet: {
      event_id: e.id,
      tenant_id: e.tenantId,
      severity: e.severity,
      origin: e.origin,
      audit_log_id: e.auditLogId,
      resource: e.resourceType ? { type: e.resourceType, id: e.resourceId } : undefined,
      details: e.details ?? undefined,
    },
  };
}

function datadogReserved(e: SiemEvent, host: string, environment: string): Record<string, unknown> {
  return {
    ddsource: DATADOG_SOURCE,
    service: DATADOG_SOURCE,
    hostname: host,
    ddtags: [
      `env:${tag(environment)}`,
      `tenant:${tag(e.tenantId)}`,
      `severity:${e.severity}`,
      `event_type:${tag(e.eventType)}`,
      `origin:${e.origin}`,
    ].join(','),
    message: e.message,
    status: DATADOG_STATUS[e.severity],
    timestamp: Date.parse(e.time),
  };
}

function datadogUrl(endpointUrl: string): string {
  const u = new URL(endpointUrl);
  const base = u.pathname.replace(/\/+$/, '').replace(/\/api\/v2\/logs$/, '');
  return `${u.protocol}//${u.host}${base}/api/v2/logs`;
}

export function createDatadogConnector(opts: HttpConnectorOptions): SiemConnector {
  const http = createHttpClient(opts);
  const url = datadogUrl(opts.endpointUrl);
  const host = opts.hostname ?? os.hostname();
  const environment = opts.environment ?? 'production';
  const headers = { 'DD-API-KEY': opts.apiKey ?? '', 'Content-Type': 'application/json' };

  return {
    provider: 'datadog',
    async send(events) {
      const outcomes = new Map<string, EventOutcome>();
      const bodies = new Map<string, string>();
      const sized = events.map((e) => {
        const body = JSON.stringify(datadogEntry(e, host, environment, opts.schema));
        bodies.set(e.id, body);
        return { item: e, bytes: Buffer.byteLength(body) };
      });
      const { chunks, oversized } = chunkBySize(sized, {
        maxItems: DATADOG_MAX_ENTRIES,
        maxBytes: DATADOG_MAX_PAYLOAD_BYTES,
        maxItemBytes: DATADOG_MAX_ENTRY_BYTES,
        overheadBytes: 2,
        separatorBytes: 1,
      });
      for (const e of oversized)
        outcomes.set(e.id, { kind: 'dead', reason: `datadog: log larger than ${DATADOG_MAX_ENTRY_BYTES} bytes` });
      let error: string | undefined;
      for (const chunk of chunks as SiemEvent[][]) {
        const payload = `[${chunk.map((e) => bodies.get(e.id)).join(',')}]`;
        const failed = await postWholeChunk(
          () => http.axios.post(url, payload, { headers }),
          chunk,
          'datadog',
          outcomes,
        );
        error = error ?? failed;
      }
      const report: DeliveryReport = { outcomes };
      if (error) report.error = error;
      return report;
    },
    healthCheck() {
      // The logs intake has no health endpoint: an empty batch proves reachability and a
      // key the intake accepts (401/403 mean a bad key, 5xx an unhealthy intake).
      return probe(
        () => http.axios.post(url, '[]', { headers }),
        'datadog',
        (s) => s < 500 && s !== 401 && s !== 403,
      );
    },
    async close() {
      http.destroy();
    },
  };
}
