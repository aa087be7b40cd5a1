/**
 * The verifiable audit log's routes (mounted under /api/v1/security; CONTRACT.md §8):
 *   GET /audit/checkpoint           the tenant's latest signed checkpoint (text/plain)   admin
 *   GET /audit/checkpoint-key       the signed-note verifier key(s) (text/plain)        no auth
 *   GET /audit/proof/inclusion      RFC 9162 §2.1.3 inclusion proof of one audit row   admin
 *   GET /audit/proof/consistency    RFC 9162 §2.1.4 consistency proof between sizes    admin
 */
import { Router, type Request, type Response } from 'express';
import { z } from 'zod';
import type { Guards } from '../compose';
import { notFound, serviceUnavailable } from '../lib/errors';
import { actorOf } from '../middleware/actor';
import { validate, validQuery } from '../middleware/input-validation';
import { ErrorResponse } from '../openapi/common';
import { describeRoute } from '../openapi/registry';
import type { CheckpointService } from '../services/audit/checkpoints';
import type { AuditProofs } from '../services/audit/proofs';

const positiveInt = (max: string) =>
  z
    .string()
    .regex(/^[1-9]\d{0,18}$/, 'must be a positive integer')
    .refine((v) => v.length < max.length || (v.length === max.length && v <= max), `must be at most ${max}`);
const SIZE_MAX = String(Number.MAX_SAFE_INTEGER);
const ID_MAX = '9223372036854775807';

const inclusionQuery = z.strictObject({ id: positiveInt(ID_MAX), treeSize: positiveInt(SIZE_MAX).optional() });
const consistencyQuery = z
  .strictObject({ from: positiveInt(SIZE_MAX), to: positiveInt(SIZE_MAX) })
  .refine((q) => Number(q.from) <= Number(q.to), { message: '"from" must not be greater than "to"', path: ['from'] });

const b64 = (b: Buffer): string => b.toString('base64');

// ---- API description (server/src/openapi)
const P = '/api/v1/security';
const TEXT = 'text/plain';
const notConfigured =
  'SERVICE_UNAVAILABLE: signed audit checkpoints are not configured (no AUDIT_CHECKPOINT_KEY), or the database is unavailable.';
const base64 = z
  .string()
  .regex(/^[A-Za-z0-9+/]*={0,2}$/)
  .meta({ description: 'SHA-256 hash, standard base64.' });
describeRoute({
  method: 'get',
  path: `${P}/audit/checkpoint-key`,
  operationId: 'getCheckpointKey',
  summary: 'The signed-note verifier key(s) of audit checkpoints (text/plain)',
  description:
    'One verifier key a line (C2SP signed-note format, Ed25519): `<name>+<key id>+<base64 key>`. No authentication; cacheable for five minutes. Pin it out of band before trusting checkpoints.',
  tags: ['audit'],
  security: [],
  responses: {
    200: {
      description: 'The verifier keys, one a line.',
      contentType: TEXT,
      schema: z.string(),
      headers: {
        'Cache-Control': {
          description: 'Five minutes.',
          required: true,
          schema: { type: 'string', const: 'public, max-age=300' },
        },
      },
    },
    503: { description: notConfigured, schema: ErrorResponse },
  },
});
describeRoute({
  method: 'get',
  path: `${P}/audit/checkpoint`,
  operationId: 'getAuditCheckpoint',
  summary: "The tenant's latest signed audit checkpoint (text/plain, C2SP tlog-checkpoint note)",
  description:
    'Origin line, tree size, base64 root hash, a blank line and the Ed25519 signature line(s). Check it with the key from GET /audit/checkpoint-key and npm run audit:verify-offline.',
  tags: ['audit'],
  security: ['bearerAuth'],
  permission: 'audit:verify',
  responses: {
    200: {
      description: 'The signed note.',
      contentType: TEXT,
      schema: z.string(),
      headers: {
        'Cache-Control': {
          description: 'Never cached.',
          required: true,
          schema: { type: 'string', const: 'no-store' },
        },
      },
    },
    404: { description: 'NOT_FOUND: no checkpoint has been published for your tenant yet.', schema: ErrorResponse },
    503: { description: notConfigured, schema: ErrorResponse },
  },
});
describeRoute({
  method: 'get',
  path: `${P}/audit/proof/inclusion`,
  operationId: 'getAuditInclusionProof',
  summary: 'RFC 9162 §2.1.3 inclusion proof of one sealed audit row',
  description:
    "treeSize defaults to the latest checkpoint's size when it holds the entry (so the proof checks against GET /audit/checkpoint), else the current tree.",
  tags: ['audit'],
  security: ['bearerAuth'],
  permission: 'audit:verify',
  request: { query: inclusionQuery },
  responses: {
    200: {
      description: 'The proof.',
      schema: z.strictObject({
        success: z.literal(true),
        leafIndex: z.int().min(0),
        treeSize: z.int().min(1),
        rowHash: base64,
        hashes: z.array(base64),
      }),
    },
    404: { description: 'NOT_FOUND: no sealed audit entry with this id in your tenant.', schema: ErrorResponse },
  },
});
describeRoute({
  method: 'get',
  path: `${P}/audit/proof/consistency`,
  operationId: 'getAuditConsistencyProof',
  summary: 'RFC 9162 §2.1.4 consistency proof between two tree sizes',
  tags: ['audit'],
  security: ['bearerAuth'],
  permission: 'audit:verify',
  request: { query: consistencyQuery },
  responses: {
    200: {
      description: 'The proof.',
      schema: z.strictObject({
        success: z.literal(true),
        from: z.int().min(1),
        to: z.int().min(1),
        hashes: z.array(base64),
      }),
    },
  },
});

export interface AuditProofRouterDeps {
  guards: Pick<Guards, 'requireAuth' | 'requirePermission'>;
  checkpoints: CheckpointService;
  proofs: AuditProofs;
}

export function auditProofRouter(deps: AuditProofRouterDeps, router: Router = Router()): Router {
  const { requireAuth, requirePermission } = deps.guards;
  const { checkpoints, proofs } = deps;

  router.get('/audit/checkpoint-key', validate({}), async function getCheckpointKey(_req: Request, res: Response) {
    if (!checkpoints.enabled)
      throw serviceUnavailable('Signed audit checkpoints are not configured.', 'no checkpoint signing key');
    const keys = await checkpoints.verifierKeys();
    res
      .type('text/plain; charset=utf-8')
      .set('Cache-Control', 'public, max-age=300')
      .send(`${keys.join('\n')}\n`);
  });

  router.get(
    '/audit/checkpoint',
    ...requireAuth,
    requirePermission('audit:verify'),
    validate({}),
    async function getCheckpoint(req: Request, res: Response) {
      const { tenantId } = actorOf(req);
      if (!checkpoints.enabled)
        throw serviceUnavailable('Signed audit checkpoints are not configured.', 'no checkpoint signing key');
      const cp = await checkpoints.latest(tenantId);
      if (!cp) throw notFound('Checkpoint');
      res.type('text/plain; charset=utf-8').set('Cache-Control', 'no-store').send(cp.note);
    },
  );

  router.get(
    '/audit/proof/inclusion',
    ...requireAuth,
    requirePermission('audit:verify'),
    validate({ query: inclusionQuery }),
    async function getInclusionProof(req: Request, res: Response) {
      const q = validQuery<z.infer<typeof inclusionQuery>>(req);
      const out = await proofs.inclusion(
        actorOf(req).tenantId,
        q.id,
        q.treeSize !== undefined ? Number(q.treeSize) : undefined,
      );
      res.json({
        success: true,
        leafIndex: out.leafIndex,
        treeSize: out.treeSize,
        rowHash: b64(out.rowHash),
        hashes: out.hashes.map(b64),
      });
    },
  );

  router.get(
    '/audit/proof/consistency',
    ...requireAuth,
    requirePermission('audit:verify'),
    validate({ query: consistencyQuery }),
    async function getConsistencyProof(req: Request, res: Response) {
      const q = validQuery<z.infer<typeof consistencyQuery>>(req);
      const from = Number(q.from);
      const to = Number(q.to);
      const hashes = await proofs.consistency(actorOf(req).tenantId, from, to);
      res.json({ success: true, from, to, hashes: hashes.map(b64) });
    },
  );

  return router;
}
