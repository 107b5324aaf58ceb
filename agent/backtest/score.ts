/**
 * Scores of a backtest against labels.
 *  - NAB windows: every raise of a (selected) detector is one detection at the row that produced it
 *    (an alarm held high is one detection, not one per row); scored per NAB profile.
 *  - Point labels (SKAB style, 0/1 per row): a row is predicted anomalous while any (selected)
 *    detector is raised; F1 = 2TP / (2TP + FP + FN), FAR = FP / (FP + TN), MAR = FN / (FN + TP).
 */
import { NAB_COSTS, NAB_PROFILE_NAMES, type NabProfileName, normaliseNab, scoreNabFile } from '../eval/nab-score.js';
import type { BacktestResult } from './replay.js';

export interface NabResult {
  profile: NabProfileName;
  raw: number;
  windows: number;
  detected: number;
  fp: number;
  /** 100 · (S − S_null) / (S_perfect − S_null) on this file alone. */
  normalised: number;
}

export function nabScores(
  res: Pick<BacktestResult, 'times' | 'raisedRows'>,
  windows: ReadonlyArray<readonly [number, number]>,
): NabResult[] {
  return NAB_PROFILE_NAMES.map((profile) => {
    const cost = NAB_COSTS[profile];
    const s = scoreNabFile(res.times, (i) => res.raisedRows[i] === 1, windows, cost);
    return {
      profile,
      raw: s.score,
      windows: s.windows,
      detected: s.detected,
      fp: s.fp,
      normalised: s.windows > 0 ? normaliseNab(s.score, s.windows, cost) : Number.NaN,
    };
  });
}

export interface PointCounts {
  tp: number;
  fp: number;
  fn: number;
  tn: number;
}

export function pointCounts(predicted: ArrayLike<number>, labels: ArrayLike<number>, from = 0): PointCounts {
  const c = { tp: 0, fp: 0, fn: 0, tn: 0 };
  for (let i = from; i < labels.length; i++) {
    const l = labels[i] as number;
    if (Number.isNaN(l)) continue;
    const p = (predicted[i] as number) > 0;
    if (l > 0) p ? c.tp++ : c.fn++;
    else p ? c.fp++ : c.tn++;
  }
  return c;
}

export function addCounts(a: PointCounts, b: PointCounts): PointCounts {
  return { tp: a.tp + b.tp, fp: a.fp + b.fp, fn: a.fn + b.fn, tn: a.tn + b.tn };
}

export function pointRates(c: PointCounts): { f1: number; far: number; mar: number } {
  return {
    f1: (2 * c.tp) / (2 * c.tp + c.fp + c.fn) || 0,
    far: c.fp / (c.fp + c.tn) || 0,
    mar: c.fn / (c.fn + c.tp) || 0,
  };
}
