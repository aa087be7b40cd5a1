/**
 * The HTTP side shared by the Splunk, Datadog, Elastic and webhook connectors: one axios
 * instance with timeouts, no redirects (a credential must never follow a redirect to another
 * host), bounded responses, and one classification of results:
 * 2xx delivered · timeouts, network errors, 408, 429, 5xx retryable · other statuses permanent.
 */
import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import axios, { type AxiosInstance, type AxiosResponse } from 'axios';
import { parseRetryAfter } from '../backoff';
import type { EventSchema } from '../schemas';
import { DestinationRefused, guardedLookup, literalHostRefusal } from '../streams/destinations';
import type { EventOutcome, SiemEvent } from '../types';

const DEFAULT_HTTP_TIMEOUT_MS = 10_000;
const MAX_RESPONSE_BYTES = 8 * 1024 * 1024;

export interface HttpConnectorOptions {
  endpointUrl: string;
  apiKey: string | null;
  tlsCaFile?: string | null;
  timeoutMs?: number;
  /** Host name reported in events (defaults to os.hostname()). */
  hostname?: string;
  /** Deployment environment, used in tags. */
  environment?: string;
  /** SIEM_EVENT_SCHEMA (or a stream's schema): the shape of each event sent. Default native. */
  schema?: EventSchema;
  /** Refuses connections to private/loopback/link-local addresses (outbound SSRF guard). */
  guardAddresses?: boolean;
}

export interface HttpClient {
  axios: AxiosInstance;
  /** Closes pooled sockets. */
  destroy(): void;
}

export function createHttpClient(opts: {
  timeoutMs?: number;
  tlsCaFile?: string | null;
  guardAddresses?: boolean;
}): HttpClient {
  const ca = opts.tlsCaFile ? fs.readFileSync(opts.tlsCaFile, 'utf8') : undefined;
  // Tenant destinations: every connection's addresses are checked when resolved (SSRF).
  const lookup = opts.guardAddresses ? { lookup: guardedLookup } : {};
  const httpAgent = new http.Agent({ keepAlive: true, maxSockets: 4, ...lookup });
  const httpsAgent = new https.Agent({
    keepAlive: true,
    maxSockets: 4,
    minVersion: 'TLSv1.2',
    ...(ca ? { ca } : {}),
    ...lookup,
  });
  const instance = axios.create({
    timeout: opts.timeoutMs ?? DEFAULT_HTTP_TIMEOUT_MS,
    maxRedirects: 0,
    maxContentLength: MAX_RESPONSE_BYTES,
    maxBodyLength: 64 * 1024 * 1024,
    proxy: false,
    responseType: 'text',
    // Bodies are serialized by the connectors and must go out byte for byte (axios would
    // otherwise re-encode a string that is not valid JSON, e.g. HEC's concatenated envelopes).
    transformRequest: [(data: unknown) => data],
    transformResponse: [(data: unknown) => data],
    validateStatus: () => true,
    httpAgent,
    httpsAgent,
    headers: { 'User-Agent': 'fleet-security-api/1.0 (+siem-forwarder)' },
  });
  if (opts.guardAddresses) {
    // A literal IP is never looked up: refuse it before connecting.
    instance.interceptors.request.use((cfg) => {
      const why = literalHostRefusal(cfg.url ?? '');
      if (why) throw new DestinationRefused(why);
      return cfg;
    });
  }
  return {
    axios: instance,
    destroy() {
      httpAgent.destroy();
      httpsAgent.destroy();
    },
  };
}

/** Runs a health probe: resolves on an accepted status, rejects with a short reason otherwise. */
export async function probe(
  run: () => Promise<AxiosResponse>,
  provider: string,
  ok: (status: number) => boolean,
): Promise<void> {
  let res: AxiosResponse;
  try {
    res = await run();
  } catch (err) {
    const c = classifyError(err, provider);
    throw new Error(c.kind === 'ok' ? `${provider}: unreachable` : c.reason, { cause: err });
  }
  if (!ok(res.status)) throw new Error(`${provider}: health check answered HTTP ${res.status}`);
}

export type HttpClass =
  { kind: 'ok' } | { kind: 'retry'; reason: string; retryAfterMs?: number } | { kind: 'dead'; reason: string };

/** Classifies a response status (and Retry-After). */
export function classifyStatus(res: AxiosResponse, provider: string, now: number = Date.now()): HttpClass {
  const s = res.status;
  if (s >= 200 && s < 300) return { kind: 'ok' };
  const retryAfterMs = parseRetryAfter(res.headers['retry-after'], now);
  if (s === 408 || s === 429 || s >= 500) return { kind: 'retry', reason: `${provider}: HTTP ${s}`, retryAfterMs };
  if (s >= 300 && s < 400)
    return { kind: 'dead', reason: `${provider}: HTTP ${s} redirect not followed (check SIEM_ENDPOINT_URL)` };
  return { kind: 'dead', reason: `${provider}: HTTP ${s}` };
}

/** Network-level failures (no response): always retryable. Never includes URLs or credentials. */
export function classifyError(err: unknown, provider: string): HttpClass {
  const e = err as { code?: string; message?: string };
  // DestinationRefused, thrown before connecting or (wrapped by axios, code kept) at lookup.
  const code = typeof e?.code === 'string' ? e.code : 'ERROR';
  if (code === 'DESTINATION_REFUSED')
    return { kind: 'retry', reason: `${provider}: destination refused (private or loopback address)` };
  if (code === 'ECONNABORTED' || code === 'ETIMEDOUT') return { kind: 'retry', reason: `${provider}: timeout` };
  if (code === 'ERR_FR_MAX_BODY_LENGTH_EXCEEDED' || code === 'ERR_BAD_RESPONSE')
    return { kind: 'retry', reason: `${provider}: bad response (${code})` };
  return { kind: 'retry', reason: `${provider}: network error (${code})` };
}

/** A short, printable excerpt of a response body for dead-letter reasons. */
export function bodyExcerpt(data: unknown, max = 200): string {
  const s = typeof data === 'string' ? data : data === undefined || data === null ? '' : JSON.stringify(data);
  return s
    .replace(/[\u0000-\u001f\u007f]+/g, ' ') // eslint-disable-line no-control-regex
    .trim()
    .slice(0, max);
}

export function allOutcomes(
  events: readonly SiemEvent[],
  outcome: EventOutcome,
  into: Map<string, EventOutcome> = new Map(),
): Map<string, EventOutcome> {
  for (const e of events) into.set(e.id, outcome);
  return into;
}

/**
 * Sends one request that delivers or fails a whole chunk (no per-item answers), records the
 * outcome of every event in it, and returns the failure reason, if any.
 */
export async function postWholeChunk(
  send: () => Promise<AxiosResponse>,
  chunk: readonly SiemEvent[],
  provider: string,
  into: Map<string, EventOutcome>,
): Promise<string | undefined> {
  let c: HttpClass;
  try {
    c = classifyStatus(await send(), provider);
  } catch (err) {
    c = classifyError(err, provider);
  }
  allOutcomes(chunk, outcomeOf(c), into);
  return c.kind === 'ok' ? undefined : c.reason;
}

export function outcomeOf(c: HttpClass): EventOutcome {
  if (c.kind === 'ok') return { kind: 'delivered' };
  if (c.kind === 'retry')
    return {
      kind: 'retry',
      reason: c.reason,
      ...(c.retryAfterMs !== undefined ? { retryAfterMs: c.retryAfterMs } : {}),
    };
  return { kind: 'dead', reason: c.reason };
}

/**
 * Splits serialized items into chunks of at most maxItems and maxBytes (counting each item's
 * bytes plus `separatorBytes`). Items larger than maxItemBytes are returned separately.
 */
export function chunkBySize<T>(
  items: readonly { item: T; bytes: number }[],
  opts: { maxItems: number; maxBytes: number; maxItemBytes: number; overheadBytes?: number; separatorBytes?: number },
): { chunks: T[][]; oversized: T[] } {
  const chunks: T[][] = [];
  const oversized: T[] = [];
  let cur: T[] = [];
  let size = opts.overheadBytes ?? 0;
  for (const { item, bytes } of items) {
    if (bytes > opts.maxItemBytes) {
      oversized.push(item);
      continue;
    }
    const add = bytes + (cur.length > 0 ? (opts.separatorBytes ?? 0) : 0);
    if (cur.length > 0 && (cur.length >= opts.maxItems || size + add > opts.maxBytes)) {
      chunks.push(cur);
      cur = [];
      size = opts.overheadBytes ?? 0;
    }
    cur.push(item);
    size += cur.length > 1 ? add : bytes;
  }
  if (cur.length > 0) chunks.push(cur);
  return { chunks, oversized };
}

/** Removes credentials from a URL (for axios: auth goes in headers, never in logs). */
export function splitUrlCredentials(raw: string): { url: URL; username: string | null; password: string | null } {
  const url = new URL(raw);
  const username = url.username ? decodeURIComponent(url.username) : null;
  const password = url.password ? decodeURIComponent(url.password) : null;
  url.username = '';
  url.password = '';
  return { url, username, password };
}
