/**
 * The OpenAPI 3.1 document (CONTRACT §12), generated with zod-openapi from the route
 * descriptions (registry.ts) and the same zod schemas that validate the requests.
 * Served at GET /api/openapi.json; docs/openapi.json is the committed copy
 * (`npm run openapi:check` fails when they differ; `npm run openapi:write` updates it).
 */
import { z } from 'zod';
import {
  createDocument,
  type ZodOpenApiOperationObject,
  type ZodOpenApiPathsObject,
  type ZodOpenApiResponseObject,
  type ZodOpenApiResponsesObject,
} from 'zod-openapi';
import { ErrorResponse } from './common';
import { describedRoutes, type HeaderDoc, type ResponseDoc, type RouteDoc } from './registry';

const API_VERSION = '1.0.0';

const COMMON_ERRORS: Record<number, string> = {
  400: 'Invalid input (VALIDATION_FAILED with details, MALFORMED_JSON), or a malformed request (unknown query keys are refused).',
  413: 'PAYLOAD_TOO_LARGE: the body exceeds BODY_LIMIT_BYTES.',
  415: 'UNSUPPORTED_MEDIA_TYPE: a body that is not application/json.',
  429: 'RATE_LIMITED: too many requests from this IP (or user); Retry-After says when to try again.',
  500: 'INTERNAL_ERROR: an unexpected error (logged with the request id).',
  503: 'SERVICE_UNAVAILABLE: a dependency (database, key vault, SIEM, storage) is unavailable; try again later.',
};
const AUTH_ERRORS: Record<number, string> = {
  401: 'UNAUTHENTICATED: no, an expired or a revoked token (WWW-Authenticate: Bearer).',
  403: "FORBIDDEN: the role lacks the route's permission (the denial is audited).",
};

const retryAfter: HeaderDoc = {
  description: 'Seconds until a retry may succeed.',
  required: true,
  schema: { type: 'string', pattern: '^\\d+$' },
};
const wwwAuthenticate: HeaderDoc = { description: 'Bearer challenge.', required: false, schema: { type: 'string' } };

function errorResponse(description: string, status: number): ZodOpenApiResponseObject {
  const headers: Record<string, HeaderDoc> = {};
  if (status === 429) headers['Retry-After'] = retryAfter;
  if (status === 401) headers['WWW-Authenticate'] = wwwAuthenticate;
  return {
    description,
    ...(Object.keys(headers).length ? { headers: headers as ZodOpenApiResponseObject['headers'] } : {}),
    content: { 'application/json': { schema: ErrorResponse } },
  };
}

const idempotencyKeyHeader = z
  .string()
  .regex(/^[\x21-\x7e]{1,255}$/)
  .optional()
  .meta({
    description:
      'Makes the request safe to retry (CONTRACT §6): 1–255 visible ASCII characters, e.g. a UUID. A retry with the same key and body within 24 h answers the first outcome again (Idempotent-Replayed: true) and creates nothing; the same key with a different body is 422 IDEMPOTENCY_KEY_REUSED.',
  });
const replayed: HeaderDoc = {
  description:
    'true when this is the kept answer of an earlier request with the same Idempotency-Key (nothing was created).',
  required: false,
  schema: { type: 'string', const: 'true' },
};

/** The route's own responses plus what its flags (idempotent, stepUp, platformAdmin) add. */
function ownResponses(r: RouteDoc): Record<number, ResponseDoc> {
  const out: Record<number, ResponseDoc> = { ...r.responses };
  if (r.idempotent) {
    for (const [status, doc] of Object.entries(out)) {
      if (Number(status) < 300)
        out[Number(status)] = { ...doc, headers: { ...(doc.headers ?? {}), 'Idempotent-Replayed': replayed } };
    }
    out[409] ??= {
      description:
        'CONFLICT: a request with this Idempotency-Key is still being processed; retry after Retry-After seconds.',
      schema: ErrorResponse,
      headers: { 'Retry-After': retryAfter },
    };
    out[422] ??= {
      description: 'IDEMPOTENCY_KEY_REUSED: this Idempotency-Key was used with a different request body.',
      schema: ErrorResponse,
    };
  }
  if ((r.stepUp || r.platformAdmin) && !out[403]) {
    const why = [AUTH_ERRORS[403] as string];
    if (r.platformAdmin)
      why.push(
        'FORBIDDEN: the caller is not an admin of the platform tenant (PLATFORM_TENANT); audited access.denied.',
      );
    if (r.stepUp)
      why.push(
        'STEP_UP_REQUIRED: the action needs a step-up (POST /api/v1/security/mfa/step-up) less than 10 minutes old; FORBIDDEN for an API key.',
      );
    out[403] = { description: why.join(' '), schema: ErrorResponse };
  }
  return out;
}

function operation(r: RouteDoc): ZodOpenApiOperationObject {
  const responses: Record<`${number}`, ZodOpenApiResponseObject> = {};
  const own = ownResponses(r);
  const statuses = new Set<number>([...Object.keys(own).map(Number), ...Object.keys(COMMON_ERRORS).map(Number)]);
  if (r.security.length > 0) for (const s of Object.keys(AUTH_ERRORS)) statuses.add(Number(s));
  for (const status of [...statuses].sort((a, b) => a - b)) {
    const doc = own[status];
    if (!doc) {
      responses[`${status}`] = errorResponse(COMMON_ERRORS[status] ?? AUTH_ERRORS[status] ?? 'Error.', status);
      continue;
    }
    const headers =
      doc.headers ??
      (status === 429
        ? { 'Retry-After': retryAfter }
        : status === 401
          ? { 'WWW-Authenticate': wwwAuthenticate }
          : undefined);
    responses[`${status}`] = {
      description: doc.description,
      ...(headers ? { headers: headers as ZodOpenApiResponseObject['headers'] } : {}),
      ...(doc.schema
        ? {
            content: {
              [doc.contentType ?? 'application/json']: {
                schema: doc.schema,
                ...(doc.example !== undefined ? { example: doc.example } : {}),
              },
            },
          }
        : {}),
    };
  }
  const permission = r.permission ? `\n\nNeeds the permission \`${r.permission}\`.` : '';
  const op: ZodOpenApiOperationObject = {
    operationId: r.operationId,
    summary: r.summary,
    ...(r.description || permission ? { description: `${r.description ?? ''}${permission}`.trim() } : {}),
    tags: r.tags,
    security: r.security.map((s) => (s === 'none' ? {} : { [s]: [] })),
    responses: responses as ZodOpenApiResponsesObject,
  };
  if (r.request?.query || r.request?.params || r.idempotent) {
    op.requestParams = {
      ...(r.request?.query ? { query: r.request.query as z.ZodObject } : {}),
      ...(r.request?.params ? { path: r.request.params as z.ZodObject } : {}),
      ...(r.idempotent ? { header: z.object({ 'Idempotency-Key': idempotencyKeyHeader }) } : {}),
    };
  }
  if (r.request?.body) {
    op.requestBody = {
      required: !r.request.bodyOptional,
      content: {
        [r.request.bodyContentType ?? 'application/json']: {
          schema: r.request.body,
          ...(r.request.bodyExample !== undefined ? { example: r.request.bodyExample } : {}),
        },
      },
    };
  }
  return op;
}

/** Builds the document from every described route (the route modules must be loaded). */
export function buildOpenApiDocument(): ReturnType<typeof createDocument> {
  const paths: ZodOpenApiPathsObject = {};
  const routes = describedRoutes().sort((a, b) =>
    a.path === b.path ? a.method.localeCompare(b.method) : a.path.localeCompare(b.path),
  );
  for (const r of routes) {
    paths[r.path] = { ...(paths[r.path] ?? {}), [r.method]: operation(r) };
  }
  return createDocument({
    openapi: '3.1.0',
    info: {
      title: 'Fleet Security API',
      version: API_VERSION,
      description:
        'Sessions (ID-token login, rotating refresh tokens, logout), role-based access, the tamper-evident audit trail, master-key management, SIEM forwarding and the audit archive. ' +
        'Every error has the ErrorResponse shape. Guides: docs/SECURITY_API.md, curl examples: docs/SECURITY_API_EXAMPLES.md.',
    },
    servers: [{ url: 'http://127.0.0.1:3000', description: 'npm start (development)' }],
    tags: [
      { name: 'auth', description: 'Login, refresh, logout, the current user and sessions.' },
      { name: 'audit', description: 'The audit trail and its hash chain.' },
      { name: 'keys', description: 'The master key (metadata and rotation).' },
      { name: 'siem', description: 'SIEM forwarding and the immutable audit archive.' },
      { name: 'identity', description: 'API keys, TOTP step-up, OAuth token introspection and revocation, the JWKS.' },
      { name: 'health', description: 'Liveness, readiness, metrics and this document.' },
    ],
    components: {
      securitySchemes: {
        bearerAuth: {
          type: 'http',
          scheme: 'bearer',
          bearerFormat: 'JWT',
          description: 'The access token (`token`) from POST /api/v1/security/login or /refresh.',
        },
        refreshCookie: {
          type: 'apiKey',
          in: 'cookie',
          name: 'fleet_refresh',
          description:
            'The HttpOnly refresh cookie (Path=/api/v1/security/refresh, SameSite=Strict) set by login and refresh. Accepted only together with the X-CSRF-Token header carrying a token from GET /api/v1/security/csrf-token (and its fleet.csrf cookie).',
        },
        apiKey: {
          type: 'http',
          scheme: 'bearer',
          description: 'An API key, `Authorization: Bearer fsk_…` (CONTRACT §11), for service-to-service calls.',
        },
        metricsToken: {
          type: 'http',
          scheme: 'bearer',
          description: 'METRICS_TOKEN, for /metrics callers that are not on loopback.',
        },
      },
    },
    paths,
  });
}

let cached: string | null = null;

/** The document as JSON text, built once per process. */
export function openApiJson(): string {
  cached ??= `${JSON.stringify(buildOpenApiDocument(), null, 2)}\n`;
  return cached;
}
