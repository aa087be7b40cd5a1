/**
 * Microsoft Sentinel through the Azure Monitor Logs Ingestion API, with the official
 * @azure/monitor-ingestion client and an @azure/identity credential:
 *   POST <DCE>/dataCollectionRules/<SIEM_DCR_ID>/streams/<SIEM_STREAM_NAME>?api-version=2023-01-01
 *   Authorization: Bearer <Entra ID token for https://monitor.azure.com/.default>, gzip JSON array.
 * One row per event in the stream of docs/sentinel-dcr.json (table FleetSecurityEvents_CL).
 * Requests stay within the API's 1 MB per call (each chunk is one upload); a row over 1 MB is
 * dead-lettered. The SDK's own retries are off: the outbox retries, honouring Retry-After on
 * 429/503 (and backing off on 5xx, timeouts, network errors); 400/401/403/404/413 are
 * permanent for the chunk (401/403: the credential or its role assignment, "Monitoring Metrics
 * Publisher" on the DCR, is wrong).
 */
import fs from 'node:fs';
import { ClientSecretCredential, DefaultAzureCredential, type TokenCredential } from '@azure/identity';
import { isAggregateLogsUploadError, LogsIngestionClient } from '@azure/monitor-ingestion';
import { parseRetryAfter } from '../backoff';
import { shapeEvent, type EventSchema } from '../schemas';
import type { DeliveryReport, EventOutcome, SiemConnector, SiemEvent } from '../types';
import { allOutcomes, chunkBySize } from './http';

/** The API's limit per call; JSON text measured before compression (as the SDK does). */
const SENTINEL_MAX_REQUEST_BYTES = 1_000_000;
const SENTINEL_DEFAULT_AUDIENCE = 'https://monitor.azure.com';

export interface SentinelOptions {
  /** Data collection endpoint (https://<dce>.<region>.ingest.monitor.azure.com). */
  endpointUrl: string;
  dcrId: string;
  streamName: string;
  /** Client secret credential; absent: DefaultAzureCredential (managed identity, workload identity…). */
  azure: {
    tenantId: string | null;
    clientId: string | null;
    clientSecret: string | null;
    authorityHost: string | null;
  };
  audience?: string;
  schema?: EventSchema;
  tlsCaFile?: string | null;
  timeoutMs?: number;
  /** Tests: a ready credential. */
  credential?: TokenCredential;
  now?: () => number;
}

/** The row of one event in the DCR stream (columns of docs/sentinel-dcr.json). */
export function sentinelRow(e: SiemEvent, schema: EventSchema = 'native'): Record<string, unknown> {
  return {
    TimeGenerated: e.time,
    EventId: e.id,
    EventType: e.eventType,
    Severity: e.severity,
    Message: e.message,
    Origin: e.origin,
    Outcome: e.outcome,
    // "TenantId" is a reserved column in Log Analytics (the workspace's own tenant).
    FleetTenantId: e.tenantId,
    UserId: e.userId,
    IpAddress: e.ipAddress,
    UserAgent: e.userAgent,
    RequestId: e.requestId,
    ResourceType: e.resourceType,
    ResourceId: e.resourceId,
    AuditLogId: e.auditLogId,
    Details: e.details,
    // The OCSF/ECS form of the event, for rules written against a standard schema.
    Event: schema === 'native' ? null : shapeEvent(e, schema),
  };
}

interface RestLike {
  statusCode?: number;
  code?: string;
  response?: { headers?: { get(name: string): string | undefined } };
}

function classify(cause: unknown, now: number): EventOutcome {
  const e = cause as RestLike;
  const s = e.statusCode;
  const retryAfterMs = parseRetryAfter(e.response?.headers?.get('retry-after'), now);
  if (s === undefined) return { kind: 'retry', reason: `sentinel: network error (${e.code ?? 'error'})` };
  if (s === 408 || s === 429 || s >= 500)
    return { kind: 'retry', reason: `sentinel: HTTP ${s}`, ...(retryAfterMs !== undefined ? { retryAfterMs } : {}) };
  return {
    kind: 'dead',
    reason: `sentinel: HTTP ${s}${s === 401 || s === 403 ? ' (check the credential and its Monitoring Metrics Publisher role on the DCR)' : ''}`,
  };
}

export function createSentinelConnector(opts: SentinelOptions): SiemConnector {
  const ca = opts.tlsCaFile ? fs.readFileSync(opts.tlsCaFile, 'utf8') : undefined;
  const tls = ca ? { tlsOptions: { ca } } : {};
  const retryOptions = { maxRetries: 0 };
  const { tenantId, clientId, clientSecret, authorityHost } = opts.azure;
  const credential =
    opts.credential ??
    (tenantId && clientId && clientSecret
      ? new ClientSecretCredential(tenantId, clientId, clientSecret, {
          ...tls,
          retryOptions,
          ...(authorityHost ? { authorityHost, disableInstanceDiscovery: true } : {}),
        })
      : new DefaultAzureCredential({ ...tls }));
  const client = new LogsIngestionClient(opts.endpointUrl, credential, {
    ...tls,
    retryOptions,
    audience: opts.audience ?? SENTINEL_DEFAULT_AUDIENCE,
  });
  const schema = opts.schema ?? 'native';
  const now = opts.now ?? Date.now;
  const timeoutMs = opts.timeoutMs ?? 30_000;

  async function uploadChunk(rows: Record<string, unknown>[]): Promise<EventOutcome> {
    try {
      await client.upload(opts.dcrId, opts.streamName, rows, {
        maxConcurrency: 1,
        abortSignal: AbortSignal.timeout(timeoutMs),
      });
      return { kind: 'delivered' };
    } catch (err) {
      const cause = isAggregateLogsUploadError(err) ? err.errors[0]?.cause : err;
      if ((cause as Error | undefined)?.name === 'AbortError') return { kind: 'retry', reason: 'sentinel: timeout' };
      if (
        (cause as Error | undefined)?.name === 'AuthenticationError' ||
        (cause as Error | undefined)?.name === 'CredentialUnavailableError'
      ) {
        return { kind: 'retry', reason: 'sentinel: could not get a token from Entra ID' };
      }
      return classify(cause, now());
    }
  }

  return {
    provider: 'sentinel',
    async send(events) {
      const outcomes = new Map<string, EventOutcome>();
      const rows = new Map<string, Record<string, unknown>>();
      const sized = events.map((e) => {
        const row = sentinelRow(e, schema);
        rows.set(e.id, row);
        return { item: e, bytes: Buffer.byteLength(JSON.stringify(row)) };
      });
      // The SDK splits at 1 MB as well; chunking here keeps each upload one call with one outcome.
      const { chunks, oversized } = chunkBySize(sized, {
        maxItems: Number.MAX_SAFE_INTEGER,
        maxBytes: SENTINEL_MAX_REQUEST_BYTES - 2,
        maxItemBytes: SENTINEL_MAX_REQUEST_BYTES - 2,
        overheadBytes: 2,
        separatorBytes: 1,
      });
      for (const e of oversized)
        outcomes.set(e.id, { kind: 'dead', reason: `sentinel: event larger than ${SENTINEL_MAX_REQUEST_BYTES} bytes` });
      let error: string | undefined;
      for (const chunk of chunks) {
        const o = await uploadChunk(chunk.map((e) => rows.get(e.id) as Record<string, unknown>));
        allOutcomes(chunk, o, outcomes);
        if (o.kind !== 'delivered') error = error ?? o.reason;
      }
      const report: DeliveryReport = { outcomes };
      if (error) report.error = error;
      return report;
    },
    async healthCheck() {
      // No health endpoint: obtaining a token for the ingestion audience proves the credential works.
      const t = await credential.getToken(`${opts.audience ?? SENTINEL_DEFAULT_AUDIENCE}/.default`).catch(() => null);
      if (!t) throw new Error('sentinel: could not get a token from Entra ID');
    },
    async close() {
      // The SDK pools nothing that needs closing.
    },
  };
}
