/**
 * The API description's registry. Each route file describes its routes next to the zod
 * schemas that validate them:
 *
 *   describeRoute({ method: 'post', path: '/api/v1/security/login', summary: '…', tags: ['auth'],
 *     security: [], request: { body: LoginBody }, responses: { 200: { description: '…', schema: SessionReply } } });
 *
 * and server/src/openapi/document.ts turns every description into the OpenAPI 3.1 document
 * (GET /api/openapi.json, docs/openapi.json). The errors every route can answer (400, 413, 415,
 * 429, 500, 503, and 401/403 for authenticated routes) are added by the document; list only
 * the statuses particular to the route. The test suite checks every response it receives
 * against the description of its route and status (server/test/helpers/openapi-hook.ts).
 */
import type { z } from 'zod';

/** Security schemes (server/src/openapi/document.ts): */
export type SecurityScheme =
  /** Authorization: Bearer <access token from POST /login>. */
  | 'bearerAuth'
  /** The HttpOnly fleet_refresh cookie, only together with an X-CSRF-Token header. */
  | 'refreshCookie'
  /** Authorization: Bearer fsk_… (API keys, CONTRACT §11). */
  | 'apiKey'
  /** Authorization: Bearer $METRICS_TOKEN (non-loopback callers of /metrics). */
  | 'metricsToken';

export interface HeaderDoc {
  description: string;
  /** The test hook fails a response of this status without it. */
  required?: boolean;
  /** JSON Schema of the header's value, e.g. { type: 'string', const: 'no-store' }. */
  schema: { type: 'string'; pattern?: string; const?: string; enum?: string[] };
}

export interface ResponseDoc {
  description: string;
  /** The JSON body (application/json) unless contentType says otherwise; none for no body. */
  schema?: z.ZodType;
  contentType?: string;
  headers?: Record<string, HeaderDoc>;
  example?: unknown;
}

export interface RouteDoc {
  method: 'get' | 'post' | 'put' | 'patch' | 'delete';
  /** The full path, OpenAPI style: /api/v1/security/sessions/{id}. */
  path: string;
  operationId: string;
  summary: string;
  description?: string;
  tags: string[];
  /**
   * Alternatives, any of which authenticates (OpenAPI security requirement objects, one scheme
   * each; 'none' = may also be called without). [] = no authentication. Routes with any entry
   * get the 401 and 403 error responses.
   */
  security: (SecurityScheme | 'none')[];
  /** The permission the route needs (named in the description). */
  permission?: string;
  request?: {
    body?: z.ZodType;
    query?: z.ZodType;
    params?: z.ZodType;
    /** The body may be left out (validated as {}). Default: required when a body schema is given. */
    bodyOptional?: boolean;
    bodyExample?: unknown;
    /** The body's media type (default application/json), e.g. application/x-www-form-urlencoded. */
    bodyContentType?: string;
  };
  /**
   * Takes an Idempotency-Key header (CONTRACT §6): the document adds the header parameter,
   * 409 CONFLICT + Retry-After (same key in flight), 422 IDEMPOTENCY_KEY_REUSED and the
   * Idempotent-Replayed header on the success statuses.
   */
  idempotent?: boolean;
  /** Needs a recent step-up (CONTRACT §11): the 403 also means STEP_UP_REQUIRED. */
  stepUp?: boolean;
  /** Only for admins of PLATFORM_TENANT: the 403 also means a non-platform admin. */
  platformAdmin?: boolean;
  /** Statuses particular to this route (the common errors are added). */
  responses: Record<number, ResponseDoc>;
}

const routes = new Map<string, RouteDoc>();

/** Registers a route's description (once per method and path; a later one replaces it). */
export function describeRoute(doc: RouteDoc): RouteDoc {
  routes.set(`${doc.method} ${doc.path}`, doc);
  return doc;
}

export function describedRoutes(): RouteDoc[] {
  return [...routes.values()];
}
