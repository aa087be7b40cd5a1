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
import { computeRowHash, GENESIS_HASH, type CanonicalFields } from './chain';
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

const TEXT_FIELDS = ['id', 'tenant_id', 'user_id', 'action', 'resource_type', 'resource_id', 'ip_address', 'user_agent', 'result', 'error_message', 'severity', 'request_id', 'created_at'] as const;

/** An archived row's fields in the chain's canonical text forms. */
export function archivedRowFields(line: string): CanonicalFields {
  let raw: Map<string, string>;
  let parsed: Record<string, unknown>;
  try {
    raw = topLevelRaw(line);
    parsed = JSON.parse(line) as Record<string, unknown>;
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
  for (const k of ['id', 'tenant_id', 'action', 'resource_type', 'result', 'severity', 'created_at'] as const) if (text[k] === null) throw new Failure(`"${k}" is missing`);
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
    const orders = new Map<string, Map<number, string>>(); // tenant -> seq -> audit id
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
      if (!cp.origin.startsWith(prefix) || cp.origin.length === prefix.length || cp.origin.slice(prefix.length).includes('/')) {
        throw new Failure(`${f}: origin ${JSON.stringify(cp.origin)} is not ${prefix}<tenant>`);
      }
      if (cp.size !== Number(base)) throw new Failure(`${f}: the note states size ${cp.size}, the file is named ${base}`);
      const tenantId = cp.origin.slice(prefix.length);
      const m = byTenant.get(tenantId) ?? new Map<number, OfflineCheckpoint>();
      const prev = m.get(cp.size);
      if (prev && !prev.root.equals(cp.root)) throw new Failure(`${f}: two signed checkpoints of size ${cp.size} state different roots (${prev.file}): the log forked`);
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
      const m = orders.get(tenantId) ?? new Map<number, string>();
      let seq = Number(head[1]);
      for (const id of lines.slice(1)) {
        if (id === '') continue;
        if (!/^[1-9]\d{0,18}$/.test(id)) throw new Failure(`${f}: "${id.slice(0, 40)}" is not an audit id`);
        seq += 1;
        const known = m.get(seq);
        if (known !== undefined && known !== id) throw new Failure(`${f}: leaf ${seq} is ${id}, another order file says ${known}`);
        m.set(seq, id);
      }
      orders.set(tenantId, m);
    }

    // 3: rows
    const rows = new Map<string, Map<string, CanonicalFields>>(); // tenant -> id -> fields
    for (const file of o.rowFiles) {
      const rl = readline.createInterface({ input: fs.createReadStream(file, { encoding: 'utf8' }), crlfDelay: Infinity });
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
        if (!byTenant.has(f.tenantId)) continue;
        const m = rows.get(f.tenantId) ?? new Map<string, CanonicalFields>();
        const dup = m.get(f.id);
        if (dup && JSON.stringify(dup) !== JSON.stringify(f)) throw new Failure(`${file}:${n}: row ${f.id} appears twice with different content`);
        m.set(f.id, f);
        rows.set(f.tenantId, m);
      }
    }

    for (const [tenantId, cps] of [...byTenant.entries()].sort(([a], [b]) => a.localeCompare(b))) {
      const sizes = [...cps.keys()].sort((a, b) => a - b);
      const report: OfflineTenantReport = { tenantId, checkpoints: sizes.length, rows: 0, verifiedSizes: [], uncovered: [] };
      tenants.push(report);
      const mine = rows.get(tenantId) ?? new Map<string, CanonicalFields>();
      const order = orders.get(tenantId) ?? new Map<number, string>();
      const byId = [...mine.keys()].sort((a, b) => (BigInt(a) < BigInt(b) ? -1 : BigInt(a) > BigInt(b) ? 1 : 0));
      const used = new Set<string>();
      let nextById = 0;
      const builder = new TreeBuilder();
      let prev: Buffer = GENESIS_HASH;
      const maxSize = sizes[sizes.length - 1] as number;
      let si = 0;
      for (let seq = 1; seq <= maxSize; seq += 1) {
        let id = order.get(seq);
        if (id === undefined) {
          while (nextById < byId.length && used.has(byId[nextById] as string)) nextById += 1;
          id = byId[nextById];
        }
        const f = id === undefined ? undefined : mine.get(id);
        if (!f) {
          if (id !== undefined && order.has(seq)) throw new Failure(`tenant ${tenantId}: leaf ${seq} is audit row ${id}, which is not in the archived rows (deleted before archiving, or the rows are incomplete)`);
          break; // rows end here
        }
        if (used.has(f.id)) throw new Failure(`tenant ${tenantId}: audit row ${f.id} is placed twice`);
        used.add(f.id);
        const h = computeRowHash(f, String(seq), prev);
        builder.addRowHash(h);
        prev = h;
        report.rows += 1;
        while (si < sizes.length && sizes[si] === seq) {
          const cp = cps.get(seq) as OfflineCheckpoint;
          if (!builder.root().equals(cp.root)) {
            throw new Failure(
              `tenant ${tenantId}: the archived rows do not rebuild the tree signed in ${cp.file} (size ${seq}): a row up to that position was changed, removed, inserted or reordered`,
            );
          }
          report.verifiedSizes.push(seq);
          si += 1;
        }
      }
      report.uncovered = sizes.slice(si).filter((s) => s > 0);
      o.onProgress?.(`tenant ${tenantId}: ${report.verifiedSizes.length} checkpoint(s) rebuilt from ${report.rows} archived row(s)`);
    }
    return { ok: true, failure: null, tenants };
  } catch (err) {
    if (err instanceof Failure) return { ok: false, failure: err.message, tenants };
    throw err;
  }
}
