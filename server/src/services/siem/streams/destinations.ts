/**
 * Outbound destination policy of tenant audit streams (SSRF): a tenant administrator chooses
 * the URL, so the service must not become a proxy into its own network.
 *  - https only in production;
 *  - the host must not be, or resolve to, a loopback, link-local, private, shared (CGNAT),
 *    unique-local, multicast, reserved or unspecified address, unless
 *    SIEM_ALLOW_PRIVATE_DESTINATIONS=true;
 *  - checked when the stream is saved (every address the name resolves to) and again when
 *    connecting (guardedLookup, the agents' DNS lookup), so a name re-pointed to an internal
 *    address after the check (DNS rebinding) is refused at connect time.
 */
import dns from 'node:dns';
import net from 'node:net';

export class DestinationRefused extends Error {
  readonly code = 'DESTINATION_REFUSED';
}

const V4: Array<[string, number, string]> = [
  ['0.0.0.0', 8, 'unspecified'],
  ['10.0.0.0', 8, 'private'],
  ['100.64.0.0', 10, 'private (shared address space)'],
  ['127.0.0.0', 8, 'loopback'],
  ['169.254.0.0', 16, 'link-local'],
  ['172.16.0.0', 12, 'private'],
  ['192.0.0.0', 24, 'reserved'],
  ['192.168.0.0', 16, 'private'],
  ['198.18.0.0', 15, 'reserved (benchmarking)'],
  ['224.0.0.0', 4, 'multicast'],
  ['240.0.0.0', 4, 'reserved'],
];
const V6: Array<[string, number, string]> = [
  ['::', 128, 'unspecified'],
  ['::1', 128, 'loopback'],
  ['fe80::', 10, 'link-local'],
  ['fc00::', 7, 'unique-local'],
  ['ff00::', 8, 'multicast'],
  ['100::', 64, 'reserved (discard)'],
];
const lists = [
  ...V4.map(([a, p, why]) => ({ why, list: blockOf(a, p, 'ipv4') })),
  ...V6.map(([a, p, why]) => ({ why, list: blockOf(a, p, 'ipv6') })),
];

function blockOf(address: string, prefix: number, type: 'ipv4' | 'ipv6'): net.BlockList {
  const b = new net.BlockList();
  b.addSubnet(address, prefix, type);
  return b;
}

/** The IPv4 address embedded in an IPv4-mapped or -compatible IPv6 address, if any. */
function embeddedV4(ip: string): string | null {
  const m = /^::(?:ffff:)?(\d+\.\d+\.\d+\.\d+)$/i.exec(ip);
  if (m) return m[1] as string;
  const h = /^::ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})$/i.exec(ip);
  if (h) {
    const hi = parseInt(h[1] as string, 16);
    const lo = parseInt(h[2] as string, 16);
    return `${hi >> 8}.${hi & 255}.${lo >> 8}.${lo & 255}`;
  }
  return null;
}

/** Why an address may not be a destination (e.g. "loopback"), or null when it may. */
export function forbiddenRange(ip: string): string | null {
  const family = net.isIP(ip);
  if (family === 0) return 'not an IP address';
  if (family === 6) {
    const v4 = embeddedV4(ip.toLowerCase());
    if (v4) return forbiddenRange(v4);
  }
  const type = family === 4 ? 'ipv4' : 'ipv6';
  for (const { why, list } of lists) if (list.check(ip, type)) return why;
  return null;
}

export interface DestinationPolicy {
  production: boolean;
  allowPrivate: boolean;
  /** Resolver (tests may pass their own); defaults to the system's (getaddrinfo, like connections). */
  resolve?: (host: string) => Promise<string[]>;
}

async function systemResolve(host: string): Promise<string[]> {
  const r = await dns.promises.lookup(host, { all: true, verbatim: true });
  return r.map((a) => a.address);
}

function hostOf(u: URL): string {
  return u.hostname.replace(/^\[(.*)\]$/, '$1');
}

/** Checks a destination URL; throws DestinationRefused with a message fit for the client. */
export async function checkDestination(raw: string, policy: DestinationPolicy): Promise<void> {
  let u: URL;
  try {
    u = new URL(raw);
  } catch {
    throw new DestinationRefused('must be an absolute URL');
  }
  if (u.protocol !== 'https:' && u.protocol !== 'http:') throw new DestinationRefused('must be an https:// URL');
  if (policy.production && u.protocol !== 'https:') throw new DestinationRefused('must use https:// in production');
  if (u.username || u.password) throw new DestinationRefused('must not carry credentials (use the credentials field)');
  if (policy.allowPrivate) return;
  const host = hostOf(u);
  if (net.isIP(host)) {
    const why = forbiddenRange(host);
    if (why) throw new DestinationRefused(`refers to a ${why} address`);
    return;
  }
  let addresses: string[];
  try {
    addresses = await (policy.resolve ?? systemResolve)(host);
  } catch {
    throw new DestinationRefused('host name does not resolve');
  }
  if (addresses.length === 0) throw new DestinationRefused('host name does not resolve');
  for (const a of addresses) {
    const why = forbiddenRange(a);
    if (why) throw new DestinationRefused(`resolves to a ${why} address`);
  }
}

type LookupCallback = (
  err: NodeJS.ErrnoException | null,
  address: string | dns.LookupAddress[],
  family?: number,
) => void;

/**
 * A `lookup` for http(s).Agent / net.connect: resolves like dns.lookup and fails the
 * connection when any address it would use is forbidden.
 */
export function guardedLookup(hostname: string, options: dns.LookupOptions, callback: LookupCallback): void {
  dns.lookup(hostname, { ...options, all: true }, (err, addresses) => {
    if (err) return callback(err, '');
    const list = addresses as dns.LookupAddress[];
    for (const a of list) {
      const why = forbiddenRange(a.address);
      if (why) {
        const e = new DestinationRefused(
          `destination ${hostname} resolves to a ${why} address`,
        ) as unknown as NodeJS.ErrnoException;
        e.code = 'DESTINATION_REFUSED';
        return callback(e, '');
      }
    }
    if (options.all) return callback(null, list);
    const first = list[0];
    if (!first) return callback(Object.assign(new Error(`no address for ${hostname}`), { code: 'ENOTFOUND' }), '');
    callback(null, first.address, first.family);
  });
}

/** Literal IP hosts never reach a lookup: refuse them before connecting. */
export function literalHostRefusal(raw: string): string | null {
  try {
    const host = hostOf(new URL(raw));
    if (!net.isIP(host)) return null;
    const why = forbiddenRange(host);
    return why ? `destination refers to a ${why} address` : null;
  } catch {
    return 'destination is not a URL';
  }
}
