import { describe, expect, it } from 'vitest';
import { loadNabSeries, nabAvailable, nabWindows, publishedScores } from './nab-data.js';
import { NAB_COSTS, NAB_PROFILE_NAMES, normaliseNab, probationLength, scaledSigmoid, scoreNabFile } from './nab-score.js';

const T0 = Date.UTC(2014, 0, 1);
const times = (n: number) => Float64Array.from({ length: n }, (_, i) => T0 + i * 300_000);
const at = (rows: number[]) => (i: number) => rows.includes(i);
const std = NAB_COSTS.standard;

describe('NAB scoring rules', () => {
  it('probation is 15 % of the rows, at most 750', () => {
    expect(probationLength(1000)).toBe(150);
    expect(probationLength(4032)).toBe(604);
    expect(probationLength(22_695)).toBe(750);
  });

  it('the sigmoid: +0.98661 at the left edge, 0 at the right, -1 from 3 widths past', () => {
    expect(scaledSigmoid(-1)).toBeCloseTo(0.98661, 5);
    expect(scaledSigmoid(-0.5)).toBeCloseTo(0.84828, 5);
    expect(scaledSigmoid(0)).toBe(0);
    expect(scaledSigmoid(3)).toBe(-1);
  });

  const t = times(1000);
  const w: Array<[number, number]> = [[t[400] as number, t[499] as number]];

  it('a detection at the left edge of a window earns about tpWeight; none costs fnWeight', () => {
    const s = scoreNabFile(t, at([400]), w, std);
    // position -(499 - 400 + 1)/100 = -1: exactly tpWeight.
    expect(s.score).toBeCloseTo(1, 9);
    expect(s).toMatchObject({ windows: 1, detected: 1, fp: 0 });
    expect(scoreNabFile(t, () => false, w, std).score).toBe(-1);
    expect(scoreNabFile(t, () => false, w, NAB_COSTS.reward_low_FN_rate).score).toBe(-2);
  });

  it('only the first detection in a window counts; the last row still earns a little', () => {
    expect(scoreNabFile(t, at([450, 400, 460]), w, std).score).toBeCloseTo(1, 9);
    const last = scoreNabFile(t, at([499]), w, std).score;
    expect(last).toBeCloseTo(scaledSigmoid(-1 / 100) / scaledSigmoid(-1), 9);
    expect(last).toBeGreaterThan(0);
  });

  it('false positives: full cost before the first window, sigmoid-scaled after one, each row pays', () => {
    expect(scoreNabFile(t, at([200, 201]), w, std).score).toBeCloseTo(-1 - 2 * 0.11, 9);
    // 50 rows past the right edge of a 100-row window: sigmoid(50/99)
    expect(scoreNabFile(t, at([549]), w, std).score).toBeCloseTo(-1 + 0.11 * scaledSigmoid(50 / 99), 9);
    expect(scoreNabFile(t, at([900]), w, std).score).toBeCloseTo(-1 - 0.11, 9);
  });

  it('rows in probation are never scored, and a window wholly in probation is not counted', () => {
    const early: Array<[number, number]> = [[t[10] as number, t[20] as number]];
    expect(scoreNabFile(t, at([5, 15, 100]), early, std)).toEqual({ score: 0, windows: 0, detected: 0, fp: 0 });
  });

  it('normalises to 0 for the null detector and 100 for a perfect one', () => {
    expect(normaliseNab(-110, 110, std)).toBe(0);
    expect(normaliseNab(110, 110, std)).toBe(100);
    expect(normaliseNab(-220, 110, NAB_COSTS.reward_low_FN_rate)).toBe(0);
  });
});

// The corpus is read from ../shared (CI has it); outside CI the block is skipped visibly.
const corpus = nabAvailable();
if (!corpus && process.env.CI) throw new Error('NAB corpus missing in CI (../shared/data/nab)');

describe.skipIf(!corpus)('NAB corpus: the published figures reproduced', () => {
  it('the null detector (no detections) reproduces its published per-file score on all 56 files, every profile', () => {
    const windows = nabWindows();
    expect(windows.size).toBe(56);
    for (const profile of NAB_PROFILE_NAMES) {
      const pub = new Map(publishedScores('null', profile).map((r) => [r.file, r.score]));
      let total = 0;
      for (const [file, ws] of windows) {
        const { times: ts } = loadNabSeries(file);
        const s = scoreNabFile(ts, () => false, ws, NAB_COSTS[profile]);
        expect(s.score, `${file} ${profile}`).toBeCloseTo(pub.get(file) as number, 6);
        total += s.windows;
      }
      expect(total).toBe(110);
    }
  });

  it('files without windows: a published detector pays fpWeight per detected row (numenta, art_daily_small_noise)', () => {
    const row = publishedScores('numenta', 'standard').find((r) => r.file === 'artificialNoAnomaly/art_daily_small_noise.csv');
    const { times: ts } = loadNabSeries('artificialNoAnomaly/art_daily_small_noise.csv');
    const p = probationLength(ts.length);
    const rows = Array.from({ length: row?.fp ?? 0 }, (_, k) => p + 10 * k);
    expect(scoreNabFile(ts, at(rows), [], std).score).toBeCloseTo(row?.score as number, 9);
  });

  it("normalising the published raw scores gives the data README's totals (ARTime 74.3, numenta 70.9 ...)", () => {
    const expected: Record<string, [number, number, number]> = {
      ARTime: [74.3, 64.6, 79.8],
      numenta: [70.9, 63.6, 75.2],
      windowedGaussian: [41.8, 22.0, 50.0],
      bayesChangePt: [18.4, 2.9, 31.8],
    };
    for (const [det, figs] of Object.entries(expected)) {
      NAB_PROFILE_NAMES.forEach((profile, k) => {
        const raw = publishedScores(det, profile).reduce((a, r) => a + r.score, 0);
        expect(normaliseNab(raw, 110, NAB_COSTS[profile]).toFixed(1), `${det} ${profile}`).toBe(figs[k]?.toFixed(1));
      });
    }
  });
});
