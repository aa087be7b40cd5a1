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
 *
 * For speed (a million rows in seconds): rows are read from the bytes by offline-rows.ts, in
 * worker threads for large inputs (offline-rows-worker.ts), the first of which also keeps the
 * trees (offline-trees.ts); this thread recomputes the chain, which is sequential. The report
 * is the same with or without threads.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Worker } from 'node:worker_threads';
import { hash as oneShot } from 'node:crypto';
import type { CanonicalFields } from './chain';
import { NoteError, verifyCheckpointNote, type VerifierKey } from './note-verify';
import { encodeFields, Failure, idKey, readRows, type IdKey, type RowBatch } from './offline-rows';
import type { ReaderMessage } from './offline-rows-worker';
import { Trees, type TreesState, type TreeTenant } from './offline-trees';

export { archivedRowFields, topLevelRaw } from './offline-rows';

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

const CHAIN_TAG = 'fleet-audit-chain-v1\n';
const GENESIS = Buffer.alloc(32);

/**
 * The chain entry hash (format in migrations/021_audit_chain.sql) of one row's fields: their
 * encoding (offline-rows.ts encodeFields, the verifier's own) hashed as the row reader's are.
 */
export function entryHash(f: CanonicalFields, seq: number, prev: Buffer): Buffer {
  const enc = encodeFields(f);
  return entryHashOfEncoded(enc, 0, enc.length, seq, prev);
}

/**
 * The same hash from the fields' encoding as the row reader produced it (offline-rows.ts,
 * everything after NS(seq)): the tag, the previous hash and NS(seq) go in front of it in one
 * scratch buffer, hashed in one call.
 */
let scratch = Buffer.alloc(64 * 1024);
const TAG_BYTES = Buffer.from(CHAIN_TAG, 'utf8');
TAG_BYTES.copy(scratch, 0);
export function entryHashOfEncoded(fields: Uint8Array, start: number, end: number, seq: number, prev: Buffer): Buffer {
  const need = TAG_BYTES.length + 32 + 24 + (end - start);
  if (need > scratch.length) {
    scratch = Buffer.alloc(need * 2);
    TAG_BYTES.copy(scratch, 0);
  }
  let p = TAG_BYTES.length;
  prev.copy(scratch, p);
  p += 32;
  // NS(seq): "<digits>:<seq>,"
  let digits = 1;
  for (let x = seq; x >= 10; x = Math.floor(x / 10)) digits += 1;
  p += digits >= 10 ? 2 : 1;
  if (digits >= 10) scratch[p - 2] = 0x30 + Math.floor(digits / 10);
  scratch[p - 1] = 0x30 + (digits % 10);
  scratch[p++] = 0x3a;
  for (let x = seq, k = p + digits - 1; k >= p; k -= 1, x = Math.floor(x / 10)) scratch[k] = 0x30 + (x % 10);
  p += digits;
  scratch[p++] = 0x2c;
  scratch.set(fields.subarray(start, end), p);
  p += end - start;
  return oneShot('sha256', scratch.subarray(0, p), 'buffer');
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

/** Block size for reading the rows (whole lines; a longer line makes a larger block). */
const BLOCK = 4 << 20;

/** The blocks of a rows file: whole lines, the last one the rest of the file. */
function* blocks(file: string, size: number): Generator<{ block: Buffer; final: boolean }> {
  const fd = fs.openSync(file, 'r');
  try {
    let carry: Buffer | null = null;
    for (;;) {
      const keep: number = carry ? carry.length : 0;
      const buf = Buffer.allocUnsafeSlow(size + keep);
      if (carry) carry.copy(buf, 0);
      carry = null;
      let n: number = keep;
      let eof = false;
      while (n < buf.length) {
        const got = fs.readSync(fd, buf, n, buf.length - n, null);
        if (got === 0) {
          eof = true;
          break;
        }
        n += got;
      }
      if (eof) {
        yield { block: buf.subarray(0, n), final: true };
        return;
      }
      const nl: number = buf.lastIndexOf(0x0a, n - 1);
      if (nl < 0) {
        carry = buf.subarray(0, n); // one line longer than the block so far
        continue;
      }
      carry = Buffer.from(buf.subarray(nl + 1, n));
      yield { block: buf.subarray(0, nl + 1), final: false };
    }
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * Worker threads reading blocks (offline-rows-worker.ts); the first one also keeps the trees.
 * Each answers its messages in order.
 */
class RowReaders {
  private next = 0;
  private readonly waiting: ((m: unknown) => void)[][];
  /** Why a thread stopped (it answers nothing more). */
  private readonly stopped: (Error | undefined)[] = [];

  private constructor(private readonly workers: Worker[]) {
    this.waiting = workers.map(() => []);
    workers.forEach((w, i) => {
      const fail = (err: Error) => {
        this.stopped[i] ??= err;
        for (const r of this.waiting[i]?.splice(0) ?? []) r(err);
      };
      w.on('message', (m: unknown) => this.waiting[i]?.shift()?.(m));
      w.on('error', fail);
      w.on('exit', () => fail(new Error('a row reader thread exited')));
    });
  }

  /** n started threads, or null when they cannot start here (the caller works in-process). */
  static async start(n: number): Promise<RowReaders | null> {
    const ext = path.extname(__filename);
    const file = path.join(__dirname, `offline-rows-worker${ext}`);
    const workers: Worker[] = [];
    const ready = (w: Worker) =>
      new Promise<boolean>((resolve) => {
        w.once('message', () => resolve(true));
        w.once('error', () => resolve(false));
        w.once('exit', () => resolve(false));
      });
    try {
      // Run from TypeScript sources (tsx, as the npm scripts do), the thread registers tsx itself:
      // loaders given to the process are not passed on to worker threads.
      const code =
        ext === '.ts'
          ? `require(${JSON.stringify(require.resolve('tsx/cjs/api'))}).register(); require(${JSON.stringify(file)});`
          : null;
      for (let i = 0; i < n; i += 1) workers.push(code ? new Worker(code, { eval: true }) : new Worker(file));
    } catch {
      await Promise.all(workers.map((w) => w.terminate()));
      return null;
    }
    const ok = await Promise.all(workers.map(ready));
    if (ok.every(Boolean)) return new RowReaders(workers);
    await Promise.all(workers.map((w) => w.terminate()));
    return null;
  }

  private ask<T>(i: number, m: ReaderMessage, transfer: ArrayBuffer[]): Promise<T> {
    const stopped = this.stopped[i];
    if (stopped) return Promise.reject(stopped);
    const p = new Promise<T>((resolve, reject) =>
      this.waiting[i]?.push((r) => (r instanceof Error ? reject(r) : resolve(r as T))),
    );
    (this.workers[i] as Worker).postMessage(m, transfer);
    return p;
  }

  read(block: Buffer, final: boolean): Promise<RowBatch> {
    const i = this.next;
    this.next = (i + 1) % this.workers.length;
    return this.ask<RowBatch>(i, { type: 'rows', block, final }, [block.buffer as ArrayBuffer]);
  }

  /** To the tree keeper (the first thread), unanswered. */
  tell(m: ReaderMessage, transfer: ArrayBuffer[] = []): void {
    (this.workers[0] as Worker).postMessage(m, transfer);
  }

  /** The trees' state once every hash sent before is added. */
  sync(): Promise<TreesState | null> {
    return this.ask<TreesState | null>(0, { type: 'sync' }, []);
  }

  async close(): Promise<void> {
    for (const w of this.workers) w.removeAllListeners('exit');
    await Promise.all(this.workers.map((w) => w.terminate()));
  }
}

/**
 * The trees, fed in placement order: in this thread (checked at once), or in the first reader
 * thread (hashes sent in batches; checked there, the outcome known at sync()).
 */
class TreeFeed {
  private readonly local: Trees | null;
  private static readonly BATCH = 8192;
  private count = 0;
  private tenant = new Int32Array(TreeFeed.BATCH);
  private hashes = new Uint8Array(32 * TreeFeed.BATCH);

  constructor(
    tenants: TreeTenant[],
    private readonly readers: RowReaders | null,
  ) {
    this.local = readers ? null : new Trees(tenants);
    readers?.tell({ type: 'trees', tenants });
  }

  /** Adds tenant t's next chain hash; throws the Failure at once when checked here. */
  add(t: number, h: Buffer): void {
    if (this.local) {
      if (!this.local.add(t, h)) throw new Failure(this.local.state().failure as string);
      return;
    }
    this.tenant[this.count] = t;
    this.hashes.set(h, 32 * this.count);
    this.count += 1;
    if (this.count === TreeFeed.BATCH) this.flush();
  }

  private flush(): void {
    if (!this.readers || this.count === 0) return;
    this.readers.tell({ type: 'add', count: this.count, tenant: this.tenant, hashes: this.hashes }, [
      this.tenant.buffer,
      this.hashes.buffer,
    ]);
    this.count = 0;
    this.tenant = new Int32Array(TreeFeed.BATCH);
    this.hashes = new Uint8Array(32 * TreeFeed.BATCH);
  }

  /** Every hash added so far checked: the trees' state. */
  async sync(): Promise<TreesState> {
    if (this.local) return this.local.state();
    this.flush();
    return (await (this.readers as RowReaders).sync()) as TreesState;
  }
}

/** The batches of rows of a file, in file order; read ahead by the threads when there are any. */
async function* batches(
  file: string,
  size: number,
  readers: RowReaders | null,
  ahead: number,
): AsyncGenerator<RowBatch> {
  if (!readers) {
    for (const { block, final } of blocks(file, size)) yield readRows(block, final);
    return;
  }
  const queue: Promise<RowBatch>[] = [];
  const it = blocks(file, size);
  let done = false;
  try {
    for (;;) {
      while (!done && queue.length < ahead) {
        const r = it.next();
        if (r.done) done = true;
        else {
          const p = readers.read(r.value.block, r.value.final);
          p.catch(() => undefined); // awaited in order below; a reader that stops is reported there
          queue.push(p);
        }
      }
      const p = queue.shift();
      if (!p) return;
      yield await p;
    }
  } finally {
    it.return(undefined);
  }
}

/** Threads to read rows with: none for small inputs (starting them costs more than it saves). */
function autoWorkers(files: readonly string[]): number {
  let bytes = 0;
  for (const f of files) bytes += fs.statSync(f, { throwIfNoEntry: false })?.size ?? 0; // a missing file fails when read
  if (bytes < 32 << 20) return 0;
  return Math.max(1, Math.min(3, os.availableParallelism() - 1));
}

export interface OfflineOptions {
  keys: readonly VerifierKey[];
  /** The checkpoints directory (files <size> and optional <size>.ids, any layout). */
  checkpointsDir: string;
  /** NDJSON files (archived blobs, possibly concatenated). */
  rowFiles: readonly string[];
  /** AUDIT_LOG_NAME of the deployment; default: from the first key's name. */
  logName?: string;
  /** Threads reading the rows beside the one hashing them; default: none for small inputs, else cores - 1 (at most 3). */
  workers?: number;
  /** Bytes read at a time (whole lines); default 4 MiB. */
  blockBytes?: number;
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
    /** A row that arrived before its turn: its field encoding (a copy) and what tells rows apart. */
    interface Waiting {
      id: string;
      fields: Buffer;
      strict: string | null;
    }
    interface State {
      index: number;
      report: OfflineTenantReport;
      sizes: number[];
      order: Map<number, IdKey>;
      pending: Map<IdKey, Waiting>;
      placed: Set<IdKey>;
      prev: Buffer;
      seq: number;
      max: number;
    }
    const states = new Map<string, State>();
    const treeTenants: TreeTenant[] = [];
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
        index: treeTenants.length,
        report,
        sizes,
        order: orders.get(tenantId) ?? new Map(),
        pending: new Map(),
        placed: new Set(),
        prev: GENESIS,
        seq: 0,
        max: sizes[sizes.length - 1] as number,
      });
      treeTenants.push({
        tenantId,
        sizes,
        roots: sizes.map((n) => (cps.get(n) as OfflineCheckpoint).root),
        files: sizes.map((n) => (cps.get(n) as OfflineCheckpoint).file),
      });
    }
    const threads = o.workers ?? autoWorkers(o.rowFiles);
    const readers = threads > 0 ? await RowReaders.start(threads) : null;
    const trees = new TreeFeed(treeTenants, readers);
    /** What the trees have checked, into the reports; throws the trees' failure. */
    const settle = async () => {
      const t = await trees.sync();
      for (const st of states.values()) {
        st.report.verifiedSizes = [...(t.verified[st.index] as number[])];
        if (t.failure !== null) st.report.rows = t.rows[st.index] as number;
      }
      if (t.failure !== null) throw new Failure(t.failure);
    };
    /** Appends a row to its tenant's chain and tree: fields[start..end) is its encoding after NS(seq). */
    const place = (st: State, k: IdKey, id: string | undefined, fields: Uint8Array, start: number, end: number) => {
      if (st.placed.has(k))
        throw new Failure(`tenant ${st.report.tenantId}: audit row ${id ?? String(k)} is placed twice`);
      st.placed.add(k);
      st.seq += 1;
      const h = entryHashOfEncoded(fields, start, end, st.seq, st.prev);
      st.prev = h;
      st.report.rows += 1;
      trees.add(st.index, h);
    };
    const placeWaiting = (st: State, k: IdKey) => {
      const w = st.pending.get(k) as Waiting;
      st.pending.delete(k);
      place(st, k, w.id, w.fields, 0, w.fields.length);
    };
    const advance = (st: State) => {
      for (;;) {
        if (st.seq >= st.max) return;
        const id = st.order.get(st.seq + 1);
        if (id === undefined || !st.pending.has(id)) return;
        placeWaiting(st, id);
      }
    };
    try {
      for (const file of o.rowFiles) {
        let base = 0; // lines in the blocks before
        for await (const b of batches(file, o.blockBytes ?? BLOCK, readers, 2 * threads + 2)) {
          const byTenantIndex = b.tenants.map((t) => states.get(t));
          let start = 0;
          for (let i = 0; i < b.count; i += 1) {
            const end = b.bodyEnd[i] as number;
            const st = byTenantIndex[b.tenant[i] as number];
            if (st) {
              const ex = b.extra.size > 0 ? b.extra.get(i) : undefined;
              const k: IdKey = ex?.key ?? (b.key[i] as number);
              const id = ex ? (ex.id ?? ex.key) : undefined; // else String(k)
              const dup = st.pending.get(k);
              if (dup) {
                const same =
                  dup.fields.length === end - start &&
                  Buffer.compare(dup.fields, b.body.subarray(start, end)) === 0 &&
                  dup.strict === (ex?.strict ?? null);
                if (!same)
                  throw new Failure(
                    `${file}:${base + (b.line[i] as number)}: row ${id ?? String(k)} appears twice with different content`,
                  );
                // the same row again (overlapping exports): already waiting
              } else if (!st.placed.has(k)) {
                // (a row already placed and seen again is skipped likewise)
                if (st.seq < st.max && st.order.get(st.seq + 1) === k) {
                  place(st, k, id, b.body, start, end);
                  advance(st);
                } else {
                  st.pending.set(k, {
                    id: id ?? String(k),
                    fields: Buffer.from(b.body.subarray(start, end)),
                    strict: ex?.strict ?? null,
                  });
                }
              }
            }
            start = end;
          }
          if (b.failure) throw new Failure(`${file}:${base + b.failure.line}: ${b.failure.message}`);
          base += b.lines;
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
          placeWaiting(st, id);
        }
        await settle();
        st.report.uncovered = st.sizes.slice(st.report.verifiedSizes.length).filter((x) => x > 0);
        // Rows that reach none of the tenant's signed trees verify nothing but the signatures:
        // a failed or partial download must not read as verified.
        if (st.sizes.some((x) => x > 0) && !st.report.verifiedSizes.some((x) => x > 0))
          throw new Failure(
            `tenant ${st.report.tenantId}: the archived rows (${st.report.rows} read) reach none of its ${st.sizes.filter((x) => x > 0).length} signed non-empty checkpoint(s); the rows are missing or incomplete`,
          );
        o.onProgress?.(
          `tenant ${st.report.tenantId}: ${st.report.verifiedSizes.length} checkpoint(s) rebuilt from ${st.report.rows} archived row(s)`,
        );
      }
    } catch (err) {
      // A tree that failed to rebuild before this failure is the first failure.
      if (err instanceof Failure) await settle();
      throw err;
    } finally {
      await readers?.close();
    }
    return { ok: true, failure: null, tenants };
  } catch (err) {
    if (err instanceof Failure) return { ok: false, failure: err.message, tenants };
    throw err;
  }
}
