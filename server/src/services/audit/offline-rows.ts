/**
 * Reading archived audit rows for the offline verifier (offline-verify.ts), byte by byte.
 *
 * A block of NDJSON (whole lines) becomes a RowBatch: per row its tenant, audit id and the
 * chain encoding of its fields — NS(id) || NS(tenant_id) || … || NS(created_at), everything
 * the chain entry hashes after NS(seq) (format in chain.ts / migrations/021_audit_chain.sql).
 * The verifier then only prepends the tag, the previous hash and NS(seq) and hashes.
 *
 * Two readers give the same result for every line:
 *   - the fast one takes lines exactly as archive/format.ts renders them (fixed key order,
 *     text values without escapes, valid UTF-8) and copies the field bytes straight from the
 *     line; `before`/`after` are validated as JSON by a strict scanner and taken as their exact
 *     text (what the archive wrote). It declines anything else;
 *   - archivedRowFields() (JSON.parse and the general scanner) takes every other line and gives
 *     the failure reasons.
 * Lines are split as readline does (\n, \r\n and a lone \r end a line), so line numbers in
 * failures are those of a text editor reading the file the same way.
 *
 * No code shared with the writers (the archive and the chain sealer).
 */
import type { CanonicalFields } from './chain';

export class Failure extends Error {}

/** Audit ids as numbers while exact (smaller maps for millions of rows), else as text. */
export type IdKey = number | string;
export const idKey = (id: string): IdKey => (id.length <= 15 ? Number(id) : id);

const q = (v: unknown): string => (v === null || v === undefined ? 'null' : JSON.stringify(v));

/**
 * Fast path for lines exactly as archive/format.ts renders them: the text around before/after
 * is re-rendered from the parsed values, so their raw jsonb text is what lies between.
 * null when the line is laid out otherwise (the general scanner then takes over).
 */
function rawBeforeAfter(line: string, p: Record<string, unknown>): { before: string; after: string } | null {
  const head = `{"id":${q(p.id)},"tenant_id":${q(p.tenant_id)},"user_id":${q(p.user_id)},"action":${q(p.action)},"resource_type":${q(p.resource_type)},"resource_id":${q(p.resource_id)},"before":`;
  const tail = `,"ip_address":${q(p.ip_address)},"user_agent":${q(p.user_agent)},"result":${q(p.result)},"error_message":${q(p.error_message)},"severity":${q(p.severity)},"request_id":${q(p.request_id)},"created_at":${q(p.created_at)}}`;
  if (!line.startsWith(head) || !line.endsWith(tail)) return null;
  const mid = line.slice(head.length, line.length - tail.length);
  const SEP = ',"after":';
  const first = mid.indexOf(SEP);
  // The separator is always there; when it occurs once, it is the one.
  if (first >= 0 && mid.indexOf(SEP, first + 1) < 0)
    return { before: mid.slice(0, first), after: mid.slice(first + SEP.length) };
  const want = (v: unknown) => JSON.stringify(v ?? null);
  let at = first;
  while (at >= 0) {
    const b = mid.slice(0, at);
    const a = mid.slice(at + ',"after":'.length);
    try {
      if (want(JSON.parse(b)) === want(p.before) && want(JSON.parse(a)) === want(p.after))
        return { before: b, after: a };
    } catch {
      // not this split
    }
    at = mid.indexOf(',"after":', at + 1);
  }
  return null;
}

/**
 * Top-level value spans of one JSON object line, without re-serializing: before/after are
 * hashed as the exact jsonb text the archive wrote.
 */
export function topLevelRaw(line: string): Map<string, string> {
  const out = new Map<string, string>();
  let i = 0;
  const ws = () => {
    while (i < line.length && /\s/.test(line[i] as string)) i += 1;
  };
  const skipString = () => {
    if (line[i] !== '"') throw new Failure('expected a string');
    i += 1;
    while (i < line.length && line[i] !== '"') i += line[i] === '\\' ? 2 : 1;
    if (i >= line.length) throw new Failure('unterminated string');
    i += 1;
  };
  const skipValue = () => {
    ws();
    const c = line[i];
    if (c === '"') return skipString();
    if (c === '{' || c === '[') {
      let depth = 0;
      while (i < line.length) {
        const d = line[i];
        if (d === '"') {
          skipString();
          continue;
        }
        if (d === '{' || d === '[') depth += 1;
        if (d === '}' || d === ']') {
          depth -= 1;
          if (depth === 0) {
            i += 1;
            return;
          }
        }
        i += 1;
      }
      throw new Failure('unterminated value');
    }
    while (i < line.length && !/[,}\s]/.test(line[i] as string)) i += 1;
  };
  ws();
  if (line[i] !== '{') throw new Failure('a row is a JSON object');
  i += 1;
  ws();
  if (line[i] === '}') return out;
  for (;;) {
    ws();
    const ks = i;
    skipString();
    const key = JSON.parse(line.slice(ks, i)) as string;
    ws();
    if (line[i] !== ':') throw new Failure('expected ":"');
    i += 1;
    ws();
    const vs = i;
    skipValue();
    out.set(key, line.slice(vs, i).trim());
    ws();
    if (line[i] === ',') {
      i += 1;
      continue;
    }
    if (line[i] === '}') break;
    throw new Failure('expected "," or "}"');
  }
  return out;
}

const TEXT_FIELDS = [
  'id',
  'tenant_id',
  'user_id',
  'action',
  'resource_type',
  'resource_id',
  'ip_address',
  'user_agent',
  'result',
  'error_message',
  'severity',
  'request_id',
  'created_at',
] as const;

/** An archived row's fields in the chain's canonical text forms. */
export function archivedRowFields(line: string): CanonicalFields {
  let raw: Map<string, string>;
  let parsed: Record<string, unknown>;
  try {
    parsed = JSON.parse(line) as Record<string, unknown>;
    if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) throw new Failure('a row is a JSON object');
    const fast = rawBeforeAfter(line, parsed);
    raw = fast
      ? new Map([
          ['before', fast.before],
          ['after', fast.after],
        ])
      : topLevelRaw(line);
  } catch (err) {
    throw new Failure(`not a JSON object (${err instanceof Error ? err.message : 'parse error'})`);
  }
  const text: Record<string, string | null> = {};
  for (const k of TEXT_FIELDS) {
    const v = parsed[k];
    if (v !== null && typeof v !== 'string') throw new Failure(`"${k}" must be a string or null`);
    text[k] = v ?? null;
  }
  const json = (k: string): string | null => {
    const r = raw.get(k);
    if (r === undefined) throw new Failure(`"${k}" is missing`);
    return r === 'null' ? null : r;
  };
  // inet::text carries the prefix length; the archive has the address as PostgreSQL prints it.
  let ip = text.ip_address ?? null;
  if (ip !== null && !ip.includes('/')) ip = ip.includes(':') ? `${ip}/128` : `${ip}/32`;
  for (const k of ['id', 'tenant_id', 'action', 'resource_type', 'result', 'severity', 'created_at'] as const)
    if (text[k] === null) throw new Failure(`"${k}" is missing`);
  return {
    id: text.id as string,
    tenantId: text.tenant_id as string,
    userId: text.user_id ?? null,
    action: text.action as string,
    resourceType: text.resource_type as string,
    resourceId: text.resource_id ?? null,
    before: json('before'),
    after: json('after'),
    ipAddress: ip,
    userAgent: text.user_agent ?? null,
    result: text.result as string,
    errorMessage: text.error_message ?? null,
    severity: text.severity as string,
    requestId: text.request_id ?? null,
    createdAt: text.created_at as string,
  };
}

/** The chain encoding of the fields after NS(seq): NS(id) || NS(tenant_id) || … || NS(created_at). */
export function encodeFields(f: CanonicalFields): Buffer {
  let s = '';
  for (const v of fieldValues(f)) s += v === null ? '-,' : `${Buffer.byteLength(v, 'utf8')}:${v},`;
  return Buffer.from(s, 'utf8');
}

const fieldValues = (f: CanonicalFields): (string | null)[] => [
  f.id,
  f.tenantId,
  f.userId,
  f.action,
  f.resourceType,
  f.resourceId,
  f.before,
  f.after,
  f.ipAddress,
  f.userAgent,
  f.result,
  f.errorMessage,
  f.severity,
  f.requestId,
  f.createdAt,
];

/** Per-row details that only unusual rows need. */
export interface RowExtra {
  /** The audit id's text, when it is not String(key). */
  id?: string;
  /** The key, when it is text (ids longer than 15 characters). */
  key?: string;
  /**
   * JSON.stringify of the fields, for rows holding text that is not well-formed UTF-16 (lone
   * surrogates written as \ud800 escapes): two such rows may encode to the same bytes and
   * still differ.
   */
  strict?: string;
}

/** The rows of one block of NDJSON, in file order. */
export interface RowBatch {
  count: number;
  /** Lines in the block, as readline counts them (empty ones included). */
  lines: number;
  /** The rows' field encodings, back to back; row i spans [bodyEnd[i-1] (0 for i = 0), bodyEnd[i]). */
  body: Uint8Array;
  bodyEnd: Int32Array;
  /** Numeric id keys (idKey); rows with extra.key hold text keys instead. */
  key: Float64Array;
  /** The row's line within the block (1-based). */
  line: Int32Array;
  /** Index into tenants. */
  tenant: Int32Array;
  tenants: string[];
  extra: Map<number, RowExtra>;
  /** The first line that is not a valid row (no rows after it are read). */
  failure: { line: number; message: string } | null;
}

// ---- the byte-level reader ---------------------------------------------------------------

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const ascii = (s: string): Uint8Array => Uint8Array.from(s, (c) => c.charCodeAt(0));

/** Length of the well-formed UTF-8 sequence at p (lead byte >= 0x80), or 0. */
function utf8Seq(b: Uint8Array, p: number, end: number): number {
  const c = b[p] as number;
  const cont = (i: number, lo = 0x80, hi = 0xbf): boolean => {
    if (p + i >= end) return false;
    const x = b[p + i] as number;
    return x >= lo && x <= hi;
  };
  if (c >= 0xc2 && c <= 0xdf) return cont(1) ? 2 : 0;
  if (c === 0xe0) return cont(1, 0xa0) && cont(2) ? 3 : 0;
  if ((c >= 0xe1 && c <= 0xec) || c === 0xee || c === 0xef) return cont(1) && cont(2) ? 3 : 0;
  if (c === 0xed) return cont(1, 0x80, 0x9f) && cont(2) ? 3 : 0;
  if (c === 0xf0) return cont(1, 0x90) && cont(2) && cont(3) ? 4 : 0;
  if (c >= 0xf1 && c <= 0xf3) return cont(1) && cont(2) && cont(3) ? 4 : 0;
  if (c === 0xf4) return cont(1, 0x80, 0x8f) && cont(2) && cont(3) ? 4 : 0;
  return 0;
}

const isHex = (c: number): boolean => (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x46) || (c >= 0x61 && c <= 0x66);

/**
 * End of the JSON string starting at p (b[p] is '"'), or -1: unterminated, a raw control
 * character, invalid UTF-8, or (when !escapes) any escape at all.
 */
function scanString(b: Uint8Array, p: number, end: number, escapes: boolean): number {
  p += 1;
  while (p < end) {
    let c = b[p] as number;
    // the common case: printable ASCII other than '"' and '\\'
    while (c >= 0x20 && c < 0x80 && c !== QUOTE && c !== BACKSLASH && p + 1 < end) c = b[++p] as number;
    if (c === QUOTE) return p + 1;
    if (c < 0x20) return -1;
    if (c === BACKSLASH) {
      if (!escapes || p + 1 >= end) return -1;
      const e = b[p + 1] as number;
      if (e === 0x75) {
        if (p + 5 >= end) return -1;
        for (let k = 2; k < 6; k += 1) if (!isHex(b[p + k] as number)) return -1;
        p += 6;
      } else if (
        e === QUOTE ||
        e === BACKSLASH ||
        e === 0x2f ||
        e === 0x62 ||
        e === 0x66 ||
        e === 0x6e ||
        e === 0x72 ||
        e === 0x74
      ) {
        p += 2;
      } else return -1;
    } else if (c < 0x80) p += 1;
    else {
      const n = utf8Seq(b, p, end);
      if (n === 0) return -1;
      p += n;
    }
  }
  return -1;
}

const isDigit = (c: number | undefined): boolean => c !== undefined && c >= 0x30 && c <= 0x39;

/** End of the JSON number at p, or -1 (RFC 8259 grammar). */
function scanNumber(b: Uint8Array, p: number, end: number): number {
  if (b[p] === 0x2d) p += 1;
  if (p >= end) return -1;
  if (b[p] === 0x30) p += 1;
  else if (isDigit(b[p])) while (p < end && isDigit(b[p])) p += 1;
  else return -1;
  if (p < end && b[p] === 0x2e) {
    p += 1;
    if (p >= end || !isDigit(b[p])) return -1;
    while (p < end && isDigit(b[p])) p += 1;
  }
  if (p < end && (b[p] === 0x65 || b[p] === 0x45)) {
    p += 1;
    if (p < end && (b[p] === 0x2b || b[p] === 0x2d)) p += 1;
    if (p >= end || !isDigit(b[p])) return -1;
    while (p < end && isDigit(b[p])) p += 1;
  }
  return p;
}

const TRUE = ascii('true');
const FALSE = ascii('false');
const NULL = ascii('null');

function literal(b: Uint8Array, p: number, end: number, lit: Uint8Array): number {
  if (p + lit.length > end) return -1;
  for (let k = 0; k < lit.length; k += 1) if (b[p + k] !== lit[k]) return -1;
  return p + lit.length;
}

const isWs = (c: number | undefined): boolean => c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d;
function skipWs(b: Uint8Array, p: number, end: number): number {
  while (p < end && isWs(b[p])) p += 1;
  return p;
}

const OBJ = 1;
const ARR = 2;
const stack: number[] = [];

/**
 * End of the JSON value starting exactly at p, or -1 when it is not valid JSON (as JSON.parse
 * would refuse it) or holds invalid UTF-8. Iterative: nesting depth costs no stack frames.
 */
function scanJson(b: Uint8Array, p: number, end: number): number {
  stack.length = 0;
  for (;;) {
    // a value at p
    p = skipWs(b, p, end);
    if (p >= end) return -1;
    const c = b[p] as number;
    if (c === 0x7b) {
      p = skipWs(b, p + 1, end);
      if (b[p] === 0x7d && p < end) p += 1;
      else {
        stack.push(OBJ);
        if (b[p] !== QUOTE || p >= end) return -1;
        p = scanString(b, p, end, true);
        if (p < 0) return -1;
        p = skipWs(b, p, end);
        if (p >= end || b[p] !== 0x3a) return -1;
        p += 1;
        continue;
      }
    } else if (c === 0x5b) {
      p = skipWs(b, p + 1, end);
      if (b[p] === 0x5d && p < end) p += 1;
      else {
        stack.push(ARR);
        continue;
      }
    } else if (c === QUOTE) p = scanString(b, p, end, true);
    else if (c === 0x2d || isDigit(c)) p = scanNumber(b, p, end);
    else if (c === 0x74) p = literal(b, p, end, TRUE);
    else if (c === 0x66) p = literal(b, p, end, FALSE);
    else if (c === 0x6e) p = literal(b, p, end, NULL);
    else return -1;
    if (p < 0) return -1;
    // after a value: close containers or go on to the next member
    for (;;) {
      if (stack.length === 0) return p;
      p = skipWs(b, p, end);
      if (p >= end) return -1;
      const top = stack[stack.length - 1];
      const d = b[p] as number;
      if (d === 0x2c) {
        p += 1;
        if (top === OBJ) {
          p = skipWs(b, p, end);
          if (p >= end || b[p] !== QUOTE) return -1;
          p = scanString(b, p, end, true);
          if (p < 0) return -1;
          p = skipWs(b, p, end);
          if (p >= end || b[p] !== 0x3a) return -1;
          p += 1;
        }
        break;
      }
      if ((top === OBJ && d === 0x7d) || (top === ARR && d === 0x5d)) {
        stack.pop();
        p += 1;
        continue;
      }
      return -1;
    }
  }
}

/** How each top-level member of an archived line is read, in the archive's order. */
const REQUIRED = 0;
const NULLABLE = 1;
const JSON_TEXT = 2;
const IP = 3;
const LAYOUT: readonly [string, number][] = [
  ['{"id":', REQUIRED],
  [',"tenant_id":', REQUIRED],
  [',"user_id":', NULLABLE],
  [',"action":', REQUIRED],
  [',"resource_type":', REQUIRED],
  [',"resource_id":', NULLABLE],
  [',"before":', JSON_TEXT],
  [',"after":', JSON_TEXT],
  [',"ip_address":', IP],
  [',"user_agent":', NULLABLE],
  [',"result":', REQUIRED],
  [',"error_message":', NULLABLE],
  [',"severity":', REQUIRED],
  [',"request_id":', NULLABLE],
  [',"created_at":', REQUIRED],
];
const KEYS: readonly Uint8Array[] = LAYOUT.map(([k]) => ascii(k));
const KINDS = Int32Array.from(LAYOUT, ([, kind]) => kind);

/** Accumulates a batch; grows its buffers as needed. */
class BatchWriter {
  body: Uint8Array;
  op = 0;
  count = 0;
  bodyEnd = new Int32Array(1024);
  key = new Float64Array(1024);
  line = new Int32Array(1024);
  tenant = new Int32Array(1024);
  tenants: string[] = [];
  extra = new Map<number, RowExtra>();
  private lastTenant = -1;
  private lastTenantBytes: Uint8Array = new Uint8Array(0);

  constructor(estimate: number) {
    this.body = new Uint8Array(Math.max(4096, estimate));
  }

  ensure(n: number): void {
    if (this.op + n <= this.body.length) return;
    const next = new Uint8Array(Math.max(this.body.length * 2, this.op + n));
    next.set(this.body.subarray(0, this.op));
    this.body = next;
  }

  writeDecimal(n: number): void {
    const out = this.body;
    if (n < 10) out[this.op++] = 0x30 + n;
    else if (n < 100) {
      out[this.op++] = 0x30 + ((n / 10) | 0);
      out[this.op++] = 0x30 + (n % 10);
    } else if (n < 1000) {
      out[this.op++] = 0x30 + ((n / 100) | 0);
      out[this.op++] = 0x30 + (((n / 10) | 0) % 10);
      out[this.op++] = 0x30 + (n % 10);
    } else {
      const s = String(n);
      for (let k = 0; k < s.length; k += 1) out[this.op++] = s.charCodeAt(k);
    }
  }

  /** NS(bytes b[s..e)) (+ suffix bytes, counted in the length). */
  netstring(b: Uint8Array, s: number, e: number, suffix?: Uint8Array): void {
    const len = e - s + (suffix ? suffix.length : 0);
    this.ensure(len + 24);
    this.writeDecimal(len);
    const out = this.body;
    let op = this.op;
    out[op++] = 0x3a;
    if (e - s > 64) {
      out.set(b.subarray(s, e), op);
      op += e - s;
    } else for (let k = s; k < e; k += 1) out[op++] = b[k] as number;
    if (suffix) for (let k = 0; k < suffix.length; k += 1) out[op++] = suffix[k] as number;
    out[op++] = 0x2c;
    this.op = op;
  }

  nullField(): void {
    this.ensure(2);
    this.body[this.op++] = 0x2d;
    this.body[this.op++] = 0x2c;
  }

  /** Index of the tenant named by the bytes b[s..e), interned. */
  tenantIndex(b: Uint8Array, s: number, e: number): number {
    const last = this.lastTenantBytes;
    if (this.lastTenant >= 0 && last.length === e - s) {
      let k = 0;
      while (k < last.length && last[k] === b[s + k]) k += 1;
      if (k === last.length) return this.lastTenant;
    }
    const name = Buffer.from(b.buffer, b.byteOffset + s, e - s).toString('utf8');
    return this.tenantByName(name, b.slice(s, e));
  }

  tenantByName(name: string, bytes?: Uint8Array): number {
    let i = this.tenants.indexOf(name);
    if (i < 0) {
      i = this.tenants.length;
      this.tenants.push(name);
    }
    this.lastTenant = i;
    this.lastTenantBytes = bytes ?? Buffer.from(name, 'utf8');
    return i;
  }

  /** Ends row `count` (its body is what was written since the previous row). */
  endRow(key: number, line: number, tenant: number): void {
    const i = this.count;
    if (i === this.bodyEnd.length) {
      const grow = <T extends Int32Array | Float64Array>(a: T, make: (n: number) => T): T => {
        const n = make(a.length * 2);
        n.set(a);
        return n;
      };
      this.bodyEnd = grow(this.bodyEnd, (n) => new Int32Array(n));
      this.key = grow(this.key, (n) => new Float64Array(n));
      this.line = grow(this.line, (n) => new Int32Array(n));
      this.tenant = grow(this.tenant, (n) => new Int32Array(n));
    }
    this.bodyEnd[i] = this.op;
    this.key[i] = key;
    this.line[i] = line;
    this.tenant[i] = tenant;
    this.count = i + 1;
  }

  batch(lines: number, failure: RowBatch['failure']): RowBatch {
    return {
      count: this.count,
      lines,
      body: this.body,
      bodyEnd: this.bodyEnd,
      key: this.key,
      line: this.line,
      tenant: this.tenant,
      tenants: this.tenants,
      extra: this.extra,
      failure,
    };
  }
}

const SUFFIX_V4 = ascii('/32');
const SUFFIX_V6 = ascii('/128');

/**
 * The fast reader: one line b[a..e) exactly in the archive's layout. Writes the row and returns
 * true, or writes nothing and returns false (the general reader decides).
 */
function fastRow(b: Uint8Array, a: number, e: number, w: BatchWriter, lineNo: number): boolean {
  const start = w.op;
  let p = a;
  let idS = 0;
  let idE = 0;
  let tS = 0;
  let tE = 0;
  for (let f = 0; f < KEYS.length; f += 1) {
    const lit = KEYS[f] as Uint8Array;
    const n = lit.length;
    if (p + n > e) return decline(w, start);
    for (let k = 0; k < n; k += 1) if (b[p + k] !== lit[k]) return decline(w, start);
    p += n;
    const kind = KINDS[f];
    if (kind === JSON_TEXT) {
      const end = scanJson(b, p, e);
      if (end < 0) return decline(w, start);
      if (end - p === 4 && b[p] === 0x6e && b[p + 1] === 0x75 && b[p + 2] === 0x6c && b[p + 3] === 0x6c) w.nullField();
      else w.netstring(b, p, end);
      p = end;
      continue;
    }
    if (b[p] === QUOTE) {
      const end = scanString(b, p, e, false);
      if (end < 0) return decline(w, start);
      const s = p + 1;
      const t = end - 1;
      if (kind === IP) {
        let slash = false;
        let colon = false;
        for (let k = s; k < t; k += 1) {
          if (b[k] === 0x2f) slash = true;
          else if (b[k] === 0x3a) colon = true;
        }
        w.netstring(b, s, t, slash ? undefined : colon ? SUFFIX_V6 : SUFFIX_V4);
      } else w.netstring(b, s, t);
      if (f === 0) {
        idS = s;
        idE = t;
      } else if (f === 1) {
        tS = s;
        tE = t;
      }
      p = end;
    } else if (kind !== REQUIRED && literal(b, p, e, NULL) > 0) {
      w.nullField();
      p += 4;
    } else return decline(w, start);
  }
  if (p + 1 !== e || b[p] !== 0x7d) return decline(w, start);
  // the id's key: digits only (up to 15) as a number, else as idKey() has it
  let key = 0;
  let digits = idE - idS <= 15;
  for (let k = idS; digits && k < idE; k += 1) {
    const c = b[k] as number;
    if (c < 0x30 || c > 0x39) digits = false;
    else key = key * 10 + (c - 0x30);
  }
  const i = w.count;
  if (!digits || (idE - idS > 1 && b[idS] === 0x30) || idE === idS) {
    const id = Buffer.from(b.buffer, b.byteOffset + idS, idE - idS).toString('utf8');
    const k = idKey(id);
    if (typeof k === 'string') {
      w.extra.set(i, { id, key: k });
      key = 0;
    } else {
      key = k;
      if (String(k) !== id) w.extra.set(i, { id });
    }
  }
  w.endRow(key, lineNo, w.tenantIndex(b, tS, tE));
  return true;
}

function decline(w: BatchWriter, start: number): false {
  w.op = start;
  return false;
}

/** The general reader for one line (any layout); throws Failure with the reason. */
function generalRow(text: string, w: BatchWriter, lineNo: number): void {
  const f = archivedRowFields(text);
  const values = fieldValues(f);
  const enc = encodeFields(f);
  w.ensure(enc.length);
  w.body.set(enc, w.op);
  w.op += enc.length;
  const i = w.count;
  const k = idKey(f.id);
  const extra: RowExtra = {};
  if (typeof k === 'string') extra.key = k;
  if (String(k) !== f.id) extra.id = f.id;
  if (values.some((v) => v !== null && !v.isWellFormed())) extra.strict = JSON.stringify(f);
  if (extra.id !== undefined || extra.key !== undefined || extra.strict !== undefined) w.extra.set(i, extra);
  w.endRow(typeof k === 'number' ? k : 0, lineNo, w.tenantByName(f.tenantId));
}

/**
 * Reads the rows of a block of NDJSON: whole lines (it ends with "\n"), or the end of a file
 * (`final`). Stops at the first line that is not a row (failure).
 */
export function readRows(bytes: Uint8Array, final: boolean): RowBatch {
  const block = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const w = new BatchWriter(block.length);
  const len = block.length;
  let lineNo = 0;
  let pos = 0;
  let nextCr = block.indexOf(0x0d);
  const one = (a: number, e: number): RowBatch['failure'] => {
    lineNo += 1;
    if (a === e) return null;
    if (fastRow(block, a, e, w, lineNo)) return null;
    try {
      generalRow(Buffer.from(block.buffer, block.byteOffset + a, e - a).toString('utf8'), w, lineNo);
      return null;
    } catch (err) {
      if (err instanceof Failure) return { line: lineNo, message: err.message };
      throw err;
    }
  };
  while (pos < len) {
    const nl = block.indexOf(0x0a, pos);
    const last = nl < 0;
    const segEnd = last ? len : nl;
    if (last && !final) throw new Error('a block ends with a newline unless it is the end of a file');
    let failure: RowBatch['failure'] = null;
    if (nextCr >= 0 && nextCr < pos) nextCr = block.indexOf(0x0d, pos);
    if (nextCr < 0 || nextCr >= segEnd) failure = one(pos, segEnd);
    else {
      // readline's split: "\r\n", "\n" and a lone "\r" each end a line
      let e = segEnd;
      if (block[e - 1] === 0x0d) e -= 1;
      let s = pos;
      for (let k = pos; k < e && !failure; k += 1) {
        if (block[k] === 0x0d) {
          failure = one(s, k);
          s = k + 1;
        }
      }
      if (!failure) failure = one(s, e);
    }
    if (failure) return w.batch(lineNo, failure);
    pos = last ? len : nl + 1;
  }
  return w.batch(lineNo, null);
}
