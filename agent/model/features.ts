/**
 * The model's feature vectors, assembled from the window engine's closed windows.
 *
 * The contract with a model card: `features.names` lists `<sensor>.<stat>` with stat one of
 * FEATURE_STATS, over tumbling windows of `features.window_ms` (epoch aligned, as the store's
 * aggregates), good readings only. The judge registers one such window per needed sensor of a
 * scored asset on its window engine; `FeatureAssembler` collects the asset's sensors' closed
 * windows of one start into one vector in the card's order.
 */
import { F } from '../judge/features.js';
import type { ClosedWindow } from '../judge/windows.js';

export const FEATURE_STATS = ['mean', 'std', 'min', 'max', 'rms', 'slope'] as const;
export type FeatureStat = (typeof FEATURE_STATS)[number];

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
 * One stat of the engine's feature vector as the model takes it. The engine's std is the sample
 * std; models are trained on the population std (std × √((n−1)/n)), which is what this returns.
 */
export function modelStat(f: ArrayLike<number>, stat: FeatureStat): number {
  if (stat !== 'std') return f[F[stat]] as number;
  const n = f[F.good] as number;
  return n > 1 ? (f[F.std] as number) * Math.sqrt((n - 1) / n) : 0;
}

interface Pending {
  readonly start: number;
  readonly vector: Float32Array;
  readonly filled: Uint8Array;
  nFilled: number;
  invalid: boolean;
  first: number;
  last: number;
}

export interface AssemblerCounters {
  /** Windows skipped because a needed sensor had no good reading in them. */
  incomplete: number;
  /** Windows whose readings span less than the minimum coverage (start-up, a source resumed). */
  partial: number;
}

/**
 * The feature vectors of one asset. A window is complete once each needed sensor's window of
 * that start has closed; a sensor that skipped a start (no reading in it) makes it incomplete.
 * A window whose good readings span less than `minCoverage` of its length (the agent started, or a
 * source resumed, mid-window) is not scored: it would not look like the full windows the model was
 * trained on.
 */
export class FeatureAssembler {
  /** Per sensor index: the slots of the vector it fills, and the stat of each. */
  private readonly slots: Array<Array<{ i: number; stat: FeatureStat }>>;
  private readonly pending: Pending[] = [];

  constructor(
    readonly asset: string,
    readonly sensors: readonly string[],
    private readonly names: readonly string[],
    private readonly windowMs: number,
    private readonly onVector: (asset: string, start: number, vector: Float32Array) => void,
    readonly counters: AssemblerCounters,
    private readonly minCoverage = 0.5,
  ) {
    this.slots = sensors.map(() => []);
    names.forEach((name, i) => {
      const f = parseFeatureName(name);
      this.slots[sensors.indexOf(f.sensor)]?.push({ i, stat: f.stat });
    });
  }

  /** Sensor `k`'s window closed (a sink on the engine). */
  add(k: number, w: ClosedWindow): void {
    for (let p = 0; p < this.pending.length; p++) {
      const old = this.pending[p] as Pending;
      if (old.start < w.start && old.filled[k] === 0) {
        this.pending.splice(p--, 1);
        this.counters.incomplete++;
      }
    }
    let e = this.pending.find((x) => x.start === w.start);
    if (!e) {
      e = {
        start: w.start,
        vector: new Float32Array(this.names.length),
        filled: new Uint8Array(this.sensors.length),
        nFilled: 0,
        invalid: false,
        first: Number.POSITIVE_INFINITY,
        last: Number.NEGATIVE_INFINITY,
      };
      this.pending.push(e);
    }
    if (e.filled[k] === 1) return;
    e.filled[k] = 1;
    e.nFilled++;
    if ((w.features[F.good] as number) === 0) e.invalid = true;
    else {
      for (const s of this.slots[k] as Array<{ i: number; stat: FeatureStat }>) e.vector[s.i] = modelStat(w.features, s.stat);
      if (w.first < e.first) e.first = w.first;
      if (w.last > e.last) e.last = w.last;
    }
    if (e.nFilled < this.sensors.length) return;
    this.pending.splice(this.pending.indexOf(e), 1);
    if (e.invalid) this.counters.incomplete++;
    else if (e.last - e.first < this.minCoverage * this.windowMs) this.counters.partial++;
    else this.onVector(this.asset, e.start, e.vector);
  }
}
