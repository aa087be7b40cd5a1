/**
 * Audit trail routes (mounted under /api/v1/security):
 *   POST /audit/log     record a client event          (audit:write)
 *   GET  /audit/logs    read events, filtered, paged   (audit:read:own; audit:read:tenant sees the tenant)
 *   GET  /audit/verify  verify the tenant's hash chain (audit:verify)
 */
import { Router, type NextFunction, type Request, type Response } from 'express';
import { z } from 'zod';
import type { Guards } from '../compose';
import { validationFailed, type ErrorDetail } from '../lib/errors';
import { actorOf, authOf } from '../middleware/actor';
import { idempotentRoutes } from '../middleware/idempotency';
import { handlerAuditsKeyUse, keyUseAudited } from '../middleware/api-key-use';
import { validate, validBody, validQuery } from '../middleware/input-validation';
import { clientActionProblem } from '../services/audit/catalog';
import { AUDIT_VALUE_MAX_BYTES, jsonByteLength } from '../services/audit/scrub';
import { MAX_PAGE_SIZE, type AuditService } from '../services/audit/service';
import type { AuditTrail } from '../services/audit/trail';
import { RESULTS, SEVERITIES, type AuditResult } from '../services/audit/types';
import type { IdempotencyService } from '../services/idempotency/service';
import { storableTimestamp } from '../lib/timestamps';
import { describeRoute } from '../openapi/registry';

/** Identity comes from the authenticated request, never from the body. */
const IDENTITY_FIELDS = new Set([
  'userId',
  'user_id',
  'tenantId',
  'tenant_id',
  'ipAddress',
  'ip_address',
  'userAgent',
  'user_agent',
  'requestId',
  'request_id',
]);

const NO_CONTROL_CHARS = /^[^\p{Cc}]*$/u;
const severityEnum = z.enum(SEVERITIES);
const resultEnum = z.enum(RESULTS as [AuditResult, ...AuditResult[]]);
/**
 * What a client may write: up to `high`. `critical` is reserved for the server's own catalog
 * actions (refresh reuse, key rotation, chain failures...): a client's critical rows would never
 * be evicted from the shared SIEM outbox and would page the SOC (400 VALIDATION_FAILED).
 */
const CLIENT_SEVERITIES = ['low', 'medium', 'high'] as const;
const clientSeverityEnum = z.enum(CLIENT_SEVERITIES, {
  error: (iss) =>
    iss.input === 'critical'
      ? 'critical is reserved for events the server records itself; clients may write low, medium or high'
      : 'must be low, medium or high',
});

const auditValue = z.unknown().superRefine((v, ctx) => {
  if (v !== undefined && jsonByteLength(v) > AUDIT_VALUE_MAX_BYTES) {
    ctx.addIssue({ code: 'custom', message: `must be at most ${AUDIT_VALUE_MAX_BYTES} bytes as JSON` });
  }
});

const auditLogBody = z.strictObject({
  action: z
    .string()
    .max(128)
    .superRefine((a, ctx) => {
      const problem = clientActionProblem(a);
      if (problem) ctx.addIssue({ code: 'custom', message: problem });
    }),
  resourceType: z.string().min(1).max(128).regex(NO_CONTROL_CHARS, 'must not contain control characters'),
  resourceId: z.string().min(1).max(256).nullable().optional(),
  before: auditValue.optional(),
  after: auditValue.optional(),
  result: resultEnum.optional(),
  errorMessage: z.string().max(2000).nullable().optional(),
  severity: clientSeverityEnum.optional(),
});
type AuditLogBody = z.infer<typeof auditLogBody>;

const isoDateTime = storableTimestamp;
const limitParam = z
  .string()
  .regex(/^\d{1,4}$/, 'must be an integer')
  .transform(Number)
  .pipe(z.number().int().min(1).max(MAX_PAGE_SIZE));

const auditLogsQuery = z
  .strictObject({
    userId: z.uuid().optional(),
    action: z.string().min(1).max(128).optional(),
    resourceType: z.string().min(1).max(128).optional(),
    resourceId: z.string().min(1).max(256).optional(),
    result: resultEnum.optional(),
    severity: severityEnum.optional(),
    from: isoDateTime.optional(),
    to: isoDateTime.optional(),
    limit: limitParam.optional(),
    cursor: z.string().min(1).max(200).optional(),
  })
  .refine((q) => !q.from || !q.to || Date.parse(q.from) <= Date.parse(q.to), {
    message: '"from" must not be after "to"',
    path: ['from'],
  });
type AuditLogsQuery = z.infer<typeof auditLogsQuery>;

const auditVerifyQuery = z
  .strictObject({
    anchorSeq: z
      .string()
      .regex(/^[1-9]\d{0,18}$/, 'must be a positive integer')
      .optional(),
    anchorHash: z
      .string()
      .regex(/^[0-9a-fA-F]{64}$/, 'must be 64 hex characters')
      .optional(),
  })
  .refine((q) => (q.anchorSeq === undefined) === (q.anchorHash === undefined), {
    message: 'anchorSeq and anchorHash go together',
    path: ['anchorSeq'],
  });
type AuditVerifyQuery = z.infer<typeof auditVerifyQuery>;

// ---- API description (server/src/openapi)
const P = '/api/v1/security';
const chainPosition = z.strictObject({
  seq: z.string().meta({ description: 'Position in the tenant chain (decimal).' }),
  hash: z.string().regex(/^[0-9a-f]{64}$/),
});
const AuditEntry = z
  .strictObject({
    id: z.string(),
    tenantId: z.string(),
    userId: z.string().nullable(),
    action: z.string(),
    resourceType: z.string(),
    resourceId: z.string().nullable(),
    before: z.unknown(),
    after: z.unknown(),
    ipAddress: z.string().nullable(),
    userAgent: z.string().nullable(),
    result: resultEnum,
    errorMessage: z.string().nullable(),
    severity: severityEnum,
    requestId: z.string().nullable(),
    createdAt: z.string().meta({ description: 'ISO 8601, UTC, microseconds.' }),
    chain: chainPosition
      .nullable()
      .meta({ description: 'null until the background sealer has chained the row (about a second).' }),
  })
  .meta({ id: 'AuditEntry' });
describeRoute({
  method: 'post',
  path: `${P}/audit/log`,
  operationId: 'recordAuditEvent',
  summary: 'Record an audit event',
  description:
    'The user, tenant, IP address, user agent and request id come from the request: identity fields in the body are refused (400). Reserved prefixes (auth. session. security. key. system. user.) are refused. Secret-looking keys are stored as "[REDACTED]". ' +
    'Also callable with an API key holding the scope audit:write. Send an Idempotency-Key to make retries safe.',
  tags: ['audit'],
  security: ['bearerAuth', 'apiKey'],
  permission: 'audit:write',
  idempotent: true,
  request: {
    body: auditLogBody,
    bodyExample: {
      action: 'vehicle.updated',
      resourceType: 'vehicle',
      resourceId: 'VIN-123',
      before: { mileage: 100 },
      after: { mileage: 150 },
    },
  },
  responses: {
    200: { description: 'Recorded.', schema: z.strictObject({ success: z.literal(true), id: z.string() }) },
  },
});
describeRoute({
  method: 'get',
  path: `${P}/audit/logs`,
  operationId: 'listAuditEvents',
  summary: 'Read audit events (newest first, paged)',
  description:
    "A user sees their own events; an admin (audit:read:tenant) the tenant's. A non-admin asking for another user (userId) gets 403.",
  tags: ['audit'],
  security: ['bearerAuth', 'apiKey'],
  permission: 'audit:read:own',
  request: { query: auditLogsQuery },
  responses: {
    200: {
      description: 'A page of events.',
      schema: z.strictObject({
        success: z.literal(true),
        entries: z.array(AuditEntry),
        nextCursor: z.string().nullable(),
      }),
    },
  },
});
describeRoute({
  method: 'get',
  path: `${P}/audit/verify`,
  operationId: 'verifyAuditChain',
  summary: "Verify the tenant's audit hash chain",
  description:
    'With anchorSeq and anchorHash, also checks that a chain head recorded earlier still holds (a mismatch is reported as tampering and raises a critical alert). Audited (audit.verify / audit.verify.failed).',
  tags: ['audit'],
  security: ['bearerAuth'],
  permission: 'audit:verify',
  request: { query: auditVerifyQuery },
  responses: {
    200: {
      description: 'The verdict (valid: false is still 200).',
      schema: z.strictObject({
        success: z.literal(true),
        valid: z.boolean(),
        checked: z.int().min(0),
        firstBrokenId: z.string().nullable(),
        reason: z.string().nullable(),
        unsealed: z.int().min(0),
        oldestUnsealedId: z.string().nullable(),
        head: chainPosition.nullable(),
        checkpoints: z
          .strictObject({
            checked: z
              .int()
              .min(0)
              .meta({ description: 'Checkpoint notes checked (database rows and published copies).' }),
            published: z.int().min(0).meta({ description: 'Published copies found.' }),
            publishedChecked: z.int().min(0).meta({ description: 'Published copies fetched and checked.' }),
            latestSize: z.int().min(0).nullable().meta({ description: 'Largest checkpointed tree size seen.' }),
            treeSize: z.int().min(0).meta({ description: 'The Merkle tree size now.' }),
            problem: z.string().nullable().meta({ description: 'The first problem (then valid is false), or null.' }),
            notes: z
              .array(z.string())
              .meta({ description: 'Checks that could not be made (e.g. rows purged by retention), in words.' }),
          })
          .optional()
          .meta({
            description:
              'The Merkle tree against every stored and the newest published signed checkpoints; only when checkpoints are configured.',
          }),
      }),
    },
  },
});

function rejectIdentityFields(req: Request, _res: Response, next: NextFunction): void {
  const body: unknown = req.body;
  if (body && typeof body === 'object' && !Array.isArray(body)) {
    const details: ErrorDetail[] = Object.keys(body)
      .filter((k) => IDENTITY_FIELDS.has(k))
      .map((k) => ({
        path: `body.${k}`,
        message: 'is taken from the authenticated request and may not be sent',
        code: 'identity_field',
      }));
    if (details.length > 0) {
      next(validationFailed(details, 'Identity fields are set by the server.'));
      return;
    }
  }
  next();
}

export interface AuditRouterDeps {
  guards: Pick<Guards, 'requireAuth' | 'requireAuthOrApiKey' | 'requirePermission'>;
  audit: AuditService;
  trail: AuditTrail;
  idempotency: IdempotencyService;
}

export function auditRouter(deps: AuditRouterDeps, router: Router = Router()): Router {
  const { requireAuth, requireAuthOrApiKey, requirePermission } = deps.guards;
  const { audit, trail } = deps;
  const idempotency = idempotentRoutes(deps.idempotency);

  router.post(
    '/audit/log',
    // With an API key, the row recorded below names the key: it is the key's use record.
    handlerAuditsKeyUse,
    ...requireAuthOrApiKey,
    requirePermission('audit:write'),
    idempotency.checkKey,
    rejectIdentityFields,
    validate({ body: auditLogBody }),
    async function postAuditLog(req: Request, res: Response) {
      const b = validBody<AuditLogBody>(req);
      const actor = actorOf(req);
      await idempotency.respond(req, res, 'POST /audit/log', async (q) => {
        const recorded = await audit.recordAs(
          actor,
          {
            action: b.action,
            resourceType: b.resourceType,
            resourceId: b.resourceId ?? null,
            before: b.before,
            after: b.after,
            result: b.result ?? 'success',
            errorMessage: b.errorMessage ?? null,
            severity: b.severity ?? 'low',
          },
          q,
        );
        // Committed now unless it is inside the Idempotency-Key transaction (then key.api.used is written).
        if (!q) keyUseAudited(req);
        return { status: 200, body: { success: true, id: recorded.id } };
      });
    },
  );

  router.get(
    '/audit/logs',
    ...requireAuthOrApiKey,
    requirePermission('audit:read:own'),
    validate({ query: auditLogsQuery }),
    async function getAuditLogs(req: Request, res: Response) {
      const { severity, ...q } = validQuery<AuditLogsQuery>(req);
      const page = await trail.listFor(authOf(req), actorOf(req), {
        ...q,
        severities: severity ? [severity] : undefined,
      });
      res.json({ success: true, entries: page.entries, nextCursor: page.nextCursor });
    },
  );

  router.get(
    '/audit/verify',
    ...requireAuth,
    requirePermission('audit:verify'),
    validate({ query: auditVerifyQuery }),
    async function getAuditVerify(req: Request, res: Response) {
      const q = validQuery<AuditVerifyQuery>(req);
      const anchor = q.anchorSeq && q.anchorHash ? { seq: q.anchorSeq, hash: q.anchorHash.toLowerCase() } : undefined;
      const r = await trail.verifyAndRecord(actorOf(req), anchor);
      res.json({
        success: true,
        valid: r.valid,
        checked: r.checked,
        firstBrokenId: r.firstBrokenId,
        reason: r.reason,
        unsealed: r.unsealed,
        oldestUnsealedId: r.oldestUnsealedId,
        head: r.head,
        ...(r.checkpoints ? { checkpoints: r.checkpoints } : {}),
      });
    },
  );

  return router;
}
