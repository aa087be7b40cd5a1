/**
 * Who acts, as the services see it: no HTTP here. The middleware turns an authenticated request
 * into an `Actor` once (middleware/actor.ts); routes hand it to the services, which write it to
 * the audit rows (user_id or api_key_id, ip_address, user_agent, request_id).
 */

export type Role = 'admin' | 'user' | 'viewer';

/** The verified principal: from the access token and the live session, or from a service API key. */
export interface AuthContext {
  userId: string;
  tenantId: string;
  email: string;
  role: Role;
  sessionId: string;
  displayName: string | null;
  /**
   * Set when a service API key authenticated the request (CONTRACT §11): userId and sessionId
   * then hold the key id, role is 'viewer' and permissions come from `scopes` (rbac.ts).
   */
  apiKeyId?: string;
  scopes?: readonly string[];
  /** Seconds: when the access token's step-up (TOTP) happened; absent without one. */
  stepUpAt?: number;
}

/** Where a request comes from: what an audit row records even before anyone is authenticated. */
export interface RequestMeta {
  ip: string | null;
  userAgent: string | null;
  requestId: string | null;
}

/** An authenticated caller: a user, or a service API key acting as itself. */
export interface Actor extends RequestMeta {
  tenantId: string;
  /** The user; null when an API key acts (the key is then `apiKeyId`). */
  userId: string | null;
  apiKeyId: string | null;
}

/** The actor of an authenticated principal coming from `meta`. */
export function actorFor(auth: AuthContext, meta: RequestMeta): Actor {
  const apiKeyId = auth.apiKeyId ?? null;
  return {
    tenantId: auth.tenantId,
    // An API key acts as itself: no user.
    userId: apiKeyId !== null ? null : auth.userId,
    apiKeyId,
    ip: meta.ip,
    userAgent: meta.userAgent,
    requestId: meta.requestId,
  };
}

/** The audit row's actor columns for `actor`. */
export function actorColumns(actor: Actor): {
  tenantId: string;
  userId: string | null;
  apiKeyId: string | null;
  ipAddress: string | null;
  userAgent: string | null;
  requestId: string | null;
} {
  return {
    tenantId: actor.tenantId,
    userId: actor.userId,
    apiKeyId: actor.apiKeyId,
    ipAddress: actor.ip,
    userAgent: actor.userAgent,
    requestId: actor.requestId,
  };
}

/** The audit row's request columns for `meta` (for rows written before or without an actor). */
export function metaColumns(meta: RequestMeta): {
  ipAddress: string | null;
  userAgent: string | null;
  requestId: string | null;
} {
  return { ipAddress: meta.ip, userAgent: meta.userAgent, requestId: meta.requestId };
}
