/**
 * The configuration: the only module (with server/src/config/) that reads process.env.
 * Settings are defined once, as a table (config/settings.ts: name, scope, secret, default,
 * parser, documentation); loading checks every one and reports every problem at once, each
 * naming its variable and what to do; secret values are never echoed.
 */
import { createHash } from 'node:crypto';
import type { Env, LoadResult } from './config/types';

export type {
  Config,
  ConfigIssue,
  ConfigScope,
  DatabaseSsl,
  IdentitySettings,
  LoadResult,
  NodeEnv,
  SiemProvider,
} from './config/types';
export { decodeKey32, isLoopbackHost, weakSecretReason } from './config/checks';
export { parseDatabaseSettings, SAME_LOGIN_MESSAGE, type DatabaseSettings } from './config/database';
export { loadConfig, type LoadOptions } from './config/load';
export { envText } from './config/read';
export { SETTINGS, SETTING_NAMES, type SettingName } from './config/settings';

/** The process environment, for the composition root and the CLIs. */
export function processEnv(): Env {
  return process.env;
}

/** Formats issues for people: one line each, variable first. Never includes values. */
export function formatIssues(result: Pick<LoadResult, 'errors' | 'warnings'>): string {
  const lines: string[] = [];
  for (const e of result.errors) lines.push(`ERROR   ${e.variable}: ${e.message}`);
  for (const w of result.warnings) lines.push(`WARNING ${w.variable}: ${w.message}`);
  return lines.join('\n');
}

/** A short, non-reversible fingerprint used to name secrets in logs and token headers. */
export function secretId(secret: string): string {
  return createHash('sha256').update('fleet-kid:').update(secret).digest('base64url').slice(0, 12);
}
