/**
 * Syslog forwarding to a real rsyslogd (Debian packages rsyslog + rsyslog-openssl) that this
 * test starts with a temporary configuration: RFC 5424 + CEF over TCP with RFC 6587 octet
 * counting, and over TLS (RFC 5425).
 */
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { generate } from 'selfsigned';
import { ManualClock } from '../../src/lib/clock';
import { formatSyslog } from '../../src/services/siem/connectors/cef';
import { createSyslogConnector } from '../../src/services/siem/connectors/syslog';
import { normalizeEvent } from '../../src/services/siem/events';
import type { SiemConnector, SiemEvent } from '../../src/services/siem/types';
import { uniqueTenant } from '../helpers/env';
import { createIsolatedDatabase, type IsolatedDatabase } from './helpers/db';
import { buildStack, type Stack } from './helpers/harness';
import { rsyslogAvailable, rsyslogTlsAvailable, startRsyslog, type Rsyslog } from './helpers/rsyslog';

const AWKWARD = 'pipes | and = equals, back\\slash, new\nline, CR\r, tab\t, Unicode é 漢字 🚀, quote " and ] bracket';

const connectors: SiemConnector[] = [];
function track(c: SiemConnector): SiemConnector {
  connectors.push(c);
  return c;
}

function event(over: Partial<SiemEvent> = {}): SiemEvent {
  return {
    ...normalizeEvent(
      {
        tenantId: uniqueTenant(),
        eventType: 'fleet.test.event',
        severity: 'critical',
        message: 'plain',
        ipAddress: '192.0.2.10',
        userAgent: 'agent|1=2',
      },
      Date.now(),
    ),
    ...over,
  };
}

async function freePort(): Promise<number> {
  const srv = net.createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
  const port = (srv.address() as net.AddressInfo).port;
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
}

afterAll(async () => {
  for (const c of connectors) await c.close();
});

// The rsyslog tests need Debian's rsyslogd (and rsyslog-openssl for TLS). A newcomer's
// `npm test` without it skips them with one line saying what to install; under CI=true
// (.ci/run installs both) they always run, and fail when rsyslogd is missing.
const underCi = process.env.CI === 'true';
const withRsyslog = underCi || rsyslogAvailable();
const withRsyslogTls = underCi || (withRsyslog && rsyslogTlsAvailable());
if (!withRsyslog)
  process.stderr.write(
    'syslog.test.ts: rsyslogd not found: the rsyslog tests are not run (install the Debian package rsyslog, and rsyslog-openssl for TLS; CI=true runs them)\n',
  );
else if (!withRsyslogTls)
  process.stderr.write(
    'syslog.test.ts: rsyslog TLS module not found: the TLS test is not run (install the Debian package rsyslog-openssl; CI=true runs it)\n',
  );

describe('syslog connector without a receiver', () => {
  it('when nothing listens on the port, then the events are retried with a network reason and the health check fails', async () => {
    const port = await freePort();
    const c = track(createSyslogConnector({ endpointUrl: `tcp://127.0.0.1:${port}`, timeoutMs: 2000 }));
    const e = event();
    const r = await c.send([e]);
    expect(r.outcomes.get(e.id)).toEqual({ kind: 'retry', reason: 'syslog: network error (ECONNREFUSED)' });
    await expect(c.healthCheck()).rejects.toThrow('syslog: network error (ECONNREFUSED)');
  });
});

const describeRsyslog = withRsyslog ? describe : null;
const describeRsyslogTls = withRsyslogTls ? describe : null;

describeRsyslog?.('syslog over TCP to rsyslog', () => {
  let rs: Rsyslog;
  beforeAll(async () => {
    rs = await startRsyslog();
  });
  afterAll(() => rs.stop());

  it('when events with awkward characters are sent, then rsyslog receives each octet-counted message exactly as formatted', async () => {
    const c = track(createSyslogConnector({ endpointUrl: `tcp://127.0.0.1:${rs.port}`, hostname: 'fleet-host' }));
    const list = [
      event({ message: AWKWARD, details: { note: AWKWARD } }),
      event({ eventType: 'fleet.other|event', message: 'second = two', severity: 'low', ipAddress: '2001:db8::7' }),
      event({ message: 'x'.repeat(3000), userAgent: 'u'.repeat(2000) }),
    ];
    const r = await c.send(list);
    expect(list.map((e) => r.outcomes.get(e.id)?.kind)).toEqual(['delivered', 'delivered', 'delivered']);
    const lines = await rs.waitForLines(3);
    expect(lines).toEqual(list.map((e) => formatSyslog(e, { hostname: 'fleet-host' })));
    expect(lines[0]).toContain(
      'CEF:0|Fleet|Fleet Security API|1.0.0|fleet.test.event|pipes \\| and = equals, back\\\\slash, new line, CR , tab , Unicode é 漢字 🚀, quote " and ] bracket|10|',
    );
    expect(lines[0]).toContain(
      'msg=pipes | and \\= equals, back\\\\slash, new\\nline, CR\\r, tab , Unicode é 漢字 🚀, quote " and ] bracket',
    );
    expect(lines[0]?.startsWith('<82>1 ')).toBe(true);
    expect(lines[1]).toContain('|fleet.other\\|event|');
    expect(lines[1]).toContain('c6a2=2001:db8::7');
  });

  it('when the connection is reused for a second batch, then those messages arrive too', async () => {
    const c = track(createSyslogConnector({ endpointUrl: `tcp://127.0.0.1:${rs.port}`, hostname: 'h2' }));
    const before = rs.lines().length;
    await c.send([event({ message: 'batch one' })]);
    await c.send([event({ message: 'batch two' })]);
    const lines = await rs.waitForLines(before + 2);
    expect(lines.slice(before).map((l) => /msg=(batch \w+)/.exec(l)?.[1])).toEqual(['batch one', 'batch two']);
  });
});

describeRsyslogTls?.('syslog over TLS (RFC 5425) to rsyslog', () => {
  let rs: Rsyslog;
  let dir: string;
  let caFile: string;
  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fleet-syslog-tls-'));
    const pems = await generate([{ name: 'commonName', value: 'localhost' }], {
      keySize: 2048,
      extensions: [
        { name: 'basicConstraints', cA: true },
        {
          name: 'subjectAltName',
          altNames: [
            { type: 2, value: 'localhost' },
            { type: 7, ip: '127.0.0.1' },
          ],
        },
      ],
    });
    caFile = path.join(dir, 'cert.pem');
    const keyFile = path.join(dir, 'key.pem');
    fs.writeFileSync(caFile, pems.cert);
    fs.writeFileSync(keyFile, pems.private, { mode: 0o600 });
    rs = await startRsyslog({ tls: { certFile: caFile, keyFile, caFile } });
  });
  afterAll(async () => {
    await rs.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('when the server certificate is trusted (SIEM_TLS_CA_FILE), then the message arrives over TLS', async () => {
    const c = track(
      createSyslogConnector({ endpointUrl: `tls://127.0.0.1:${rs.port}`, tlsCaFile: caFile, hostname: 'tls-host' }),
    );
    const e = event({ message: `over TLS: ${AWKWARD}` });
    const r = await c.send([e]);
    expect(r.outcomes.get(e.id)).toEqual({ kind: 'delivered' });
    const lines = await rs.waitForLines(1);
    expect(lines[0]).toBe(formatSyslog(e, { hostname: 'tls-host' }));
  });

  it('when the server certificate is not trusted, then nothing is sent and the events are retried', async () => {
    const c = track(createSyslogConnector({ endpointUrl: `tls://127.0.0.1:${rs.port}`, timeoutMs: 3000 }));
    const before = rs.lines().length;
    const e = event({ message: 'must not arrive' });
    const r = await c.send([e]);
    expect(r.outcomes.get(e.id)).toMatchObject({
      kind: 'retry',
      reason: expect.stringMatching(
        /^syslog: network error \((SELF_SIGNED_CERT_IN_CHAIN|DEPTH_ZERO_SELF_SIGNED_CERT|UNABLE_TO_VERIFY_LEAF_SIGNATURE)\)$/,
      ),
    });
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(rs.lines()).toHaveLength(before);
  });
});

describeRsyslog?.('syslog through the outbox', () => {
  let db: IsolatedDatabase;
  let rs: Rsyslog;
  let s: Stack;
  beforeAll(async () => {
    db = await createIsolatedDatabase('syslog');
    rs = await startRsyslog();
    s = await buildStack(
      db,
      { SIEM_PROVIDER: 'syslog', SIEM_ENDPOINT_URL: `tcp://127.0.0.1:${rs.port}` },
      {},
      new ManualClock(Date.now()),
    );
    await s.monitoring.siem.syncSettings();
  });
  afterAll(async () => {
    await s.close();
    await rs.stop();
    await db.drop();
  });

  it('when a critical audit event is recorded and flushed, then its CEF line reaches rsyslog with the audit row id', async () => {
    const tenantId = uniqueTenant();
    const rec = await s.audit.record({
      tenantId,
      action: 'key.master.rotated',
      resourceType: 'master_key',
      resourceId: 'k|1',
      severity: 'critical',
      result: 'success',
      after: { note: 'rotated | by = ops' },
    });
    await s.monitoring.siem.flushOnce();
    const lines = await rs.waitForLines(2);
    const rotated = lines.find((l) => l.includes('|key.master.rotated|'));
    expect(rotated).toContain(`cn1=${rec.id}`);
    expect(rotated).toContain('msg=key.master.rotated (success)');
    expect(rotated).toContain('cs3=master_key:k|1');
    expect(rotated).toContain(`cs1=${tenantId}`);
    expect(rotated).toContain('|10|');
    // The key_event alert raised by the alerting rules travels the same way (high = CEF 8).
    expect(lines.some((l) => l.includes('|security.alert.key_event|') && l.includes('|8|'))).toBe(true);
  });
});
