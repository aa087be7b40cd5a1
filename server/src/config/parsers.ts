/**
 * The small named parsers of the settings table (settings.ts). Each turns one variable's raw
 * text into a value and the issues it found, every issue with a stable code. Messages name
 * what to do and never echo the value (secrets, or URLs that hold one).
 */
import path from 'node:path';
import { parseDurationMs } from '../lib/duration';
import { parseSigningKey, SigningKeyError, SIGNING_ALGS, type SigningAlg } from '../lib/jws-keys';
import { NoteError, parseVerifierKey } from '../services/audit/note-verify';
import { CheckpointKeyError, parseEd25519PrivateKey } from '../services/audit/signed-note';
import {
  decodeKey32,
  directoryProblem,
  HOSTNAME_RE,
  isHostOrIp,
  isLoopbackHost,
  isReadableFile,
  isTrustProxyEntry,
  parseUrl,
  weakSecretReason,
} from './checks';
import type { DatabaseSsl, NodeEnv, SiemProvider } from './types';

/** Stable issue codes (documented in the README under the settings table). */
export const ISSUE_CODES = {
  NOT_A_NUMBER: 'not a whole number',
  OUT_OF_RANGE: 'a number or duration outside its bounds',
  NOT_A_DURATION: 'not a duration (900, 900s, 15m, 24h, 7d)',
  NOT_A_BOOLEAN: 'not true/false',
  NOT_ALLOWED: 'not one of the allowed values',
  MALFORMED: 'not in the required form (name, host, URL, list entry)',
  INSECURE: 'refused or risky for security: plain http/tcp, no TLS, no password, trust everything',
  WEAK_SECRET: 'a secret or key that is short, guessable or not random',
  BAD_KEY: 'a key that cannot be used (format, algorithm, expiry)',
  UNREADABLE: 'a file or directory that cannot be used',
  REQUIRED: 'missing, and required by the environment or another setting',
  CONFLICT: 'disagrees with another setting',
  NOTICE: 'a warning about a working but unusual choice',
  UNKNOWN_SETTING: 'a variable under this service’s prefixes that is not a setting (a typo)',
} as const;
export type IssueCode = keyof typeof ISSUE_CODES;

export interface Issue {
  code: IssueCode;
  message: string;
  level: 'error' | 'warning';
}

export interface Parsed<T> {
  /** Absent when the text could not be read at all (the default then applies). */
  value?: T;
  issues: Issue[];
}

export interface ParseContext {
  env: NodeEnv;
  prod: boolean;
  now: number;
  cwd: string;
  /** The value of a setting earlier in the table (undefined when unset, skipped or unreadable). */
  value(name: string): unknown;
}

export type Parser<T> = (raw: string, ctx: ParseContext) => Parsed<T>;

export const error = (code: IssueCode, message: string): Issue => ({ code, message, level: 'error' });
export const warning = (code: IssueCode, message: string): Issue => ({ code, message, level: 'warning' });
const ok = <T>(value: T, ...issues: Issue[]): Parsed<T> => ({ value, issues });
const fail = <T>(code: IssueCode, message: string): Parsed<T> => ({ issues: [error(code, message)] });
const listOf = (raw: string): string[] =>
  raw
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);

// ---- generic

export const text: Parser<string> = (raw) => ok(raw);

/** A whole number in [min, max]; out of range the number is kept (with the error), as start-up always did. */
export function int(min: number, max: number, opts: { message?: string; pattern?: RegExp } = {}): Parser<number> {
  return function int(raw) {
    if (!(opts.pattern ?? /^\d+$/).test(raw.trim()))
      return fail('NOT_A_NUMBER', opts.message ?? `must be a whole number between ${min} and ${max}`);
    const n = Number(raw);
    if (n < min || n > max)
      return {
        value: n,
        issues: [error('OUT_OF_RANGE', opts.message ?? `must be between ${min} and ${max} (got ${n})`)],
      };
    return ok(n);
  };
}

/** A duration (900, 900s, 15m, 24h, 7d) in [minMs, maxMs], as milliseconds. */
export function duration(minMs: number, maxMs: number): Parser<number> {
  return function duration(raw) {
    const ms = parseDurationMs(raw);
    if (ms === null) return fail('NOT_A_DURATION', 'must be a duration such as 900, 900s, 15m, 24h or 7d');
    if (ms < minMs || ms > maxMs)
      return { value: ms, issues: [error('OUT_OF_RANGE', `must be between ${minMs / 1000}s and ${maxMs / 1000}s`)] };
    return ok(ms);
  };
}

/** `parse`, plus a warning when the value is above `limit` (a working but risky choice). */
export function longerThan(parse: Parser<number>, limit: number, message: string): Parser<number> {
  return function longerThan(raw, ctx) {
    const parsed = parse(raw, ctx);
    if (parsed.value !== undefined && parsed.value > limit) parsed.issues.push(warning('NOTICE', message));
    return parsed;
  };
}

/** true/false, 1/0, yes/no; `loose` also accepts any case and surrounding spaces. */
export function bool(opts: { loose?: boolean; message?: string } = {}): Parser<boolean> {
  return function bool(raw) {
    const v = opts.loose ? raw.trim().toLowerCase() : raw;
    if (['true', '1', 'yes'].includes(v)) return ok(true);
    if (['false', '0', 'no'].includes(v)) return ok(false);
    return fail('NOT_A_BOOLEAN', opts.message ?? 'must be true or false (or 1/0, yes/no)');
  };
}

export function oneOf<T extends string>(values: readonly T[], message: string): Parser<T> {
  return function oneOf(raw) {
    return (values as readonly string[]).includes(raw) ? ok(raw as T) : fail('NOT_ALLOWED', message);
  };
}

export function matching(re: RegExp, message: string): Parser<string> {
  return function matching(raw) {
    return re.test(raw) ? ok(raw) : fail('MALFORMED', message);
  };
}

export function hostOrIp(message: string): Parser<string> {
  return function hostOrIp(raw) {
    return isHostOrIp(raw) ? ok(raw) : fail('MALFORMED', message);
  };
}

/** An https:// URL (the value without trailing slashes when `trimSlash`). */
export function httpsUrl(message: string, opts: { trimSlash?: boolean } = {}): Parser<string> {
  return function httpsUrl(raw) {
    const u = parseUrl(raw);
    if (!u || u.protocol !== 'https:') return fail('MALFORMED', message);
    // Credentials belong in their own settings (or the managed identity), never in a URL that is logged.
    if (u.username || u.password) return fail('MALFORMED', 'must not carry a user or password (user:password@)');
    return ok(opts.trimSlash ? u.toString().replace(/\/+$/, '') : raw);
  };
}

export const readableFile: Parser<string> = function readableFile(raw) {
  return isReadableFile(raw) ? ok(raw) : fail('UNREADABLE', 'names no readable file');
};

/** A directory that exists or can be created, resolved against the working directory. */
export const directory: Parser<string> = function directory(raw, ctx) {
  const dir = path.resolve(ctx.cwd, raw);
  const problem = directoryProblem(dir);
  return problem ? fail('UNREADABLE', `cannot be used: ${problem}`) : ok(dir);
};

/** A path resolved against the working directory; not checked (the data directory is made at start-up). */
export const dataDir: Parser<string> = (raw, ctx) => ok(path.resolve(ctx.cwd, raw));

// ---- secrets and keys (never echoed)

export function strongSecret(hint: string): Parser<string> {
  return function strongSecret(raw) {
    const why = weakSecretReason(raw);
    return why ? fail('WEAK_SECRET', `${why}${hint}`) : ok(raw);
  };
}

export function minLength(n: number): Parser<string> {
  return function minLength(raw) {
    return raw.length < n ? fail('WEAK_SECRET', `must be at least ${n} characters`) : ok(raw);
  };
}

/** Base64 of exactly 32 random bytes (the fallback master key). */
export const key32: Parser<Buffer> = function key32(raw) {
  const key = decodeKey32(raw);
  if (!key)
    return fail('BAD_KEY', 'must be base64 of exactly 32 random bytes: generate one with `openssl rand -base64 32`');
  if (new Set(key).size < 8) return fail('WEAK_SECRET', 'has too little variety to be a random key');
  return ok(key);
};

/** `version:base64key,…`: older master keys; the first bad entry stops the list. */
export const versionedKeys: Parser<Record<string, Buffer>> = function versionedKeys(raw) {
  const keys: Record<string, Buffer> = {};
  for (const [i, entry] of listOf(raw).entries()) {
    const idx = entry.indexOf(':');
    const version = idx > 0 ? entry.slice(0, idx) : '';
    const key = idx > 0 ? decodeKey32(entry.slice(idx + 1)) : null;
    if (!/^[A-Za-z0-9._-]{1,64}$/.test(version) || !key)
      return fail(
        'BAD_KEY',
        `entry ${i + 1} must be version:base64key (the key 32 bytes); the list is comma-separated`,
      );
    // The later entry would silently replace the earlier key: data under it would be lost.
    if (Object.hasOwn(keys, version)) return fail('CONFLICT', `entry ${i + 1} repeats version ${version}`);
    if (new Set(key).size < 8) return fail('WEAK_SECRET', `entry ${i + 1} has too little variety to be a random key`);
    keys[version] = key;
  }
  return ok(keys);
};

export interface PreviousSecret {
  secret: string;
  /** ms since the epoch, or null: no expiry given. */
  notAfter: number | null;
  /** Position in the list (1-based), for messages. */
  entry: number;
}

/** `secret@2026-12-31T00:00:00Z,…`: older JWT secrets, each with the time it stops verifying. */
export const previousSecrets: Parser<PreviousSecret[]> = function previousSecrets(raw, ctx) {
  const out: PreviousSecret[] = [];
  const issues: Issue[] = [];
  listOf(raw).forEach((item, i) => {
    // The suffix after the last @ is the expiry when it starts with a digit (generated secrets are base64: no @).
    const at = item.lastIndexOf('@');
    const suffix = at > 0 ? item.slice(at + 1) : '';
    if (!(at > 0 && /^\d/.test(suffix))) {
      out.push({ secret: item, notAfter: null, entry: i + 1 });
      issues.push(
        warning(
          'NOTICE',
          `entry ${i + 1} has no expiry and is accepted forever: write it as secret@<ISO time> (e.g. the rotation time + JWT_EXPIRES_IN + 24 h)`,
        ),
      );
      return;
    }
    const ms = /^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d{1,3})?)?(Z|[+-]\d{2}:\d{2}))?$/.test(suffix)
      ? Date.parse(suffix)
      : NaN;
    if (Number.isNaN(ms)) {
      issues.push(
        error(
          'MALFORMED',
          `entry ${i + 1} has an invalid expiry after "@": use an ISO 8601 time such as 2026-12-31T00:00:00Z`,
        ),
      );
      return;
    }
    out.push({ secret: item.slice(0, at), notAfter: ms, entry: i + 1 });
    if (ms <= ctx.now)
      issues.push(
        warning('NOTICE', `entry ${i + 1} expired at ${new Date(ms).toISOString()} and is refused; remove it`),
      );
  });
  for (const s of out) {
    const why = weakSecretReason(s.secret);
    if (why) issues.push(error('WEAK_SECRET', `entry ${s.entry} ${why}`));
  }
  return ok(out, ...issues);
};

const KEYGEN_HINT =
  '`openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 | base64 -w0` (ES256) or `openssl genpkey -algorithm ed25519 | base64 -w0` (EdDSA)';

/** The access-token signing key: a PKCS#8 private key of JWT_SIGNING_ALG's type. */
export const signingKey: Parser<string> = function signingKey(raw, ctx) {
  const expectAlg = (ctx.value('JWT_SIGNING_ALG') as SigningAlg | undefined) ?? 'ES256';
  try {
    if (!parseSigningKey(raw, { expectAlg }).privateKey) return fail('BAD_KEY', 'must be a private key');
  } catch (e) {
    if (!(e instanceof SigningKeyError)) throw e;
    return fail('BAD_KEY', `${e.message}; generate one with ${KEYGEN_HINT}`);
  }
  return ok(raw);
};

export function missingSigningKey(prod: boolean): Issue {
  return prod
    ? error(
        'REQUIRED',
        `is required in production: the private key (PKCS#8 PEM or base64) that signs access tokens; generate one with ${KEYGEN_HINT}`,
      )
    : // Outside production without development secrets (NODE_ENV=test, scripts): a key for this
      // process only. Its tokens do not survive a restart nor verify on another instance.
      warning(
        'NOTICE',
        `is not set: a temporary key signs access tokens in this process only (tokens fail after a restart or on another instance); set one: ${KEYGEN_HINT}`,
      );
}

export const signingAlg = oneOf<SigningAlg>(SIGNING_ALGS, 'must be ES256 (default) or EdDSA');

/** `KEY@EXPIRY,…`: retired signing keys still published until their expiry. */
export const previousSigningKeys: Parser<Array<{ key: string; expiresAtMs: number }>> = function previousSigningKeys(
  raw,
  ctx,
) {
  const out: Array<{ key: string; expiresAtMs: number }> = [];
  const issues: Issue[] = [];
  listOf(raw).forEach((entry, i) => {
    const at = entry.lastIndexOf('@');
    const expiry = at > 0 ? Date.parse(entry.slice(at + 1)) : NaN;
    if (at <= 0 || !Number.isFinite(expiry) || !/^\d{4}-\d\d-\d\dT/.test(entry.slice(at + 1))) {
      issues.push(
        error(
          'MALFORMED',
          `entry ${i + 1} must be KEY@EXPIRY (base64 PKCS#8 or SPKI key, @, ISO 8601 time after which no token it signed is valid: retirement + JWT_EXPIRES_IN)`,
        ),
      );
      return;
    }
    const key = entry.slice(0, at);
    try {
      parseSigningKey(key, { allowPublic: true });
    } catch (e) {
      if (!(e instanceof SigningKeyError)) throw e;
      issues.push(error('BAD_KEY', `entry ${i + 1} ${e.message}`));
      return;
    }
    if (expiry <= ctx.now)
      issues.push(warning('NOTICE', `entry ${i + 1} has expired and is no longer published or accepted; remove it`));
    out.push({ key, expiresAtMs: expiry });
  });
  return ok(out, ...issues);
};

/** The Ed25519 key that signs audit checkpoints (PKCS#8, base64 or PEM). */
export const checkpointKey: Parser<string> = function checkpointKey(raw) {
  try {
    parseEd25519PrivateKey(raw);
  } catch (e) {
    return fail(
      'BAD_KEY',
      `${e instanceof CheckpointKeyError ? e.message : 'is not a usable key'}; generate one with \`openssl genpkey -algorithm ed25519 -outform DER | base64 -w0\``,
    );
  }
  return ok(raw);
};

/** Signed-note verifier keys, comma or space separated; the first bad entry is reported. */
export const verifierKeys: Parser<string[]> = function verifierKeys(raw) {
  const keys = raw.split(/[\s,]+/).filter(Boolean);
  for (const [i, k] of keys.entries()) {
    try {
      parseVerifierKey(k);
    } catch (e) {
      return {
        value: keys,
        issues: [
          error(
            'BAD_KEY',
            `entry ${i + 1} ${e instanceof NoteError ? e.message : 'is not a verifier key'} (expected name+keyid+base64 key, as GET /audit/checkpoint-key prints)`,
          ),
        ],
      };
    }
  }
  return ok(keys);
};

// ---- the database

export interface PostgresUrl {
  /** The URL the driver gets: without the TLS query parameters. */
  url: string;
  host: string;
  user: string;
  /** sslmode from the query as written (an unknown one is also an issue), or null. */
  sslmode: string | null;
  /** sslrootcert from the query (a readable file), or null. */
  caFile: string | null;
}

export const sslMode = oneOf<DatabaseSsl>(
  ['disable', 'require', 'verify-full'],
  'must be disable, require or verify-full',
);

/**
 * One postgres:// URL by the server's rules; the operations scripts (ops/db-target.ts) get
 * the same. Query parameters other than sslmode and sslrootcert are refused.
 */
export const postgresUrl: Parser<PostgresUrl> = function postgresUrl(raw, ctx) {
  const issues: Issue[] = [];
  const u = parseUrl(raw);
  let password: string | null;
  try {
    password = u ? decodeURIComponent(u.password) : null;
    if (u) decodeURIComponent(u.username);
  } catch {
    // Never echo the value: it holds the password.
    issues.push(error('MALFORMED', 'has a malformed percent-encoding (%XX) in its user or password'));
    password = null;
  }
  if (!u || (u.protocol !== 'postgres:' && u.protocol !== 'postgresql:')) {
    issues.push(
      error('MALFORMED', 'must be a postgres:// or postgresql:// URL (postgres://user:password@host:5432/dbname)'),
    );
    return { issues };
  }
  if (!u.hostname) return { issues: [...issues, error('MALFORMED', 'has no host')] };
  if (password === null) return { issues };
  if (!u.pathname || u.pathname === '/') issues.push(error('MALFORMED', 'names no database (add /dbname)'));
  else {
    try {
      decodeURIComponent(u.pathname.slice(1));
    } catch {
      issues.push(error('MALFORMED', 'has a malformed percent-encoding (%XX) in its database name'));
    }
  }
  if (ctx.prod && !password && !isLoopbackHost(u.hostname))
    issues.push(error('INSECURE', 'has no password; production databases require authentication'));
  if (
    password &&
    weakSecretReason(password) !== null &&
    ['password', 'postgres', 'secret', 'changeme', 'admin'].includes(password.toLowerCase())
  ) {
    const message = 'uses a well-known default password; set a strong one';
    issues.push(ctx.prod ? error('WEAK_SECRET', message) : warning('WEAK_SECRET', message));
  }
  // Query parameters would override what is checked here (the driver lets ?sslmode=disable,
  // ?host=… or ?password=… win over the validated settings): only the two TLS ones the
  // operations scripts also read are accepted, and they are taken out of the URL the
  // driver sees, so the TLS mode always comes from the checked value.
  for (const key of new Set(u.searchParams.keys())) {
    if (key !== 'sslmode' && key !== 'sslrootcert')
      issues.push(
        error(
          'NOT_ALLOWED',
          `query parameter "${key}" is not supported (only sslmode and sslrootcert; TLS is set with DATABASE_SSL)`,
        ),
      );
    else if (u.searchParams.getAll(key).length > 1)
      issues.push(error('CONFLICT', `query parameter "${key}" is given more than once`));
  }
  const mode = u.searchParams.get('sslmode');
  if (mode !== null && !['disable', 'require', 'verify-full'].includes(mode))
    issues.push(error('NOT_ALLOWED', 'sslmode must be disable, require or verify-full'));
  const rootCert = u.searchParams.get('sslrootcert');
  if (rootCert !== null && !isReadableFile(rootCert))
    issues.push(error('UNREADABLE', 'sslrootcert names no readable file'));
  u.searchParams.delete('sslmode');
  u.searchParams.delete('sslrootcert');
  return ok(
    {
      url: u.toString(),
      host: u.hostname,
      user: u.username,
      sslmode: mode,
      caFile: rootCert !== null && isReadableFile(rootCert) ? rootCert : null,
    },
    ...issues,
  );
};

export const appRole: Parser<string | null> = function appRole(raw, ctx) {
  if (raw !== 'fleet_app' && raw !== 'none')
    return fail(
      'NOT_ALLOWED',
      'must be fleet_app (default: connections assume the least-privileged role the migrations create) or none (the login itself is least-privileged)',
    );
  if (raw === 'fleet_app') return ok('fleet_app');
  return ctx.prod
    ? ok(
        null,
        warning(
          'INSECURE',
          'is none: make sure DATABASE_URL logs in as a role without BYPASSRLS, superuser or table ownership',
        ),
      )
    : ok(null);
};

// ---- the identity provider

/**
 * The issuer URL as written (OIDC Discovery §4.3 compares it verbatim): an issuer with no path
 * and no trailing slash (Google, Okta, oidc-provider) stays without one.
 */
export const issuerUrl: Parser<string> = function issuerUrl(raw, ctx) {
  const u = parseUrl(raw);
  if (!u || (u.protocol !== 'https:' && u.protocol !== 'http:'))
    return fail('MALFORMED', 'must be an https URL or a domain such as your-tenant.auth0.com');
  if (u.protocol === 'http:' && (ctx.prod || !isLoopbackHost(u.hostname)))
    return fail('INSECURE', 'must use https (http is accepted only for loopback hosts outside production)');
  if (u.username || u.password || u.search || u.hash)
    return fail('MALFORMED', 'must not contain credentials, a query or a fragment');
  return ok(u.pathname === '/' && !raw.trim().endsWith('/') ? u.toString().slice(0, -1) : u.toString());
};

/** The host named by AUTH0_DOMAIN (written as a domain, or as https://domain/). */
export function auth0DomainParts(raw: string): string[] {
  return raw
    .trim()
    .replace(/^https:\/\//, '')
    .replace(/\/+$/, '')
    .split(':');
}

/** AUTH0_DOMAIN: a domain, turned into the issuer https://domain/. */
export const auth0Domain: Parser<string> = function auth0Domain(raw, ctx) {
  const issues: Issue[] = [];
  // Anything but a domain would be rewritten into a wrong issuer URL (ftp://x became https://ftp//x/).
  const [host, port, extra] = auth0DomainParts(raw);
  if (extra !== undefined || !host || !HOSTNAME_RE.test(host) || (port !== undefined && !/^\d{1,5}$/.test(port)))
    issues.push(
      error(
        'MALFORMED',
        'must be a domain such as your-tenant.eu.auth0.com (or use AUTH0_ISSUER_BASE_URL for a full URL)',
      ),
    );
  const issuer = issuerUrl(`https://${raw.replace(/^https?:\/\//, '').replace(/\/+$/, '')}/`, ctx);
  return { value: issuer.value, issues: [...issues, ...issuer.issues] };
};

export const clientId: Parser<string> = function clientId(raw) {
  return raw !== raw.trim()
    ? fail('MALFORMED', "has leading or trailing spaces (it must equal the ID tokens' aud exactly)")
    : ok(raw);
};

// ---- SIEM

export const SIEM_PROVIDERS: readonly SiemProvider[] = [
  'splunk',
  'datadog',
  'elastic',
  'webhook',
  'syslog',
  'sentinel',
];
export const siemProvider = oneOf(SIEM_PROVIDERS, `must be one of ${SIEM_PROVIDERS.join(', ')}`);

/** The SIEM endpoint for SIEM_PROVIDER: tcp:// or tls:// for syslog, https:// otherwise (http:// to loopback outside production). */
export const siemEndpoint: Parser<string> = function siemEndpoint(raw, ctx) {
  const provider = ctx.value('SIEM_PROVIDER') as SiemProvider;
  const u = parseUrl(raw);
  const okProtocols = provider === 'syslog' ? ['tcp:', 'tls:'] : ['https:', 'http:'];
  if (!u || !okProtocols.includes(u.protocol))
    return fail(
      'MALFORMED',
      provider === 'syslog' ? 'must be tcp://host:port or tls://host:port' : 'must be an https URL',
    );
  if (ctx.prod && (u.protocol === 'http:' || u.protocol === 'tcp:') && !isLoopbackHost(u.hostname))
    return fail('INSECURE', 'must use TLS (https:// or tls://) in production');
  if (provider === 'sentinel' && u.protocol !== 'https:')
    return {
      value: raw,
      issues: [error('INSECURE', 'must be the https:// data collection endpoint with SIEM_PROVIDER=sentinel')],
    };
  return ok(raw);
};

export const allowPrivateDestinations: Parser<boolean> = function allowPrivateDestinations(raw, ctx) {
  const parsed = bool()(raw, ctx);
  if (parsed.value && ctx.prod)
    parsed.issues.push(
      warning('INSECURE', 'is on in production: tenant audit streams may reach internal addresses (SSRF)'),
    );
  return parsed;
};

// ---- archive

export const storageAccountUrl: Parser<string> = function storageAccountUrl(raw, ctx) {
  const u = parseUrl(raw);
  if (!u || (u.protocol !== 'https:' && !(u.protocol === 'http:' && !ctx.prod && isLoopbackHost(u.hostname))))
    return fail('MALFORMED', 'must be an https URL such as https://account.blob.core.windows.net');
  return ok(raw);
};

/** An Azure Storage connection string with a credential, https in production. Never echoed. */
export const storageConnectionString: Parser<string> = function storageConnectionString(raw, ctx) {
  const issues: Issue[] = [];
  if (!/AccountName=|UseDevelopmentStorage=true|BlobEndpoint=/i.test(raw)) {
    issues.push(
      error('MALFORMED', 'does not look like an Azure Storage connection string (AccountName=…;AccountKey=…)'),
    );
  } else {
    // Key=value pairs; values may contain '=' (base64 keys, SAS tokens).
    const parts = new Map<string, string>();
    for (const pair of raw.split(';')) {
      const i = pair.indexOf('=');
      if (i > 0) parts.set(pair.slice(0, i).trim().toLowerCase(), pair.slice(i + 1).trim());
    }
    const emulator = parts.get('usedevelopmentstorage')?.toLowerCase() === 'true';
    if (!emulator && !parts.get('accountkey') && !parts.get('sharedaccesssignature'))
      issues.push(error('REQUIRED', 'has no credential (AccountKey=… or SharedAccessSignature=…)'));
    const protocol = parts.get('defaultendpointsprotocol')?.toLowerCase();
    const blobEndpoint = parts.get('blobendpoint');
    const endpoint = blobEndpoint ? parseUrl(blobEndpoint) : null;
    if (blobEndpoint && (!endpoint || (endpoint.protocol !== 'https:' && endpoint.protocol !== 'http:')))
      issues.push(error('MALFORMED', 'BlobEndpoint must be an https URL'));
    if (ctx.prod && !emulator && (protocol === 'http' || endpoint?.protocol === 'http:'))
      issues.push(
        error(
          'INSECURE',
          'must use https in production (DefaultEndpointsProtocol=https, BlobEndpoint=https://…): the key or SAS would travel in clear text',
        ),
      );
  }
  if (ctx.prod && /UseDevelopmentStorage=true/i.test(raw))
    issues.push(error('INSECURE', 'points at the storage emulator in production'));
  return ok(raw, ...issues);
};

// ---- HTTP

/** Comma-separated browser origins: explicit, no path, query or credentials; https in production. */
export const origins: Parser<string[]> = function origins(raw, ctx) {
  const out: string[] = [];
  const issues: Issue[] = [];
  for (const o of listOf(raw)) {
    const u = parseUrl(o);
    if (o === '*') issues.push(error('NOT_ALLOWED', 'must list explicit origins; * is not allowed with credentials'));
    else if (o.includes('*'))
      issues.push(
        error('NOT_ALLOWED', `entry "${o}" holds a wildcard, which origins never match: list each origin in full`),
      );
    else if (
      !u ||
      (u.protocol !== 'https:' && u.protocol !== 'http:') ||
      u.username ||
      u.password ||
      u.search ||
      u.hash ||
      (u.pathname !== '/' && u.pathname !== '')
    ) {
      // An entry with credentials is not echoed.
      issues.push(
        error(
          'MALFORMED',
          `entry ${u?.username || u?.password ? `${out.length + 1} (with credentials)` : `"${o}"`} must be an origin such as https://app.example.com (no path, query or credentials)`,
        ),
      );
    } else if (ctx.prod && u.protocol !== 'https:')
      issues.push(error('INSECURE', `entry "${o}" must use https in production`));
    else out.push(u.origin);
  }
  if (out.length === 0 && issues.length === 0)
    issues.push(warning('NOTICE', 'lists no origin: browsers on other origins cannot call the API'));
  return ok(out, ...issues);
};

/** Express `trust proxy`: a hop count, true/false, or a list of addresses, subnets and names. */
export const trustProxy: Parser<boolean | number | string> = function trustProxy(raw, ctx) {
  if (/^\d+$/.test(raw)) {
    const hops = Number(raw);
    return hops > 5
      ? ok(
          hops,
          warning(
            'INSECURE',
            `trusts ${raw} proxy hops: more hops than there are proxies lets clients choose their IP (X-Forwarded-For); set the real number`,
          ),
        )
      : ok(hops);
  }
  if (raw === 'false') return ok(false);
  if (raw === 'true') {
    if (ctx.prod)
      return fail(
        'INSECURE',
        'true trusts every X-Forwarded-For hop (clients choose their IP, the rate limits and the login lockout); in production give the number of proxy hops (1) or their addresses/subnets (10.0.0.0/8)',
      );
    return ok(
      true,
      warning(
        'INSECURE',
        'true trusts every X-Forwarded-For hop (clients can spoof their IP); prefer the number of proxies or their addresses',
      ),
    );
  }
  const entries = raw.split(',').map((e) => e.trim());
  if (entries.every((e) => isTrustProxyEntry(e))) {
    // A subnet this wide (0.0.0.0/0, ::/0, 0.0.0.0/1 …) is everyone: the same as true.
    const wide = entries.filter((e) => {
      const m = /^(.+)\/([\d.]+)$/.exec(e);
      if (!m) return false;
      const mask = m[2] as string;
      // A dotted netmask (255.0.0.0) counts its set bits.
      const bits = mask.includes('.')
        ? mask.split('.').reduce((n, o) => n + (Number(o) >>> 0).toString(2).replace(/0/g, '').length, 0)
        : Number(mask);
      return bits < ((m[1] as string).includes(':') ? 7 : 8); // fc00::/7 and 10.0.0.0/8 are private
    });
    if (wide.length > 0) {
      const message = `${wide.join(', ')} trusts X-Forwarded-For from nearly every address (clients choose their IP, the rate limits and the login lockout); give the proxies' own addresses or subnets (10.0.0.0/8) or the number of hops`;
      return ctx.prod ? fail('INSECURE', message) : ok(raw, warning('INSECURE', message));
    }
    return ok(raw);
  }
  return fail(
    'MALFORMED',
    'must be a hop count, true/false, or a list of addresses/subnets (loopback, linklocal, uniquelocal, 10.0.0.0/8, ::1)',
  );
};

export const redisUrl: Parser<string> = function redisUrl(raw, ctx) {
  const u = parseUrl(raw);
  if (!u && /^rediss?:\/\//i.test(raw))
    return fail('MALFORMED', 'is not a valid URL: check the host and the port (1-65535)');
  if (!u || (u.protocol !== 'redis:' && u.protocol !== 'rediss:'))
    return fail('MALFORMED', 'must be a redis:// or rediss:// URL');
  if (ctx.prod && u.protocol === 'redis:' && !isLoopbackHost(u.hostname))
    return ok(raw, warning('INSECURE', 'is not TLS (rediss://) for a non-loopback host'));
  return ok(raw);
};

export const platformTenant: Parser<string> = function platformTenant(raw) {
  return raw === '_platform' || /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/.test(raw)
    ? ok(raw)
    : fail(
        'MALFORMED',
        'must be _platform (default) or a tenant id: 1-64 letters, digits, dots, dashes or underscores, starting with a letter or digit',
      );
};

export const nodeEnv = oneOf<NodeEnv>(['development', 'test', 'production'], 'must be development, test or production');
