/**
 * Asymmetric signing keys for access tokens (CONTRACT §10): parsing (PKCS#8 PEM, or base64 of
 * PKCS#8 DER; public keys also as SPKI for retired keys), the algorithm each key type pins,
 * the RFC 7638 thumbprint used as `kid`, and the public JWK published at /.well-known/jwks.json.
 */
import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';

export type SigningAlg = 'ES256' | 'EdDSA';
export const SIGNING_ALGS: readonly SigningAlg[] = ['ES256', 'EdDSA'];

export interface PublicJwk {
  kty: 'EC' | 'OKP';
  crv: 'P-256' | 'Ed25519';
  x: string;
  y?: string;
  kid: string;
  alg: SigningAlg;
  use: 'sig';
}

export interface ParsedKey {
  alg: SigningAlg;
  kid: string;
  publicKey: KeyObject;
  /** null for a key given only as a public key (a retired key). */
  privateKey: KeyObject | null;
  jwk: PublicJwk;
}

/** The key text cannot be used; the message never quotes the key. */
export class SigningKeyError extends Error {}

function algOf(k: KeyObject): SigningAlg | null {
  if (k.asymmetricKeyType === 'ed25519') return 'EdDSA';
  if (k.asymmetricKeyType === 'ec' && k.asymmetricKeyDetails?.namedCurve === 'prime256v1') return 'ES256';
  return null;
}

/** RFC 7638 JWK thumbprint (SHA-256, base64url) of a public key. */
export function jwkThumbprint(publicKey: KeyObject): string {
  const j = publicKey.export({ format: 'jwk' }) as Record<string, string>;
  // Members in lexicographic order, no whitespace (RFC 7638 §3.2).
  const canon =
    j.kty === 'EC'
      ? JSON.stringify({ crv: j.crv, kty: j.kty, x: j.x, y: j.y })
      : JSON.stringify({ crv: j.crv, kty: j.kty, x: j.x });
  return createHash('sha256').update(canon).digest('base64url');
}

function fromText(text: string, allowPublic: boolean): { key: KeyObject; isPrivate: boolean } {
  const t = text.trim().replace(/\\n/g, '\n');
  const pem = t.includes('-----BEGIN');
  if (pem) {
    if (/-----BEGIN (EC |ENCRYPTED )?PRIVATE KEY-----/.test(t)) {
      if (!t.includes('-----BEGIN PRIVATE KEY-----'))
        throw new SigningKeyError('must be an unencrypted PKCS#8 key (BEGIN PRIVATE KEY)');
      try {
        return { key: createPrivateKey({ key: t, format: 'pem' }), isPrivate: true };
      } catch {
        throw new SigningKeyError('is not a readable PKCS#8 PEM private key');
      }
    }
    if (allowPublic && t.includes('-----BEGIN PUBLIC KEY-----')) {
      try {
        return { key: createPublicKey({ key: t, format: 'pem' }), isPrivate: false };
      } catch {
        throw new SigningKeyError('is not a readable SPKI PEM public key');
      }
    }
    throw new SigningKeyError(
      allowPublic
        ? 'must be a PKCS#8 private key or an SPKI public key'
        : 'must be a PKCS#8 private key (BEGIN PRIVATE KEY)',
    );
  }
  if (!/^[A-Za-z0-9+/_-]+={0,2}$/.test(t)) throw new SigningKeyError('must be PKCS#8 PEM or base64 of PKCS#8 DER');
  const der = Buffer.from(t, 'base64');
  // base64 of a PEM text is accepted too (a PEM put through `base64 -w0`).
  const asText = der.toString('utf8');
  if (asText.includes('-----BEGIN')) return fromText(asText, allowPublic);
  try {
    return { key: createPrivateKey({ key: der, format: 'der', type: 'pkcs8' }), isPrivate: true };
  } catch {
    if (allowPublic) {
      try {
        return { key: createPublicKey({ key: der, format: 'der', type: 'spki' }), isPrivate: false };
      } catch {
        /* reported below */
      }
    }
    throw new SigningKeyError('is not a readable PKCS#8 (base64 DER) key');
  }
}

/** Parses a signing key; `expectAlg` (when given) must match the key type. */
export function parseSigningKey(text: string, opts: { expectAlg?: SigningAlg; allowPublic?: boolean } = {}): ParsedKey {
  const { key, isPrivate } = fromText(text, opts.allowPublic === true);
  const alg = algOf(key);
  if (!alg) throw new SigningKeyError('must be an EC P-256 key (ES256) or an Ed25519 key (EdDSA)');
  if (opts.expectAlg && alg !== opts.expectAlg)
    throw new SigningKeyError(`is a key for ${alg}, but JWT_SIGNING_ALG is ${opts.expectAlg}`);
  const publicKey = isPrivate ? createPublicKey(key) : key;
  const kid = jwkThumbprint(publicKey);
  const j = publicKey.export({ format: 'jwk' }) as Record<string, string>;
  const jwk: PublicJwk =
    alg === 'ES256'
      ? { kty: 'EC', crv: 'P-256', x: j.x as string, y: j.y as string, kid, alg, use: 'sig' }
      : { kty: 'OKP', crv: 'Ed25519', x: j.x as string, kid, alg, use: 'sig' };
  return { alg, kid, publicKey, privateKey: isPrivate ? key : null, jwk };
}

/** A new private key for `alg`, as base64 of PKCS#8 DER (development secrets, tests). */
export function generateSigningKey(alg: SigningAlg): string {
  const { privateKey } =
    alg === 'ES256' ? generateKeyPairSync('ec', { namedCurve: 'P-256' }) : generateKeyPairSync('ed25519');
  return privateKey.export({ format: 'der', type: 'pkcs8' }).toString('base64');
}
