/**
 * The offline verifier (`npm run audit:verify-offline`; docs/AUDIT.md "Auditor's procedure"):
 * no database, only what was published and archived.
 *
 *   1. every checkpoint note verifies (Ed25519 signature by one of the given keys, origin
 *      fleet-security-api/<log>/<tenant>, file name = its size);
 *   2. notes of equal size state the same root (no fork);
 *   3. the archived rows (NDJSON as archive/format.ts writes them) are put in chain order —
 *      by the leaf ids published beside each checkpoint (<size>.ids), else by id — and the
 *      chain is recomputed (row_hash of each entry from its fields, its seq and the previous
 *      hash), and the Merkle tree rebuilt from those hashes; at every checkpointed size the
 *      rebuilt root must be the signed one. Equal roots at every size imply the successive
 *      checkpoints are consistent (each tree extends the previous one).
 * The first failure is reported. Checkpoints beyond the last archived row cannot be checked
 * against rows and are listed as such.
 *
 * Independent of the writers: the chain hashing is chain.ts's (itself independent of the SQL
 * sealer), the Merkle hashing is merkle-verify.ts's, the note parsing note-verify.ts's.
 */
import fs from 'node:fs';
import path from 'node:path';
import readline from 'node:readline';
import { createHash } from 'node:crypto';
import type { CanonicalFields } from './chain';
import { TreeBuilder } from './merkle-verify';
import { NoteError, verifyCheckpointNote, type VerifierKey } from './note-verify';

export interface OfflineCheckpoint {
  file: string;
  tenantId: string;
  size: number;
  root: Buffer;
}

export interface OfflineTenantReport {
  tenantId: string;
  checkpoints: number;
  rows: number;
  verifiedSizes: number[];
  /** Checkpoints whose size is beyond the archived rows (not checkable offline). */
  uncovered: number[];
}

export interface OfflineReport {
  ok: boolean;
  failure: string | null;
  tenants: OfflineTenantReport[];
}

class Failure extends Error {}

/** Audit ids as numbers while exact (smaller maps for millions of rows), else as text. */
type IdKey = number | string;
const idKey = (id: string): IdKey => (id.length <= 15 ? Number(id) : id);

const CHAIN_TAG = 'fleet-audit-chain-v1\n';
const GENESIS = Buffer.alloc(32);

/**
 * The chain entry hash (format in migrations/021_audit_chain.sql), written again here: one
 * string per entry, one digest update (a netstring's length is the UTF-8 byte length).
 */
export function entryHash(f: CanonicalFields, seq: number, prev: Buffer): Buffer {
  let s = '';
  for (const v of [
    String(seq),
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
  ]) {
    s += v === null ? '-,' : `${Buffer.byteLength(v, 'utf8')}:${v},`;
  }
  return createHash('sha256').update(CHAIN_TAG, 'utf8').update(prev).update(s, 'utf8').digest();
}

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

/** Every file under dir (recursively). */
function walk(dir: string): string[] {
  const out: string[] = [];
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) out.push(...walk(p));
    else if (e.isFile()) out.push(p);
  }
  return out.sort();
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

export interface OfflineOptions {
  keys: readonly VerifierKey[];
  /** The checkpoints directory (files <size> and optional <size>.ids, any layout). */
  checkpointsDir: string;
  /** NDJSON files (archived blobs, possibly concatenated). */
  rowFiles: readonly string[];
  /** AUDIT_LOG_NAME of the deployment; default: from the first key's name. */
  logName?: string;
  onProgress?: (msg: string) => void;
}

export async function verifyOffline(o: OfflineOptions): Promise<OfflineReport> {
  const tenants: OfflineTenantReport[] = [];
  try {
    if (o.keys.length === 0) throw new Failure('no verifier key given');
    const keyName = (o.keys[0] as VerifierKey).name;
    const prefix = o.logName !== undefined ? `fleet-security-api/${o.logName}/` : `${keyName}/`;

    // 1-2: notes
    const byTenant = new Map<string, Map<number, OfflineCheckpoint>>();
    const orders = new Map<string, Map<number, IdKey>>(); // tenant -> seq -> audit id
    const files = walk(o.checkpointsDir);
    const idFiles: string[] = [];
    for (const f of files) {
      const base = path.basename(f);
      if (/^\d+\.ids$/.test(base)) {
        idFiles.push(f);
        continue;
      }
      if (!/^(0|[1-9]\d{0,15})$/.test(base)) continue;
      const note = fs.readFileSync(f, 'utf8');
      let cp;
      try {
        cp = verifyCheckpointNote(note, o.keys);
      } catch (err) {
        throw new Failure(`${f}: ${err instanceof NoteError ? err.message : 'unreadable note'}`);
      }
      if (
        !cp.origin.startsWith(prefix) ||
        cp.origin.length === prefix.length ||
        cp.origin.slice(prefix.length).includes('/')
      ) {
        throw new Failure(`${f}: origin ${JSON.stringify(cp.origin)} is not ${prefix}<tenant>`);
      }
      if (cp.size !== Number(base))
        throw new Failure(`${f}: the note states size ${cp.size}, the file is named ${base}`);
      const tenantId = cp.origin.slice(prefix.length);
      const m = byTenant.get(tenantId) ?? new Map<number, OfflineCheckpoint>();
      const prev = m.get(cp.size);
      if (prev && !prev.root.equals(cp.root))
        throw new Failure(
          `${f}: two signed checkpoints of size ${cp.size} state different roots (${prev.file}): the log forked`,
        );
      m.set(cp.size, { file: f, tenantId, size: cp.size, root: cp.root });
      byTenant.set(tenantId, m);
    }
    if (byTenant.size === 0) throw new Failure(`no checkpoint notes under ${o.checkpointsDir}`);
    for (const f of idFiles) {
      // the tenant is the directory's (checkpoints/<tenant>/<size>.ids) — matched through the note beside it
      const noteFile = f.slice(0, -'.ids'.length);
      const tenantId = [...byTenant.entries()].find(([, m]) => [...m.values()].some((c) => c.file === noteFile))?.[0];
      if (!tenantId) continue;
      const lines = fs.readFileSync(f, 'utf8').split('\n');
      const head = /^from (0|[1-9]\d{0,15})$/.exec(lines[0] ?? '');
      if (!head) throw new Failure(`${f}: does not start with "from <size>"`);
      const m = orders.get(tenantId) ?? new Map<number, IdKey>();
      let seq = Number(head[1]);
      for (const id of lines.slice(1)) {
        if (id === '') continue;
        if (!/^[1-9]\d{0,18}$/.test(id)) throw new Failure(`${f}: "${id.slice(0, 40)}" is not an audit id`);
        seq += 1;
        const known = m.get(seq);
        if (known !== undefined && known !== idKey(id))
          throw new Failure(`${f}: leaf ${seq} is ${id}, another order file says ${known}`);
        m.set(seq, idKey(id));
      }
      orders.set(tenantId, m);
    }

    // 3: rows, streamed. A row is hashed as soon as its chain position is next (by the published
    // leaf order); rows that arrive ahead of their turn wait in memory; positions the order
    // files do not cover take the remaining rows in id order at the end.
    interface State {
      report: OfflineTenantReport;
      sizes: number[];
      si: number;
      cps: Map<number, OfflineCheckpoint>;
      order: Map<number, IdKey>;
      pending: Map<IdKey, CanonicalFields>;
      placed: Set<IdKey>;
      builder: TreeBuilder;
      prev: Buffer;
      seq: number;
      max: number;
    }
    const states = new Map<string, State>();
    for (const [tenantId, cps] of [...byTenant.entries()].sort(([a], [b]) => a.localeCompare(b))) {
      const sizes = [...cps.keys()].sort((a, b) => a - b);
      const report: OfflineTenantReport = {
        tenantId,
        checkpoints: sizes.length,
        rows: 0,
        verifiedSizes: [],
        uncovered: [],
      };
      tenants.push(report);
      states.set(tenantId, {
        report,
        sizes,
        si: 0,
        cps,
        order: orders.get(tenantId) ?? new Map(),
        pending: new Map(),
        placed: new Set(),
        builder: new TreeBuilder(),
        prev: GENESIS,
        seq: 0,
        max: sizes[sizes.length - 1] as number,
      });
    }
    const place = (st: State, f: CanonicalFields) => {
      const k = idKey(f.id);
      if (st.placed.has(k)) throw new Failure(`tenant ${st.report.tenantId}: audit row ${f.id} is placed twice`);
      st.placed.add(k);
      st.seq += 1;
      const h = entryHash(f, st.seq, st.prev);
      st.builder.addRowHash(h);
      st.prev = h;
      st.report.rows += 1;
      while (st.si < st.sizes.length && st.sizes[st.si] === st.seq) {
        const cp = st.cps.get(st.seq) as OfflineCheckpoint;
        if (!st.builder.root().equals(cp.root)) {
          throw new Failure(
            `tenant ${st.report.tenantId}: the archived rows do not rebuild the tree signed in ${cp.file} (size ${st.seq}): a row up to that position was changed, removed, inserted or reordered`,
          );
        }
        st.report.verifiedSizes.push(st.seq);
        st.si += 1;
      }
    };
    const advance = (st: State) => {
      for (;;) {
        if (st.seq >= st.max) return;
        const id = st.order.get(st.seq + 1);
        if (id === undefined) return;
        const f = st.pending.get(id);
        if (!f) return;
        st.pending.delete(id);
        place(st, f);
      }
    };
    for (const file of o.rowFiles) {
      const rl = readline.createInterface({
        input: fs.createReadStream(file, { encoding: 'utf8' }),
        crlfDelay: Infinity,
      });
      let n = 0;
      for await (const line of rl) {
        n += 1;
        if (line === '') continue;
        let f: CanonicalFields;
        try {
          f = archivedRowFields(line);
        } catch (err) {
          throw new Failure(`${file}:${n}: ${(err as Error).message}`);
        }
        const st = states.get(f.tenantId);
        if (!st) continue;
        const k = idKey(f.id);
        if (st.placed.has(k) || st.pending.has(k)) {
          const dup = st.pending.get(k);
          if (dup && JSON.stringify(dup) !== JSON.stringify(f))
            throw new Failure(`${file}:${n}: row ${f.id} appears twice with different content`);
          if (!dup) continue; // the same row again (overlapping exports): already placed
        }
        st.pending.set(k, f);
        advance(st);
      }
    }
    const byIdOrder = (a: IdKey, b: IdKey) => {
      const x = String(a);
      const y = String(b);
      return x.length - y.length || (x < y ? -1 : x > y ? 1 : 0);
    };
    for (const st of states.values()) {
      const rest = [...st.pending.keys()].sort(byIdOrder);
      let k = 0;
      while (st.seq < st.max) {
        const ordered = st.order.get(st.seq + 1);
        let id: IdKey | undefined;
        if (ordered !== undefined) {
          if (!st.pending.has(ordered)) {
            throw new Failure(
              `tenant ${st.report.tenantId}: leaf ${st.seq + 1} is audit row ${ordered}, which is not in the archived rows (deleted before archiving, or the rows are incomplete)`,
            );
          }
          id = ordered;
        } else {
          while (k < rest.length && !st.pending.has(rest[k] as IdKey)) k += 1;
          id = rest[k];
        }
        if (id === undefined) break; // the archived rows end here
        const f = st.pending.get(id) as CanonicalFields;
        st.pending.delete(id);
        place(st, f);
      }
      st.report.uncovered = st.sizes.slice(st.si).filter((x) => x > 0);
      o.onProgress?.(
        `tenant ${st.report.tenantId}: ${st.report.verifiedSizes.length} checkpoint(s) rebuilt from ${st.report.rows} archived row(s)`,
      );
    }
    return { ok: true, failure: null, tenants };
  } catch (err) {
    if (err instanceof Failure) return { ok: false, failure: err.message, tenants };
    throw err;
  }
}
