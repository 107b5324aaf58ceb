import { describe, expect, it } from 'vitest';
import { parseConfigOrThrow } from '../../config/load.js';
import { MultivariateDetector } from '../multivariate/detector.js';
import type { MultivariateConfig } from '../multivariate/schema.js';

async function config(extra = ''): Promise<MultivariateConfig> {
  const c = await parseConfigOrThrow(
    `sources: [{ id: s, type: simulator }]\nassets: [{ id: a, sensors: [{ id: f, metric: flow, source: s }, { id: p, metric: pressure, source: s }] }]\ndetectors: [{ id: d, type: multivariate, statistic: adaptive, asset: a, sensors: [f, p], smoothing: 0s, on_count: 1, off_count: 1, learn: { readings: 200 }${extra} }]`,
  );
  return c.detectors[0] as MultivariateConfig;
}

/** Deterministic noise in [-1, 1). */
function noise(seed: number): () => number {
  let s = seed;
  return () => {
    s = (s * 1103515245 + 12345) & 0x7fffffff;
    return (2 * s) / 0x7fffffff - 1;
  };
}

/** Rows (flow, pressure ≈ 2·flow) with `fault(i, row)` applied; each change as [row, change]. */
function run(det: MultivariateDetector, n: number, fault: (i: number, row: number[]) => void, from = 0, seed = 1) {
  const r = noise(seed);
  const out: Array<[number, number]> = [];
  for (let i = from; i < from + n; i++) {
    const f = 10 + 2 * Math.sin(i / 30) + 0.1 * r();
    const row = [f, 2 * f + 0.1 * r()];
    fault(i, row);
    let c = det.add(0, 1000 * i, row[0] as number, 'good');
    const c2 = det.add(1, 1000 * i, row[1] as number, 'good');
    if (c2 !== 0) c = c2;
    if (c !== 0) out.push([i, c]);
  }
  return out;
}

describe('adaptive, multivariate form (statistic: adaptive)', () => {
  it('raises when the sensors disagree with how they move together, each inside its own range', async () => {
    const det = new MultivariateDetector(await config());
    const changes = run(det, 2000, (i, row) => {
      if (i >= 1500 && i < 1510) {
        row[0] = 11.5;
        row[1] = 17;
      }
    });
    expect(changes).toEqual([
      [1500, 1],
      [1510, -1],
    ]);
  });

  it('does not learn a fault as normal, and accepts one that holds accept_after rows as a new operating point', async () => {
    const shift = (i: number, row: number[]) => {
      if (i >= 1000) row[1] = (row[1] as number) + 3;
    };
    const held = run(new MultivariateDetector(await config(', accept_after: 100000')), 3000, shift);
    expect(held).toEqual([[1000, 1]]);
    const det = new MultivariateDetector(await config(', accept_after: 300'));
    const accepted = run(det, 3000, shift);
    expect(accepted.slice(0, 2)).toEqual([
      [1000, 1],
      [1300, -1],
    ]);
    expect(det.anomaly(-1).evidence).toMatchObject({ accepted_levels: 1 });
  });

  it('snapshot/restore: a restored detector decides as the one that learned (contract E)', async () => {
    const fault = (i: number, row: number[]) => {
      if (i >= 2500 && i < 2520) row[1] = 2 * (row[0] as number) - 2;
    };
    const a = new MultivariateDetector(await config());
    expect(a.snapshot()).toBeUndefined();
    run(a, 1500, fault);
    const snap = JSON.parse(JSON.stringify(a.snapshot()));
    expect(snap).toMatchObject({ v: 1, statistic: 'adaptive', sensors: ['f', 'p'] });
    const b = new MultivariateDetector(await config());
    expect(b.restore(snap)).toBe(true);
    expect(b.learning()).toBe(false);
    const ta = run(a, 1500, fault, 1500, 7);
    const tb = run(b, 1500, fault, 1500, 7);
    expect(ta).toContainEqual([2500, 1]);
    expect(tb).toEqual(ta);
    expect(new MultivariateDetector(await config()).restore({ ...snap, sensors: ['p', 'f'] })).toBe(false);
    expect(new MultivariateDetector(await config()).restore({ ...snap, cov: [1] })).toBe(false);
  });
});
