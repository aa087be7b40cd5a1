/**
 * The glue between a request and the domain's `Actor` (domain/actor.ts): the authentication
 * middleware calls `authenticateAs` once per request; routes read `actorOf(req)` and pass it on.
 */
import type { Request } from 'express';
import { actorFor, type Actor, type AuthContext, type RequestMeta } from '../domain/actor';
import { unauthenticated } from '../lib/errors';

/** Sets the request's principal and its actor (built here, once). */
export function authenticateAs(req: Request, auth: AuthContext): Actor {
  req.auth = auth;
  req.actor = actorFor(auth, req.ctx);
  return req.actor;
}

/** The authenticated request's actor; 401 when a route is reached without authentication. */
export function actorOf(req: Request): Actor {
  if (!req.actor) throw unauthenticated('route reached without authentication');
  return req.actor;
}

/** The authenticated request's principal (role, session, scopes); 401 without authentication. */
export function authOf(req: Request): AuthContext {
  if (!req.auth) throw unauthenticated('route reached without authentication');
  return req.auth;
}

/** Where an unauthenticated request comes from (login, refresh, token revocation). */
export function requestMeta(req: Request): RequestMeta {
  return { ip: req.ctx.ip, userAgent: req.ctx.userAgent, requestId: req.ctx.requestId };
}
