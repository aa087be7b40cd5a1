/**
 * The one shape of background work. `periodic(job, { intervalMs, onError })` runs `job`
 * `intervalMs` after the previous run ended, so a run never overlaps the next one; a throw
 * goes to `onError` and the loop goes on; `stop()` cancels the timer and waits for the run in
 * flight (drain). Timers are unref'd: a waiting job never keeps the process alive. Nothing
 * runs before start().
 */

export interface PeriodicTimers {
  setTimeout(fn: () => void, ms: number): NodeJS.Timeout;
  clearTimeout(timer: NodeJS.Timeout): void;
}

export interface PeriodicOptions {
  /** Pause between the end of one run and the start of the next. */
  intervalMs: number;
  /** Called with whatever a run threw; the loop keeps going. */
  onError: (err: unknown) => void;
  /** Pause before the first run after start() (default intervalMs; 0: at once). */
  firstDelayMs?: number;
  /** The timer functions (tests); default the global ones. */
  timers?: PeriodicTimers;
}

export interface Periodic {
  /** Starts the loop (idempotent; a stopped loop can be started again). */
  start(): void;
  /**
   * Runs the job `delayMs` from now (default 0) instead of at its interval; during a run, runs
   * it again right after. Ignored unless started.
   */
  wake(delayMs?: number): void;
  /** Stops the loop and waits for the run in flight. */
  stop(): Promise<void>;
  readonly started: boolean;
  /** A run is in flight. */
  readonly busy: boolean;
}

const globalTimers: PeriodicTimers = {
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (timer) => clearTimeout(timer),
};

export function periodic(job: () => unknown, opts: PeriodicOptions): Periodic {
  const { intervalMs, onError } = opts;
  const firstDelayMs = opts.firstDelayMs ?? intervalMs;
  if (!Number.isFinite(intervalMs) || intervalMs < 1) throw new Error('periodic: intervalMs must be at least 1');
  if (!Number.isFinite(firstDelayMs) || firstDelayMs < 0) throw new Error('periodic: firstDelayMs must be at least 0');
  const timers = opts.timers ?? globalTimers;
  let timer: NodeJS.Timeout | null = null;
  let inFlight: Promise<void> | null = null;
  let started = false;
  /** A wake-up arrived during a run: run again right after it. */
  let again = false;

  function arm(ms: number): void {
    if (!started) return;
    if (timer) timers.clearTimeout(timer);
    timer = timers.setTimeout(fire, ms);
    timer.unref();
  }

  async function runJob(): Promise<void> {
    try {
      await job();
    } catch (err) {
      try {
        onError(err);
      } catch {
        // A failing error reporter must not end the loop either.
      }
    }
  }

  function fire(): void {
    timer = null;
    if (!started || inFlight) return;
    again = false;
    const run = runJob();
    inFlight = run;
    void run.then(() => {
      inFlight = null;
      const next = again ? 0 : intervalMs;
      again = false;
      arm(next);
    });
  }

  return {
    start() {
      if (started) return;
      started = true;
      // A run still finishing from before a stop() re-arms the loop itself when it ends.
      if (!inFlight) arm(firstDelayMs);
    },
    wake(delayMs = 0) {
      if (!started) return;
      if (inFlight) again = true;
      else arm(delayMs);
    },
    async stop() {
      started = false;
      again = false;
      if (timer) timers.clearTimeout(timer);
      timer = null;
      if (inFlight) await inFlight;
    },
    get started() {
      return started;
    },
    get busy() {
      return inFlight !== null;
    },
  };
}
