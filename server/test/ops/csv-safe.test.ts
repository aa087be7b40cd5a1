/** CSV injection neutralizing (server/src/ops/csv-safe.ts), as collect-evidence.sh applies it to COPY's CSV. */
import { neutralizeCell, neutralizeCsv, parseCsv } from '../../src/ops/csv-safe';

describe('neutralizeCsv', () => {
  test('when a cell starts with =, +, -, @, tab or CR, then it is prefixed with a quote and quoted; other cells are unchanged', () => {
    for (const v of ['=1+1', '+1', '-1', '@SUM(A1)', '\t=1', '\r=1']) expect(neutralizeCell(v)).toBe(`'${v}`);
    for (const v of ['', 'a=1', ' =1', "'=1", '1-2', '{"a":1}']) expect(neutralizeCell(v)).toBe(v);
    const input = 'id,resource_id,error\n1,=cmd|x,\n2,"-2+3","line1\nline2"\n3,"\r=evil",""\n4,plain,"a ""q"" b"\n';
    expect(neutralizeCsv(input)).toBe(
      'id,resource_id,error\n1,"\'=cmd|x",\n2,"\'-2+3","line1\nline2"\n3,"\'\r=evil",""\n4,plain,"a ""q"" b"\n',
    );
  });

  test('when nothing is dangerous, then the output is byte-identical (NULL stays unquoted, empty text stays "")', () => {
    const input = 'a,b,c\n1,,""\n2,"x,y","{""k"": ""v""}"\n';
    expect(neutralizeCsv(input)).toBe(input);
    expect(neutralizeCsv('')).toBe('');
  });

  test('when the CSV is malformed, then it throws instead of guessing', () => {
    expect(() => parseCsv('a,"b\n')).toThrow(/unterminated/);
    expect(() => parseCsv('a,"b"c\n')).toThrow(/unexpected character/);
  });
});
