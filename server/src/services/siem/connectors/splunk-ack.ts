/**
 * Splunk HEC indexer acknowledgement (SIEM_SPLUNK_ACK=true). With acknowledgement enabled on
 * the HEC token, a 200 only means "received": HEC answers each request with an `ackId`, and
 * the events are indexed once `POST /services/collector/ack` (same `X-Splunk-Request-Channel`)
 * answers `{"acks":{"<id>":true}}`. Events are reported delivered only then; chunks not
 * acknowledged within the timeout are reported for retry, so the outbox resends them later
 * with the same event ids (Splunk may then hold a duplicate: search on event_id).
 */
import type { AxiosInstance } from 'axios';
import type { EventOutcome, SiemEvent } from '../types';
import { bodyExcerpt } from './http';

export interface SplunkAckOptions {
  /** How long to wait for a request's acknowledgement before resending its events. */
  timeoutMs: number;
  /** First poll delay (grows ×1.5 up to 2 s). */
  pollMs?: number;
  now?: () => number;
  sleep?: (ms: number) => Promise<void>;
}

export interface PendingAck {
  ackId: number;
  chunk: readonly SiemEvent[];
}

const defaultSleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function parseAcks(data: unknown): Record<string, boolean> | null {
  if (typeof data !== 'string') return null;
  try {
    const v = JSON.parse(data) as { acks?: Record<string, unknown> };
    if (!v || typeof v !== 'object' || !v.acks || typeof v.acks !== 'object') return null;
    const out: Record<string, boolean> = {};
    for (const [k, b] of Object.entries(v.acks)) out[k] = b === true;
    return out;
  } catch {
    return null;
  }
}

/**
 * Polls until every pending request is acknowledged or the timeout passes; records the
 * outcome of every event of every pending chunk. Returns a failure reason, if any.
 */
export async function awaitAcks(
  client: AxiosInstance,
  ackUrl: string,
  headers: Record<string, string>,
  pending: PendingAck[],
  outcomes: Map<string, EventOutcome>,
  opts: SplunkAckOptions,
): Promise<string | undefined> {
  const now = opts.now ?? Date.now;
  const sleep = opts.sleep ?? defaultSleep;
  const deadline = now() + opts.timeoutMs;
  let wait = opts.pollMs ?? 100;
  let open = [...pending];
  let lastProblem: string | undefined;
  while (open.length > 0) {
    await sleep(Math.max(0, Math.min(wait, deadline - now())));
    wait = Math.min(2000, Math.ceil(wait * 1.5));
    try {
      const res = await client.post(ackUrl, JSON.stringify({ acks: open.map((p) => p.ackId) }), { headers });
      const acks = res.status === 200 ? parseAcks(res.data) : null;
      if (acks) {
        for (const p of open)
          if (acks[String(p.ackId)]) for (const e of p.chunk) outcomes.set(e.id, { kind: 'delivered' });
        open = open.filter((p) => !acks[String(p.ackId)]);
      } else lastProblem = `splunk: ack query answered HTTP ${res.status} ${bodyExcerpt(res.data, 80)}`.trim();
    } catch (err) {
      lastProblem = `splunk: ack query failed (${(err as { code?: string }).code ?? 'error'})`;
    }
    if (now() >= deadline) break;
  }
  if (open.length === 0) return undefined;
  const reason = lastProblem ?? `splunk: not acknowledged as indexed within ${Math.round(opts.timeoutMs / 1000)} s`;
  for (const p of open) for (const e of p.chunk) outcomes.set(e.id, { kind: 'retry', reason });
  return reason;
}
