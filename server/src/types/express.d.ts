import type { Actor, AuthContext } from '../domain/actor';
import type { Logger } from '../lib/logger';

export interface RequestContext {
  requestId: string;
  /** Client address (honours TRUST_PROXY through Express's req.ip). */
  ip: string | null;
  userAgent: string | null;
  log: Logger;
  startedAt: bigint;
}

declare global {
  namespace Express {
    interface Request {
      ctx: RequestContext;
      /** Set by the authentication middleware from the verified access token and the live session, or an API key. */
      auth?: AuthContext;
      /** Set with `auth`: the same principal as the services see it (middleware/actor.ts). */
      actor?: Actor;
    }
  }
}
