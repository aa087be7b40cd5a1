/**
 * The credential of an `Authorization: Bearer <credential>` header, or null. The scheme is
 * case-insensitive (RFC 9110 §11.1): Bearer, bearer, BEARER; one space separates it from the
 * credential. Callers check the credential's own shape (JWT, `fsk_…` API key, metrics token).
 */
export function bearerCredential(header: unknown): string | null {
  if (typeof header !== 'string' || header.length < 7) return null;
  return header.slice(0, 7).toLowerCase() === 'bearer ' ? header.slice(7) : null;
}
