/**
 * POST /oauth/introspect (RFC 7662) and POST /oauth/revoke (RFC 7009), at the app root,
 * form-encoded (application/x-www-form-urlencoded, UTF-8, at most 8 kB). Errors here follow
 * RFC 6749 §5.2 — `{ error, error_description }` with invalid_request (400), invalid_client
 * (401 with WWW-Authenticate, or 403 for a key without the scope) and unsupported_token_type
 * (400) — not the API's usual envelope. Responses are `Cache-Control: no-store`.
 *
 * Introspection callers authenticate with a service API key holding `tokens:introspect`
 * (`Authorization: Bearer fsk_…`). Revocation needs no caller authentication: presenting the
 * token is the proof (a public client revoking its own token); it answers 200 whatever the token.
 */
import express, { type Express, type NextFunction, type Request, type RequestHandler, type Response } from 'express';
import type { Guards } from '../compose';
import { AuthenticationError } from '../lib/errors';
import { authOf, requestMeta } from '../middleware/actor';
import { presentsApiKey } from '../middleware/api-key-auth';
import { z } from 'zod';
import { OAuthErrorResponse } from '../openapi/common';
import { describeRoute } from '../openapi/registry';
import type { OAuthService, TokenTypeHint } from '../services/auth/oauth';
import { principalHas } from '../services/auth/rbac';

const OAUTH_PREFIX = '/oauth/';
const FORM_TYPE = /^application\/x-www-form-urlencoded\s*(?:;\s*charset\s*=\s*"?utf-8"?\s*)?$/i;
const ALLOWED = new Set(['token', 'token_type_hint']);

class OAuthError extends Error {
  constructor(
    readonly error: 'invalid_request' | 'invalid_client' | 'unsupported_token_type',
    readonly status: number,
    readonly description: string,
  ) {
    super(description);
  }
}

// ---- API description (server/src/openapi)
const FORM = 'application/x-www-form-urlencoded';
const oauthNoStore = {
  'Cache-Control': {
    description: 'Never cached.',
    required: true,
    schema: { type: 'string' as const, const: 'no-store' },
  },
  Pragma: {
    description: 'no-cache (RFC 6749 §5.1).',
    required: true,
    schema: { type: 'string' as const, const: 'no-cache' },
  },
};
const oauthError = (
  description: string,
  extra: Record<string, { description: string; required?: boolean; schema: { type: 'string' } }> = {},
) => ({
  description,
  schema: OAuthErrorResponse,
  headers: { ...oauthNoStore, ...extra },
});
const tokenForm = (hint: string) =>
  z.object({
    token: z.string().min(1).max(4096).meta({ description: 'The access token (JWT) or refresh token.' }),
    token_type_hint: z.enum(['access_token', 'refresh_token']).optional().meta({ description: hint }),
  });
describeRoute({
  method: 'post',
  path: '/oauth/introspect',
  operationId: 'introspectToken',
  summary: 'Token introspection (RFC 7662)',
  description:
    'Form-encoded (UTF-8, at most 8 kB); unknown parameters are ignored. The caller authenticates with an API key holding the scope tokens:introspect. ' +
    "`active: true` only while the token's session lives and the token belongs to the caller's tenant; anything else is `{ active: false }`, with no hint why. " +
    'Errors here are RFC 6749 §5.2 bodies ({ error, error_description }), not the ErrorResponse envelope.',
  tags: ['identity'],
  security: ['apiKey'],
  permission: 'tokens:introspect',
  request: {
    body: tokenForm('Looked at first; unknown hints are ignored (RFC 7662 §2.1).'),
    bodyContentType: FORM,
    bodyExample: { token: 'eyJhbGciOiJFUzI1NiIs…', token_type_hint: 'access_token' },
  },
  responses: {
    200: {
      description: "The token's state.",
      headers: oauthNoStore,
      schema: z.union([
        z.strictObject({ active: z.literal(false) }),
        z.strictObject({
          active: z.literal(true),
          sub: z.string(),
          tenant_id: z.string(),
          role: z.enum(['admin', 'user', 'viewer']),
          sid: z.string(),
          exp: z.int(),
          iat: z.int(),
          token_type: z.enum(['access_token', 'refresh_token']),
          iss: z.string(),
          aud: z.string(),
        }),
      ]),
    },
    400: oauthError('invalid_request: not form-encoded (UTF-8), no or a malformed token, a parameter given twice.'),
    401: oauthError('invalid_client: no API key, or an unknown, revoked or expired one.', {
      'WWW-Authenticate': { description: 'Bearer error="invalid_client".', required: true, schema: { type: 'string' } },
    }),
    403: oauthError('invalid_client: the API key lacks the tokens:introspect scope.'),
    413: oauthError('invalid_request: the body exceeds 8 kB.'),
  },
});
describeRoute({
  method: 'post',
  path: '/oauth/revoke',
  operationId: 'revokeToken',
  summary: 'Token revocation (RFC 7009)',
  description:
    'Form-encoded (UTF-8, at most 8 kB). No caller authentication: presenting the token is the proof. Ends the session the token belongs to; answers 200 whatever the token (unknown, expired, already revoked). ' +
    'Errors here are RFC 6749 §5.2 bodies, not the ErrorResponse envelope.',
  tags: ['identity'],
  security: [],
  request: {
    body: tokenForm('access_token or refresh_token; any other value is 400 unsupported_token_type.'),
    bodyContentType: FORM,
    bodyExample: { token: '1jgRCM-ckL3_lBPfDiKbmsm_eGIRG2T3woSI6FcViqM', token_type_hint: 'refresh_token' },
  },
  responses: {
    200: { description: 'Revoked, or nothing to revoke (no body).', headers: oauthNoStore },
    400: oauthError(
      'invalid_request (not form-encoded, no or a malformed token) or unsupported_token_type (an unknown token_type_hint).',
    ),
    413: oauthError('invalid_request: the body exceeds 8 kB.'),
  },
});

/** The global JSON body layer, skipped for the form-encoded OAuth endpoints. */
export function unlessOAuth(handlers: RequestHandler[]): RequestHandler {
  const inner = handlers.length === 1 ? (handlers[0] as RequestHandler) : null;
  if (!inner) throw new Error('unlessOAuth expects one handler');
  return function bodyUnlessOAuth(req: Request, res: Response, next: NextFunction) {
    if (req.path.startsWith(OAUTH_PREFIX)) {
      next();
      return;
    }
    return inner(req, res, next);
  };
}

function send(res: Response, e: OAuthError): void {
  if (e.status === 401) res.set('WWW-Authenticate', `Bearer error="${e.error}"`);
  res
    .status(e.status)
    .set('Cache-Control', 'no-store')
    .set('Pragma', 'no-cache')
    .json({ error: e.error, error_description: e.description });
}

/** Parses and checks the form: one `token` (1–4096 characters), an optional known `token_type_hint`. */
function readForm(req: Request, forRevoke: boolean): { token: string; hint: TokenTypeHint | null } {
  const body = req.body as Record<string, unknown> | undefined;
  if (!body || typeof body !== 'object')
    throw new OAuthError(
      'invalid_request',
      400,
      'the request must be application/x-www-form-urlencoded with a token parameter',
    );
  for (const [k, v] of Object.entries(body)) {
    if (!ALLOWED.has(k)) continue; // RFC 6749 §3.2: unknown parameters are ignored
    if (typeof v !== 'string') throw new OAuthError('invalid_request', 400, `${k} must be given once`);
  }
  const token = body.token;
  if (typeof token !== 'string' || token.length === 0)
    throw new OAuthError('invalid_request', 400, 'the token parameter is missing');
  if (token.length > 4096 || !token.isWellFormed() || token.includes('\u0000'))
    throw new OAuthError('invalid_request', 400, 'the token parameter is malformed');
  const h = body.token_type_hint;
  if (h === undefined || h === 'access_token' || h === 'refresh_token')
    return { token, hint: (h as TokenTypeHint | undefined) ?? null };
  // RFC 7009 §2.2.1: a type the server does not revoke; introspection ignores unknown hints (RFC 7662 §2.1).
  if (forRevoke)
    throw new OAuthError('unsupported_token_type', 400, 'token_type_hint must be access_token or refresh_token');
  return { token, hint: null };
}

export interface OAuthRouteDeps {
  guards: Pick<Guards, 'requireApiKey'>;
  oauth: OAuthService;
}

export function mountOAuth(app: Express, deps: OAuthRouteDeps): void {
  const { oauth } = deps;
  const { requireApiKey } = deps.guards;
  const form = express.urlencoded({ extended: false, limit: 8 * 1024, parameterLimit: 20, type: () => true });

  function parseForm(req: Request, res: Response, next: NextFunction): void {
    const ct = String(req.headers['content-type'] ?? '');
    if (!FORM_TYPE.test(ct)) {
      send(
        res,
        new OAuthError('invalid_request', 400, 'the request must be application/x-www-form-urlencoded (UTF-8)'),
      );
      return;
    }
    form(req, res, (err?: unknown) => {
      if (err) {
        const tooLarge = (err as { type?: string }).type === 'entity.too.large';
        send(
          res,
          new OAuthError(
            'invalid_request',
            tooLarge ? 413 : 400,
            tooLarge ? 'the request body is too large' : 'the request body could not be parsed',
          ),
        );
        return;
      }
      next();
    });
  }

  app.post(
    '/oauth/introspect',
    function authenticateCaller(req: Request, res: Response, next: NextFunction) {
      if (!presentsApiKey(req)) {
        send(
          res,
          new OAuthError(
            'invalid_client',
            401,
            'authenticate with an API key holding tokens:introspect (Authorization: Bearer fsk_…)',
          ),
        );
        return;
      }
      requireApiKey(req, res, (err?: unknown) => {
        if (err) {
          if (err instanceof AuthenticationError)
            send(res, new OAuthError('invalid_client', 401, 'client authentication failed'));
          else next(err);
          return;
        }
        if (!req.auth || !principalHas(req.auth, 'tokens:introspect')) {
          send(res, new OAuthError('invalid_client', 403, 'the API key lacks the tokens:introspect scope'));
          return;
        }
        next();
      });
    },
    parseForm,
    async function introspect(req: Request, res: Response) {
      try {
        const { token, hint } = readForm(req, false);
        const result = await oauth.introspect(token, authOf(req).tenantId, hint);
        res.set('Cache-Control', 'no-store').set('Pragma', 'no-cache').json(result);
      } catch (e) {
        if (e instanceof OAuthError) send(res, e);
        else throw e;
      }
    },
  );

  app.post('/oauth/revoke', parseForm, async function revoke(req: Request, res: Response) {
    try {
      const { token, hint } = readForm(req, true);
      await oauth.revoke(token, hint, requestMeta(req));
      res.status(200).set('Cache-Control', 'no-store').set('Pragma', 'no-cache').end();
    } catch (e) {
      if (e instanceof OAuthError) send(res, e);
      else throw e;
    }
  });
}
