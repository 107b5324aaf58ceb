/**
 * The multivariate form of `adaptive`: one asset's sensors as one row (the `multivariate` detector
 * with `statistic: adaptive`; README.md beside this file). It learns the rows' joint normal
 * behaviour from the learning rows and keeps learning it, robustly and only from normal rows:
 *
 *  - per sensor a robust level `m` and spread `s` (median / mean absolute deviation of the learning
 *    rows, then an EWMA over `memory` rows with each deviation clipped at CLIP spreads);
 *  - the correlation of the standardised deviations u = (x − m) / s: a covariance `C` (from the
 *    learning rows, then the same EWMA with u clipped), inverted every INVERT_EVERY rows (ridge
 *    RIDGE), so a row whose sensors disagree with how they usually move together scores high even
 *    when each sensor is inside its own range;
 *  - two scores per row: the largest |u| (one sensor off) and sqrt(uᵀC⁻¹u / d) (the joint
 *    behaviour off), each against its own limit: the tracked 98th percentile of its normal values
 *    times `limit_factor`; the row score is the larger ratio, so 1 is the limit;
 *  - gated learning: rows past the limit and rows while raised teach nothing (a fault is not
 *    learned as normal); a raise that holds `accept_after` rows is a new operating point: the
 *    levels move to the current row's smoothed values and the alarm clears.
 * The caller smooths the rows (the detector's `smoothing`) and applies on/off counts.
 * Per row it allocates nothing: O(d²), and O(d³) every INVERT_EVERY rows.
 */
import type { LearnedState } from '../common.js';

const CLIP = 4;
const QUANTILE = 0.98;
const RIDGE = 0.05;
const INVERT_EVERY = 25;
const STATE_VERSION = 1;

export interface AdaptiveRowOptions {
  /** Rows over which normal behaviour is remembered. */
  memory: number;
  /** Limit = this × the tracked 98th percentile of a score's normal values. */
  limitFactor: number;
}

export class AdaptiveRows {
  readonly d: number;
  private readonly m: Float64Array;
  private readonly s: Float64Array;
  private readonly floor: Float64Array;
  private readonly u: Float64Array;
  private readonly cov: Float64Array;
  private readonly inv: Float64Array;
  private readonly work: Float64Array;
  private qz = 1;
  private qt = 1;
  private alpha: number;
  private qStep: number;
  private sinceInvert = 0;
  /** Last row's scores: largest |u|, joint score, and the row score (1 = limit). */
  zMax = 0;
  joint = 0;
  score = 0;

  constructor(
    d: number,
    private opts: AdaptiveRowOptions,
  ) {
    this.d = d;
    this.m = new Float64Array(d);
    this.s = new Float64Array(d).fill(1);
    this.floor = new Float64Array(d).fill(1e-9);
    this.u = new Float64Array(d);
    this.cov = new Float64Array(d * d);
    this.inv = new Float64Array(d * d);
    this.work = new Float64Array(d * d);
    this.alpha = 2 / (opts.memory + 1);
    this.qStep = 4 * this.alpha;
  }

  setOptions(opts: AdaptiveRowOptions): void {
    this.opts = opts;
    this.alpha = 2 / (opts.memory + 1);
    this.qStep = 4 * this.alpha;
  }

  get zLimit(): number {
    return this.opts.limitFactor * this.qz;
  }

  get jointLimit(): number {
    return this.opts.limitFactor * this.qt;
  }

  /** Standardised deviation of each sensor at the last row (for the evidence). */
  deviations(out: Float64Array): void {
    out.set(this.u);
  }

  /** Fits the baseline on the learning rows (at least 3). */
  fit(rows: readonly Float64Array[]): void {
    const d = this.d;
    const n = rows.length;
    const col = new Float64Array(n);
    for (let j = 0; j < d; j++) {
      let range = 0;
      for (let i = 0; i < n; i++) {
        col[i] = (rows[i] as Float64Array)[j] as number;
        range = Math.max(range, Math.abs(col[i] as number));
      }
      col.sort();
      const med = n % 2 ? (col[(n - 1) / 2] as number) : ((col[n / 2 - 1] as number) + (col[n / 2] as number)) / 2;
      let mad = 0;
      for (let i = 0; i < n; i++) mad += Math.abs((col[i] as number) - med);
      mad /= n;
      this.m[j] = med;
      this.floor[j] = Math.max(1e-9, 1e-3 * range);
      this.s[j] = Math.max(mad, this.floor[j] as number);
    }
    this.cov.fill(0);
    for (const r of rows) {
      this.standardise(r);
      for (let a = 0; a < d; a++)
        for (let b = 0; b < d; b++)
          this.cov[a * d + b] = (this.cov[a * d + b] as number) + ((this.u[a] as number) * (this.u[b] as number)) / n;
    }
    this.invert();
    const zs = new Float64Array(n);
    const ts = new Float64Array(n);
    for (let i = 0; i < n; i++) {
      this.standardise(rows[i] as Float64Array);
      zs[i] = this.maxAbs();
      ts[i] = this.jointScore();
    }
    this.qz = Math.max(quantile(zs, QUANTILE), 1);
    this.qt = Math.max(quantile(ts, QUANTILE), 0.5);
  }

  /**
   * Scores a (smoothed) row; `raised`: the caller's alarm is up (nothing is learned then).
   * Returns the row score: > 1 is past the limit.
   */
  update(row: Float64Array, raised: boolean): number {
    this.standardise(row);
    const z = this.maxAbs();
    const t = this.jointScore();
    this.zMax = z;
    this.joint = t;
    this.score = Math.max(z / this.zLimit, t / this.jointLimit);
    if (!raised && this.score <= 1) this.learn(row, z, t);
    return this.score;
  }

  /** A lasting deviation is a new operating point: the levels move to `row`. */
  accept(row: Float64Array): void {
    for (let j = 0; j < this.d; j++) this.m[j] = row[j] as number;
  }

  private learn(row: Float64Array, z: number, t: number): void {
    const d = this.d;
    const a = this.alpha;
    for (let j = 0; j < d; j++) {
      const s = Math.max(this.s[j] as number, this.floor[j] as number);
      const dev = (row[j] as number) - (this.m[j] as number);
      const lim = CLIP * s;
      const dc = Math.min(Math.max(dev, -lim), lim);
      this.m[j] = (this.m[j] as number) + a * dc;
      this.s[j] = s + a * (Math.abs(dc) - s);
    }
    for (let i = 0; i < d; i++) {
      const ui = clip(this.u[i] as number);
      for (let j = 0; j < d; j++) {
        const k = i * d + j;
        this.cov[k] = (this.cov[k] as number) + a * (ui * clip(this.u[j] as number) - (this.cov[k] as number));
      }
    }
    if (++this.sinceInvert >= INVERT_EVERY) this.invert();
    this.qz += this.qStep * (z > this.qz ? QUANTILE : QUANTILE - 1) * Math.max(this.qz, 1);
    this.qt += this.qStep * (t > this.qt ? QUANTILE : QUANTILE - 1) * Math.max(this.qt, 1);
  }

  private standardise(row: Float64Array): void {
    for (let j = 0; j < this.d; j++)
      this.u[j] = ((row[j] as number) - (this.m[j] as number)) / Math.max(this.s[j] as number, this.floor[j] as number);
  }

  private maxAbs(): number {
    let z = 0;
    for (let j = 0; j < this.d; j++) z = Math.max(z, Math.abs(this.u[j] as number));
    return z;
  }

  /** sqrt(uᵀ C⁻¹ u / d). */
  private jointScore(): number {
    const d = this.d;
    let q = 0;
    for (let i = 0; i < d; i++) {
      let r = 0;
      for (let j = 0; j < d; j++) r += (this.inv[i * d + j] as number) * (this.u[j] as number);
      q += (this.u[i] as number) * r;
    }
    return Math.sqrt(Math.max(q, 0) / d);
  }

  /** inv = (C + RIDGE·mean(diag C)·I)⁻¹ by Gauss–Jordan on preallocated arrays. */
  private invert(): void {
    this.sinceInvert = 0;
    const d = this.d;
    const w = this.work;
    const inv = this.inv;
    let tr = 0;
    for (let i = 0; i < d; i++) tr += this.cov[i * d + i] as number;
    const ridge = RIDGE * Math.max(tr / d, 1e-9);
    w.set(this.cov);
    inv.fill(0);
    for (let i = 0; i < d; i++) {
      w[i * d + i] = (w[i * d + i] as number) + ridge;
      inv[i * d + i] = 1;
    }
    for (let c = 0; c < d; c++) {
      let p = c;
      for (let r = c + 1; r < d; r++) if (Math.abs(w[r * d + c] as number) > Math.abs(w[p * d + c] as number)) p = r;
      if (p !== c)
        for (let k = 0; k < d; k++) {
          swap(w, c * d + k, p * d + k);
          swap(inv, c * d + k, p * d + k);
        }
      const piv = w[c * d + c] as number;
      for (let k = 0; k < d; k++) {
        w[c * d + k] = (w[c * d + k] as number) / piv;
        inv[c * d + k] = (inv[c * d + k] as number) / piv;
      }
      for (let r = 0; r < d; r++) {
        if (r === c) continue;
        const f = w[r * d + c] as number;
        if (f === 0) continue;
        for (let k = 0; k < d; k++) {
          w[r * d + k] = (w[r * d + k] as number) - f * (w[c * d + k] as number);
          inv[r * d + k] = (inv[r * d + k] as number) - f * (inv[c * d + k] as number);
        }
      }
    }
  }

  /** Contract E: the learned levels, spreads, covariance and percentiles. */
  snapshot(learnedAt: number, sensors: readonly string[]): LearnedState {
    return {
      v: STATE_VERSION,
      learned_at: learnedAt,
      statistic: 'adaptive',
      sensors: [...sensors],
      m: Array.from(this.m),
      s: Array.from(this.s),
      floor: Array.from(this.floor),
      cov: Array.from(this.cov),
      qz: this.qz,
      qt: this.qt,
    };
  }

  /** Restores a snapshot; false when it does not fit (other sensors, layout or size). */
  restore(st: LearnedState, sensors: readonly string[]): boolean {
    const { m, s, floor, cov, qz, qt } = st as Record<string, unknown>;
    const d = this.d;
    const vec = (x: unknown, n: number): x is number[] =>
      Array.isArray(x) && x.length === n && x.every((v) => typeof v === 'number' && Number.isFinite(v));
    if (st.v !== STATE_VERSION || st.statistic !== 'adaptive') return false;
    if (JSON.stringify(st.sensors) !== JSON.stringify(sensors)) return false;
    if (!vec(m, d) || !vec(s, d) || !vec(floor, d) || !vec(cov, d * d) || !vec([qz, qt], 2)) return false;
    this.m.set(m);
    this.s.set(s);
    this.floor.set(floor);
    this.cov.set(cov);
    this.qz = qz as number;
    this.qt = qt as number;
    this.invert();
    return true;
  }
}

function clip(u: number): number {
  return Math.min(Math.max(u, -CLIP), CLIP);
}

function swap(a: Float64Array, i: number, j: number): void {
  const t = a[i] as number;
  a[i] = a[j] as number;
  a[j] = t;
}

function quantile(xs: Float64Array, q: number): number {
  const v = Float64Array.from(xs).sort();
  return v[Math.min(v.length - 1, Math.floor(q * v.length))] as number;
}
