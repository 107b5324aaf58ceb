import { describe, expect, it } from 'vitest';
import { normal, rng } from '../../prng.js';
import { quantileOf, StreamingDetector } from './streaming.js';

/** Synthetic 4-channel plant at 1 Hz: independent noise around different levels. */
function makeRows(n: number, seed: number, t0 = 0): { times: number[]; rows: number[][] } {
  const g = normal(rng(seed));
  const times: number[] = [];
  const rows: number[][] = [];
  for (let i = 0; i < n; i++) {
    times.push(t0 + i * 1000);
    rows.push([1 + 0.1 * g(), 50 + 2 * g(), 230 + 5 * g(), 32 + 0.5 * g()]);
  }
  return { times, rows };
}

function run(det: StreamingDetector, times: number[], rows: number[][]): boolean[] {
  return rows.map((r, i) => det.update(times[i] as number, r).alarm);
}

describe('quantileOf', () => {
  it('interpolates linearly', () => {
    expect(quantileOf([3, 1, 2, 4], 0.5)).toBeCloseTo(2.5, 12);
    expect(quantileOf([3, 1, 2, 4], 1)).toBe(4);
  });
});

describe('StreamingDetector', () => {
  const fit = makeRows(400, 1);
  const test = makeRows(900, 2, 400_000);
  // step of +6 sd in channel 3 for rows 300..599 of the test part
  for (let i = 300; i < 600; i++) (test.rows[i] as number[])[3] = ((test.rows[i] as number[])[3] as number) + 3;

  for (const statistic of ['maxAbsZ', 'rmsZ', 't2', 'q', 't2q'] as const) {
    it(`${statistic}: quiet on normal data, raises on a step, clears after it`, () => {
      // Q only sees the residual subspace: keep one component so the step is off-model.
      const pca = statistic === 'q' ? { components: 1 } : {};
      const det = new StreamingDetector({ statistic, pca, tauSec: 8, thresholdFactor: 1.4, onCount: 5, offCount: 5 });
      det.fit(fit.times, fit.rows);
      const alarms = run(det, test.times, test.rows);
      const before = alarms.slice(0, 300).filter(Boolean).length;
      const during = alarms.slice(320, 600).filter(Boolean).length;
      const after = alarms.slice(660).filter(Boolean).length;
      expect(before).toBeLessThanOrEqual(15);
      expect(during).toBe(280);
      expect(after).toBeLessThanOrEqual(15);
      const firstOn = alarms.indexOf(true, 300);
      expect(firstOn - 300).toBeLessThan(20); // EWMA lag + 5-row persistence
    });
  }

  it('ignores channels that are not monitored', () => {
    const det = new StreamingDetector({ channels: [0, 1, 2] }).fit(fit.times, fit.rows);
    expect(run(det, test.times, test.rows).some(Boolean)).toBe(false);
  });

  it('needs onCount consecutive exceedances and offCount quiet rows (hysteresis)', () => {
    const det = new StreamingDetector({ tauSec: 0, onCount: 3, offCount: 4, thresholdFactor: 1.2 });
    det.fit(fit.times, fit.rows);
    const base = [1, 50, 230, 32];
    const hot = [1, 50, 230, 40];
    const seq = [hot, hot, base, hot, hot, hot, base, base, base, hot, base, base, base, base];
    const flags = seq.map((r, i) => det.update(500_000 + i * 1000, r).alarm);
    expect(flags).toEqual([false, false, false, false, false, true, true, true, true, true, true, true, true, false]);
  });

  it('reports raised / cleared edges and reuses its output object', () => {
    const det = new StreamingDetector({ tauSec: 0, onCount: 1, offCount: 1 }).fit(fit.times, fit.rows);
    const a = det.update(500_000, [1, 50, 230, 40]);
    expect(a.raised).toBe(true);
    const b = det.update(501_000, [1, 50, 230, 32]);
    expect(b).toBe(a);
    expect(b.cleared).toBe(true);
    expect(b.alarm).toBe(false);
  });

  it('weights the EWMA by elapsed event time (a long gap lets the new level through)', () => {
    const det = new StreamingDetector({ tauSec: 30, onCount: 1, offCount: 1 }).fit(fit.times, fit.rows);
    // one hot row right after the fit: barely moves a 30 s EWMA
    expect(det.update(400_000, [1, 50, 230, 40]).alarm).toBe(false);
    // the same row after a 250 s gap dominates the average
    expect(det.update(650_000, [1, 50, 230, 40]).alarm).toBe(true);
  });

  it('holds the smoothed value over non-finite samples', () => {
    const det = new StreamingDetector({ tauSec: 0 }).fit(fit.times, fit.rows);
    const o = det.update(400_000, [Number.NaN, 50, 230, 32]);
    expect(Number.isFinite(o.statistic)).toBe(true);
  });

  it('throws before fit and on bad options', () => {
    expect(() => new StreamingDetector().update(0, [1])).toThrow();
    expect(() => new StreamingDetector({ onCount: 0 })).toThrow();
  });

  it('is fast enough for the hot path', () => {
    const det = new StreamingDetector({ channels: [0, 1, 2, 3] }).fit(fit.times, fit.rows);
    const rows = test.rows;
    const n = 400_000;
    const t0 = performance.now();
    for (let i = 0; i < n; i++) det.update(1_000_000 + i * 1000, rows[i % rows.length] as number[]);
    const perSec = n / ((performance.now() - t0) / 1000);
    expect(perSec).toBeGreaterThan(200_000);
  });
});
