/** The settings table (server/src/config/settings.ts) is the one definition of every setting. */
import fs from 'node:fs';
import path from 'node:path';
import { formatIssues, loadConfig, SETTINGS, SETTING_NAMES } from '../src/config';
import { DOC_BEGIN, DOC_END, filteredBegin, withSettingsTable } from '../src/config/doc';
import { ISSUE_CODES, type ParseContext } from '../src/config/parsers';
import { scopeOf } from '../src/config/settings';

const ctx: ParseContext = {
  env: 'production',
  prod: true,
  now: Date.now(),
  cwd: process.cwd(),
  value: () => undefined,
};

describe('settings table', () => {
  test('when a setting is listed, then it has a parser, a scope, a secret flag and a documented meaning', () => {
    expect(SETTING_NAMES.length).toBeGreaterThan(80);
    for (const name of SETTING_NAMES) {
      const s = SETTINGS[name];
      expect({ name, parse: typeof s.parse }).toEqual({ name, parse: 'function' });
      expect(['all', 'database']).toContain(s.scope);
      expect(typeof s.secret).toBe('boolean');
      expect(s.doc.text.length).toBeGreaterThan(5);
      expect(name).toMatch(/^[A-Z][A-Z0-9_]*$/);
    }
  });

  test('when a setting has a fixed default, then its own parser accepts it without an issue', () => {
    for (const name of SETTING_NAMES) {
      const def = SETTINGS[name].default;
      if (typeof def !== 'string') continue;
      const parsed = SETTINGS[name].parse(def, { ...ctx, prod: false, env: 'development' });
      expect({ name, issues: parsed.issues }).toEqual({ name, issues: [] });
    }
  });

  test('when a parser reports an issue, then its code is one of the documented stable codes', () => {
    for (const name of SETTING_NAMES)
      for (const raw of ['x', '-1', 'http://a b', '*'])
        for (const issue of SETTINGS[name].parse(raw, ctx).issues)
          expect(Object.keys(ISSUE_CODES)).toContain(issue.code);
  });

  test('when the scope filter runs, then database, log and NODE_ENV settings are in the database scope, the rest are not', () => {
    for (const name of ['NODE_ENV', 'DATABASE_URL', 'MIGRATION_DATABASE_URL', 'DB_POOL_SIZE', 'LOG_LEVEL', 'LOG_DIR'])
      expect({ name, scope: scopeOf(name) }).toEqual({ name, scope: 'database' });
    for (const name of ['JWT_SECRET', 'CORS_ORIGINS', 'SIEM_PROVIDER', 'PORT'])
      expect({ name, scope: scopeOf(name) }).toEqual({ name, scope: 'all' });
    expect(scopeOf('DATABASE_SSLMODE')).toBe('database'); // an unknown name under a database prefix
  });

  test('when the README is read, then its settings table is the one generated from the table (npm run settings:write)', () => {
    const readme = fs.readFileSync(path.resolve(__dirname, '../../README.md'), 'utf8');
    expect(withSettingsTable(readme)).toBe(readme);
    for (const name of SETTING_NAMES) expect(readme).toContain(`| \`${name}\` |`);
  });

  test('when docs/SIEM_AND_ARCHIVE.md is read, then its settings table is generated too and lists every SIEM and archive setting', () => {
    const doc = fs.readFileSync(path.resolve(__dirname, '../../docs/SIEM_AND_ARCHIVE.md'), 'utf8');
    expect(withSettingsTable(doc)).toBe(doc);
    const own = SETTING_NAMES.filter((n) => /^(SIEM_|AZURE_STORAGE_|AUDIT_ARCHIVE_)/.test(n));
    expect(own.length).toBeGreaterThan(10);
    for (const name of own) expect(doc).toContain(`| \`${name}\` |`);
    expect(doc).not.toContain('| `JWT_SECRET` |');
  });

  test('when a text has a filtered block, a full block, or a broken one, then each block gets its own table and a broken text none', () => {
    const text = `a\n${filteredBegin(['AUDIT_ARCHIVE_'])}\nold\n${DOC_END}\nb\n${DOC_BEGIN}\n${DOC_END}\nc`;
    const out = withSettingsTable(text) as string;
    const [first, second] = out.split(DOC_END) as [string, string];
    expect(first).toContain('| `AUDIT_ARCHIVE_INTERVAL` |');
    expect(first).not.toContain('| `SIEM_PROVIDER` |');
    expect(first).not.toContain('Issue codes');
    expect(first).not.toContain('old');
    expect(second).toContain('| `SIEM_PROVIDER` |');
    expect(second).toContain('Issue codes');
    expect(out.startsWith('a\n')).toBe(true);
    expect(out.endsWith(`${DOC_END}\nc`)).toBe(true);
    expect(withSettingsTable(out)).toBe(out);
    expect(withSettingsTable('no markers')).toBeNull();
    expect(withSettingsTable(`${DOC_BEGIN}\nno end`)).toBeNull();
  });

  test('when every secret setting holds a recognisable invalid value, then no diagnostic contains it', () => {
    const marker = 'Zq7SecretMarker';
    for (const name of SETTING_NAMES.filter((n) => SETTINGS[n].secret)) {
      for (const value of [
        `${marker}-not-valid`,
        `postgres://u:${marker}@db.example.com/x?host=evil`,
        `redis://:${marker}@h`,
        `a,${marker}`,
      ]) {
        for (const env of ['production', 'development']) {
          const r = loadConfig({ NODE_ENV: env, SIEM_PROVIDER: 'sentinel', [name]: value });
          expect({ name, value, text: formatIssues(r).includes(marker) }).toEqual({ name, value, text: false });
        }
      }
    }
  });
});
