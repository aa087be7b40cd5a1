/**
 * The offline verifier's fast row reader (offline-rows.ts) and its threads: the same fields,
 * the same failures and the same line numbers as the general reader (archivedRowFields) and
 * readline; the same report with or without worker threads, whatever the block size.
 */
import { createHash, generateKeyPairSync } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { Readable } from 'node:stream';
import { computeRowHash, GENESIS_HASH, type CanonicalFields } from '../../src/services/audit/chain';
import { TreeBuilder } from '../../src/services/audit/merkle-verify';
import { parseVerifierKey } from '../../src/services/audit/note-verify';
import { archivedRowFields, encodeFields, readRows } from '../../src/services/audit/offline-rows';
import { entryHashOfEncoded, verifyOffline, type OfflineOptions } from '../../src/services/audit/offline-verify';
import {
  checkpointBody,
  checkpointOrigin,
  createCheckpointSigner,
  parseEd25519PrivateKey,
} from '../../src/services/audit/signed-note';
import { renderRow as renderRecord } from '../../src/services/archive/format';
import type { AuditRecord } from '../../src/services/audit/record';

/** An archived row with the archive's own (snake_case) field names, as the NDJSON lines carry them. */
interface ArchivedRow {
  id: string;
  tenant_id: string;
  user_id: string | null;
  action: string;
  resource_type: string;
  resource_id: string | null;
  before: string | null;
  after: string | null;
  ip_address: string | null;
  user_agent: string | null;
  result: AuditRecord['result'];
  error_message: string | null;
  severity: AuditRecord['severity'];
  request_id: string | null;
  created_at: string;
}

const renderRow = (r: ArchivedRow): string =>
  renderRecord({
    id: r.id,
    tenantId: r.tenant_id,
    userId: r.user_id,
    action: r.action,
    resourceType: r.resource_type,
    resourceId: r.resource_id,
    before: r.before,
    after: r.after,
    ipAddress: r.ip_address,
    userAgent: r.user_agent,
    result: r.result,
    errorMessage: r.error_message,
    severity: r.severity,
    requestId: r.request_id,
    createdAt: r.created_at,
  });

const row = (over: Partial<ArchivedRow> = {}): ArchivedRow => ({
  id: '42',
  tenant_id: 'acme',
  user_id: '00000000-0000-4000-8000-00000000000a',
  action: 'doc.changed',
  resource_type: 'doc',
  resource_id: 'd1',
  before: '{"a": 1, "s": "x,\\"after\\":y", "n": [1.5e-3, -0, true, false, null, {}]}',
  after: '{"b": [1, 2], "t": ",\\"after\\":", "u": "\\u00e9 é 😀"}',
  ip_address: '203.0.113.7',
  user_agent: 'fleet-app/2.1',
  result: 'success',
  error_message: null,
  severity: 'low',
  request_id: 'req-1',
  created_at: '2026-01-01T00:00:00.123456Z',
  ...over,
});

/** Lines that take the fast path, the general one, or fail — each compared with the general reader. */
const LINES: string[] = [
  renderRow(row()),
  renderRow(row({ before: null, after: null, user_id: null, ip_address: null, request_id: null })),
  renderRow(row({ ip_address: '2001:db8::1' })),
  renderRow(row({ ip_address: '10.0.0.0/8' })),
  renderRow(row({ user_agent: 'ü-agent 😀', error_message: 'näh', resource_id: '' })),
  renderRow(row({ user_agent: 'a "quoted" \\ agent\ttab' })), // escapes: the general reader
  renderRow(row({ id: '007' })),
  renderRow(row({ id: '1e3' })),
  renderRow(row({ id: 'abc' })),
  renderRow(row({ id: '' })),
  renderRow(row({ id: '123456789012345' })),
  renderRow(row({ id: '1234567890123456789' })),
  renderRow(row({ before: '"null"', after: '0' })),
  renderRow(row({ before: '[[[[{"deep": [1, {"x": "y"}]}]]]]' })),
  renderRow(row()).replace('"user_agent":', '"user_agent" :'),
  renderRow(row()).replace('"result":"success"', '"result":"\\u0073uccess"'),
  renderRow(row()).replace('"user_agent":"fleet-app/2.1"', '"user_agent":"\\ud800"'),
  `{"after":${row().after},"before":${row().before},"id":"42","tenant_id":"acme","user_id":null,"action":"a","resource_type":"r","resource_id":null,"ip_address":null,"user_agent":null,"result":"s","error_message":null,"severity":"low","request_id":null,"created_at":"t"}`,
  // refused
  renderRow(row()).replace('"mileage', '"mileage'),
  renderRow(row()).replace('1.5e-3', '01'),
  renderRow(row()).replace('1.5e-3', '1.'),
  renderRow(row()).replace('true', 'tru'),
  renderRow(row()).replace('{"b"', '{"b" 1'),
  renderRow(row()).replace('"severity":"low"', '"severity":null'),
  renderRow(row()).replace('"severity":"low"', '"severity":3'),
  renderRow(row()).replace(',"after":', ',"aft":'),
  renderRow(row()).slice(0, -1),
  `${renderRow(row())} `,
  `${renderRow(row())}x`,
  renderRow(row()).replace('fleet-app', 'fleet\x01app'),
  'null',
  '[1]',
  '{"id":1}',
];

function fieldsOf(text: string): { fields?: Buffer; id?: string; tenant?: string; failure?: string } {
  try {
    const f = archivedRowFields(text);
    return { fields: encodeFields(f), id: f.id, tenant: f.tenantId };
  } catch (err) {
    return { failure: (err as Error).message };
  }
}

describe('the fast row reader', () => {
  it('when a line is read, then its fields, id, tenant and failure are those of the general reader', () => {
    for (const text of LINES) {
      const b = readRows(Buffer.from(`${text}\n`, 'utf8'), false);
      const want = fieldsOf(text);
      if (want.failure !== undefined) {
        expect({ text, failure: b.failure }).toEqual({ text, failure: { line: 1, message: want.failure } });
        expect(b.count).toBe(0);
        continue;
      }
      expect({ text, failure: b.failure, count: b.count }).toEqual({ text, failure: null, count: 1 });
      expect(Buffer.from(b.body.subarray(0, b.bodyEnd[0])).equals(want.fields as Buffer)).toBe(true);
      expect(b.tenants[b.tenant[0] as number]).toBe(want.tenant);
      const ex = b.extra.get(0);
      expect(ex?.id ?? ex?.key ?? String(b.key[0])).toBe(want.id);
    }
  });

  it("when the fields' encoding is hashed, then it is the application's chain hash", () => {
    const prev = createHash('sha256').update('prev').digest();
    for (const text of LINES.slice(0, 6)) {
      const b = readRows(Buffer.from(`${text}\n`, 'utf8'), false);
      expect(entryHashOfEncoded(b.body, 0, b.bodyEnd[0] as number, 17, prev)).toEqual(
        computeRowHash(archivedRowFields(text), '17', prev),
      );
    }
  });

  it('when lines end in \\r\\n, a lone \\r or nothing, then they are numbered as readline numbers them', async () => {
    const good = renderRow(row());
    const texts = [
      `${good}\r\n\r\n${good}\rbad\n`,
      `${good}\n\r${good}\r\rbad`,
      `${good}\r\n${good}\n\nbad\r`,
      `\r\r\n\nbad\r\n`,
    ];
    for (const text of texts) {
      const rl = readline.createInterface({ input: Readable.from([text]), crlfDelay: Infinity });
      let n = 0;
      let at = -1;
      for await (const line of rl) {
        n += 1;
        if (line === 'bad' && at < 0) at = n;
      }
      const b = readRows(Buffer.from(text, 'utf8'), true);
      expect({ text, line: b.failure?.line }).toEqual({ text, line: at });
    }
  });
});

describe('verifyOffline with worker threads', () => {
  let dir: string;
  let base: OfflineOptions;
  let rows: string[];
  const KEY = generateKeyPairSync('ed25519').privateKey.export({ format: 'der', type: 'pkcs8' }).toString('base64');

  beforeAll(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fleet-offline-fast-'));
    const signer = createCheckpointSigner('fleet-security-api/jest', parseEd25519PrivateKey(KEY));
    rows = [];
    for (const tenant of ['t-a', 't-b']) {
      const cpDir = path.join(dir, 'checkpoints', tenant);
      fs.mkdirSync(cpDir, { recursive: true });
      const b = new TreeBuilder();
      let prev: Buffer = GENESIS_HASH;
      let last = 0;
      const ids: string[] = [];
      for (let i = 1; i <= 300; i += 1) {
        const id = String(tenant === 't-a' ? 2 * i : 2 * i + 1);
        ids.push(id);
        const r = row({ id, tenant_id: tenant, resource_id: `d-${i}`, request_id: `req-${i}` });
        const f: CanonicalFields = archivedRowFields(renderRow(r));
        prev = computeRowHash(f, String(i), prev);
        b.addRowHash(prev);
        rows.push(renderRow(r));
        if (i % 70 === 0 || i === 300) {
          fs.writeFileSync(path.join(cpDir, `${i}.ids`), `from ${last}\n${ids.slice(last, i).join('\n')}\n`);
          fs.writeFileSync(
            path.join(cpDir, String(i)),
            signer.signBody(checkpointBody(checkpointOrigin('jest', tenant), i, b.root())),
          );
          last = i;
        }
      }
    }
    rows.sort((x, y) => Number(JSON.parse(x).id) - Number(JSON.parse(y).id));
    base = {
      keys: [parseVerifierKey(signer.verifierKey)],
      checkpointsDir: path.join(dir, 'checkpoints'),
      rowFiles: [],
    };
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  const write = (name: string, lines: string[], eol = '\n'): string => {
    const f = path.join(dir, name);
    fs.writeFileSync(f, lines.map((l) => l + eol).join(''));
    return f;
  };

  it('when rows are intact, altered, duplicated or unreadable, then threads and block sizes change nothing in the report', async () => {
    const cases: string[] = [
      write('intact.ndjson', rows),
      write('crlf.ndjson', rows, '\r\n'),
      write('reversed.ndjson', [...rows].reverse()),
      write('dup.ndjson', [...rows.slice(0, 400), rows[10] as string, ...rows.slice(400)]),
      write(
        'altered.ndjson',
        rows.map((l, i) => (i === 333 ? l.replace('"req-', '"REQ-') : l)),
      ),
      // a tree fails (row 201), then a line further on is unreadable: the tree is the first failure
      write(
        'altered-then-bad.ndjson',
        rows.map((l, i) => (i === 201 ? l.replace('"d-', '"D-') : i === 590 ? '{"id":' : l)),
      ),
      write(
        'bad.ndjson',
        rows.map((l, i) => (i === 150 ? l.replace('"low"', 'low') : l)),
      ),
      write('conflict.ndjson', [
        ...rows.slice(0, 100),
        ...[...rows.slice(100)].reverse(),
        (rows[450] as string).replace('"low"', '"high"'),
      ]),
      write('missing.ndjson', rows.slice(0, 590)),
    ];
    for (const file of cases) {
      const o = { ...base, rowFiles: [file] };
      const inProcess = await verifyOffline({ ...o, workers: 0 });
      for (const [workers, blockBytes] of [
        [2, 997] as const,
        ...(file === cases[0]
          ? ([
              [1, 1 << 20],
              [3, 64],
            ] as const)
          : []),
      ]) {
        expect({ file, workers, blockBytes, report: await verifyOffline({ ...o, workers, blockBytes }) }).toEqual({
          file,
          workers,
          blockBytes,
          report: inProcess,
        });
      }
    }
    const intact = await verifyOffline({ ...base, rowFiles: [cases[0] as string], workers: 2 });
    expect(intact.ok).toBe(true);
    expect(intact.tenants.map((t) => t.verifiedSizes)).toEqual([
      [70, 140, 210, 280, 300],
      [70, 140, 210, 280, 300],
    ]);
    const altered = await verifyOffline({ ...base, rowFiles: [cases[5] as string], workers: 2, blockBytes: 500 });
    expect(altered.failure).toMatch(/do not rebuild the tree signed in .*size 140/);
  }, 180_000);

  it('when a tenant has a signed checkpoint of size 0, then it must sign the empty tree, and the later checkpoints are still rebuilt', async () => {
    const signer = createCheckpointSigner('fleet-security-api/jest', parseEd25519PrivateKey(KEY));
    const intact = write('intact-size0.ndjson', rows);
    const emptyRoot = createHash('sha256').digest(); // RFC 9162 §2.1.1: the hash of an empty list
    for (const [name, root] of [
      ['empty', emptyRoot],
      ['wrong', Buffer.alloc(32, 7)],
    ] as const) {
      const cps = path.join(dir, `checkpoints-size0-${name}`);
      fs.cpSync(base.checkpointsDir, cps, { recursive: true });
      fs.writeFileSync(
        path.join(cps, 't-a', '0'),
        signer.signBody(checkpointBody(checkpointOrigin('jest', 't-a'), 0, root)),
      );
      for (const workers of [0, 2]) {
        const r = await verifyOffline({ ...base, checkpointsDir: cps, rowFiles: [intact], workers });
        if (name === 'empty') {
          expect({ workers, ok: r.ok, failure: r.failure }).toEqual({ workers, ok: true, failure: null });
          expect(r.tenants.map((t) => [t.verifiedSizes, t.uncovered])).toEqual([
            [[0, 70, 140, 210, 280, 300], []],
            [[70, 140, 210, 280, 300], []],
          ]);
        } else {
          expect({ workers, ok: r.ok }).toEqual({ workers, ok: false });
          expect(r.failure).toMatch(/^tenant t-a: .*\(size 0\) states a root that is not the empty tree$/);
        }
      }
    }
  }, 120_000);
});
