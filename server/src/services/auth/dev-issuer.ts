/**
 * The development issuer: lets a newcomer log in right after `npm start` without an identity
 * provider. An RSA-2048 key is generated once and kept under the data directory (mode 0600);
 * `npm run dev:token -- --email E` signs ID tokens with it and the server verifies them
 * in-process through the same verifier as a real IdP (same algorithm allow-list and checks).
 * Never available in production: config refuses FLEET_DEV_ISSUER there and only enables the
 * issuer outside production when no AUTH0_DOMAIN / AUTH0_ISSUER_BASE_URL is configured.
 */
import {
  createHash,
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  randomBytes,
  randomUUID,
  type KeyObject,
} from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import jwt from 'jsonwebtoken';
import type { Clock } from '../../lib/clock';
import { ID_TOKEN_ALGORITHMS, rsaThumbprint, type KeyResolver } from './oidc';

/** Not a resolvable host (.invalid is reserved): nobody else can be this issuer. */
export const DEV_ISSUER = 'https://dev-issuer.fleet.invalid/';
export const DEV_AUDIENCE = 'fleet-dev-client';
const DEV_KEY_FILE = 'dev-issuer-key.pem';
const DEV_TOKEN_TTL_SEC = 600;

export interface DevIssuerKey {
  kid: string;
  privateKey: KeyObject;
  publicKey: KeyObject;
}

/** Loads the development signing key, creating it atomically (mode 0600) on first use. */
export function loadOrCreateDevIssuerKey(dataDir: string): DevIssuerKey {
  const file = path.join(dataDir, DEV_KEY_FILE);
  if (!fs.existsSync(file)) {
    fs.mkdirSync(dataDir, { recursive: true, mode: 0o755 });
    const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const tmp = `${file}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
    fs.writeFileSync(tmp, privateKey.export({ format: 'pem', type: 'pkcs8' }), { mode: 0o600 });
    try {
      // link() fails if another process created the key first: keep theirs.
      fs.linkSync(tmp, file);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    } finally {
      fs.unlinkSync(tmp);
    }
  }
  const st = fs.statSync(file);
  if ((st.mode & 0o077) !== 0) fs.chmodSync(file, 0o600);
  const privateKey = createPrivateKey(fs.readFileSync(file, 'utf8'));
  const publicKey = createPublicKey(privateKey);
  return { kid: rsaThumbprint(publicKey).slice(0, 16), privateKey, publicKey };
}

/** A stable, non-reversible subject for an e-mail at the development issuer. */
function devSubject(email: string): string {
  return `dev|${createHash('sha256').update(email.toLowerCase()).digest('hex').slice(0, 24)}`;
}

/** Signs a development ID token (RS256) for an e-mail, marked verified. */
export function signDevIdToken(
  key: DevIssuerKey,
  input: { email: string; name?: string; clock: Clock; ttlSec?: number },
): string {
  const iat = Math.floor(input.clock.now() / 1000);
  const payload: Record<string, unknown> = {
    iss: DEV_ISSUER,
    aud: DEV_AUDIENCE,
    sub: devSubject(input.email),
    email: input.email,
    email_verified: true,
    iat,
    exp: iat + (input.ttlSec ?? DEV_TOKEN_TTL_SEC),
    // Every token differs, even two for one user in the same second (each is usable once).
    jti: randomUUID(),
  };
  if (input.name) payload.name = input.name;
  return jwt.sign(payload, key.privateKey, { algorithm: 'RS256', keyid: key.kid });
}

/** In-process key resolver for the development issuer; the key is read on first use. */
export function createDevKeyResolver(dataDir: string): KeyResolver {
  let key: DevIssuerKey | null = null;
  const load = (): DevIssuerKey => (key ??= loadOrCreateDevIssuerKey(dataDir));
  return {
    issuer: DEV_ISSUER,
    audience: DEV_AUDIENCE,
    async algorithms() {
      return ID_TOKEN_ALGORITHMS.filter((a) => a === 'RS256');
    },
    async getKey(kid) {
      const k = load();
      if (kid !== null && kid !== k.kid) return { key: null, reason: 'unknown key id' };
      return { key: { kid: k.kid, alg: 'RS256', key: k.publicKey } };
    },
    async warm() {
      load();
    },
    status() {
      return { issuer: DEV_ISSUER, kind: 'development', discovered: true, jwksUri: null, lastError: null };
    },
  };
}
