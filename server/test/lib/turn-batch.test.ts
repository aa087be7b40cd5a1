import { perTurn, slices } from '../../src/lib/turn-batch';

describe('perTurn()', () => {
  test('when items are submitted in one turn, then they are handed over together once the turn ends; later ones form the next batch', async () => {
    const batches: number[][] = [];
    const submit = perTurn<number>((items) => batches.push(items));
    submit(1);
    submit(2);
    submit(3);
    expect(batches).toEqual([]);
    await new Promise((r) => setImmediate(r));
    expect(batches).toEqual([[1, 2, 3]]);
    submit(4);
    await new Promise((r) => setImmediate(r));
    expect(batches).toEqual([[1, 2, 3], [4]]);
  });

  test('slices() cuts a list into consecutive parts of at most the given size', () => {
    expect(slices([1, 2, 3, 4, 5], 2)).toEqual([[1, 2], [3, 4], [5]]);
    expect(slices([], 3)).toEqual([]);
  });
});
