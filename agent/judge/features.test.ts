import { describe, expect, it } from 'vitest';
import { computeFeatures, F, FeatureLayout } from './features.js';
import { SensorSeries, TimeWindow } from './windows.js';

function series(n: number, f: (i: number) => number, dtMs = 1) {
  const times = Float64Array.from({ length: n }, (_, i) => i * dtMs);
  const values = Float64Array.from({ length: n }, (_, i) => f(i));
  return { times, values, good: new Uint8Array(n).fill(1) };
}

describe('window features', () => {
  it('vibration features and FFT band energy of a 50 Hz sine sampled at 1 kHz', () => {
    const { times, values, good } = series(1024, (i) => 2 * Math.sin((2 * Math.PI * 50 * i) / 1000));
    const layout = new FeatureLayout();
    layout.addPercentile(50);
    layout.addBand({ name: 'low', low: 40, high: 60 });
    layout.addBand({ name: 'high', low: 200, high: 400 });
    const out = new Float64Array(layout.size);
    computeFeatures(times, values, good, 0, 1024, layout, out);
    expect(out[F.rms]).toBeCloseTo(Math.SQRT2, 2);
    expect(out[F.peak]).toBeCloseTo(2, 2);
    expect(out[F.crest]).toBeCloseTo(Math.SQRT2, 2);
    expect(out[F.kurtosis]).toBeCloseTo(1.5, 2);
    // A sine of amplitude A carries A²/2 = 2 of mean-square power; nearly all of it in 40–60 Hz.
    expect(out[layout.indexOf('band.low')]).toBeGreaterThan(1.8);
    expect(out[layout.indexOf('band.low')]).toBeLessThan(2.05);
    expect(out[layout.indexOf('band.high')]).toBeLessThan(0.02);
    expect(Math.abs(out[layout.indexOf('p50')] as number)).toBeLessThan(0.1);
  });

  it('slope per second, std, percentiles, and only good readings in the statistics', () => {
    const { times, values, good } = series(11, (i) => 3 * i, 1000);
    good[5] = 0;
    values[5] = 1e9;
    const layout = new FeatureLayout();
    layout.addPercentile(90);
    const out = new Float64Array(layout.size);
    computeFeatures(times, values, good, 0, 11, layout, out);
    expect(out[F.count]).toBe(11);
    expect(out[F.good]).toBe(10);
    expect(out[F.slope]).toBeCloseTo(3, 9);
    expect(out[F.max]).toBe(30);
    expect(out[layout.indexOf('p90')]).toBeCloseTo(27.3, 9);
  });
});

describe('event-time windows', () => {
  it('skips empty windows across a clock jump instead of iterating them', () => {
    const s = new SensorSeries();
    const w = new TimeWindow({ type: 'sliding', size: 1000, hop: 100 });
    s.windows.push(w);
    const closed: number[] = [];
    w.sinks.push((cw) => closed.push(cw.end));
    s.add(0, 1, true);
    s.add(1.7e12, 2, true);
    s.advance(1.7e12);
    expect(closed.length).toBe(10);
    s.flush();
    expect(closed.length).toBe(20);
  });

  it('keeps out-of-order readings in event-time order inside a window', () => {
    const s = new SensorSeries();
    const w = new TimeWindow({ type: 'tumbling', size: 10 });
    s.windows.push(w);
    const got: number[] = [];
    w.sinks.push((cw) => got.push(cw.features[F.last] as number));
    for (const t of [1, 5, 3, 9, 2]) s.add(t, t, true);
    s.flush();
    expect(got).toEqual([9]);
  });
});
