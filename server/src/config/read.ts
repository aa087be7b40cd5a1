/**
 * Reads settings from an environment by the table: each variable through its parser, in table
 * order, with its default when unset; every issue collected with its variable and code.
 */
import { error, warning, type Issue, type IssueCode, type ParseContext } from './parsers';
import { SETTINGS, SETTING_NAMES, type SettingName, type SettingValues } from './settings';
import type { ConfigIssue, Env, NodeEnv } from './types';

export interface CollectedIssue extends ConfigIssue {
  code: IssueCode;
  level: 'error' | 'warning';
}

export interface Reading {
  values: SettingValues;
  ctx: ParseContext;
  /** The variable is set (not blank) in the environment. */
  given(name: SettingName): boolean;
  /** The text the setting was (or, when skipped, would be) read from: the environment's, else a development secret. */
  raw(name: SettingName): string | undefined;
  issues: CollectedIssue[];
  report(variable: string, issue: Issue): void;
  err(variable: string, code: IssueCode, message: string): void;
  warn(variable: string, code: IssueCode, message: string): void;
}

/** A variable's text, or undefined when unset or blank. */
export function envText(env: Env, name: string): string | undefined {
  const v = env[name];
  return v === undefined || v.trim() === '' ? undefined : v;
}

export function readSettings(
  env: Env,
  opts: {
    names?: readonly SettingName[];
    devSecrets?: Record<string, string>;
    cwd?: string;
    now?: number;
  } = {},
): Reading {
  const values: SettingValues = {};
  const raws: Partial<Record<SettingName, string>> = {};
  const issues: CollectedIssue[] = [];
  const report = (variable: string, issue: Issue) => issues.push({ variable, ...issue });
  const given = (name: string) => envText(env, name) !== undefined;
  const nodeEnv = (): NodeEnv => values.NODE_ENV ?? 'development';
  const ctx: ParseContext = {
    get env() {
      return nodeEnv();
    },
    get prod() {
      return nodeEnv() === 'production';
    },
    now: opts.now ?? Date.now(),
    cwd: opts.cwd ?? process.cwd(),
    value: (name) => values[name as SettingName],
  };
  const names = opts.names ?? SETTING_NAMES;
  for (const name of SETTING_NAMES) {
    if (!names.includes(name)) continue;
    const spec = SETTINGS[name];
    if (spec.when && !spec.when(given, ctx)) continue;
    const devName = spec.devSecret && !ctx.prod ? spec.devSecret(ctx) : undefined;
    const raw = envText(env, name) ?? (devName ? opts.devSecrets?.[devName] : undefined);
    let value: unknown;
    if (raw !== undefined) {
      raws[name] = raw;
      const parsed = spec.parse(raw, ctx);
      for (const issue of parsed.issues) report(name, issue);
      value = parsed.value;
    }
    if (value === undefined) {
      const def = typeof spec.default === 'function' ? spec.default(ctx, given) : spec.default;
      if (def !== undefined) value = spec.parse(def, ctx).value;
    }
    if (value !== undefined) (values as Record<string, unknown>)[name] = value;
  }
  return {
    values,
    ctx,
    given,
    raw: (name) => raws[name] ?? envText(env, name),
    issues,
    report,
    err: (variable, code, message) => report(variable, error(code, message)),
    warn: (variable, code, message) => report(variable, warning(code, message)),
  };
}

/** The issues as loadConfig reports them: errors and warnings apart, in the order found. */
export function splitIssues(issues: readonly CollectedIssue[]): { errors: ConfigIssue[]; warnings: ConfigIssue[] } {
  const plain = (i: CollectedIssue): ConfigIssue => ({ variable: i.variable, message: i.message });
  return {
    errors: issues.filter((i) => i.level === 'error').map(plain),
    warnings: issues.filter((i) => i.level === 'warning').map(plain),
  };
}
