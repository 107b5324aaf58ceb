/**
 * No synchronized stall at a window boundary (issue 20): every sensor of a source falls due at the same
 * watermark, and the engine closes at most CLOSE_BUDGET sensors' windows per reading, the rest with the
 * following readings. The windows' contents are the same as if all had closed at once.
 */
import { describe, expect, it } from 'vitest';
import { SPREAD_CLOSES } from '../agent/agent.js';
import { CLOSE_BUDGET, WindowEngine } from '../agent/judge/engine.js';
import { F } from '../agent/judge/features.js';
import type { ClosedWindow } from '../agent/judge/windows.js';

interface Closed {
  sensor: number;
  start: number;
  count: number;
  mean: number;
  /** Index of the reading during whose add() (or in the turn after which) the window closed. */
  at: number;
  /** Closed by a turn's sweep, not by a reading. */
  inTurn: boolean;
}

/** n sensors of one source at 10 Hz, one 10 s tumbling window each, for `seconds`; value = sensor + t/1000. */
function run(
  n: number,
  seconds: number,
  spread?: { perReading: number; perTurn: number; turnEvery: number },
): { closed: Closed[]; readings: number; pending: number } {
  const engine = new WindowEngine(2_000);
  let pending = 0;
  if (spread) {
    engine.closeBudget = spread.perReading;
    engine.onPending = () => {
      pending++;
    };
  }
  const closed: Closed[] = [];
  let at = 0;
  let inTurn = false;
  const sensors = Array.from({ length: n }, (_, i) => {
    const sw = engine.sensor('broker');
    engine.window(sw, { type: 'tumbling', size: 10_000 } as never, (w: ClosedWindow) =>
      closed.push({
        sensor: i,
        start: w.start,
        count: w.features[F.count] as number,
        mean: w.features[F.mean] as number,
        at,
        inTurn,
      }),
    );
    return sw;
  });
  const ticks = seconds * 10;
  for (let k = 0; k < ticks; k++)
    for (let i = 0; i < n; i++) {
      // Readings of one tick spread over its 100 ms, sensor by sensor.
      const t = k * 100 + Math.floor((i * 100) / n);
      engine.add(sensors[i] as (typeof sensors)[number], t, i + t / 1000, true);
      at++;
      // The live agent's event-loop turn: the unfinished sweep continues without a reading.
      if (spread && at % spread.turnEvery === 0) {
        inTurn = true;
        engine.sweep(spread.perTurn);
        inTurn = false;
      }
    }
  return { closed, readings: at, pending };
}

describe('window closing spread over readings', () => {
  it(`closes at most ${CLOSE_BUDGET} sensors' windows per reading, and every window with its own readings`, () => {
    const n = 1000;
    const { closed } = run(n, 35);
    // Windows [0,10s), [10,20s), [20,30s) close once the watermark (newest − 2 s) passes their end.
    expect(closed).toHaveLength(3 * n);
    const perReading = new Map<number, number>();
    for (const c of closed) perReading.set(c.at, (perReading.get(c.at) ?? 0) + 1);
    expect(Math.max(...perReading.values())).toBe(CLOSE_BUDGET);
    for (const c of closed) {
      expect(c.count).toBe(100); // 10 s at 10 Hz, none lost or borrowed from the next window
      // mean of i + t/1000 over t = start + k·100 + offset_i, k = 0..99
      const offset = Math.floor((c.sensor * 100) / n);
      const expectedMean = c.sensor + (c.start + offset + 4_950) / 1000;
      expect(c.mean).toBeCloseTo(expectedMean, 9);
    }
    // Each boundary's closes finish within n / CLOSE_BUDGET readings of the first one.
    for (const start of [0, 10_000, 20_000]) {
      const ats = closed.filter((c) => c.start === start).map((c) => c.at);
      expect(Math.max(...ats) - Math.min(...ats)).toBeLessThanOrEqual(Math.ceil(n / CLOSE_BUDGET));
    }
  });

  it(`with ${CLOSE_BUDGET} sensors or fewer on a source, all close in the same reading as before`, () => {
    const { closed } = run(CLOSE_BUDGET, 25);
    for (const start of [0, 10_000]) {
      const ats = new Set(closed.filter((c) => c.start === start).map((c) => c.at));
      expect(ats.size).toBe(1);
    }
    expect(closed.filter((c) => c.start === 0).map((c) => c.sensor)).toEqual(Array.from({ length: CLOSE_BUDGET }, (_, i) => i));
  });

  it('as in the live agent (SPREAD_CLOSES), no close with a reading, all between turns, the same windows', () => {
    const n = 1000;
    const { closed, pending } = run(n, 35, {
      perReading: SPREAD_CLOSES.perReading,
      perTurn: SPREAD_CLOSES.perTurn,
      turnEvery: 5,
    });
    expect(SPREAD_CLOSES.perReading).toBe(0);
    expect(pending).toBeGreaterThan(0);
    expect(closed).toHaveLength(3 * n);
    // Every close ran in a turn, none inside a reading's add(); a turn closes at most perTurn sensors' windows.
    expect(closed.every((c) => c.inTurn)).toBe(true);
    const perTurn = new Map<number, number>();
    for (const c of closed) perTurn.set(c.at, (perTurn.get(c.at) ?? 0) + 1);
    expect(Math.max(...perTurn.values())).toBeLessThanOrEqual(SPREAD_CLOSES.perTurn);
    for (const c of closed) {
      expect(c.count).toBe(100);
      const offset = Math.floor((c.sensor * 100) / n);
      expect(c.mean).toBeCloseTo(c.sensor + (c.start + offset + 4_950) / 1000, 9);
    }
    for (const start of [0, 10_000, 20_000]) expect(closed.filter((c) => c.start === start)).toHaveLength(n);
  });
});
