/**
 * RFC 4226 HOTP and RFC 6238 TOTP (HMAC-SHA-1 by default, 6 digits, 30 s steps), and RFC 4648
 * base32 for the shared secret in otpauth:// URIs. Pure functions; time comes from the caller.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';

const TOTP_PERIOD_SEC = 30;
const TOTP_DIGITS = 6;
const B32 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';

export function base32Encode(buf: Buffer): string {
  let bits = 0;
  let value = 0;
  let out = '';
  for (const byte of buf) {
    value = (value << 8) | byte;
    bits += 8;
    while (bits >= 5) {
      out += B32[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  if (bits > 0) out += B32[(value << (5 - bits)) & 31];
  return out;
}

export function base32Decode(s: string): Buffer {
  const clean = s.toUpperCase().replace(/=+$/, '');
  let bits = 0;
  let value = 0;
  const out: number[] = [];
  for (const ch of clean) {
    const v = B32.indexOf(ch);
    if (v < 0) throw new Error('invalid base32');
    value = (value << 5) | v;
    bits += 5;
    if (bits >= 8) {
      out.push((value >>> (bits - 8)) & 255);
      bits -= 8;
    }
  }
  return Buffer.from(out);
}

/** RFC 4226 §5.3: the HOTP value of `counter`, zero-padded to `digits`. */
export function hotp(
  secret: Buffer,
  counter: number,
  digits = TOTP_DIGITS,
  algorithm: 'sha1' | 'sha256' | 'sha512' = 'sha1',
): string {
  const msg = Buffer.alloc(8);
  msg.writeBigUInt64BE(BigInt(counter));
  const mac = createHmac(algorithm, secret).update(msg).digest();
  const offset = (mac[mac.length - 1] as number) & 0x0f;
  const bin = (mac.readUInt32BE(offset) & 0x7fffffff) % 10 ** digits;
  return String(bin).padStart(digits, '0');
}

/** The RFC 6238 time step of a Unix time in ms. */
export function timeStep(nowMs: number, period = TOTP_PERIOD_SEC): number {
  return Math.floor(nowMs / 1000 / period);
}

export function totp(
  secret: Buffer,
  nowMs: number,
  digits = TOTP_DIGITS,
  algorithm: 'sha1' | 'sha256' | 'sha512' = 'sha1',
): string {
  return hotp(secret, timeStep(nowMs), digits, algorithm);
}

/**
 * The time step (cur-1, cur or cur+1: ±1 step of skew) whose code equals `code`, or null.
 * Every candidate is compared in constant time and all three are always computed.
 */
export function matchTotp(secret: Buffer, code: string, nowMs: number): number | null {
  if (!/^\d{6}$/.test(code)) return null;
  const cur = timeStep(nowMs);
  let found: number | null = null;
  for (const step of [cur - 1, cur, cur + 1]) {
    if (timingSafeEqual(Buffer.from(hotp(secret, step)), Buffer.from(code)) && found === null) found = step;
  }
  return found;
}

export function otpauthUri(opts: { issuer: string; account: string; secret: Buffer }): string {
  const label = encodeURIComponent(`${opts.issuer}:${opts.account}`);
  const q = new URLSearchParams({
    secret: base32Encode(opts.secret),
    issuer: opts.issuer,
    algorithm: 'SHA1',
    digits: String(TOTP_DIGITS),
    period: String(TOTP_PERIOD_SEC),
  });
  return `otpauth://totp/${label}?${q.toString()}`;
}
