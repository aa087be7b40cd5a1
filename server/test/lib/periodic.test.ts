import { periodic, type PeriodicTimers } from '../../src/lib/periodic';

/** Real timers, recorded: the delays asked for and the handles made (no durations are measured). */
function recordingTimers(): PeriodicTimers & { delays: number[]; handles: NodeJS.Timeout[] } {
  const delays: number[] = [];
  const handles: NodeJS.Timeout[] = [];
  return {
    delays,
    handles,
    setTimeout(fn, ms) {
      delays.push(ms);
      const t = setTimeout(fn, ms);
      handles.push(t);
      return t;
    },
    clearTimeout: (t) => clearTimeout(t),
  };
}

function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}

async function until(cond: () => boolean): Promise<void> {
  while (!cond()) await new Promise((r) => setTimeout(r, 2));
}

const tick = (): Promise<void> => new Promise((r) => setImmediate(r));

describe('periodic', () => {
  it('when started, then it runs the job again and again, each time intervalMs after the previous run', async () => {
    const timers = recordingTimers();
    let runs = 0;
    const loop = periodic(() => void (runs += 1), { intervalMs: 5, onError: () => undefined, timers });
    loop.start();
    await until(() => runs >= 3);
    await loop.stop();
    expect(timers.delays.slice(0, 3)).toEqual([5, 5, 5]);
  });

  it('when not started, then nothing runs and no timer exists', async () => {
    const timers = recordingTimers();
    let runs = 0;
    const loop = periodic(() => void (runs += 1), { intervalMs: 1, onError: () => undefined, timers });
    loop.wake();
    await new Promise((r) => setTimeout(r, 10));
    expect(runs).toBe(0);
    expect(timers.delays).toEqual([]);
    expect(loop.started).toBe(false);
  });

  it('when firstDelayMs is given, then the first run waits that long and later ones intervalMs', async () => {
    const timers = recordingTimers();
    let runs = 0;
    const loop = periodic(() => void (runs += 1), { intervalMs: 3, firstDelayMs: 0, onError: () => undefined, timers });
    loop.start();
    await until(() => runs >= 2);
    await loop.stop();
    expect(timers.delays.slice(0, 2)).toEqual([0, 3]);
  });

  it('when a run is slow and wake-ups arrive meanwhile, then runs never overlap and one more run follows at once', async () => {
    const timers = recordingTimers();
    let active = 0;
    let maxActive = 0;
    let runs = 0;
    const gate = deferred();
    const loop = periodic(
      async () => {
        active += 1;
        maxActive = Math.max(maxActive, active);
        runs += 1;
        if (runs === 1) await gate.promise;
        active -= 1;
      },
      { intervalMs: 1000, firstDelayMs: 0, onError: () => undefined, timers },
    );
    loop.start();
    await until(() => loop.busy);
    loop.wake();
    loop.wake(0);
    loop.start();
    await tick();
    expect(runs).toBe(1);
    gate.resolve();
    await until(() => runs >= 2);
    await loop.stop();
    expect(maxActive).toBe(1);
    expect(runs).toBe(2);
    // The run after the wake-ups was armed with no delay, not the 1000 ms interval.
    expect(timers.delays.slice(0, 2)).toEqual([0, 0]);
  });

  it('when wake(ms) is called between runs, then the next run is armed after ms instead of the interval', async () => {
    const timers = recordingTimers();
    let runs = 0;
    const loop = periodic(() => void (runs += 1), { intervalMs: 60_000, onError: () => undefined, timers });
    loop.start();
    loop.wake(1);
    await until(() => runs >= 1);
    await loop.stop();
    expect(timers.delays).toEqual([60_000, 1, 60_000]);
  });

  it('when the job throws, then onError gets the error and the loop goes on', async () => {
    const errors: unknown[] = [];
    let runs = 0;
    const loop = periodic(
      async () => {
        runs += 1;
        if (runs <= 2) throw new Error(`run ${runs} failed`);
      },
      { intervalMs: 1, onError: (err) => errors.push(err) },
    );
    loop.start();
    await until(() => runs >= 4);
    await loop.stop();
    expect(errors.map((e) => (e as Error).message)).toEqual(['run 1 failed', 'run 2 failed']);
  });

  it('when onError itself throws, then the loop still goes on', async () => {
    let runs = 0;
    const loop = periodic(
      () => {
        runs += 1;
        throw new Error('job failed');
      },
      {
        intervalMs: 1,
        onError: () => {
          throw new Error('reporter failed');
        },
      },
    );
    loop.start();
    await until(() => runs >= 3);
    await loop.stop();
    expect(runs).toBeGreaterThanOrEqual(3);
  });

  it('when stopped during a run, then stop() resolves only after that run and no run follows (drain)', async () => {
    let runs = 0;
    let finished = false;
    const gate = deferred();
    const loop = periodic(
      async () => {
        runs += 1;
        await gate.promise;
        finished = true;
      },
      { intervalMs: 1, firstDelayMs: 0, onError: () => undefined },
    );
    loop.start();
    await until(() => loop.busy);
    let stopped = false;
    const stopping = loop.stop().then(() => (stopped = true));
    await tick();
    expect(stopped).toBe(false);
    expect(loop.started).toBe(false);
    gate.resolve();
    await stopping;
    expect(finished).toBe(true);
    expect(loop.busy).toBe(false);
    await new Promise((r) => setTimeout(r, 10));
    expect(runs).toBe(1);
  });

  it('when stopped and started again, then it runs again', async () => {
    let runs = 0;
    const loop = periodic(() => void (runs += 1), { intervalMs: 1, onError: () => undefined });
    loop.start();
    await until(() => runs >= 1);
    await loop.stop();
    const before = runs;
    loop.start();
    await until(() => runs > before);
    await loop.stop();
  });

  it('then every timer it makes is unref’d (a waiting job never keeps the process alive)', async () => {
    const timers = recordingTimers();
    let runs = 0;
    const loop = periodic(() => void (runs += 1), { intervalMs: 1, firstDelayMs: 0, onError: () => undefined, timers });
    loop.start();
    await until(() => runs >= 2);
    loop.wake(50);
    await loop.stop();
    expect(timers.handles.length).toBeGreaterThanOrEqual(3);
    for (const h of timers.handles) expect(h.hasRef()).toBe(false);
  });

  it('when the interval is not a positive number, then it refuses with a message saying so', () => {
    expect(() => periodic(() => undefined, { intervalMs: 0, onError: () => undefined })).toThrow(/intervalMs/);
    expect(() => periodic(() => undefined, { intervalMs: Number.NaN, onError: () => undefined })).toThrow(/intervalMs/);
  });
});
