import { describe, expect, it } from 'vitest';
import { type CvFile, crossValidate, foldsOf } from './skab-cv.js';
import type { SkabScore } from './skab-score.js';

/** A 100-row file whose rows 50.. are anomalous; candidate predictions given per file. */
function file(name: string, preds: Record<string, (i: number) => number>): CvFile {
  const n = 100;
  const times = Float64Array.from({ length: n }, (_, i) => 1_000_000 + 1000 * i);
  const labels = Uint8Array.from({ length: n }, (_, i) => (i >= 50 ? 1 : 0));
  const changepoints = Uint8Array.from({ length: n }, (_, i) => (i === 50 ? 1 : 0));
  return {
    name,
    base: { times, labels, changepoints },
    predictions: new Map(Object.entries(preds).map(([k, f]) => [k, Uint8Array.from({ length: n }, (_, i) => f(i))])),
  };
}
const right = (i: number) => (i >= 50 ? 1 : 0);
const wrong = (i: number) => (i >= 50 ? 0 : 1);
const f1 = (s: SkabScore) => s.f1;

describe('SKAB k-fold cross-validation', () => {
  it('deals the files of each group round-robin over the folds', () => {
    const names = ['valve1/0.csv', 'valve1/1.csv', 'valve1/2.csv', 'valve2/0.csv', 'other/1.csv', 'other/2.csv'];
    const folds = foldsOf(names, 2);
    expect(folds.filter((f) => f === 0)).toHaveLength(3);
    expect(new Set(names.filter((_, i) => folds[i] === 0).map((n) => n.split('/')[0]))).toEqual(new Set(['other', 'valve1']));
  });

  it('chooses each fold on the other folds only, and scores the held-out predictions pooled', () => {
    // "lucky" is right on b and d only, "steady" right everywhere but on d. With 2 folds ({a,c}, {b,d}):
    // choosing on {a,c} picks steady (lucky is wrong there), which then fails on d;
    // in-sample, steady (3 of 4 files right) beats lucky (2 of 4).
    const files = [
      file('g/a.csv', { steady: right, lucky: wrong }),
      file('g/b.csv', { steady: right, lucky: right }),
      file('g/c.csv', { steady: right, lucky: wrong }),
      file('g/d.csv', { steady: wrong, lucky: right }),
    ];
    const res = crossValidate(files, ['lucky', 'steady'], f1, 2);
    expect(res.folds.map((x) => [x.files, x.chosen])).toEqual([
      [['g/a.csv', 'g/c.csv'], 'lucky'],
      [['g/b.csv', 'g/d.csv'], 'steady'],
    ]);
    // Fold 1 chose lucky on {b, d}: wrong on a and c. Fold 2 chose steady on {a, c}: wrong on d.
    expect(res.folds[0]?.test.f1).toBe(0);
    expect(res.folds[1]?.test.f1).toBeCloseTo(0.5, 9);
    expect(res.cv.f1).toBeCloseTo(50 / (50 + (150 + 150) / 2), 9);
    expect(res.inSample.chosen).toBe('steady');
    expect(res.inSample.score.f1).toBeGreaterThan(res.cv.f1);
  });
});
