/**
 * NAB (Numenta Anomaly Benchmark) scorer, pure (no I/O). Re-implements NAB's `Sweeper` rules for a
 * 0/1 detection per row (a detector's raise), as NAB scores a detector at its chosen threshold:
 *  - the first min(floor(0.15 n), 750) rows are probation: never scored; a window whose rows all lie
 *    in probation is not scored either;
 *  - a window is entered at the row whose timestamp equals its start and left after the row equal to
 *    its end; its width is the row count between them (inclusive);
 *  - a detection inside a window is worth tpWeight · σ(−(right − i + 1)/width) / σ(−1) with
 *    σ(y) = 2/(1+e^{5y}) − 1 (σ(y) = −1 for y ≥ 3); only the best (= first) detection of a window
 *    counts; a window without one costs −fnWeight;
 *  - a detection outside windows costs fpWeight · σ(|prevRight − i| / (prevWidth − 1)), or the full
 *    −fpWeight before the first window. Every detected row pays, so an alarm held high for k rows
 *    pays k times.
 * Corpus score: 100 · (S − S_null) / (S_perfect − S_null), S_perfect = tpWeight · windows,
 * S_null = −fnWeight · windows (the null detector), summed over files.
 */

export interface NabCost {
  tpWeight: number;
  fpWeight: number;
  fnWeight: number;
}

/** `config/profiles.json` of NAB. */
export const NAB_COSTS = {
  standard: { tpWeight: 1, fpWeight: 0.11, fnWeight: 1 },
  reward_low_FP_rate: { tpWeight: 1, fpWeight: 0.22, fnWeight: 1 },
  reward_low_FN_rate: { tpWeight: 1, fpWeight: 0.11, fnWeight: 2 },
} as const satisfies Record<string, NabCost>;

export type NabProfileName = keyof typeof NAB_COSTS;
export const NAB_PROFILE_NAMES = Object.keys(NAB_COSTS) as NabProfileName[];

export function scaledSigmoid(y: number): number {
  return y >= 3 ? -1 : 2 / (1 + Math.exp(5 * y)) - 1;
}

export function probationLength(rows: number): number {
  return Math.min(Math.floor(0.15 * rows), 0.15 * 5000);
}

export interface NabFileScore {
  /** Raw score S of the file. */
  score: number;
  /** Scored windows (not wholly in probation). */
  windows: number;
  /** Windows with a detection. */
  detected: number;
  /** Detected rows outside every window (after probation). */
  fp: number;
}

/**
 * Scores one file. `times`: the rows' timestamps (epoch ms, file order); `detected(i)`: row i carries
 * a detection; `windows`: [start, end] epoch ms, in order, each equal to a row's timestamp.
 */
export function scoreNabFile(
  times: ArrayLike<number>,
  detected: (i: number) => boolean,
  windows: ReadonlyArray<readonly [number, number]>,
  cost: NabCost,
): NabFileScore {
  const n = times.length;
  const probation = probationLength(n);
  const maxTp = scaledSigmoid(-1);
  const index = new Map<number, number>();
  for (let i = n - 1; i >= 0; i--) index.set(times[i] as number, i);
  let next = 0;
  let inWindow = false;
  let right = -1;
  let width = 0;
  let prevRight = -1;
  let prevWidth = 0;
  let windowScored = false;
  let best = Number.NEGATIVE_INFINITY;
  let score = 0;
  let scored = 0;
  let hits = 0;
  let fp = 0;
  const closeWindow = () => {
    if (!windowScored) return;
    scored++;
    if (best > -cost.fnWeight) hits++;
    score += Math.max(-cost.fnWeight, best);
  };
  for (let i = 0; i < n; i++) {
    const t = times[i] as number;
    const w = windows[next];
    if (!inWindow && w && t === w[0]) {
      next++;
      inWindow = true;
      right = index.get(w[1]) ?? n - 1;
      width = right - i + 1;
      windowScored = false;
      best = Number.NEGATIVE_INFINITY;
    }
    const inProbation = i < probation;
    if (inWindow) {
      if (!inProbation) windowScored = true;
      if (!inProbation && detected(i)) {
        const s = (scaledSigmoid(-(right - i + 1) / width) * cost.tpWeight) / maxTp;
        if (s > best) best = s;
      }
      if (i === right) {
        closeWindow();
        inWindow = false;
        prevRight = i;
        prevWidth = width;
      }
    } else if (!inProbation && detected(i)) {
      const pos = prevRight < 0 ? 3 : Math.abs(prevRight - i) / (prevWidth - 1);
      score += scaledSigmoid(pos) * cost.fpWeight;
      fp++;
    }
  }
  if (inWindow) closeWindow();
  return { score, windows: scored, detected: hits, fp };
}

/** Normalised corpus score from the summed raw score and the number of scored windows. */
export function normaliseNab(rawTotal: number, windows: number, cost: NabCost): number {
  const perfect = cost.tpWeight * windows;
  const nul = -cost.fnWeight * windows;
  return (100 * (rawTotal - nul)) / (perfect - nul);
}

/** `YYYY-MM-DD hh:mm:ss[.ffffff]` (NAB data and labels, UTC) to epoch ms. */
export function parseNabTime(s: string): number {
  const m = /^(\d{4})-(\d\d)-(\d\d)[ T](\d\d):(\d\d):(\d\d)(?:\.(\d+))?/.exec(s.trim());
  if (!m) return Number.NaN;
  const ms = m[7] ? Math.round(Number(`0.${m[7]}`) * 1000) : 0;
  return Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3]), Number(m[4]), Number(m[5]), Number(m[6])) + ms;
}
