/**
 * Tenant audit streams: configuration (PUT/GET/DELETE /audit/streams), test events and status.
 * Delivery is the worker's (worker.ts). Credentials are encrypted with the encryption service,
 * the AAD binding them to tenant and stream name, and never leave the server.
 * Every change writes its audit row in the same transaction.
 */
import type { Actor } from '../../../domain/actor';
import type { Config } from '../../../config';
import type { Pool } from '../../../db/pool';
import { withTenant } from '../../../db/transaction';
import type { Clock } from '../../../lib/clock';
import { conflict, notFound, validationFailed } from '../../../lib/errors';
import type { AuditService } from '../../audit/service';
import type { EncryptionService } from '../../encryption/service';
import { newEventId } from '../event-id';
import type { EventSchema } from '../schemas';
import type { Severity, SiemEvent } from '../types';
import { checkDestination, DestinationRefused } from './destinations';
import * as repo from './repository';

const MAX_STREAMS_PER_TENANT = 10;
const STREAM_NAME_RE = /^[a-z0-9-]{1,64}$/;
export const STREAM_PROVIDERS = ['splunk', 'datadog', 'elastic', 'webhook'] as const;
export type StreamProvider = (typeof STREAM_PROVIDERS)[number];

export interface StreamCredentials {
  apiKey?: string;
  secret?: string;
}

export interface StreamInput {
  provider: StreamProvider;
  endpointUrl: string;
  schema: EventSchema;
  minSeverity: Severity;
  credentials?: StreamCredentials;
}

export interface StreamView {
  name: string;
  provider: string;
  endpointUrl: string;
  schema: EventSchema;
  minSeverity: Severity;
  createdAt: string;
}

export interface StreamStatus {
  name: string;
  queued: number;
  deadLetter: number;
  lastDeliveredAt: string | null;
  lastError: string | null;
  healthy: boolean;
}

export interface AuditStreams {
  put(actor: Actor, name: string, input: StreamInput): Promise<{ stream: StreamView; created: boolean }>;
  list(tenantId: string): Promise<StreamView[]>;
  remove(actor: Actor, name: string): Promise<void>;
  /** Queues a test event for this stream only (delivered by the worker, visible in status). Returns its id. */
  sendTest(actor: Actor, name: string): Promise<string>;
  status(tenantId: string): Promise<StreamStatus[]>;
  /** The decrypted credentials of a stream (worker only). */
  credentialsOf(row: repo.StreamRow): Promise<StreamCredentials>;
}

export interface AuditStreamsDeps {
  pool: Pool;
  config: Config;
  clock: Clock;
  audit: AuditService;
  encryption: EncryptionService;
  /** DNS resolver for the destination check (tests); default the system's. */
  resolve?: (host: string) => Promise<string[]>;
}

/** AAD of a stream's credentials: table, tenant and stream name, NUL-separated. */
function streamCredentialsAad(tenantId: string, name: string): Buffer {
  return Buffer.from(`fleet:audit_streams:v1\u0000${tenantId}\u0000${name}`, 'utf8');
}

function toStreamView(r: repo.StreamRow): StreamView {
  return {
    name: r.name,
    provider: r.provider,
    endpointUrl: r.endpoint_url,
    schema: r.schema,
    minSeverity: r.min_severity,
    createdAt: r.created_at.toISOString(),
  };
}

function credentialProblem(
  provider: StreamProvider,
  c: StreamCredentials | undefined,
  creating: boolean,
): string | null {
  if (c === undefined) {
    if (!creating || provider === 'elastic') return null;
    return provider === 'webhook'
      ? 'credentials.secret is required for webhook'
      : `credentials.apiKey is required for ${provider}`;
  }
  if (provider === 'webhook') {
    if (c.apiKey !== undefined) return 'webhook takes credentials.secret, not apiKey';
    if (!c.secret) return 'credentials.secret is required for webhook';
  } else {
    if (c.secret !== undefined) return `${provider} takes credentials.apiKey, not secret`;
    if (!c.apiKey && provider !== 'elastic') return `credentials.apiKey is required for ${provider}`;
  }
  return null;
}

export function createAuditStreams(deps: AuditStreamsDeps): AuditStreams {
  const { pool, config, clock, audit, encryption } = deps;
  const policy = {
    production: config.isProduction,
    allowPrivate: config.siem.allowPrivateDestinations,
    resolve: deps.resolve,
  };

  async function checkUrl(url: string): Promise<void> {
    try {
      await checkDestination(url, policy);
    } catch (err) {
      if (err instanceof DestinationRefused)
        throw validationFailed([{ path: 'endpointUrl', message: err.message, code: 'destination_refused' }]);
      throw err;
    }
  }

  function base(actor: Actor) {
    return {
      tenantId: actor.tenantId,
      userId: actor.userId,
      ipAddress: actor.ip,
      userAgent: actor.userAgent,
      requestId: actor.requestId,
      resourceType: 'audit_stream',
    };
  }

  return {
    async put(actor, name, input) {
      if (!STREAM_NAME_RE.test(name))
        throw validationFailed([{ path: 'name', message: 'must be 1-64 of a-z, 0-9 and -' }]);
      await checkUrl(input.endpointUrl);
      const now = new Date(clock.now());
      return withTenant(pool, actor.tenantId, async (c) => {
        await repo.lockTenantStreams(c, actor.tenantId);
        const existing = await repo.selectStream(c, actor.tenantId, name);
        const problem = credentialProblem(
          input.provider,
          input.credentials,
          existing === null || existing.provider !== input.provider,
        );
        if (problem) throw validationFailed([{ path: 'credentials', message: problem }]);
        if (!existing && (await repo.countStreams(c, actor.tenantId)) >= MAX_STREAMS_PER_TENANT)
          throw conflict(`A tenant can have at most ${MAX_STREAMS_PER_TENANT} audit streams.`);
        const credentials = input.credentials
          ? await encryption.encryptToString(JSON.stringify(input.credentials), {
              aad: streamCredentialsAad(actor.tenantId, name),
            })
          : undefined;
        const write: repo.StreamWrite = {
          tenantId: actor.tenantId,
          name,
          provider: input.provider,
          endpointUrl: input.endpointUrl,
          schema: input.schema,
          minSeverity: input.minSeverity,
          credentials,
          now,
        };
        const row = existing ? await repo.updateStream(c, write) : await repo.insertStream(c, write);
        if (!row) throw notFound('Audit stream');
        await repo.upsertState(c, row.id, actor.tenantId, input.minSeverity, now);
        const view = toStreamView(row);
        await audit.record(
          {
            ...base(actor),
            action: existing ? 'audit.stream.updated' : 'audit.stream.created',
            resourceId: name,
            severity: 'high',
            before: existing ? toStreamView(existing) : undefined,
            after: { ...view, credentialsChanged: input.credentials !== undefined },
          },
          c,
        );
        return { stream: view, created: !existing };
      });
    },

    async list(tenantId) {
      const rows = await withTenant(pool, tenantId, (c) => repo.selectStreams(c, tenantId));
      return rows.map(toStreamView);
    },

    async remove(actor, name) {
      if (!STREAM_NAME_RE.test(name)) throw notFound('Audit stream');
      await withTenant(pool, actor.tenantId, async (c) => {
        await repo.lockTenantStreams(c, actor.tenantId);
        const existing = await repo.selectStream(c, actor.tenantId, name);
        if (!existing) throw notFound('Audit stream');
        await repo.deleteStream(c, actor.tenantId, name);
        await audit.record(
          {
            ...base(actor),
            action: 'audit.stream.deleted',
            resourceId: name,
            severity: 'high',
            before: toStreamView(existing),
          },
          c,
        );
      });
    },

    async sendTest(actor, name) {
      if (!STREAM_NAME_RE.test(name)) throw notFound('Audit stream');
      const now = new Date(clock.now());
      return withTenant(pool, actor.tenantId, async (c) => {
        const row = await repo.selectStream(c, actor.tenantId, name);
        if (!row) throw notFound('Audit stream');
        const event: SiemEvent = {
          id: newEventId(),
          time: now.toISOString(),
          tenantId: actor.tenantId,
          eventType: 'audit.stream.test',
          severity: 'low',
          message: `Test event for audit stream ${name}`,
          origin: 'system',
          outcome: 'success',
          userId: actor.userId,
          ipAddress: actor.ip,
          userAgent: actor.userAgent,
          requestId: actor.requestId,
          resourceType: 'audit_stream',
          resourceId: name,
          auditLogId: null,
          details: { test: true },
        };
        await repo.insertTestEvent(c, row.id, actor.tenantId, event, now);
        await audit.record(
          {
            ...base(actor),
            action: 'audit.stream.tested',
            resourceId: name,
            severity: 'low',
            after: { eventId: event.id },
          },
          c,
        );
        return event.id;
      });
    },

    async status(tenantId) {
      const rows = await withTenant(pool, tenantId, (c) => repo.streamStatus(c, tenantId));
      return rows.map((r) => {
        const errorIsCurrent =
          r.last_error !== null &&
          r.last_error_at !== null &&
          (r.last_delivered_at === null || r.last_error_at >= r.last_delivered_at);
        return {
          name: r.name,
          queued: r.queued,
          deadLetter: r.dead_letter,
          lastDeliveredAt: r.last_delivered_at ? r.last_delivered_at.toISOString() : null,
          lastError: errorIsCurrent ? r.last_error : null,
          healthy: !errorIsCurrent,
        };
      });
    },

    async credentialsOf(row) {
      if (!row.credentials) return {};
      const text = await encryption.decryptFromString(row.credentials, {
        aad: streamCredentialsAad(row.tenant_id, row.name),
      });
      const parsed = JSON.parse(text) as StreamCredentials;
      return {
        ...(parsed.apiKey ? { apiKey: parsed.apiKey } : {}),
        ...(parsed.secret ? { secret: parsed.secret } : {}),
      };
    },
  };
}
