/** Pure checks the setting parsers share: secret strength, hosts, files, keys. None echoes a value. */
import fs from 'node:fs';
import { isIP } from 'node:net';
import path from 'node:path';

const WEAK_WORDS = [
  'secret',
  'changeme',
  'change_me',
  'change-me',
  'password',
  'passwd',
  'test',
  'default',
  'example',
  'sample',
  'admin',
  'qwerty',
  'letmein',
  'jwt',
  'token',
  'key',
  'your',
  'mysecret',
  'supersecret',
  'fleet',
  'dev',
  'demo',
  'insecure',
];

/** Why a secret is weak, or null when it looks strong. Never includes the value. */
export function weakSecretReason(value: string): string | null {
  if (value.length < 32) return 'is shorter than 32 characters';
  const lower = value.toLowerCase();
  const distinct = new Set(value).size;
  if (distinct < 10) return 'has too little variety (fewer than 10 distinct characters)';
  for (let len = 1; len <= 16; len++) {
    if (value.length % len === 0 && value.slice(0, len).repeat(value.length / len) === value)
      return 'is a repeated pattern';
  }
  let stripped = lower;
  for (const w of WEAK_WORDS) stripped = stripped.split(w).join('');
  stripped = stripped.replace(/[^a-z0-9]/g, '').replace(/(.)\1+/g, '$1');
  if (stripped !== lower.replace(/[^a-z0-9]/g, '').replace(/(.)\1+/g, '$1') && stripped.length < 20) {
    return 'is built from a known weak word (secret, changeme, password, test, default, …)';
  }
  const counts = new Map<string, number>();
  for (const ch of value) counts.set(ch, (counts.get(ch) ?? 0) + 1);
  let entropy = 0;
  for (const c of counts.values()) {
    const p = c / value.length;
    entropy -= p * Math.log2(p);
  }
  if (entropy < 3.0) return 'has low entropy';
  // Runs along the alphabet, the digits or a keyboard row, in either direction: when most
  // neighbouring characters are such steps, the value was typed, not generated.
  const rows = ['0123456789', 'abcdefghijklmnopqrstuvwxyz', '1234567890', 'qwertyuiop', 'asdfghjkl', 'zxcvbnm'];
  let steps = 0;
  for (let i = 1; i < lower.length; i++) {
    const a = lower[i - 1] as string;
    const b = lower[i] as string;
    if (rows.some((r) => r.includes(a + b) || r.includes(b + a))) steps += 1;
  }
  if (steps >= (lower.length - 1) * 0.5) return 'is a keyboard or alphabet sequence';
  return null;
}

const LOOPBACK_HOSTS = new Set(['localhost', '127.0.0.1', '::1', '[::1]']);
export function isLoopbackHost(host: string | null | undefined): boolean {
  if (!host) return false;
  const h = host.toLowerCase();
  if (LOOPBACK_HOSTS.has(h) || h.endsWith('.localhost')) return true;
  return isIP(h) === 4 && h.startsWith('127.');
}

export const HOSTNAME_RE =
  /^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;

/** A host name, or an IP address (IPv6 with or without brackets). */
export function isHostOrIp(h: string): boolean {
  return isIP(h.replace(/^\[|\]$/g, '')) !== 0 || HOSTNAME_RE.test(h);
}

/** One TRUST_PROXY list entry as Express (proxy-addr) accepts it: a name, an address, or address/prefix or /netmask. */
export function isTrustProxyEntry(entry: string): boolean {
  if (['loopback', 'linklocal', 'uniquelocal'].includes(entry)) return true;
  const [addr, range, extra] = entry.split('/');
  if (extra !== undefined || !addr) return false;
  const family = isIP(addr);
  if (family === 0) return false;
  if (range === undefined) return true;
  if (/^\d{1,3}$/.test(range)) return Number(range) <= (family === 4 ? 32 : 128);
  return family === 4 && isIP(range) === 4;
}

/** A directory that exists, or could be created under the nearest existing directory. */
export function directoryProblem(dir: string): string | null {
  let p = dir;
  for (;;) {
    try {
      return fs.statSync(p).isDirectory() ? null : `${p} is not a directory`;
    } catch {
      const parent = path.dirname(p);
      if (parent === p) return null;
      p = parent;
    }
  }
}

export function isReadableFile(file: string): boolean {
  try {
    fs.accessSync(file, fs.constants.R_OK);
    return fs.statSync(file).isFile();
  } catch {
    return false;
  }
}

export function parseUrl(raw: string): URL | null {
  try {
    return new URL(raw);
  } catch {
    return null;
  }
}

/** Decodes strict base64 (standard alphabet, padded) of exactly 32 bytes. */
export function decodeKey32(raw: string): Buffer | null {
  const v = raw.trim();
  if (!/^[A-Za-z0-9+/]{43}=$/.test(v)) return null;
  const buf = Buffer.from(v, 'base64');
  return buf.length === 32 && buf.toString('base64') === v ? buf : null;
}
