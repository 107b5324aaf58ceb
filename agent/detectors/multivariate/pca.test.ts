import { describe, expect, it } from 'vitest';
import { normal, rng } from '../../prng.js';
import { jacobiEigen, PcaModel } from './pca.js';

describe('jacobiEigen', () => {
  it('solves a 2×2 case exactly', () => {
    const { values, vectors } = jacobiEigen([2, 1, 1, 2], 2);
    expect(values[0]).toBeCloseTo(3, 12);
    expect(values[1]).toBeCloseTo(1, 12);
    expect(Math.abs(vectors[0] as number)).toBeCloseTo(Math.SQRT1_2, 12);
    expect(Math.abs(vectors[1] as number)).toBeCloseTo(Math.SQRT1_2, 12);
  });

  it('returns orthonormal eigenvectors with A v = λ v for a random symmetric 8×8', () => {
    const n = 8;
    const u = rng(7);
    const a = new Float64Array(n * n);
    for (let i = 0; i < n; i++) {
      for (let j = i; j < n; j++) {
        const v = u() * 2 - 1;
        a[i * n + j] = v;
        a[j * n + i] = v;
      }
    }
    const { values, vectors } = jacobiEigen(a, n);
    for (let k = 0; k < n; k++) {
      if (k > 0) expect(values[k] as number).toBeLessThanOrEqual(values[k - 1] as number);
      for (let i = 0; i < n; i++) {
        let av = 0;
        for (let j = 0; j < n; j++) av += (a[i * n + j] as number) * (vectors[k * n + j] as number);
        expect(av).toBeCloseTo((values[k] as number) * (vectors[k * n + i] as number), 9);
      }
      for (let l = 0; l < n; l++) {
        let dot = 0;
        for (let j = 0; j < n; j++) dot += (vectors[k * n + j] as number) * (vectors[l * n + j] as number);
        expect(dot).toBeCloseTo(k === l ? 1 : 0, 9);
      }
    }
  });
});

describe('PcaModel', () => {
  // 3 channels: x, 2x + small noise, independent z; the first two are nearly collinear.
  const g = normal(rng(42));
  const rows: number[][] = [];
  for (let i = 0; i < 2000; i++) {
    const x = g();
    rows.push([x * 3 + 10, 2 * (x * 3 + 10) + 0.05 * g(), 5 + g()]);
  }
  const model = PcaModel.fit(rows, { components: 2 });

  it('standardises with the fit mean and std', () => {
    expect(model.mean[0]).toBeCloseTo(10, 0);
    expect(model.std[2]).toBeCloseTo(1, 1);
    expect(model.components).toBe(2);
  });

  it('keeps Q small on the correlation structure and flags a break of it', () => {
    const inDist = model.score([13, 26, 5]);
    const broken = model.score([13, 20, 5]); // channel 2 no longer 2× channel 1
    expect(inDist.q).toBeLessThan(0.05);
    expect(broken.q).toBeGreaterThan(10 * Math.max(inDist.q, 1e-3));
  });

  it('flags a large move along a retained component in T² but not Q', () => {
    const far = model.score([25, 50, 5]); // 5 sd along the main axis
    expect(far.t2).toBeGreaterThan(20);
    expect(far.q).toBeLessThan(0.5);
  });

  it('picks components by explained variance', () => {
    expect(PcaModel.fit(rows, { varianceFraction: 0.6 }).components).toBe(1);
    expect(PcaModel.fit(rows, { varianceFraction: 0.99 }).components).toBe(2);
  });

  it('reuses the output object (no allocation on the hot path)', () => {
    const out = { t2: 0, q: 0 };
    expect(model.score([10, 20, 5], out)).toBe(out);
  });
});
