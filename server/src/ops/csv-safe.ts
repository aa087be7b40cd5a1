/**
 * CSV injection (OWASP "CSV Injection"): a spreadsheet opening a cell that starts with =, +,
 * -, @, a tab or a carriage return may evaluate it as a formula. Evidence CSVs carry
 * attacker-controlled text (user agents, resource ids, e-mails, error messages), so every
 * such cell is prefixed with a single quote and quoted. The NDJSON files stay exact; the CSVs
 * are for people and spreadsheets.
 *
 * Parses RFC 4180 CSV as PostgreSQL's COPY … (FORMAT csv) writes it (quoted fields with ""
 * escapes and line breaks inside quotes). Unquoted empty fields (NULL) stay unquoted, so
 * NULL and '' remain distinguishable.
 */
const DANGEROUS_FIRST = new Set(['=', '+', '-', '@', '\t', '\r']);

export function neutralizeCell(value: string): string {
  return value.length > 0 && DANGEROUS_FIRST.has(value[0] as string) ? `'${value}` : value;
}

interface Field {
  value: string;
  quoted: boolean;
}

/** Records of fields; throws on malformed quoting. */
export function parseCsv(text: string): Field[][] {
  const records: Field[][] = [];
  let record: Field[] = [];
  let i = 0;
  const n = text.length;
  if (n === 0) return records;
  for (;;) {
    let value = '';
    let quoted = false;
    if (text[i] === '"') {
      quoted = true;
      i += 1;
      for (;;) {
        if (i >= n) throw new Error('unterminated quoted field');
        const ch = text[i] as string;
        if (ch === '"') {
          if (text[i + 1] === '"') {
            value += '"';
            i += 2;
            continue;
          }
          i += 1;
          break;
        }
        value += ch;
        i += 1;
      }
    } else {
      while (i < n && text[i] !== ',' && text[i] !== '\n') {
        value += text[i];
        i += 1;
      }
    }
    record.push({ value, quoted });
    if (i >= n) {
      records.push(record);
      return records;
    }
    const sep = text[i];
    if (sep === ',') {
      i += 1;
      continue;
    }
    if (sep === '\n') {
      records.push(record);
      record = [];
      i += 1;
      if (i >= n) return records;
      continue;
    }
    throw new Error(`unexpected character after a quoted field at offset ${i}`);
  }
}

function render(f: Field): string {
  const safe = neutralizeCell(f.value);
  const mustQuote = f.quoted || safe !== f.value || /[",\n\r]/.test(safe) || (safe.length > 0 && safe.trim() !== safe);
  return mustQuote ? `"${safe.replace(/"/g, '""')}"` : safe;
}

/** The CSV text with every dangerous cell neutralized; otherwise byte-identical records. */
export function neutralizeCsv(text: string): string {
  const records = parseCsv(text);
  return records.map((r) => r.map(render).join(',')).join('\n') + (text.endsWith('\n') ? '\n' : '');
}
