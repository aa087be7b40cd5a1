/** A dependency GET /api/health/ready asks; services and the drain hand these to the health route. */
export interface ReadinessCheck {
  name: string;
  /** A failing critical check makes /ready answer 503. */
  critical: boolean;
  check(): Promise<void>;
}

export function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`timed out after ${ms} ms`)), ms);
    p.then(
      (v) => {
        clearTimeout(t);
        resolve(v);
      },
      (e: unknown) => {
        clearTimeout(t);
        reject(e instanceof Error ? e : new Error(String(e)));
      },
    );
  });
}

/** The database answers `SELECT 1` within the timeout. */
export function databaseCheck(pool: { query(text: string): Promise<unknown> }, timeoutMs = 2000): ReadinessCheck {
  return {
    name: 'database',
    critical: true,
    check: async () => void (await withTimeout(pool.query('SELECT 1'), timeoutMs)),
  };
}
