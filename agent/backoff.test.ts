import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { Backoff, backoffDelay } from './backoff.js';
import { Supervised } from './supervisor.js';

describe('Backoff', () => {
  it('grows exponentially with jitter up to the cap and resets on success', () => {
    const b = new Backoff({ baseMs: 100, maxMs: 1000, random: () => 1 });
    expect(b.ready(0)).toBe(true);
    expect([b.fail(0), b.fail(0), b.fail(0), b.fail(0), b.fail(0)]).toEqual([100, 200, 400, 800, 1000]);
    expect(b.ready(999)).toBe(false);
    expect(b.ready(1000)).toBe(true);
    b.succeed();
    expect(b.failing).toBe(false);
    const low = new Backoff({ baseMs: 100, maxMs: 1000, random: () => 0 });
    expect(low.fail(0)).toBe(50);
  });

  it('without jitter is exactly the capped ceiling, also after many failures', () => {
    const opts = { baseMs: 1000, maxMs: 30_000, jitter: false, random: () => 0 };
    expect([0, 1, 2, 3, 4, 5, 6, 1000].map((n) => backoffDelay(n, opts))).toEqual([
      1000, 2000, 4000, 8000, 16_000, 30_000, 30_000, 30_000,
    ]);
  });

  it('retryNow opens the gate but keeps the failure count', () => {
    const b = new Backoff({ baseMs: 1000, maxMs: 1000, jitter: false });
    b.fail(5000);
    expect(b.ready(5999)).toBe(false);
    b.retryNow();
    expect(b.ready(5001)).toBe(true);
    expect(b.failures).toBe(1);
    expect(b.fail(6000)).toBe(1000);
  });
});

describe('Supervised start retries', () => {
  beforeEach(() => {
    vi.useFakeTimers();
    vi.spyOn(Math, 'random').mockReturnValue(1);
  });
  afterEach(() => {
    vi.restoreAllMocks();
    vi.useRealTimers();
  });

  it('retries a failing start after 500 ms, 1 s, 2 s and starts the backoff over after a success', async () => {
    let failuresLeft = 3;
    const starts: number[] = [];
    const driver = {
      start: async () => {
        starts.push(Date.now());
        if (failuresLeft-- > 0) throw new Error('device down');
      },
      stop: async () => {},
    };
    const s = new Supervised('d', driver, pino({ level: 'silent' }));
    const t0 = Date.now();
    await s.start();
    expect(s.started).toBe(false);
    await vi.advanceTimersByTimeAsync(499);
    expect(starts).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(1);
    expect(starts).toHaveLength(2);
    await vi.advanceTimersByTimeAsync(1000);
    expect(starts).toHaveLength(3);
    await vi.advanceTimersByTimeAsync(2000);
    expect(starts.map((t) => t - t0)).toEqual([0, 500, 1500, 3500]);
    expect(s.started).toBe(true);

    // Reset on success: the next failing start waits the base delay again.
    await s.stop();
    failuresLeft = 1;
    const t1 = Date.now();
    await s.start();
    await vi.advanceTimersByTimeAsync(500);
    expect(starts.slice(4).map((t) => t - t1)).toEqual([0, 500]);
    expect(s.started).toBe(true);
    await s.stop();
  });

  it('stop cancels a pending retry', async () => {
    const start = vi.fn(async () => {
      throw new Error('device down');
    });
    const s = new Supervised('d', { start, stop: async () => {} }, pino({ level: 'silent' }));
    await s.start();
    await s.stop();
    await vi.advanceTimersByTimeAsync(60_000);
    expect(start).toHaveBeenCalledTimes(1);
  });
});
