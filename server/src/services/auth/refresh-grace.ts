/**
 * The refresh reuse grace (CONTRACT §10): the successor pair a rotation returned is kept on
 * the spent token's row, encrypted with the encryption service, so that the same spent token
 * presented again within REFRESH_REUSE_GRACE_SECONDS (two tabs racing) gets the very same pair
 * back instead of revoking the family. The envelope's AAD binds it to the tenant, session and
 * spent token: a sealed pair copied onto another row (or tenant) does not decrypt.
 */
import type { EncryptionService } from '../encryption';

export interface SuccessorPair {
  refreshToken: string;
  accessToken: string;
  expiresIn: number;
}

export interface SuccessorIds {
  tenantId: string;
  sessionId: string;
  /** The spent refresh token's id (the row the pair is kept on). */
  tokenId: string;
}

function successorAad(ids: SuccessorIds): string {
  return `fleet-refresh-successor:v1:${ids.tenantId}:${ids.sessionId}:${ids.tokenId}`;
}

export function sealSuccessor(enc: EncryptionService, ids: SuccessorIds, pair: SuccessorPair): Promise<string> {
  return enc.encryptToString(JSON.stringify({ r: pair.refreshToken, a: pair.accessToken, e: pair.expiresIn }), {
    aad: successorAad(ids),
  });
}

/** The kept pair, or null when it cannot be opened (altered, moved, or its key is gone). */
export async function openSuccessor(
  enc: EncryptionService,
  ids: SuccessorIds,
  sealed: string,
): Promise<SuccessorPair | null> {
  try {
    const v = JSON.parse(await enc.decryptFromString(sealed, { aad: successorAad(ids) })) as {
      r?: unknown;
      a?: unknown;
      e?: unknown;
    };
    if (typeof v.r !== 'string' || typeof v.a !== 'string' || typeof v.e !== 'number') return null;
    return { refreshToken: v.r, accessToken: v.a, expiresIn: v.e };
  } catch {
    return null;
  }
}
