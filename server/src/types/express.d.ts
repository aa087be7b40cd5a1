import type { Logger } from '../lib/logger';

export interface RequestContext {
  requestId: string;
  /** Client address (honours TRUST_PROXY through Express's req.ip). */
  ip: string | null;
  userAgent: string | null;
  log: Logger;
  startedAt: bigint;
}

export type Role = 'admin' | 'user' | 'viewer';

/** Set by the authentication middleware from the verified access token and the live session. */
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

declare global {
  namespace Express {
    interface Request {
      ctx: RequestContext;
      auth?: AuthContext;
    }
  }
}
