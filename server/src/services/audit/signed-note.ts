/**
 * Writing signed checkpoints: C2SP tlog-checkpoint bodies signed as C2SP signed-note with
 * Ed25519 (CONTRACT.md §8, docs/AUDIT.md "Formats").
 *
 *   body      = "<origin>\n<tree size>\n<base64 root hash>\n"
 *   note      = body || "\n" || "— <key name> <base64(key id || signature)>\n"
 *   key id    = SHA-256(<key name> || 0x0A || 0x01 || public key)[0:4]
 *   verifier  = "<key name>+<hex key id>+<base64(0x01 || public key)>"
 *
 * The signature is over the body bytes. Reading and verifying notes is note-verify.ts (kept
 * apart, as the Merkle verifier is).
 */
import { createHash, createPrivateKey, createPublicKey, sign, type KeyObject } from 'node:crypto';

/** Ed25519 in signed-note's signature type table. */
const ED25519_TYPE = 0x01;
const EM_DASH = '\u2014';

export class CheckpointKeyError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CheckpointKeyError';
  }
}

export interface CheckpointSigner {
  /** The signed-note key name (no spaces, no '+'). */
  readonly keyName: string;
  /** 4-byte key id, hex. */
  readonly keyIdHex: string;
  /** name+hex(id)+base64(0x01||pubkey). */
  readonly verifierKey: string;
  signBody(body: string): string;
}

/** Key names and origins: printable, no spaces, no '+' (signed-note §"Signed notes"). */
const NOTE_NAME_RE = /^[\x21-\x2a\x2c-\x7e]{1,256}$/;

/** Parses an Ed25519 private key from base64 of its PKCS#8 DER (or PEM text). */
export function parseEd25519PrivateKey(text: string): KeyObject {
  let key: KeyObject;
  try {
    const t = text.trim();
    key = t.startsWith('-----BEGIN')
      ? createPrivateKey(t)
      : createPrivateKey({ key: Buffer.from(t, 'base64'), format: 'der', type: 'pkcs8' });
  } catch {
    throw new CheckpointKeyError('is not a PKCS#8 private key (base64 of the DER, or PEM)');
  }
  if (key.asymmetricKeyType !== 'ed25519')
    throw new CheckpointKeyError(
      `is a ${key.asymmetricKeyType ?? 'unknown'} key; an Ed25519 key is needed (openssl genpkey -algorithm ed25519)`,
    );
  return key;
}

/** The raw 32-byte Ed25519 public key of a private key. */
function rawPublicKey(priv: KeyObject): Buffer {
  const spki = createPublicKey(priv).export({ format: 'der', type: 'spki' });
  return Buffer.from(spki.subarray(spki.length - 32));
}

function noteKeyId(keyName: string, publicKey: Buffer): Buffer {
  return createHash('sha256')
    .update(Buffer.from(keyName, 'utf8'))
    .update(Buffer.from([0x0a, ED25519_TYPE]))
    .update(publicKey)
    .digest()
    .subarray(0, 4);
}

export function createCheckpointSigner(keyName: string, priv: KeyObject): CheckpointSigner {
  if (!NOTE_NAME_RE.test(keyName))
    throw new CheckpointKeyError('key name must be printable ASCII without spaces or "+"');
  const pub = rawPublicKey(priv);
  const keyId = noteKeyId(keyName, pub);
  const verifierKey = `${keyName}+${keyId.toString('hex')}+${Buffer.concat([Buffer.from([ED25519_TYPE]), pub]).toString('base64')}`;
  return {
    keyName,
    keyIdHex: keyId.toString('hex'),
    verifierKey,
    signBody(body) {
      if (!body.endsWith('\n')) throw new Error('a note body ends with a newline');
      const sig = sign(null, Buffer.from(body, 'utf8'), priv);
      return `${body}\n${EM_DASH} ${keyName} ${Buffer.concat([keyId, sig]).toString('base64')}\n`;
    },
  };
}

/** The tlog-checkpoint body. */
export function checkpointBody(origin: string, treeSize: number, rootHash: Buffer): string {
  if (!NOTE_NAME_RE.test(origin)) throw new Error('origin must be printable ASCII without spaces or "+"');
  if (!Number.isSafeInteger(treeSize) || treeSize < 0) throw new Error('tree size must be a non-negative integer');
  if (rootHash.length !== 32) throw new Error('root hash must be 32 bytes');
  return `${origin}\n${treeSize}\n${rootHash.toString('base64')}\n`;
}

/** fleet-security-api/<AUDIT_LOG_NAME>/<tenant id> */
export function checkpointOrigin(logName: string, tenantId: string): string {
  return `fleet-security-api/${logName}/${tenantId}`;
}

/** The signing key's name: one key signs every tenant's checkpoints of this deployment. */
export function checkpointKeyName(logName: string): string {
  return `fleet-security-api/${logName}`;
}
