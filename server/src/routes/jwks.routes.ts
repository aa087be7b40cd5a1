/**
 * GET /.well-known/jwks.json (no auth, CONTRACT §10): the public keys that verify our access
 * tokens — the current one and retired ones whose tokens can still be valid. Cacheable for
 * five minutes; a key is published for at least a token lifetime before anyone needs it only
 * if operators follow docs/SECRET_ROTATION.md (publish as previous first, then switch).
 */
import type { Express, Request, Response } from 'express';
import type { TokenService } from '../services/auth/tokens';

export const JWKS_PATH = '/.well-known/jwks.json';

export function mountJwks(app: Express, tokens: TokenService): void {
  app.get(JWKS_PATH, function jwks(_req: Request, res: Response) {
    res.set('Cache-Control', 'public, max-age=300').type('application/jwk-set+json').send(JSON.stringify(tokens.jwks()));
  });
}
