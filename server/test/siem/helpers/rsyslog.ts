/**
 * A private rsyslogd for tests (Debian package `rsyslog`, plus `rsyslog-openssl` for TLS):
 * started in the foreground with a temporary configuration that listens on a free TCP port
 * (imtcp, RFC 6587 octet-counted framing is on by default) and writes each message's raw
 * text, one per line, to a file in a temporary directory. Stopped with SIGTERM.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export interface Rsyslog {
  port: number;
  outFile: string;
  dir: string;
  /** The lines written so far (raw messages; control characters escaped by rsyslog as #ooo). */
  lines(): string[];
  /** Waits until at least n lines arrived (polls the file; rejects after timeoutMs). */
  waitForLines(n: number, timeoutMs?: number): Promise<string[]>;
  stop(): Promise<void>;
}

export const RSYSLOGD = ['/usr/sbin/rsyslogd', '/sbin/rsyslogd'].find((p) => fs.existsSync(p)) ?? 'rsyslogd';

export function rsyslogAvailable(): boolean {
  return fs.existsSync(RSYSLOGD);
}

export function rsyslogTlsAvailable(): boolean {
  return [
    '/usr/lib/x86_64-linux-gnu/rsyslog/lmnsd_ossl.so',
    '/usr/lib/aarch64-linux-gnu/rsyslog/lmnsd_ossl.so',
    '/usr/lib/rsyslog/lmnsd_ossl.so',
  ].some((p) => fs.existsSync(p));
}

async function waitFor<T>(fn: () => T | null, timeoutMs: number, what: string): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = fn();
    if (v !== null) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

export async function startRsyslog(
  opts: { tls?: { certFile: string; keyFile: string; caFile: string } } = {},
): Promise<Rsyslog> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fleet-rsyslog-'));
  const outFile = path.join(dir, 'messages.log');
  const portFile = path.join(dir, 'port');
  const tlsGlobal = opts.tls
    ? `global(DefaultNetstreamDriver="ossl" DefaultNetstreamDriverCAFile="${opts.tls.caFile}" DefaultNetstreamDriverCertFile="${opts.tls.certFile}" DefaultNetstreamDriverKeyFile="${opts.tls.keyFile}")\n`
    : '';
  const tlsModule = opts.tls ? ' StreamDriver.Name="ossl" StreamDriver.Mode="1" StreamDriver.AuthMode="anon"' : '';
  const conf = [
    `global(workDirectory="${dir}" maxMessageSize="64k")`,
    tlsGlobal,
    `module(load="imtcp"${tlsModule})`,
    `input(type="imtcp" port="0" listenPortFileName="${portFile}" ruleset="fleet")`,
    `template(name="raw" type="string" string="%rawmsg%\\n")`,
    `ruleset(name="fleet") { action(type="omfile" file="${outFile}" template="raw") }`,
    '',
  ].join('\n');
  const confFile = path.join(dir, 'rsyslog.conf');
  fs.writeFileSync(confFile, conf);
  const child: ChildProcess = spawn(RSYSLOGD, ['-n', '-f', confFile, '-i', path.join(dir, 'rsyslogd.pid')], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr?.on('data', (c: Buffer) => (stderr += c.toString()));
  child.stdout?.on('data', (c: Buffer) => (stderr += c.toString()));
  let exited = false;
  child.on('exit', () => (exited = true));
  const port = await waitFor(
    () => {
      if (exited) throw new Error(`rsyslogd exited: ${stderr.slice(0, 500)}`);
      try {
        const p = Number(fs.readFileSync(portFile, 'utf8').trim());
        return p > 0 ? p : null;
      } catch {
        return null;
      }
    },
    10_000,
    'rsyslogd to listen',
  );
  const read = (): string[] => {
    try {
      return fs
        .readFileSync(outFile, 'utf8')
        .split('\n')
        .filter((l) => l !== '');
    } catch {
      return [];
    }
  };
  return {
    port,
    outFile,
    dir,
    lines: read,
    waitForLines: (n, timeoutMs = 10_000) =>
      waitFor(() => (read().length >= n ? read() : null), timeoutMs, `${n} syslog line(s)`),
    async stop() {
      if (!exited) {
        await new Promise<void>((resolve) => {
          const t = setTimeout(() => {
            child.kill('SIGKILL');
          }, 5000);
          child.once('exit', () => {
            clearTimeout(t);
            resolve();
          });
          child.kill('SIGTERM');
        });
      }
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}
