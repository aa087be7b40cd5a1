/**
 * The settings tables of the README and of docs/SIEM_AND_ARCHIVE.md, generated from the
 * settings table (scripts/settings-doc.ts). A block runs from a begin marker to the next end
 * marker; a begin marker with `only=PREFIX,PREFIX` lists just the settings whose names start so
 * (without the issue codes, which the README's full table carries).
 */
import { ISSUE_CODES } from './parsers';
import { SETTINGS, SETTING_NAMES } from './settings';

const GENERATED = '(generated from server/src/config/settings.ts: npm run settings:write)';
export const DOC_BEGIN = `<!-- settings:begin ${GENERATED} -->`;
export const DOC_END = '<!-- settings:end -->';
/** A begin marker, full or filtered (group 1: the comma-separated name prefixes). */
const BEGIN_RE =
  /<!-- settings:begin (?:only=([A-Z0-9_]+(?:,[A-Z0-9_]+)*) )?\(generated from server\/src\/config\/settings\.ts: npm run settings:write\) -->/g;

const cell = (s: string) => s.replace(/\n/g, ' ');

/** The begin marker of a table of the settings whose names start with one of `prefixes`. */
export function filteredBegin(prefixes: readonly string[]): string {
  return `<!-- settings:begin only=${prefixes.join(',')} ${GENERATED} -->`;
}

/** One row per setting: name, default, meaning (secret settings say so); all of them unless `prefixes`. */
export function settingsTable(prefixes?: readonly string[]): string {
  const names = prefixes ? SETTING_NAMES.filter((n) => prefixes.some((p) => n.startsWith(p))) : SETTING_NAMES;
  const rows = names.map((name) => {
    const s = SETTINGS[name];
    const def = s.doc.default ?? (typeof s.default === 'string' ? `\`${s.default}\`` : '');
    const text = s.secret ? `${s.doc.text} (secret: never printed)` : s.doc.text;
    return `| \`${name}\` | ${cell(def)} | ${cell(text)} |`;
  });
  const table = ['| variable | default | meaning |', '|---|---|---|', ...rows];
  if (prefixes) return table.join('\n');
  const codes = Object.entries(ISSUE_CODES).map(([code, meaning]) => `\`${code}\` ${meaning}`);
  return [...table, '', `Issue codes (server/src/config/parsers.ts): ${codes.join('; ')}.`].join('\n');
}

/**
 * `text` with every settings block replaced by its generated table; null when it has no block
 * or a begin marker without an end marker after it.
 */
export function withSettingsTable(text: string): string | null {
  let out = '';
  let at = 0;
  let blocks = 0;
  for (const m of text.matchAll(BEGIN_RE)) {
    const start = m.index;
    if (start < at) return null; // a begin marker inside the previous block
    const beginEnd = start + m[0].length;
    const end = text.indexOf(DOC_END, beginEnd);
    if (end < 0) return null;
    const prefixes = m[1] ? m[1].split(',') : undefined;
    out += `${text.slice(at, beginEnd)}\n${settingsTable(prefixes)}\n`;
    at = end;
    blocks += 1;
  }
  return blocks === 0 ? null : out + text.slice(at);
}
