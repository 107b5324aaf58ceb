import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { Poller } from './poller.js';

const silent = pino({ level: 'silent' });

describe('Poller', () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('polls at a fixed rate that does not drift with the poll duration', async () => {
    const starts: number[] = [];
    const poller = new Poller({
      name: 't',
      intervalMs: 100,
      logger: silent,
      now: Date.now,
      poll: async () => {
        starts.push(Date.now());
        await new Promise((r) => setTimeout(r, 30));
      },
    });
    const t0 = Date.now();
    poller.start();
    await vi.advanceTimersByTimeAsync(1000);
    const stopping = poller.stop();
    await vi.advanceTimersByTimeAsync(100);
    await stopping;
    expect(starts.map((t) => t - t0).slice(0, 5)).toEqual([0, 100, 200, 300, 400]);
    expect(poller.stats.overruns).toBe(0);
  });

  it('skips and counts slots a slow poll overran, and survives failing polls', async () => {
    let n = 0;
    const starts: number[] = [];
    const poller = new Poller({
      name: 't',
      intervalMs: 100,
      logger: silent,
      poll: async () => {
        starts.push(Date.now());
        n++;
        if (n === 1) await new Promise((r) => setTimeout(r, 250));
        if (n === 2) throw new Error('boom');
      },
    });
    const t0 = Date.now();
    poller.start();
    await vi.advanceTimersByTimeAsync(450);
    await poller.stop();
    expect(starts.map((t) => t - t0)).toEqual([0, 300, 400]);
    expect(poller.stats.overruns).toBe(2);
  });

  it('stop() waits for the poll in flight and is idempotent', async () => {
    let done = false;
    const poller = new Poller({
      name: 't',
      intervalMs: 10,
      logger: silent,
      poll: async () => {
        await new Promise((r) => setTimeout(r, 50));
        done = true;
      },
    });
    poller.start();
    const stopping = poller.stop();
    await vi.advanceTimersByTimeAsync(60);
    await stopping;
    await poller.stop();
    expect(done).toBe(true);
  });
});
