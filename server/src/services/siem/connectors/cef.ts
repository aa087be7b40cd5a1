/**
 * ArcSight Common Event Format inside RFC 5424 syslog messages, framed by RFC 6587 octet
 * counting.
 *
 * CEF:0|Device Vendor|Device Product|Device Version|Device Event Class ID|Name|Severity|Extension
 *  - header fields: `\` → `\\`, `|` → `\|`; line breaks are not allowed there and become spaces;
 *  - extension values: `\` → `\\`, `=` → `\=`, CR → `\r`, LF → `\n`; pipes need no escaping;
 *  - other control characters (NUL, TAB, …) are replaced by a space in both (syslog
 *    receivers rewrite them otherwise); all other Unicode is sent as UTF-8.
 * Values are truncated (by code point) before escaping, so a cut never splits an escape.
 */
import { isIPv4 } from 'node:net';
import { CEF_SEVERITY, SYSLOG_SEVERITY, truncate } from '../events';
import type { SiemEvent } from '../types';

const CEF_VENDOR = 'Fleet';
const CEF_PRODUCT = 'Fleet Security API';
const CEF_VERSION = '1.0.0';
/** authpriv: security/authorization messages. */
const SYSLOG_FACILITY = 10;
const SYSLOG_APP_NAME = 'fleet-security-api';
/** RFC 5612's documentation enterprise number; SD-ID of the structured data element. */
const SD_ID = 'fleet@32473';
/** Whole syslog message (without the octet count); rsyslog's default maxMessageSize is 8 KiB. */
export const MAX_SYSLOG_MESSAGE_BYTES = 8192;

// eslint-disable-next-line no-control-regex
const OTHER_CONTROLS = /[\u0000-\u0009\u000b\u000c\u000e-\u001f\u007f]/g;

export function cefHeaderEscape(value: string): string {
  return value
    .replace(OTHER_CONTROLS, ' ')
    .replace(/[\r\n]/g, ' ')
    .replace(/\\/g, '\\\\')
    .replace(/\|/g, '\\|');
}

export function cefExtensionEscape(value: string): string {
  return value
    .replace(OTHER_CONTROLS, ' ')
    .replace(/\\/g, '\\\\')
    .replace(/=/g, '\\=')
    .replace(/\r/g, '\\r')
    .replace(/\n/g, '\\n');
}

/** Inverse of the escaping above (for tests and receivers). */
export function cefExtensionUnescape(value: string): string {
  return value.replace(/\\([\\=nr])/g, (_m, c: string) => (c === 'n' ? '\n' : c === 'r' ? '\r' : c));
}

export interface CefOptions {
  hostname: string;
  /** Include the details JSON (cs6); dropped when a message would be too large. */
  includeDetails?: boolean;
  maxMessageChars?: number;
}

export function formatCef(e: SiemEvent, opts: CefOptions): string {
  const ext: Array<[string, string | null | undefined]> = [
    ['rt', String(Date.parse(e.time))],
    ['externalId', e.id],
    ['cat', e.eventType],
    ['outcome', e.outcome],
    ['suser', e.userId],
  ];
  if (e.ipAddress) {
    if (isIPv4(e.ipAddress)) ext.push(['src', e.ipAddress]);
    else ext.push(['c6a2', e.ipAddress], ['c6a2Label', 'Source IPv6 Address']);
  }
  ext.push(
    ['requestClientApplication', e.userAgent ? truncate(e.userAgent, 1023) : null],
    ['msg', truncate(e.message, opts.maxMessageChars ?? 1023)],
  );
  // A custom field and its label go together: no label without a value.
  const custom = (field: string, label: string, value: string | null | undefined): void => {
    if (typeof value === 'string' && value !== '') ext.push([`${field}Label`, label], [field, value]);
  };
  custom('cs1', 'tenantId', e.tenantId);
  custom('cs2', 'requestId', e.requestId);
  // type:id, or whichever of the two the event has.
  custom('cs3', 'resource', [e.resourceType, e.resourceId].filter((v) => typeof v === 'string' && v !== '').join(':'));
  custom('cs4', 'origin', e.origin);
  custom('cs5', 'severity', e.severity);
  if (e.auditLogId) ext.push(['cn1Label', 'auditLogId'], ['cn1', e.auditLogId]);
  if (e.details && opts.includeDetails !== false)
    ext.push(['cs6Label', 'details'], ['cs6', truncate(JSON.stringify(e.details), 2000)]);
  ext.push(['dvchost', opts.hostname]);
  const extension = ext
    .filter((p): p is [string, string] => typeof p[1] === 'string' && p[1] !== '')
    .map(([k, v]) => `${k}=${cefExtensionEscape(v)}`)
    .join(' ');
  const header = [
    'CEF:0',
    cefHeaderEscape(CEF_VENDOR),
    cefHeaderEscape(CEF_PRODUCT),
    cefHeaderEscape(CEF_VERSION),
    cefHeaderEscape(truncate(e.eventType, 1023)),
    cefHeaderEscape(truncate(e.message, 512)),
    String(CEF_SEVERITY[e.severity]),
  ].join('|');
  return `${header}|${extension}`;
}

/** printusascii (33-126) only, at most `max` characters; '-' (NILVALUE) when empty. */
function printable(value: string, max: number): string {
  const v = value.replace(/[^\x21-\x7e]/g, '-').slice(0, max);
  return v === '' ? '-' : v;
}

function sdValue(value: string): string {
  return value.replace(/[\\"\]]/g, (c) => `\\${c}`);
}

/** One RFC 5424 message carrying the CEF record as MSG (no BOM: MSG-ANY). */
export function formatSyslog(e: SiemEvent, opts: { hostname: string; pid?: number }): string {
  const pri = SYSLOG_FACILITY * 8 + SYSLOG_SEVERITY[e.severity];
  const sd = `[${SD_ID} eventId="${sdValue(e.id)}" tenant="${sdValue(e.tenantId)}" severity="${e.severity}"]`;
  const head = `<${pri}>1 ${new Date(e.time).toISOString()} ${printable(opts.hostname, 255)} ${SYSLOG_APP_NAME} ${opts.pid ?? process.pid} ${printable(e.eventType, 32)} ${sd} `;
  let msg = head + formatCef(e, { hostname: opts.hostname });
  if (Buffer.byteLength(msg) > MAX_SYSLOG_MESSAGE_BYTES)
    msg = head + formatCef(e, { hostname: opts.hostname, includeDetails: false });
  if (Buffer.byteLength(msg) > MAX_SYSLOG_MESSAGE_BYTES)
    msg =
      head +
      formatCef({ ...e, userAgent: null }, { hostname: opts.hostname, includeDetails: false, maxMessageChars: 256 });
  return msg;
}

/** RFC 6587 octet-counting frame: "<byte length> <message>". */
export function octetFrame(message: string): Buffer {
  const body = Buffer.from(message, 'utf8');
  return Buffer.concat([Buffer.from(`${body.length} `, 'ascii'), body]);
}
