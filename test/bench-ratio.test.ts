import { describe, expect, it } from 'vitest';
import { normal, rng } from '../agent/prng.js';
import { quantileRatio } from '../scripts/bench/ratio.js';

/** `n` latencies (ms) around `median`, log-normal like the bench's, from `seed`. */
function latencies(n: number, median: number, seed: number): number[] {
  const z = normal(rng(seed));
  return Array.from({ length: n }, () => median * Math.exp(0.5 * z()));
}

describe('bench: the p99 ratio and its bootstrap interval', () => {
  it('is the ratio of the pooled p99s, with an interval around it', () => {
    const a = [latencies(750, 1, 1), latencies(750, 1, 2), latencies(750, 1, 3)];
    const b = a.map((r) => r.map((x) => x / 2));
    const r = quantileRatio(a, b, 99, { resamples: 300 });
    // The two are resampled independently, so the interval is a spread around 2, not a point.
    expect(r.ratio).toBeCloseTo(2, 10);
    expect(r.a).toBeCloseTo(2 * r.b, 10);
    expect(r.lo).toBeLessThan(2);
    expect(r.hi).toBeGreaterThan(2);
  });

  it('is wide for two samples of one distribution at 750 trips a round, narrower with more', () => {
    const same = (n: number, s: number) => [latencies(n, 1, s), latencies(n, 1, s + 1), latencies(n, 1, s + 2)];
    const small = quantileRatio(same(750, 10), same(750, 20), 99, { resamples: 500 });
    const large = quantileRatio(same(7500, 10), same(7500, 20), 99, { resamples: 200 });
    expect(small.lo).toBeLessThan(1);
    expect(small.hi).toBeGreaterThan(1);
    expect(large.lo).toBeLessThan(1);
    expect(large.hi).toBeGreaterThan(1);
    expect(large.hi - large.lo).toBeLessThan(small.hi - small.lo);
  });

  it('is reproducible from its seed', () => {
    const a = [latencies(200, 1, 5)];
    const b = [latencies(200, 1.2, 6)];
    expect(quantileRatio(a, b, 99, { resamples: 100, seed: 7 })).toEqual(quantileRatio(a, b, 99, { resamples: 100, seed: 7 }));
  });
});
