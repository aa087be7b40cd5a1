/**
 * Reading and verifying signed checkpoints (C2SP signed-note + tlog-checkpoint, Ed25519),
 * written independently of the signer (signed-note.ts): used by GET /audit/verify,
 * `npm run audit:verify` and the offline verifier. Everything here refuses rather than
 * guesses: a note must parse exactly, carry a signature by a known key that verifies, and
 * name the expected origin.
 */
import { createHash, createPublicKey, verify as edVerify, type KeyObject } from 'node:crypto';

export interface VerifierKey {
  name: string;
  id: Buffer;
  publicKey: KeyObject;
  text: string;
}

export interface Checkpoint {
  origin: string;
  size: number;
  root: Buffer;
  /** Extension lines after the root (none are written by this service). */
  extensions: string[];
  /** The names of the known keys whose signatures verified. */
  signedBy: string[];
  note: string;
}

export class NoteError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'NoteError';
  }
}

const NAME = /^[\x21-\x2a\x2c-\x7e]+$/;
const B64 = /^[A-Za-z0-9+/]+={0,2}$/;
const SPKI_ED25519_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');

/** Parses `name+hex(keyid)+base64(0x01 || pubkey)`; throws NoteError when malformed or inconsistent. */
export function parseVerifierKey(text: string): VerifierKey {
  const t = text.trim();
  // The name has no '+'; the base64 key may.
  const m = /^([^+]+)\+([^+]+)\+(.+)$/.exec(t);
  if (!m) throw new NoteError('a verifier key is name+keyid+key');
  const [, name, idHex, keyB64] = m as unknown as [string, string, string, string];
  if (!NAME.test(name)) throw new NoteError('the verifier key name is not valid');
  if (!/^[0-9a-f]{8}$/.test(idHex)) throw new NoteError('the verifier key id is not 8 hex digits');
  if (!B64.test(keyB64)) throw new NoteError('the verifier key is not base64');
  const raw = Buffer.from(keyB64, 'base64');
  if (raw.length !== 33 || raw[0] !== 0x01)
    throw new NoteError('the verifier key is not an Ed25519 key (type 0x01 and 32 bytes)');
  const pub = raw.subarray(1);
  const id = createHash('sha256')
    .update(name, 'utf8')
    .update(Buffer.from([0x0a]))
    .update(raw)
    .digest()
    .subarray(0, 4);
  if (id.toString('hex') !== idHex) throw new NoteError('the verifier key id does not match its name and key');
  const publicKey = createPublicKey({ key: Buffer.concat([SPKI_ED25519_PREFIX, pub]), format: 'der', type: 'spki' });
  return { name, id, publicKey, text: t };
}

/**
 * Verifies a checkpoint note against known keys and (when given) the expected origin. At
 * least one signature by a known key must verify; a signature line naming a known key that
 * does not verify is refused. Unknown keys' lines are ignored (witness cosignatures).
 */
export function verifyCheckpointNote(note: string, keys: readonly VerifierKey[], expectedOrigin?: string): Checkpoint {
  if (note.length > 1_000_000) throw new NoteError('note too large');
  if (!note.endsWith('\n')) throw new NoteError('a note ends with a newline');
  const split = note.lastIndexOf('\n\n');
  if (split < 0) throw new NoteError('a note has a body, a blank line and signature lines');
  const body = note.slice(0, split + 1);
  const sigLines = note.slice(split + 2, -1).split('\n');
  if (sigLines.length === 0 || sigLines.some((l) => l === '')) throw new NoteError('malformed signature lines');
  const signedBy: string[] = [];
  for (const line of sigLines) {
    const m = /^\u2014 (\S+) (\S+)$/.exec(line);
    if (!m) throw new NoteError('malformed signature line');
    const [, name, b64] = m as unknown as [string, string, string];
    if (!B64.test(b64)) throw new NoteError('signature is not base64');
    const sig = Buffer.from(b64, 'base64');
    if (sig.length < 5) throw new NoteError('signature too short');
    const id = sig.subarray(0, 4);
    const key = keys.find((k) => k.name === name && k.id.equals(id));
    if (!key) continue;
    const ok = sig.length === 68 && edVerify(null, Buffer.from(body, 'utf8'), key.publicKey, sig.subarray(4));
    if (!ok) throw new NoteError(`the signature by ${name} does not verify`);
    signedBy.push(name);
  }
  if (signedBy.length === 0) throw new NoteError('no signature by a known key');
  const lines = body.slice(0, -1).split('\n');
  if (lines.length < 3) throw new NoteError('a checkpoint body has an origin, a size and a root hash');
  const [origin, sizeText, rootText, ...extensions] = lines as [string, string, string, ...string[]];
  if (!origin || /\s|\+/.test(origin)) throw new NoteError('invalid origin');
  if (expectedOrigin !== undefined && origin !== expectedOrigin)
    throw new NoteError(`origin ${JSON.stringify(origin)} is not the expected ${JSON.stringify(expectedOrigin)}`);
  if (!/^(0|[1-9]\d{0,15})$/.test(sizeText) || !Number.isSafeInteger(Number(sizeText)))
    throw new NoteError('invalid tree size');
  if (!B64.test(rootText)) throw new NoteError('invalid root hash');
  const root = Buffer.from(rootText, 'base64');
  if (root.length !== 32 || root.toString('base64') !== rootText)
    throw new NoteError('root hash is not base64 of 32 bytes');
  return { origin, size: Number(sizeText), root, extensions, signedBy, note };
}
