/**
 * GET /.well-known/jwks.json (no auth, CONTRACT §10): the public keys that verify our access
 * tokens — the current one and retired ones whose tokens can still be valid. Cacheable for
 * five minutes; a key is published for at least a token lifetime before anyone needs it only
 * if operators follow docs/SECRET_ROTATION.md (publish as previous first, then switch).
 */
import type { Express, Request, Response } from 'express';
import { z } from 'zod';
import { describeRoute } from '../openapi/registry';
import type { TokenService } from '../services/auth/tokens';

const JWKS_PATH = '/.well-known/jwks.json';

// ---- API description (server/src/openapi)
describeRoute({
  method: 'get',
  path: JWKS_PATH,
  operationId: 'getJwks',
  summary: 'The public keys that verify access tokens (RFC 7517 JWK Set)',
  description:
    'The current signing key and retired ones whose tokens can still be valid. No authentication; cacheable for five minutes.',
  tags: ['identity'],
  security: [],
  responses: {
    200: {
      description: 'The JWK Set.',
      contentType: 'application/jwk-set+json',
      headers: {
        'Cache-Control': {
          description: 'Five minutes.',
          required: true,
          schema: { type: 'string', const: 'public, max-age=300' },
        },
      },
      schema: z.strictObject({
        keys: z.array(
          z
            .strictObject({
              kty: z.enum(['EC', 'OKP']),
              crv: z.enum(['P-256', 'Ed25519']),
              x: z.string(),
              y: z.string().optional(),
              kid: z.string(),
              alg: z.string(),
              use: z.literal('sig'),
            })
            .meta({ description: 'A public JWK (EC P-256 or Ed25519); never private parts.' }),
        ),
      }),
    },
  },
});

export function mountJwks(app: Express, tokens: TokenService): void {
  app.get(JWKS_PATH, function jwks(_req: Request, res: Response) {
    res
      .set('Cache-Control', 'public, max-age=300')
      .type('application/jwk-set+json')
      .send(JSON.stringify(tokens.jwks()));
  });
}
