import { existsSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { listSkabFiles, loadSkab, SKAB_FIT_ROWS, skabRoot } from './skab-data.js';
import { fileFromRows, nabWindows, predictedChangepoints, type SkabScoreFile, scoreSkab } from './skab-score.js';

/** 1 Hz synthetic file of n rows; true changepoints at given row indices. */
function synth(n: number, cps: number[], pred: (i: number) => number): SkabScoreFile {
  return fileFromRows(
    Array.from({ length: n }, (_, i) => ({
      time: 1_000_000 + i * 1000,
      label: 0,
      changepoint: cps.includes(i) ? 1 : 0,
      prediction: pred(i),
    })),
  );
}

describe('NAB (60 s window right of the changepoint)', () => {
  // One true changepoint at row 10 -> window [10 s, 70 s].
  it('early detection (at the changepoint) scores perfect in every profile', () => {
    const s = scoreSkab([synth(200, [10], (i) => (i >= 10 ? 1 : 0))]);
    expect(s.nab.standard).toBeCloseTo(100, 6);
    expect(s.nab.lowFp).toBeCloseTo(100, 6);
    expect(s.nab.lowFn).toBeCloseTo(100, 6);
    expect(s.cp).toEqual({ windows: 1, detected: 1, missed: 0, falsePositives: 0 });
  });

  it('late detection in the middle of the window earns about (A_tp + A_fp) / 2', () => {
    // event = 500 of 1000 -> x = pi * (500/999 - 1/2); y = -h tanh(x)/tanh(pi/2) + h + A_fp
    // standard: h = 0.555 -> y = 0.444049 -> 100 * (0.444049 + 1) / 2 = 72.2024
    // lowFp:    h = 0.610 -> y = 0.388954 -> 69.4477
    // lowFn:    y = 0.444049, null = -2    -> 100 * 2.444049 / 3 = 81.4683
    const s = scoreSkab([synth(200, [10], (i) => (i >= 40 ? 1 : 0))]);
    expect(s.nab.standard).toBeCloseTo(72.2024, 3);
    expect(s.nab.lowFp).toBeCloseTo(69.4477, 3);
    expect(s.nab.lowFn).toBeCloseTo(81.4683, 3);
  });

  it('detection at the very end of the window earns A_fp', () => {
    const s = scoreSkab([synth(200, [10], (i) => (i >= 70 ? 1 : 0))]);
    expect(s.nab.standard).toBeCloseTo((100 * (-0.11 + 1)) / 2, 6); // 44.5
    expect(s.nab.lowFp).toBeCloseTo((100 * (-0.22 + 1)) / 2, 6); // 39
    expect(s.nab.lowFn).toBeCloseTo((100 * (-0.11 + 2)) / 3, 6); // 63
  });

  it('a blip before the window is two false positives and a miss', () => {
    // rise at row 2, fall at row 5: both edges outside [10, 70]
    const s = scoreSkab([synth(200, [10], (i) => (i >= 2 && i < 5 ? 1 : 0))]);
    expect(s.cp).toEqual({ windows: 1, detected: 0, missed: 1, falsePositives: 2 });
    expect(s.nab.standard).toBeCloseTo(-11, 6); // (2 * -0.11 - 1 + 1) / 2
    expect(s.nab.lowFp).toBeCloseTo(-22, 6);
    expect(s.nab.lowFn).toBeCloseTo((100 * -0.22) / 3, 6);
  });

  it('a miss (null detector) scores 0', () => {
    const s = scoreSkab([synth(200, [10, 120], () => 0)]);
    expect(s.nab).toEqual({ standard: 0, lowFp: 0, lowFn: 0 });
    expect(s.cp.missed).toBe(2);
  });

  it('extra edges inside a window are free; edges after the last window are FPs', () => {
    // rise 12, fall 20, rise 30 (all inside [10, 70]), fall 150 (outside)
    const s = scoreSkab([synth(200, [10], (i) => ((i >= 12 && i < 20) || (i >= 30 && i < 150) ? 1 : 0))]);
    expect(s.cp).toEqual({ windows: 1, detected: 1, missed: 0, falsePositives: 1 });
  });

  it('overlapping windows: the later one starts where the earlier one ends', () => {
    const f = synth(200, [10, 40], () => 0);
    expect(nabWindows(f)).toEqual([
      [1_010_000, 1_070_000],
      [1_070_000, 1_100_000],
    ]);
  });

  it('a prediction already high on the first scored row is an edge', () => {
    expect(predictedChangepoints(synth(5, [], () => 1))).toEqual([1_000_000]);
  });
});

describe('outlier metrics', () => {
  it('counts the confusion matrix and derives F1 / FAR / MAR', () => {
    const labels = [1, 1, 1, 1, 0, 0, 0, 0, 0, 0];
    const preds = [1, 1, 1, 0, 1, 0, 0, 0, 0, 0];
    const f: SkabScoreFile = {
      times: labels.map((_, i) => i * 1000),
      labels,
      changepoints: labels.map(() => 0),
      predictions: preds,
    };
    const s = scoreSkab([f]);
    expect([s.tp, s.fp, s.tn, s.fn]).toEqual([3, 1, 5, 1]);
    expect(s.f1).toBeCloseTo(0.75, 12);
    expect(s.far).toBeCloseTo(1 / 6, 12);
    expect(s.mar).toBeCloseTo(0.25, 12);
  });
});

describe.skipIf(!existsSync(skabRoot()))('SKAB leaderboard split (reads the GPL data at test time)', () => {
  it('uses the 34 labelled files (anomaly-free excluded)', () => {
    const files = listSkabFiles();
    expect(files).toHaveLength(34);
    expect(files.some((f) => f.includes('anomaly-free'))).toBe(false);
  });

  it('"always alarm" on rows 400+ gives F1 0.6984, FAR 100 %, MAR 0 %', () => {
    const files = loadSkab().map((r) => ({
      times: r.times.subarray(SKAB_FIT_ROWS),
      labels: r.anomaly.subarray(SKAB_FIT_ROWS),
      changepoints: r.changepoint.subarray(SKAB_FIT_ROWS),
      predictions: new Uint8Array(r.length - SKAB_FIT_ROWS).fill(1),
    }));
    const s = scoreSkab(files);
    expect(s.f1.toFixed(4)).toBe('0.6984');
    expect(s.far).toBe(1);
    expect(s.mar).toBe(0);
    expect(s.cp.windows).toBe(127);
  });
});
