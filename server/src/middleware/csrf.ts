import cookieParser from 'cookie-parser';
import { doubleCsrf } from 'csrf-csrf';
import type { NextFunction, Request, RequestHandler, Response } from 'express';
import { csrfFailed } from '../lib/errors';

/**
 * Cookie parsing for the routes that read cookies (GET /csrf-token, POST /refresh). Other
 * routes authenticate with a Bearer header and never look at cookies.
 */
export const parseCookies: RequestHandler = cookieParser();

export interface CsrfProtection {
  /** Issues a token (and its cookie) for GET /csrf-token. */
  issue(req: Request, res: Response): string;
  /** Requires a valid X-CSRF-Token header matching the CSRF cookie. */
  require: RequestHandler;
}

/**
 * Signed double-submit CSRF tokens (csrf-csrf). Needed only where the browser authenticates
 * with a cookie (the `fleet_refresh` cookie on /refresh); Bearer requests are not exposed to
 * CSRF. In production the cookie is `__Host-` prefixed (Secure, path /, no Domain).
 */
export function createCsrf(opts: { secret: string; production: boolean }): CsrfProtection {
  const cookieName = opts.production ? '__Host-fleet.csrf' : 'fleet.csrf';
  const { generateCsrfToken, validateRequest } = doubleCsrf({
    getSecret: () => opts.secret,
    // Not bound to a login session: the token is fetched before login; the signed cookie
    // cannot be planted by another site (SameSite=Strict, __Host- prefix in production).
    getSessionIdentifier: () => '',
    cookieName,
    cookieOptions: { sameSite: 'strict', path: '/', secure: opts.production, httpOnly: true },
    size: 32,
    getCsrfTokenFromRequest: (req) => {
      const h = req.headers['x-csrf-token'];
      return typeof h === 'string' ? h : null;
    },
  });
  return {
    issue: (req, res) => generateCsrfToken(req, res, { overwrite: true }),
    require: function requireCsrf(req: Request, _res: Response, next: NextFunction): void {
      let ok: boolean;
      try {
        ok = validateRequest(req);
      } catch {
        ok = false;
      }
      if (!ok) {
        next(csrfFailed());
        return;
      }
      next();
    },
  };
}
