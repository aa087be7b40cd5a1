/**
 * Collects what is submitted during one event-loop turn and hands it over together when the
 * turn ends (setImmediate): the requests that arrived together share one database round trip.
 * A lone submission waits for nothing but the end of its own turn.
 */
export function perTurn<T>(flush: (items: T[]) => void): (item: T) => void {
  let queue: T[] = [];
  let scheduled = false;
  const run = (): void => {
    scheduled = false;
    const items = queue;
    queue = [];
    flush(items);
  };
  return (item) => {
    queue.push(item);
    if (!scheduled) {
      scheduled = true;
      setImmediate(run);
    }
  };
}

/** `items` in consecutive slices of at most `size`. */
export function slices<T>(items: T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}
