/** The README's settings table and issue codes, generated from the settings table (scripts/settings-doc.ts). */
import { ISSUE_CODES } from './parsers';
import { SETTINGS, SETTING_NAMES } from './settings';

export const DOC_BEGIN =
  '<!-- settings:begin (generated from server/src/config/settings.ts: npm run settings:write) -->';
export const DOC_END = '<!-- settings:end -->';

const cell = (s: string) => s.replace(/\n/g, ' ');

/** One row per setting: name, default, meaning (secret settings say so). */
export function settingsTable(): string {
  const rows = SETTING_NAMES.map((name) => {
    const s = SETTINGS[name];
    const def = s.doc.default ?? (typeof s.default === 'string' ? `\`${s.default}\`` : '');
    const text = s.secret ? `${s.doc.text} (secret: never printed)` : s.doc.text;
    return `| \`${name}\` | ${cell(def)} | ${cell(text)} |`;
  });
  const codes = Object.entries(ISSUE_CODES).map(([code, meaning]) => `\`${code}\` ${meaning}`);
  return [
    '| variable | default | meaning |',
    '|---|---|---|',
    ...rows,
    '',
    `Issue codes (server/src/config/parsers.ts): ${codes.join('; ')}.`,
  ].join('\n');
}

/** `readme` with the text between the markers replaced by the generated table; null when the markers are missing. */
export function withSettingsTable(readme: string): string | null {
  const begin = readme.indexOf(DOC_BEGIN);
  const end = readme.indexOf(DOC_END);
  if (begin < 0 || end < begin) return null;
  return `${readme.slice(0, begin + DOC_BEGIN.length)}\n${settingsTable()}\n${readme.slice(end)}`;
}
