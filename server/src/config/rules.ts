/**
 * Rules between settings: what one requires of another, what production requires, and what
 * is worth a warning. Each setting's own form is checked by its parser (settings.ts); these
 * only see parsed values (and whether a variable was given).
 */
import { generateSigningKey } from '../lib/jws-keys';
import { parseUrl } from './checks';
import { auth0DomainParts, missingSigningKey } from './parsers';
import type { Reading } from './read';

export function sessionRules(r: Reading): void {
  const v = r.values;
  if (!r.raw('JWT_SECRET'))
    r.err(
      'JWT_SECRET',
      'REQUIRED',
      r.ctx.prod
        ? 'is required in production: generate one with `openssl rand -base64 48`'
        : 'is required: generate one with `openssl rand -base64 48`',
    );
  const lifetimeMs = v.JWT_EXPIRES_IN as number;
  for (const s of v.JWT_PREVIOUS_SECRETS ?? []) {
    if (s.notAfter !== null && s.notAfter > r.ctx.now && s.notAfter - r.ctx.now > lifetimeMs + 86_400_000)
      r.warn(
        'JWT_PREVIOUS_SECRETS',
        'NOTICE',
        `entry ${s.entry} stays valid until ${new Date(s.notAfter).toISOString()}, longer than the access-token lifetime + 24 h: tokens signed with it expire within JWT_EXPIRES_IN, so retire it sooner`,
      );
    if (s.secret === r.raw('JWT_SECRET'))
      r.warn('JWT_PREVIOUS_SECRETS', 'CONFLICT', `entry ${s.entry} equals JWT_SECRET; remove it`);
  }
  if ((v.SESSION_ABSOLUTE_TIMEOUT as number) < (v.SESSION_IDLE_TIMEOUT as number))
    r.err('SESSION_ABSOLUTE_TIMEOUT', 'CONFLICT', 'must not be shorter than SESSION_IDLE_TIMEOUT');
}

/** The access-token signing key: given, a development secret, or (outside production) one for this process only. */
export function signingKeyRule(r: Reading): string {
  const raw = r.raw('JWT_SIGNING_KEY');
  if (raw) return raw;
  r.report('JWT_SIGNING_KEY', missingSigningKey(r.ctx.prod));
  return r.ctx.prod ? '' : generateSigningKey(r.values.JWT_SIGNING_ALG ?? 'ES256');
}

/** The identity provider: the issuer (AUTH0_ISSUER_BASE_URL wins over AUTH0_DOMAIN), its audience, the development issuer. */
export function identityProviderRules(r: Reading): { issuerUrl: string | null; devIssuer: boolean } {
  const v = r.values;
  const prod = r.ctx.prod;
  const issuerUrl = v.AUTH0_ISSUER_BASE_URL ?? v.AUTH0_DOMAIN ?? null;
  const issuerGiven = r.given('AUTH0_ISSUER_BASE_URL') || r.given('AUTH0_DOMAIN');
  const [domainHost] = auth0DomainParts(r.raw('AUTH0_DOMAIN') ?? '');
  const issuerBase = r.raw('AUTH0_ISSUER_BASE_URL');
  if (domainHost && issuerBase) {
    const host = parseUrl(issuerBase)?.hostname;
    if (host && host.toLowerCase() !== domainHost.toLowerCase())
      r.warn(
        'AUTH0_DOMAIN',
        'CONFLICT',
        'names another host than AUTH0_ISSUER_BASE_URL, which is the one used; remove one of them',
      );
  }
  if (issuerUrl && !r.raw('AUTH0_CLIENT_ID'))
    r.err('AUTH0_CLIENT_ID', 'REQUIRED', 'is required with an identity provider (the expected audience of ID tokens)');
  if (prod && !issuerUrl && !issuerGiven)
    r.err('AUTH0_DOMAIN', 'REQUIRED', 'is required in production (or AUTH0_ISSUER_BASE_URL), with AUTH0_CLIENT_ID');
  if (prod && v.FLEET_DEV_ISSUER)
    r.err('FLEET_DEV_ISSUER', 'INSECURE', 'the development issuer cannot be enabled in production');
  return {
    issuerUrl,
    devIssuer: !prod && !issuerUrl && (r.ctx.env === 'development' || v.FLEET_DEV_ISSUER === true),
  };
}

export function masterKeyRules(r: Reading): void {
  const v = r.values;
  if (!v.AZURE_KEYVAULT_URL && !v.FLEET_ENCRYPTION_KEY && !r.raw('FLEET_ENCRYPTION_KEY'))
    r.err(
      'FLEET_ENCRYPTION_KEY',
      'REQUIRED',
      'no master key source: set AZURE_KEYVAULT_URL (recommended) or FLEET_ENCRYPTION_KEY (`openssl rand -base64 32`)',
    );
  if (r.ctx.prod && !v.AZURE_KEYVAULT_URL && v.FLEET_ENCRYPTION_KEY)
    r.warn(
      'AZURE_KEYVAULT_URL',
      'INSECURE',
      'is not set: the master key comes from FLEET_ENCRYPTION_KEY; keys belong in a vault in production',
    );
}

export function siemRules(r: Reading): void {
  const v = r.values;
  const provider = v.SIEM_PROVIDER;
  if (!r.given('SIEM_PROVIDER') && r.ctx.prod)
    r.warn(
      'SIEM_PROVIDER',
      'NOTICE',
      'is not set: security events are only kept in the database; configure a SIEM for alerting',
    );
  if (provider && !r.given('SIEM_ENDPOINT_URL'))
    r.err('SIEM_ENDPOINT_URL', 'REQUIRED', `is required with SIEM_PROVIDER=${provider}`);
  if (provider && ['splunk', 'datadog', 'webhook'].includes(provider) && !r.given('SIEM_API_KEY'))
    r.err('SIEM_API_KEY', 'REQUIRED', `is required with SIEM_PROVIDER=${provider}`);
  if (v.SIEM_EVENT_SCHEMA !== 'native' && provider === 'syslog')
    r.warn('SIEM_EVENT_SCHEMA', 'NOTICE', 'does not apply to syslog: CEF is sent as is');
  if (v.SIEM_SPLUNK_ACK && provider !== 'splunk')
    r.warn('SIEM_SPLUNK_ACK', 'NOTICE', 'only applies with SIEM_PROVIDER=splunk');
  if (provider !== 'sentinel') return;
  if (!r.given('SIEM_DCR_ID'))
    r.err(
      'SIEM_DCR_ID',
      'REQUIRED',
      'is required with SIEM_PROVIDER=sentinel (the immutable id of the data collection rule, dcr-…)',
    );
  if (!r.given('SIEM_STREAM_NAME'))
    r.err('SIEM_STREAM_NAME', 'REQUIRED', 'is required with SIEM_PROVIDER=sentinel (e.g. Custom-FleetSecurityEvents)');
  const app = (['SIEM_AZURE_TENANT_ID', 'SIEM_AZURE_CLIENT_ID', 'SIEM_AZURE_CLIENT_SECRET'] as const).filter((n) =>
    r.given(n),
  ).length;
  if (app !== 0 && app !== 3)
    r.err(
      'SIEM_AZURE_CLIENT_SECRET',
      'REQUIRED',
      'SIEM_AZURE_TENANT_ID, SIEM_AZURE_CLIENT_ID and SIEM_AZURE_CLIENT_SECRET go together (or none: managed identity)',
    );
}

export function archiveRules(r: Reading): void {
  if (!r.ctx.prod) return;
  const target = r.given('AZURE_STORAGE_CONNECTION_STRING') || r.values.AZURE_STORAGE_ACCOUNT_URL !== undefined;
  if (!target) r.warn('AZURE_STORAGE_CONNECTION_STRING', 'NOTICE', 'is not set: no immutable audit archive is written');
  else if (!r.given('AUDIT_ARCHIVE_IMMUTABILITY_DAYS'))
    r.warn(
      'AUDIT_ARCHIVE_IMMUTABILITY_DAYS',
      'INSECURE',
      'is not set: archived blobs are write-once by name only, not under an immutability policy',
    );
}

export function checkpointRules(r: Reading): void {
  const inVault = r.given('AZURE_KEYVAULT_CHECKPOINT_KEY_NAME');
  if (inVault && !r.given('AZURE_KEYVAULT_URL'))
    r.err('AZURE_KEYVAULT_CHECKPOINT_KEY_NAME', 'REQUIRED', 'needs AZURE_KEYVAULT_URL (the vault that holds it)');
  if (inVault && r.given('AUDIT_CHECKPOINT_SIGNING_KEY'))
    r.warn(
      'AUDIT_CHECKPOINT_SIGNING_KEY',
      'CONFLICT',
      'is ignored: the checkpoint key comes from AZURE_KEYVAULT_CHECKPOINT_KEY_NAME',
    );
  if (r.ctx.prod && !inVault && r.raw('AUDIT_CHECKPOINT_SIGNING_KEY') === undefined)
    r.warn(
      'AZURE_KEYVAULT_CHECKPOINT_KEY_NAME',
      'INSECURE',
      'is not set (nor AUDIT_CHECKPOINT_SIGNING_KEY): no signed audit checkpoints are published, and a database owner could rewrite audit history undetected',
    );
}

/** Browser origins and /metrics access; returns whether loopback callers may read /metrics without the token. */
export function httpRules(r: Reading): { origins: string[]; metricsAllowLoopback: boolean } {
  const v = r.values;
  const prod = r.ctx.prod;
  if (prod && !r.given('CORS_ORIGINS') && !r.given('FRONTEND_URL'))
    r.warn('CORS_ORIGINS', 'NOTICE', 'is not set: browsers on other origins cannot call the API');
  // Behind a proxy on the same host every request is "loopback": only without TRUST_PROXY, outside production.
  const metricsAllowLoopback = v.METRICS_ALLOW_LOOPBACK === true || (!prod && (v.TRUST_PROXY ?? false) === false);
  if (!metricsAllowLoopback && !r.given('METRICS_TOKEN'))
    r.warn(
      'METRICS_TOKEN',
      'INSECURE',
      `is not set: GET /metrics refuses every caller (${prod ? 'production' : 'TRUST_PROXY is set'}, so loopback callers are not trusted); set METRICS_TOKEN, or METRICS_ALLOW_LOOPBACK=true when no proxy runs on this host`,
    );
  return { origins: v.CORS_ORIGINS ?? v.FRONTEND_URL ?? [], metricsAllowLoopback };
}
