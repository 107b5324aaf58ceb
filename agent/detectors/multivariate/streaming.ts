/**
 * Causal, streaming multivariate anomaly detector.
 *
 * Pipeline per row (event time, one row at a time, no look-ahead):
 *   1. time-aware EWMA per monitored channel: s += (1 - exp(-dt / tau)) (x - s)
 *   2. statistic on the smoothed vector, against a baseline frozen at fit():
 *        'maxAbsZ' max_c |s_c - mu_c| / sd_c      (default)
 *        'rmsZ'    sqrt(mean_c ((s_c - mu_c) / sd_c)^2)
 *        't2'      Hotelling T² of a PCA model of the smoothed fit rows
 *        'q'       Q / SPE of that PCA model
 *        't2q'     max(T² / T²_ref, Q / Q_ref), refs = fit-set quantiles
 *      (mu, sd, PCA are computed on the *smoothed* fit rows.)
 *   3. threshold = quantile(fit-set statistic, thresholdQuantile) * thresholdFactor
 *   4. hysteresis: raise after `onCount` consecutive rows above the threshold,
 *      clear after `offCount` consecutive rows at or below it.
 *
 * fit() consumes the fit rows through the same EWMA, so the smoothing state
 * continues seamlessly into update(); the alarm state starts cleared.
 * update() allocates nothing (it returns the same output object each call).
 */
import { PcaModel, type PcaOptions, type PcaScore } from './pca.js';

export type DetectorStatistic = 'maxAbsZ' | 'rmsZ' | 't2' | 'q' | 't2q';

export interface StreamingDetectorOptions {
  /** Indices of the input row to monitor (default: all). */
  channels?: readonly number[];
  /** EWMA time constant in seconds (<= 0 disables smoothing). Default 8. */
  tauSec?: number;
  statistic?: DetectorStatistic;
  /** Quantile of the fit-set statistic used as the base threshold. Default 1 (the max). */
  thresholdQuantile?: number;
  /** Multiplier on that quantile. Default 1.4. */
  thresholdFactor?: number;
  /** Consecutive exceedances to raise the alarm. Default 5. */
  onCount?: number;
  /** Consecutive non-exceedances to clear it. Default 5. */
  offCount?: number;
  /** PCA options for the 't2' / 'q' / 't2q' statistics. */
  pca?: PcaOptions;
  /** Quantile of fit-set T² and Q used to normalise them in 't2q'. Default 0.99. */
  t2qReferenceQuantile?: number;
  /** Floor on per-channel sd of the smoothed fit rows (raw units). Default 1e-9. */
  minStd?: number;
}

export interface DetectorOutput {
  /** Alarm state after this row. */
  alarm: boolean;
  /** The alarm rose on this row. */
  raised: boolean;
  /** The alarm cleared on this row. */
  cleared: boolean;
  /** Statistic for this row (compare with threshold). */
  statistic: number;
  threshold: number;
}

export const DEFAULT_DETECTOR_OPTIONS = {
  tauSec: 8,
  statistic: 'maxAbsZ',
  thresholdQuantile: 1,
  thresholdFactor: 1.4,
  onCount: 5,
  offCount: 5,
  t2qReferenceQuantile: 0.99,
  minStd: 1e-9,
} as const;

/** Linear-interpolated quantile (numpy's default), q in [0, 1]. */
export function quantileOf(values: ArrayLike<number>, q: number): number {
  const s = Float64Array.from(values as ArrayLike<number>).sort();
  if (s.length === 0) return Number.NaN;
  const pos = (s.length - 1) * Math.min(Math.max(q, 0), 1);
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return (s[lo] as number) + ((s[hi] as number) - (s[lo] as number)) * (pos - lo);
}

export class StreamingDetector {
  readonly options: Required<Omit<StreamingDetectorOptions, 'channels' | 'pca'>> & { pca: PcaOptions };
  private channels: Int32Array | null;
  private dims = 0;
  private smooth = new Float64Array(0);
  private primed = false;
  private lastTime = Number.NaN;
  private lastDtSec = 1;
  private mu = new Float64Array(0);
  private sd = new Float64Array(0);
  private pcaModel: PcaModel | null = null;
  private refT2 = 1;
  private refQ = 1;
  private readonly pcaOut: PcaScore = { t2: 0, q: 0 };
  private thr = Number.POSITIVE_INFINITY;
  private fitted = false;
  private on = false;
  private up = 0;
  private down = 0;
  private readonly out: DetectorOutput = { alarm: false, raised: false, cleared: false, statistic: 0, threshold: 0 };

  constructor(opts: StreamingDetectorOptions = {}) {
    const { channels, pca, ...rest } = opts;
    const o = { ...DEFAULT_DETECTOR_OPTIONS, ...stripUndefined(rest), pca: pca ?? {} };
    if (!(o.onCount >= 1 && o.offCount >= 1)) throw new Error('onCount/offCount must be >= 1');
    if (!(o.thresholdFactor > 0)) throw new Error('thresholdFactor must be > 0');
    this.options = o;
    this.channels = channels ? Int32Array.from(channels) : null;
  }

  get threshold(): number {
    return this.thr;
  }

  get alarm(): boolean {
    return this.on;
  }

  get isFitted(): boolean {
    return this.fitted;
  }

  /**
   * Fit the baseline on rows known to be (mostly) normal, in time order.
   * `times` are epoch ms; `rows` are full input rows (all channels).
   */
  fit(times: ArrayLike<number>, rows: readonly ArrayLike<number>[]): this {
    if (rows.length !== times.length) throw new Error('fit: times and rows differ in length');
    if (rows.length < 3) throw new Error('fit: need at least 3 rows');
    const width = (rows[0] as ArrayLike<number>).length;
    if (!this.channels) this.channels = Int32Array.from({ length: width }, (_, i) => i);
    for (const c of this.channels) if (c < 0 || c >= width) throw new Error(`fit: channel ${c} out of range`);
    const d = this.channels.length;
    this.dims = d;
    this.smooth = new Float64Array(d);
    this.primed = false;
    this.lastTime = Number.NaN;
    this.lastDtSec = 1;
    this.fitted = false;
    // 1. smoothed fit rows
    const sm: Float64Array[] = [];
    for (let i = 0; i < rows.length; i++) {
      this.advance(times[i] as number, rows[i] as ArrayLike<number>);
      sm.push(Float64Array.from(this.smooth));
    }
    // 2. per-channel baseline of the smoothed rows
    const n = sm.length;
    this.mu = new Float64Array(d);
    this.sd = new Float64Array(d);
    for (const r of sm) for (let j = 0; j < d; j++) this.mu[j] = (this.mu[j] as number) + (r[j] as number) / n;
    for (const r of sm)
      for (let j = 0; j < d; j++) this.sd[j] = (this.sd[j] as number) + ((r[j] as number) - (this.mu[j] as number)) ** 2;
    for (let j = 0; j < d; j++) this.sd[j] = Math.max(Math.sqrt((this.sd[j] as number) / (n - 1)), this.options.minStd);
    const st = this.options.statistic;
    if (st === 't2' || st === 'q' || st === 't2q') {
      this.pcaModel = PcaModel.fit(sm, { minStd: this.options.minStd, ...this.options.pca });
      if (st === 't2q') {
        const t2 = new Float64Array(n);
        const q = new Float64Array(n);
        for (let i = 0; i < n; i++) {
          this.pcaModel.score(sm[i] as Float64Array, this.pcaOut);
          t2[i] = this.pcaOut.t2;
          q[i] = this.pcaOut.q;
        }
        const rq = this.options.t2qReferenceQuantile;
        this.refT2 = Math.max(quantileOf(t2, rq), 1e-12);
        this.refQ = Math.max(quantileOf(q, rq), 1e-12);
      }
    } else {
      this.pcaModel = null;
    }
    // 3. threshold from the fit-set statistic
    const stats = new Float64Array(n);
    for (let i = 0; i < n; i++) stats[i] = this.statisticOf(sm[i] as Float64Array);
    this.thr = quantileOf(stats, this.options.thresholdQuantile) * this.options.thresholdFactor;
    this.fitted = true;
    this.on = false;
    this.up = 0;
    this.down = 0;
    return this;
  }

  /** Score one row (event time `timeMs`, full input row). */
  update(timeMs: number, row: ArrayLike<number>): DetectorOutput {
    if (!this.fitted) throw new Error('update: call fit() first');
    this.advance(timeMs, row);
    const v = this.statisticOf(this.smooth);
    const out = this.out;
    out.raised = false;
    out.cleared = false;
    if (this.on) {
      this.down = v > this.thr ? 0 : this.down + 1;
      if (this.down >= this.options.offCount) {
        this.on = false;
        this.up = 0;
        out.cleared = true;
      }
    } else {
      this.up = v > this.thr ? this.up + 1 : 0;
      if (this.up >= this.options.onCount) {
        this.on = true;
        this.down = 0;
        out.raised = true;
      }
    }
    out.alarm = this.on;
    out.statistic = v;
    out.threshold = this.thr;
    return out;
  }

  /** Changes the limit factor at run time (a setpoint update), keeping the fitted baseline. */
  setThresholdFactor(factor: number): void {
    if (!(factor > 0)) throw new Error('thresholdFactor must be > 0');
    if (this.fitted) this.thr = (this.thr / this.options.thresholdFactor) * factor;
    this.options.thresholdFactor = factor;
  }

  setPersistence(onCount: number, offCount: number): void {
    this.options.onCount = onCount;
    this.options.offCount = offCount;
  }

  /** Per monitored channel z-score of the current smoothed row (for evidence; writes into `out`). */
  channelZ(out: Float64Array): Float64Array {
    for (let j = 0; j < this.dims; j++) out[j] = ((this.smooth[j] as number) - (this.mu[j] as number)) / (this.sd[j] as number);
    return out;
  }

  private advance(timeMs: number, row: ArrayLike<number>): void {
    const ch = this.channels as Int32Array;
    const d = this.dims;
    const tau = this.options.tauSec;
    let alpha = 1;
    if (this.primed && tau > 0) {
      let dt = (timeMs - this.lastTime) / 1000;
      if (!(dt > 0))
        dt = this.lastDtSec; // duplicate / out-of-order stamp: assume the last step
      else this.lastDtSec = dt;
      alpha = 1 - Math.exp(-dt / tau);
    }
    if (!this.primed || timeMs > this.lastTime) this.lastTime = timeMs;
    for (let j = 0; j < d; j++) {
      const x = row[ch[j] as number] as number;
      if (!Number.isFinite(x)) continue; // hold the last smoothed value
      const s = this.smooth[j] as number;
      this.smooth[j] = this.primed ? s + alpha * (x - s) : x;
    }
    this.primed = true;
  }

  private statisticOf(s: Float64Array): number {
    const d = this.dims;
    switch (this.options.statistic) {
      case 'maxAbsZ': {
        let m = 0;
        for (let j = 0; j < d; j++) {
          const z = Math.abs(((s[j] as number) - (this.mu[j] as number)) / (this.sd[j] as number));
          if (z > m) m = z;
        }
        return m;
      }
      case 'rmsZ': {
        let acc = 0;
        for (let j = 0; j < d; j++) acc += (((s[j] as number) - (this.mu[j] as number)) / (this.sd[j] as number)) ** 2;
        return Math.sqrt(acc / d);
      }
      default: {
        const p = (this.pcaModel as PcaModel).score(s, this.pcaOut);
        if (this.options.statistic === 't2') return p.t2;
        if (this.options.statistic === 'q') return p.q;
        return Math.max(p.t2 / this.refT2, p.q / this.refQ);
      }
    }
  }
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  const r: Partial<T> = {};
  for (const [k, v] of Object.entries(o)) if (v !== undefined) (r as Record<string, unknown>)[k] = v;
  return r;
}
