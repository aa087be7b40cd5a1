/**
 * Authentication routes under /api/v1/security: login, refresh, logout, the current user,
 * and the user's sessions. Thin: validate, call the auth service, shape the reply.
 */
import { Router, type CookieOptions, type NextFunction, type Request, type Response } from 'express';
import { z } from 'zod';
import type { Guards } from '../compose';
import { unauthenticated } from '../lib/errors';
import { actorOf, authOf, requestMeta } from '../middleware/actor';
import { parseCookies, type CsrfProtection } from '../middleware/csrf';
import { EMPTY, rejectQuery, validate, validBody, validParams } from '../middleware/input-validation';
import { ErrorResponse, PublicUser, Success } from '../openapi/common';
import { describeRoute } from '../openapi/registry';
import { publicUser, type AuthService, type IssuedSession } from '../services/auth/auth-service';
import { MAX_ID_TOKEN_LENGTH } from '../services/auth/oidc';
import { EMAIL_RE } from '../services/auth/users';

const REFRESH_COOKIE = 'fleet_refresh';
/** The refresh cookie is sent only to the refresh route. */
const REFRESH_COOKIE_PATH = '/api/v1/security/refresh';

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/**
 * Where the refresh token goes. `cookie`: only in the HttpOnly `fleet_refresh` cookie (browsers:
 * no script on the page can read it). `body`: only in the JSON `refreshToken` (native apps,
 * servers), no cookie. Not given: `cookie` when the request carries an Origin header (every
 * browser fetch/XHR POST does), otherwise both, as before this option existed.
 */
const RefreshTokenDelivery = z.enum(['cookie', 'body']);
export type Delivery = z.output<typeof RefreshTokenDelivery> | 'both';

const LoginBody = z.strictObject({
  email: z
    .string()
    .max(254)
    .regex(EMAIL_RE, 'must be an e-mail address')
    .transform((s) => s.toLowerCase()),
  idToken: z.string().min(1).max(MAX_ID_TOKEN_LENGTH),
  refreshTokenDelivery: RefreshTokenDelivery.optional(),
});
const RefreshBody = z.strictObject({
  refreshToken: z.string().min(1).max(512).optional(),
  refreshTokenDelivery: RefreshTokenDelivery.optional(),
});

function deliveryFor(req: Request, asked: z.output<typeof RefreshTokenDelivery> | undefined): Delivery {
  if (asked) return asked;
  return typeof req.headers.origin === 'string' ? 'cookie' : 'both';
}
const SessionParams = z.strictObject({ id: z.string().regex(UUID_RE, 'must be a session id (UUID)') });

// ---- API description (server/src/openapi): the replies, next to the request schemas above.
const P = '/api/v1/security';
const noStore = {
  'Cache-Control': {
    description: 'Tokens are never cached.',
    required: true,
    schema: { type: 'string' as const, const: 'no-store' },
  },
};
const SessionReply = z
  .strictObject({
    success: z.literal(true),
    token: z.string().meta({ description: 'The access token (JWT): Authorization: Bearer <token>.' }),
    refreshToken: z
      .string()
      .optional()
      .meta({ description: 'Only when refreshTokenDelivery is "body" (or not given by a non-browser client).' }),
    tokenType: z.literal('Bearer'),
    expiresIn: z.int().meta({ description: 'Seconds until the access token expires.' }),
    user: PublicUser,
  })
  .meta({ id: 'SessionReply' });
const SessionEntry = z.strictObject({
  id: z.uuid(),
  createdAt: z.iso.datetime(),
  lastUsedAt: z.iso.datetime(),
  ipAddress: z.string().nullable(),
  userAgent: z.string().nullable(),
  current: z.boolean().meta({ description: 'The session of the token that asked.' }),
});
const refreshCookieHeader = {
  ...noStore,
  'Set-Cookie': {
    description:
      'fleet_refresh=…; Path=/api/v1/security/refresh; HttpOnly; SameSite=Strict[; Secure] (unless refreshTokenDelivery is "body").',
    schema: { type: 'string' as const },
  },
};
describeRoute({
  method: 'post',
  path: `${P}/login`,
  operationId: 'login',
  summary: 'Exchange an ID token for a session',
  description:
    'An ID token from the identity provider (or `npm run dev:token` in development) for a provisioned, active user opens a session: an access token and a refresh token. ' +
    'refreshTokenDelivery: "cookie" for browsers (the refresh token only in the HttpOnly cookie), "body" for native apps and servers (only in the JSON); not given: "cookie" for a request with an Origin header, both otherwise. ' +
    'Five failures per e-mail or IP in 15 minutes lock out (429).',
  tags: ['auth'],
  security: [],
  request: {
    body: LoginBody,
    bodyExample: { email: 'you@example.com', idToken: 'eyJhbGciOiJSUzI1NiIs…', refreshTokenDelivery: 'cookie' },
  },
  responses: {
    200: {
      description: 'Session opened.',
      schema: SessionReply,
      headers: refreshCookieHeader,
      example: {
        success: true,
        token: 'eyJhbGciOiJIUzI1NiIs…',
        tokenType: 'Bearer',
        expiresIn: 900,
        user: {
          id: '6e57ca8a-0b7e-4c59-9a55-1b2f0b7f3a10',
          email: 'you@example.com',
          role: 'admin',
          tenantId: 'demo',
          displayName: 'You',
          permissions: ['audit:export'],
        },
      },
    },
    401: {
      description:
        'UNAUTHENTICATED: the ID token is invalid, expired or already used, or the user is unknown, deactivated or ambiguous (one answer for all).',
      schema: ErrorResponse,
    },
  },
});
describeRoute({
  method: 'post',
  path: `${P}/refresh`,
  operationId: 'refresh',
  summary: 'Rotate the refresh token for a new access token',
  description:
    'With { refreshToken } in the body (native clients), or with no token in the body and the fleet_refresh cookie plus the X-CSRF-Token header (browsers). ' +
    'The token sent is spent; presenting a spent token again revokes the whole session (reuse detection, 401). A cookie without a valid CSRF token: 403 CSRF_FAILED.',
  tags: ['auth'],
  security: ['none', 'refreshCookie'],
  request: {
    body: RefreshBody,
    bodyOptional: true,
    bodyExample: { refreshToken: '1jgRCM-ckL3_lBPfDiKbmsm_eGIRG2T3woSI6FcViqM', refreshTokenDelivery: 'body' },
  },
  responses: {
    200: { description: 'New access and refresh tokens.', schema: SessionReply, headers: refreshCookieHeader },
  },
});
describeRoute({
  method: 'post',
  path: `${P}/logout`,
  operationId: 'logout',
  summary: 'End the current session',
  description: 'The access token, the refresh token and the cookie stop working at once.',
  tags: ['auth'],
  security: ['bearerAuth'],
  request: { body: EMPTY, bodyOptional: true },
  responses: { 200: { description: 'Logged out.', schema: Success } },
});
describeRoute({
  method: 'get',
  path: `${P}/user`,
  operationId: 'getCurrentUser',
  summary: 'The signed-in user',
  tags: ['auth'],
  security: ['bearerAuth'],
  permission: 'profile:read',
  responses: {
    200: { description: 'The user.', schema: z.strictObject({ success: z.literal(true), user: PublicUser }) },
  },
});
describeRoute({
  method: 'get',
  path: `${P}/sessions`,
  operationId: 'listSessions',
  summary: "The user's live sessions",
  tags: ['auth'],
  security: ['bearerAuth'],
  permission: 'sessions:read:own',
  responses: {
    200: {
      description: 'Up to 100 live sessions.',
      schema: z.strictObject({ success: z.literal(true), sessions: z.array(SessionEntry) }),
    },
  },
});
describeRoute({
  method: 'delete',
  path: `${P}/sessions/{id}`,
  operationId: 'revokeSession',
  summary: 'Revoke a session',
  description:
    'Your own session, or (admins, sessions:revoke:tenant) any session in your tenant; anything else is 404.',
  tags: ['auth'],
  security: ['bearerAuth'],
  permission: 'sessions:revoke:own',
  request: { params: SessionParams, body: EMPTY, bodyOptional: true },
  responses: {
    200: { description: 'Revoked.', schema: Success },
    404: { description: 'NOT_FOUND: no such session you may revoke.', schema: ErrorResponse },
  },
});

export interface AuthRouterDeps {
  guards: Pick<Guards, 'requireAuth' | 'requirePermission'>;
  auth: AuthService;
  csrf: CsrfProtection;
  /** Secure cookies (production). */
  secureCookies: boolean;
}

export function authRouter(deps: AuthRouterDeps, router: Router = Router()): Router {
  const { auth, csrf } = deps;
  const { requireAuth, requirePermission } = deps.guards;
  const cookieBase: CookieOptions = {
    httpOnly: true,
    secure: deps.secureCookies,
    sameSite: 'strict',
    path: REFRESH_COOKIE_PATH,
  };

  function sendSession(res: Response, s: IssuedSession, delivery: Delivery): void {
    res.set('Cache-Control', 'no-store');
    if (delivery !== 'body') res.cookie(REFRESH_COOKIE, s.refreshToken, { ...cookieBase, expires: s.refreshExpiresAt });
    const refresh = delivery === 'cookie' ? {} : { refreshToken: s.refreshToken };
    res.json({
      success: true,
      token: s.token,
      ...refresh,
      tokenType: s.tokenType,
      expiresIn: s.expiresIn,
      user: s.user,
    });
  }

  router.post('/login', validate({ body: LoginBody }), async function login(req: Request, res: Response) {
    const body = validBody<z.output<typeof LoginBody>>(req);
    sendSession(
      res,
      await auth.login({ email: body.email, idToken: body.idToken }, requestMeta(req)),
      deliveryFor(req, body.refreshTokenDelivery),
    );
  });

  router.post(
    '/refresh',
    parseCookies,
    validate({ body: RefreshBody }),
    // The cookie is an ambient credential: using it requires the CSRF token. A token in the body is not.
    function refreshCsrf(req: Request, res: Response, next: NextFunction) {
      const body = validBody<z.output<typeof RefreshBody>>(req);
      if (body.refreshToken === undefined && typeof req.cookies?.[REFRESH_COOKIE] === 'string') {
        csrf.require(req, res, next);
        return;
      }
      next();
    },
    async function refresh(req: Request, res: Response) {
      const body = validBody<z.output<typeof RefreshBody>>(req);
      const fromCookie = body.refreshToken === undefined;
      const token =
        body.refreshToken ??
        (typeof req.cookies?.[REFRESH_COOKIE] === 'string' ? (req.cookies[REFRESH_COOKIE] as string) : undefined);
      if (!token) throw unauthenticated('no refresh token presented');
      try {
        sendSession(
          res,
          await auth.refresh({ refreshToken: token }, requestMeta(req)),
          deliveryFor(req, body.refreshTokenDelivery),
        );
      } catch (err) {
        if (fromCookie) res.clearCookie(REFRESH_COOKIE, cookieBase);
        throw err;
      }
    },
  );

  router.post('/logout', ...requireAuth, validate({ body: EMPTY }), async function logout(req: Request, res: Response) {
    await auth.logout(authOf(req), actorOf(req));
    res.clearCookie(REFRESH_COOKIE, cookieBase);
    res.json({ success: true });
  });

  router.get(
    '/user',
    ...requireAuth,
    requirePermission('profile:read'),
    rejectQuery,
    function currentUser(req: Request, res: Response) {
      res.json({ success: true, user: publicUser(authOf(req)) });
    },
  );

  router.get(
    '/sessions',
    ...requireAuth,
    requirePermission('sessions:read:own'),
    rejectQuery,
    async function listSessions(req: Request, res: Response) {
      res.json({ success: true, sessions: await auth.listSessions(authOf(req)) });
    },
  );

  router.delete(
    '/sessions/:id',
    ...requireAuth,
    requirePermission('sessions:revoke:own'),
    validate({ params: SessionParams, body: EMPTY }),
    async function revokeSession(req: Request, res: Response) {
      const { id } = validParams<z.output<typeof SessionParams>>(req);
      await auth.revokeSession(authOf(req), id.toLowerCase(), actorOf(req));
      res.json({ success: true });
    },
  );

  return router;
}
