/**
 * Syslog over TCP (RFC 6587 octet counting) or TLS (RFC 5425, `tls://`), one RFC 5424
 * message per event with a CEF record as MSG (cef.ts). The connection is kept open between
 * batches and re-opened after any error. A batch counts as delivered once the kernel
 * accepted every byte: plain syslog has no application acknowledgement, so an event written
 * just before the receiver drops the connection can be lost (RELP would be needed for more).
 */
import net from 'node:net';
import fs from 'node:fs';
import os from 'node:os';
import tls from 'node:tls';
import type { DeliveryReport, EventOutcome, SiemConnector } from '../types';
import { formatSyslog, octetFrame } from './cef';

export interface SyslogConnectorOptions {
  endpointUrl: string;
  tlsCaFile?: string | null;
  timeoutMs?: number;
  hostname?: string;
}

export function createSyslogConnector(opts: SyslogConnectorOptions): SiemConnector {
  const u = new URL(opts.endpointUrl);
  const useTls = u.protocol === 'tls:';
  const host = u.hostname.replace(/^\[|\]$/g, '');
  const port = Number(u.port || (useTls ? 6514 : 514));
  const timeoutMs = opts.timeoutMs ?? 10_000;
  const hostname = opts.hostname ?? os.hostname();
  const ca = opts.tlsCaFile ? fs.readFileSync(opts.tlsCaFile, 'utf8') : undefined;
  let socket: net.Socket | null = null;
  let connecting: Promise<net.Socket> | null = null;

  function drop(s: net.Socket): void {
    if (socket === s) socket = null;
    s.destroy();
  }

  function connect(): Promise<net.Socket> {
    if (socket && !socket.destroyed && socket.writable) return Promise.resolve(socket);
    if (connecting) return connecting;
    connecting = new Promise<net.Socket>((resolve, reject) => {
      const s: net.Socket = useTls
        ? tls.connect({
            host,
            port,
            servername: net.isIP(host) ? undefined : host,
            ca,
            minVersion: 'TLSv1.2',
            rejectUnauthorized: true,
          })
        : net.connect({ host, port });
      const timer = setTimeout(() => {
        s.destroy();
        reject(Object.assign(new Error('connect timeout'), { code: 'ETIMEDOUT' }));
      }, timeoutMs);
      const onError = (err: Error) => {
        clearTimeout(timer);
        s.destroy();
        reject(err);
      };
      s.once('error', onError);
      s.once(useTls ? 'secureConnect' : 'connect', () => {
        clearTimeout(timer);
        s.off('error', onError);
        s.setKeepAlive(true, 30_000);
        s.setNoDelay(true);
        s.on('error', () => drop(s));
        s.on('end', () => drop(s));
        s.on('close', () => drop(s));
        // Receivers do not talk back on a syslog connection; discard anything they send.
        s.on('data', () => undefined);
        socket = s;
        resolve(s);
      });
    }).finally(() => {
      connecting = null;
    });
    return connecting;
  }

  function write(s: net.Socket, buf: Buffer): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        drop(s);
        reject(Object.assign(new Error('write timeout'), { code: 'ETIMEDOUT' }));
      }, timeoutMs);
      s.write(buf, (err) => {
        clearTimeout(timer);
        if (err) {
          drop(s);
          reject(err);
        } else resolve();
      });
    });
  }

  function reasonOf(err: unknown): string {
    const code = (err as { code?: string })?.code;
    if (code === 'ETIMEDOUT') return 'syslog: timeout';
    if (typeof code === 'string') return `syslog: network error (${code})`;
    return useTls ? 'syslog: TLS error' : 'syslog: network error';
  }

  return {
    provider: 'syslog',
    async send(events) {
      const outcomes = new Map<string, EventOutcome>();
      if (events.length === 0) return { outcomes };
      const frames = events.map((e) => octetFrame(formatSyslog(e, { hostname })));
      try {
        const s = await connect();
        await write(s, Buffer.concat(frames));
        for (const e of events) outcomes.set(e.id, { kind: 'delivered' });
        return { outcomes };
      } catch (err) {
        const reason = reasonOf(err);
        for (const e of events) outcomes.set(e.id, { kind: 'retry', reason });
        const report: DeliveryReport = { outcomes, error: reason };
        return report;
      }
    },
    async healthCheck() {
      try {
        await connect();
      } catch (err) {
        throw new Error(reasonOf(err), { cause: err });
      }
    },
    async close() {
      const s = socket;
      socket = null;
      if (s) await new Promise<void>((resolve) => s.end(() => resolve()));
      s?.destroy();
    },
  };
}
