/**
 * SKAB leaderboard scorer (pure; no I/O).
 *
 * Outlier metrics are pooled over all files: F1 = TP / (TP + (FP + FN) / 2),
 * FAR = FP / (FP + TN), MAR = FN / (FN + TP).
 *
 * Changepoint metric: NAB as computed by SKAB's evaluation (tsad `evaluating`,
 * SKAB `core/metrics.py::chp_score`) with the leaderboard settings
 * window_width = 60 s, anomaly_window_destination = 'righter',
 * intersection_mode = 'cut right window', clear_anomalies_mode = true,
 * scale_func = 'improved', scale_koef = 1. Re-implemented here from the
 * description of that algorithm:
 *  - true changepoints: times of rows with changepoint = 1 (scored rows only);
 *    each opens a window [t, t + 60 s]; when a window's end reaches the next
 *    window's start, the next start is moved to that end (sequentially);
 *  - predicted changepoints: rising and falling edges of the 0/1 prediction,
 *    cp[0] = pred[0], cp[i] = |pred[i] - pred[i-1]| (as SKAB's notebooks do);
 *  - a window with >= 1 predicted changepoint in [start, end] is a TP scored at
 *    its FIRST one by a tanh ramp from A_tp (at start) to A_fp (at end);
 *    further predictions inside windows cost nothing; a window without one is
 *    a FN (A_fn); predictions outside every window are FPs (A_fp each);
 *  - per profile, sum over files, then 100 * (S - S_null) / (S_perfect - S_null)
 *    with S_null = n_windows * A_fn and S_perfect = n_windows * A_tp.
 */

export interface SkabScoreFile {
  /** Epoch ms, non-decreasing. */
  times: ArrayLike<number>;
  /** Ground-truth anomaly label (0/1). */
  labels: ArrayLike<number>;
  /** Ground-truth changepoint flag (0/1). */
  changepoints: ArrayLike<number>;
  /** Detector output (0/1). */
  predictions: ArrayLike<number>;
}

export interface SkabScoreRow {
  time: number;
  label: number;
  changepoint: number;
  prediction: number;
}

export interface NabProfile {
  aTp: number;
  aFp: number;
  aFn: number;
}

export const NAB_PROFILES = {
  standard: { aTp: 1, aFp: -0.11, aFn: -1 },
  lowFp: { aTp: 1, aFp: -0.22, aFn: -1 },
  lowFn: { aTp: 1, aFp: -0.11, aFn: -2 },
} as const satisfies Record<string, NabProfile>;

export type NabProfileName = keyof typeof NAB_PROFILES;

export interface SkabScore {
  f1: number;
  /** Fractions in [0, 1] (multiply by 100 for the leaderboard's %). */
  far: number;
  mar: number;
  precision: number;
  recall: number;
  tp: number;
  fp: number;
  tn: number;
  fn: number;
  /** NAB scores in leaderboard units (0 = null detector, 100 = perfect). */
  nab: { standard: number; lowFp: number; lowFn: number };
  /** Changepoint counts behind the NAB score. */
  cp: { windows: number; detected: number; missed: number; falsePositives: number };
}

export const NAB_WINDOW_MS = 60_000;
const DETALIZATION = 1000;

/** Convert an array-of-records file into the struct-of-arrays form. */
export function fileFromRows(rows: readonly SkabScoreRow[]): SkabScoreFile {
  return {
    times: rows.map((r) => r.time),
    labels: rows.map((r) => r.label),
    changepoints: rows.map((r) => r.changepoint),
    predictions: rows.map((r) => r.prediction),
  };
}

/** The 'improved' NAB scaling: tanh ramp, A_tp at the window start, A_fp at its end. */
export function nabScale(start: number, detected: number, end: number, p: NabProfile): number {
  const span = end - start;
  let event = span > 0 ? Math.trunc(((detected - start) / span) * DETALIZATION) : 0;
  if (event >= DETALIZATION) event = DETALIZATION - 1;
  if (event < 0) event = 0;
  const x = -Math.PI / 2 + (event * Math.PI) / (DETALIZATION - 1);
  const h = (p.aTp - p.aFp) / 2;
  return -h * (Math.tanh(x) / Math.tanh(Math.PI / 2)) + h + p.aFp;
}

/** Scoring windows for one file (after 'cut right window'). */
export function nabWindows(file: SkabScoreFile, windowMs = NAB_WINDOW_MS): [number, number][] {
  const w: [number, number][] = [];
  for (let i = 0; i < file.changepoints.length; i++) {
    if (file.changepoints[i] === 1) {
      const t = file.times[i] as number;
      w.push([t, t + windowMs]);
    }
  }
  for (let i = 0; i + 1 < w.length; i++) {
    const a = w[i] as [number, number];
    const b = w[i + 1] as [number, number];
    if (a[1] >= b[0]) b[0] = a[1];
  }
  return w;
}

/** Times of predicted changepoints (edges of the 0/1 prediction). */
export function predictedChangepoints(file: SkabScoreFile): number[] {
  const out: number[] = [];
  const p = file.predictions;
  for (let i = 0; i < p.length; i++) {
    const cur = p[i] === 1 ? 1 : 0;
    const prev = i === 0 ? 0 : p[i - 1] === 1 ? 1 : 0;
    if (cur !== prev) out.push(file.times[i] as number);
  }
  return out;
}

interface NabFileCounts {
  windows: number;
  fps: number;
  fns: number;
  /** [start, firstDetection, end] per detected window. */
  tps: [number, number, number][];
}

export function nabFileCounts(file: SkabScoreFile, windowMs = NAB_WINDOW_MS): NabFileCounts {
  const w = nabWindows(file, windowMs);
  const cps = predictedChangepoints(file);
  const res: NabFileCounts = { windows: w.length, fps: 0, fns: 0, tps: [] };
  if (w.length === 0) {
    res.fps = cps.length;
    return res;
  }
  const first = w[0] as [number, number];
  const last = w[w.length - 1] as [number, number];
  for (const t of cps) {
    if (t < first[0] || t > last[1]) {
      res.fps++;
      continue;
    }
    for (let i = 0; i + 1 < w.length; i++) {
      const a = w[i] as [number, number];
      const b = w[i + 1] as [number, number];
      if (t > a[1] && t < b[0]) {
        res.fps++;
        break;
      }
    }
  }
  for (const [s, e] of w) {
    let det = Number.NaN;
    for (const t of cps) {
      if (t >= s && t <= e) {
        det = t;
        break;
      }
    }
    if (Number.isNaN(det)) res.fns++;
    else res.tps.push([s, det, e]);
  }
  return res;
}

export function scoreSkab(files: readonly SkabScoreFile[], windowMs = NAB_WINDOW_MS): SkabScore {
  let tp = 0;
  let fp = 0;
  let tn = 0;
  let fn = 0;
  const names = Object.keys(NAB_PROFILES) as NabProfileName[];
  const s = { standard: 0, lowFp: 0, lowFn: 0 };
  let windows = 0;
  let missed = 0;
  let detected = 0;
  let cpFps = 0;
  for (const f of files) {
    const n = f.labels.length;
    if (f.predictions.length !== n || f.times.length !== n || f.changepoints.length !== n) {
      throw new Error('scoreSkab: array lengths differ within a file');
    }
    for (let i = 0; i < n; i++) {
      const y = f.labels[i] === 1;
      const p = f.predictions[i] === 1;
      if (y && p) tp++;
      else if (y) fn++;
      else if (p) fp++;
      else tn++;
    }
    const c = nabFileCounts(f, windowMs);
    windows += c.windows;
    missed += c.fns;
    detected += c.tps.length;
    cpFps += c.fps;
    for (const name of names) {
      const prof = NAB_PROFILES[name];
      let v = prof.aFp * c.fps + prof.aFn * c.fns;
      for (const [a, d, b] of c.tps) v += nabScale(a, d, b, prof);
      s[name] += v;
    }
  }
  const nab = { standard: 0, lowFp: 0, lowFn: 0 };
  for (const name of names) {
    const prof = NAB_PROFILES[name];
    const nul = windows * prof.aFn;
    const perfect = windows * prof.aTp;
    nab[name] = perfect === nul ? 0 : (100 * (s[name] - nul)) / (perfect - nul);
  }
  const div = (a: number, b: number): number => (b === 0 ? 0 : a / b);
  return {
    f1: div(tp, tp + (fp + fn) / 2),
    far: div(fp, fp + tn),
    mar: div(fn, fn + tp),
    precision: div(tp, tp + fp),
    recall: div(tp, tp + fn),
    tp,
    fp,
    tn,
    fn,
    nab,
    cp: { windows, detected, missed, falsePositives: cpFps },
  };
}
