/**
 * Window features for the on-device model.
 *
 * The contract is `extractFeatures(window, names) → Float32Array`: a closed window's readings per
 * sensor in, one feature vector out, in the order the model card declares (`features.names`).
 * A feature name is `<sensor>.<stat>` with stat one of FEATURE_STATS. The windowed detection
 * engine can replace `WindowExtractor` as long as it produces the same vector for the same names.
 */
import type { Reading } from '../types.js';

export const FEATURE_STATS = ['mean', 'std', 'min', 'max', 'rms', 'slope'] as const;
export type FeatureStat = (typeof FEATURE_STATS)[number];

/** One sensor's good readings in a window: event times (ms) and values, same length. */
export interface SensorSeries {
  readonly times: ArrayLike<number>;
  readonly values: ArrayLike<number>;
}

/** A closed window of one asset: its series per sensor id. */
export interface WindowReadings {
  readonly asset: string;
  readonly start: number;
  readonly end: number;
  readonly sensors: ReadonlyMap<string, SensorSeries>;
}

export interface ParsedFeature {
  readonly sensor: string;
  readonly stat: FeatureStat;
}

export function parseFeatureName(name: string): ParsedFeature {
  const dot = name.lastIndexOf('.');
  const stat = name.slice(dot + 1) as FeatureStat;
  if (dot <= 0 || !FEATURE_STATS.includes(stat)) {
    throw new Error(`feature "${name}" is not <sensor>.<${FEATURE_STATS.join('|')}>`);
  }
  return { sensor: name.slice(0, dot), stat };
}

/** Sensor ids a feature list needs. */
export function sensorsOf(names: readonly string[]): string[] {
  return [...new Set(names.map((n) => parseFeatureName(n).sensor))];
}

/**
 * mean, population std, min, max, rms, and the least-squares slope in units per second.
 * An empty series gives NaN for everything (the caller skips such windows); one point gives slope 0.
 */
export function seriesStats(s: SensorSeries): Record<FeatureStat, number> {
  const n = s.values.length;
  if (n === 0) return { mean: Number.NaN, std: Number.NaN, min: Number.NaN, max: Number.NaN, rms: Number.NaN, slope: Number.NaN };
  let sum = 0;
  let sq = 0;
  let min = Infinity;
  let max = -Infinity;
  let tSum = 0;
  for (let i = 0; i < n; i++) {
    const v = s.values[i] as number;
    sum += v;
    sq += v * v;
    if (v < min) min = v;
    if (v > max) max = v;
    tSum += s.times[i] as number;
  }
  const mean = sum / n;
  const tMean = tSum / n;
  let sxy = 0;
  let sxx = 0;
  let dev = 0;
  for (let i = 0; i < n; i++) {
    const dt = ((s.times[i] as number) - tMean) / 1000;
    const dv = (s.values[i] as number) - mean;
    sxy += dt * dv;
    sxx += dt * dt;
    dev += dv * dv;
  }
  return { mean, std: Math.sqrt(dev / n), min, max, rms: Math.sqrt(sq / n), slope: sxx > 0 ? sxy / sxx : 0 };
}

/**
 * The feature vector of a window in the order of `names`. Returns undefined when a needed sensor
 * has no good reading in the window (a model must not score invented values).
 */
export function extractFeatures(w: WindowReadings, names: readonly string[]): Float32Array | undefined {
  const out = new Float32Array(names.length);
  const cache = new Map<string, Record<FeatureStat, number>>();
  for (let i = 0; i < names.length; i++) {
    const f = parseFeatureName(names[i] as string);
    let st = cache.get(f.sensor);
    if (!st) {
      const series = w.sensors.get(f.sensor);
      if (!series || series.values.length === 0) return undefined;
      st = seriesStats(series);
      cache.set(f.sensor, st);
    }
    out[i] = st[f.stat];
  }
  return out;
}

interface OpenWindow {
  start: number;
  readonly series: Map<string, { times: number[]; values: number[] }>;
}

/**
 * Per-asset tumbling event-time windows aligned to multiples of `windowMs` (the same alignment as
 * the store's aggregates, so exported aggregates line up with model windows). A reading from a later
 * window closes the asset's open window; an older one is counted as late and ignored.
 * Only good-quality readings of the wanted sensors enter a window. A window whose readings span
 * less than `minCoverage` of its length (the agent started, or the source resumed, mid-window) is
 * not closed into features but counted as partial: its statistics would not look like the
 * full windows the model was trained on.
 */
export class WindowExtractor {
  private readonly open = new Map<string, OpenWindow>();
  late = 0;
  partial = 0;

  constructor(
    readonly windowMs: number,
    private readonly wanted: ReadonlySet<string>,
    private readonly onClose: (w: WindowReadings) => void,
    private readonly minCoverage = 0.5,
  ) {}

  add(r: Reading): void {
    if (r.quality !== 'good' || !this.wanted.has(r.sensor)) return;
    const start = r.eventTime - (r.eventTime % this.windowMs);
    let w = this.open.get(r.asset);
    if (w && start !== w.start) {
      if (start < w.start) {
        this.late++;
        return;
      }
      this.close(r.asset, w);
      w.start = start;
      w.series.clear();
    }
    if (!w) {
      w = { start, series: new Map() };
      this.open.set(r.asset, w);
    }
    let s = w.series.get(r.sensor);
    if (!s) {
      s = { times: [], values: [] };
      w.series.set(r.sensor, s);
    }
    s.times.push(r.eventTime);
    s.values.push(r.value);
  }

  /** Closes every open window (shutdown). */
  flush(): void {
    for (const [asset, w] of this.open) this.close(asset, w);
    this.open.clear();
  }

  private close(asset: string, w: OpenWindow): void {
    if (w.series.size === 0) return;
    let first = Infinity;
    let last = -Infinity;
    for (const s of w.series.values()) {
      if ((s.times[0] as number) < first) first = s.times[0] as number;
      if ((s.times[s.times.length - 1] as number) > last) last = s.times[s.times.length - 1] as number;
    }
    if (last - first < this.minCoverage * this.windowMs) {
      this.partial++;
      return;
    }
    this.onClose({ asset, start: w.start, end: w.start + this.windowMs, sensors: new Map(w.series) });
  }
}
