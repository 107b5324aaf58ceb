/**
 * Per-sensor detectors. Each judges a stream of scalars in event-time order: either each reading
 * (point mode, decided in the same tick as the reading) or one feature of each closed window
 * (window mode, decided when the watermark closes the window). A detector reports only changes of
 * state (raised / cleared). Parameters can be replaced at run time (`reconfigure`) without losing
 * state; learned baselines are kept unless `relearn()` is called.
 *
 * Hot path: `judge` allocates nothing; evidence objects are built only on a change of state.
 */
import type { DetectorConfig, SensorConfig } from '../config/schema.js';
import type { Anomaly, Quality, Reading } from '../types.js';

export type ScalarConfig = Exclude<DetectorConfig, { type: 'multivariate' }>;

/** 1 = raised, -1 = cleared, 0 = no change. */
export type Change = -1 | 0 | 1;

/**
 * A learned baseline that survives restarts (contract E): a JSON-serialisable plain object. `v` is the
 * layout version of that detector type's state; `learned_at` the event time learning completed.
 */
export interface LearnedState {
  readonly v: number;
  readonly learned_at: number;
  readonly [k: string]: unknown;
}

/** Where a learning detector stands: from when, until when (a duration), or how many readings of how many. */
export interface LearningProgress {
  readonly since: number | null;
  readonly until: number | null;
  readonly seen: number;
  readonly of: number | null;
}

export abstract class ScalarDetector<C extends ScalarConfig = ScalarConfig> {
  active = false;
  /** Count of inputs skipped because they were older than the last one judged (order-sensitive detectors). */
  outOfOrder = 0;

  constructor(public cfg: C) {}

  get id(): string {
    return this.cfg.id;
  }

  /** Judges one value at event time `t`. `quality` is the reading's (window features are 'good'). */
  abstract judge(t: number, x: number, quality: Quality): Change;

  /** What the detector saw at its last change of state: limits and score. */
  abstract evidence(): Record<string, unknown>;

  /** Replaces the parameters (already validated), keeping learned state and the alarm state. */
  reconfigure(cfg: C): void {
    this.cfg = cfg;
    this.prepare();
  }

  /** Forgets the learned baseline and learns again from the next inputs. */
  relearn(): void {}

  /** Learning state for status and control replies. */
  learning(): boolean {
    return false;
  }

  protected prepare(): void {}

  /** Point-mode convenience (tests, tools): judges a reading and builds the anomaly. */
  update(r: Reading): Anomaly | undefined {
    const c = this.judge(r.eventTime, r.value, r.quality);
    return c === 0 ? undefined : this.anomaly(c, r.eventTime, r.value, undefined);
  }

  anomaly(change: Change, t: number, value: number, extra: Record<string, unknown> | undefined): Anomaly {
    const c = this.cfg;
    return {
      detector: c.id,
      detectorType: c.type,
      asset: c.asset,
      sensor: c.sensor,
      severity: c.severity,
      state: change === 1 ? 'raised' : 'cleared',
      eventTime: t,
      value,
      trip: c.trip,
      evidence: extra ? { ...this.evidence(), ...extra } : this.evidence(),
    };
  }
}

type Cfg<T extends ScalarConfig['type']> = Extract<ScalarConfig, { type: T }>;

export class ThresholdDetector extends ScalarDetector<Cfg<'threshold'>> {
  private raiseAt = 0;
  private clearAt = 0;
  private sign = 1;

  constructor(cfg: Cfg<'threshold'>) {
    super(cfg);
    this.prepare();
  }

  protected override prepare(): void {
    const c = this.cfg;
    // Work in "above" terms: for direction below, negate values and limits.
    this.sign = c.direction === 'above' ? 1 : -1;
    this.raiseAt = this.sign * c.setpoint + c.delta_up;
    this.clearAt = this.sign * c.setpoint - c.delta_down;
  }

  judge(_t: number, x: number, quality: Quality): Change {
    if (quality !== 'good' || Number.isNaN(x)) return 0;
    const v = this.sign * x;
    if (!this.active && v > this.raiseAt) {
      this.active = true;
      return 1;
    }
    if (this.active && v < this.clearAt) {
      this.active = false;
      return -1;
    }
    return 0;
  }

  evidence(): Record<string, unknown> {
    const c = this.cfg;
    return {
      direction: c.direction,
      setpoint: c.setpoint,
      limit: this.sign * this.raiseAt,
      raise_at: this.sign * this.raiseAt,
      clear_at: this.sign * this.clearAt,
    };
  }
}

/** Raises when MORE than `count` readings past `limit` fall within the trailing event-time window. */
export class CountOverDetector extends ScalarDetector<Cfg<'count_over'>> {
  private times = new Float64Array(16);
  private head = 0;
  private size = 0;

  judge(t: number, x: number, quality: Quality): Change {
    if (quality !== 'good') return 0;
    const c = this.cfg;
    const horizon = t - c.window;
    while (this.size > 0 && (this.times[this.head] as number) <= horizon) {
      this.head = (this.head + 1) % this.times.length;
      this.size--;
    }
    if (c.direction === 'above' ? x > c.limit : x < c.limit) this.push(t);
    const over = this.size > c.count;
    if (over === this.active) return 0;
    this.active = over;
    return over ? 1 : -1;
  }

  evidence(): Record<string, unknown> {
    const c = this.cfg;
    return {
      limit: c.limit,
      direction: c.direction,
      count: this.size,
      max_count: c.count,
      window_ms: c.window,
      score: this.size,
    };
  }

  private push(t: number): void {
    if (this.size === this.times.length) {
      const bigger = new Float64Array(this.times.length * 2);
      for (let i = 0; i < this.size; i++) bigger[i] = this.times[(this.head + i) % this.times.length] as number;
      this.times = bigger;
      this.head = 0;
    }
    this.times[(this.head + this.size) % this.times.length] = t;
    this.size++;
  }
}

/**
 * |z| of the (optionally EWMA-smoothed) value against a baseline learned in a learning phase
 * (after commissioning or a relearn command). The EWMA is time-aware: α = 1 − exp(−Δt/τ).
 */
export class ZScoreDetector extends ScalarDetector<Cfg<'zscore'>> {
  private s = 0;
  private primed = false;
  private lastT = Number.NaN;
  private learnStart = Number.NaN;
  private learned: Float64Array = new Float64Array(64);
  private nLearn = 0;
  private learningPhase = true;
  private mu = 0;
  private sd = 1;
  private limit = Number.POSITIVE_INFINITY;
  private z = 0;
  private up = 0;
  private down = 0;
  private maxZ = 0;
  private learnedAt = Number.NaN;

  override learning(): boolean {
    return this.learningPhase;
  }

  // --- contract E: learned state survives restarts ------------------------------------------------
  /** The baseline (mean, std, largest |z| seen while learning); undefined while still learning. */
  snapshot(): LearnedState | undefined {
    if (this.learningPhase) return undefined;
    return { v: 1, learned_at: this.learnedAt, mean: this.mu, std: this.sd, max_z: this.maxZ, readings: this.nLearn };
  }

  /** Takes a baseline back; false (and still learning) when the state is not one this version wrote. */
  restore(s: LearnedState): boolean {
    const { mean, std, max_z, readings } = s as { mean?: unknown; std?: unknown; max_z?: unknown; readings?: unknown };
    if (s.v !== 1 || typeof mean !== 'number' || typeof std !== 'number' || typeof max_z !== 'number') return false;
    if (!Number.isFinite(mean) || !(std > 0) || !Number.isFinite(max_z)) return false;
    this.mu = mean;
    this.sd = std;
    this.maxZ = max_z;
    this.nLearn = typeof readings === 'number' ? readings : 0;
    this.learnedAt = s.learned_at;
    this.learningPhase = false;
    this.setLimit();
    return true;
  }

  learningProgress(): LearningProgress | undefined {
    if (!this.learningPhase) return undefined;
    const { readings, duration } = this.cfg.learn;
    const since = Number.isNaN(this.learnStart) ? null : this.learnStart;
    return {
      since,
      until: since !== null && duration !== undefined ? since + duration : null,
      seen: this.nLearn,
      of: readings ?? null,
    };
  }
  // -------------------------------------------------------------------------------------------------

  override relearn(): void {
    this.learningPhase = true;
    this.nLearn = 0;
    this.learnStart = Number.NaN;
    this.active = false;
    this.up = 0;
    this.down = 0;
  }

  protected override prepare(): void {
    if (!this.learningPhase) this.setLimit();
  }

  judge(t: number, x: number, quality: Quality): Change {
    if (quality !== 'good' || Number.isNaN(x)) return 0;
    if (t < this.lastT) {
      this.outOfOrder++;
      return 0;
    }
    const tau = this.cfg.smoothing;
    if (!this.primed || tau <= 0) {
      this.s = x;
      this.primed = true;
    } else {
      this.s += (1 - Math.exp(-(t - this.lastT) / tau)) * (x - this.s);
    }
    this.lastT = t;
    if (this.learningPhase) {
      this.learn(t, this.s);
      return 0;
    }
    this.z = Math.abs(this.s - this.mu) / this.sd;
    const c = this.cfg;
    const n = c.persistence;
    if (!this.active) {
      this.up = this.z > this.limit ? this.up + 1 : 0;
      if (this.up >= n) {
        this.active = true;
        this.down = 0;
        return 1;
      }
    } else {
      this.down = this.z <= this.limit * c.clear_ratio ? this.down + 1 : 0;
      if (this.down >= n) {
        this.active = false;
        this.up = 0;
        return -1;
      }
    }
    return 0;
  }

  private learn(t: number, s: number): void {
    if (Number.isNaN(this.learnStart)) this.learnStart = t;
    if (this.nLearn === this.learned.length) {
      const b = new Float64Array(this.learned.length * 2);
      b.set(this.learned);
      this.learned = b;
    }
    this.learned[this.nLearn++] = s;
    const { readings, duration } = this.cfg.learn;
    const done =
      (readings !== undefined && this.nLearn >= readings) || (duration !== undefined && t - this.learnStart >= duration);
    if (!done || this.nLearn < 3) return;
    let sum = 0;
    for (let i = 0; i < this.nLearn; i++) sum += this.learned[i] as number;
    this.mu = sum / this.nLearn;
    let m2 = 0;
    for (let i = 0; i < this.nLearn; i++) m2 += ((this.learned[i] as number) - this.mu) ** 2;
    this.sd = Math.max(Math.sqrt(m2 / (this.nLearn - 1)), 1e-9);
    let maxZ = 0;
    for (let i = 0; i < this.nLearn; i++) maxZ = Math.max(maxZ, Math.abs((this.learned[i] as number) - this.mu) / this.sd);
    this.maxZ = maxZ;
    this.learnedAt = t;
    this.learningPhase = false;
    this.setLimit();
  }

  private setLimit(): void {
    const c = this.cfg;
    if (c.limit !== undefined) {
      this.limit = c.limit;
      return;
    }
    this.limit = (c.limit_factor ?? 1) * this.maxZ;
  }

  evidence(): Record<string, unknown> {
    return {
      score: this.z,
      limit: this.limit,
      clear_at: this.limit * this.cfg.clear_ratio,
      baseline: { mean: this.mu, std: this.sd, readings: this.nLearn },
      smoothed: this.s,
    };
  }
}

export class RateOfChangeDetector extends ScalarDetector<Cfg<'rate_of_change'>> {
  private lastT = Number.NaN;
  private lastX = 0;
  private rate = 0;

  judge(t: number, x: number, quality: Quality): Change {
    if (quality !== 'good' || Number.isNaN(x)) return 0;
    if (!(t > this.lastT)) {
      if (t < this.lastT) this.outOfOrder++;
      if (Number.isNaN(this.lastT)) {
        this.lastT = t;
        this.lastX = x;
      }
      return 0;
    }
    this.rate = ((x - this.lastX) * 1000) / (t - this.lastT);
    this.lastT = t;
    this.lastX = x;
    const c = this.cfg;
    const r = c.direction === 'rise' ? this.rate : c.direction === 'fall' ? -this.rate : Math.abs(this.rate);
    if (!this.active && r > c.limit) {
      this.active = true;
      return 1;
    }
    if (this.active && r <= (c.clear_limit ?? c.limit)) {
      this.active = false;
      return -1;
    }
    return 0;
  }

  evidence(): Record<string, unknown> {
    const c = this.cfg;
    return { score: this.rate, limit: c.limit, clear_at: c.clear_limit ?? c.limit, direction: c.direction, unit: 'per_second' };
  }
}

/** Stuck sensor: the value has not moved by more than `tolerance` for `duration` of event time. */
export class FlatlineDetector extends ScalarDetector<Cfg<'flatline'>> {
  private ref = Number.NaN;
  private since = Number.NaN;
  private lastT = Number.NaN;

  judge(t: number, x: number, quality: Quality): Change {
    if (quality !== 'good' || Number.isNaN(x)) return 0;
    if (t < this.lastT) {
      this.outOfOrder++;
      return 0;
    }
    this.lastT = t;
    if (Number.isNaN(this.ref) || Math.abs(x - this.ref) > this.cfg.tolerance) {
      this.ref = x;
      this.since = t;
      if (this.active) {
        this.active = false;
        return -1;
      }
      return 0;
    }
    if (!this.active && t - this.since >= this.cfg.duration) {
      this.active = true;
      return 1;
    }
    return 0;
  }

  evidence(): Record<string, unknown> {
    return {
      stuck_at: this.ref,
      since: this.since,
      score: this.lastT - this.since,
      limit: this.cfg.duration,
      tolerance: this.cfg.tolerance,
    };
  }
}

/** Sensor fault: value outside the valid range, or a reading whose quality is a fault. */
export class OutOfRangeDetector extends ScalarDetector<Cfg<'out_of_range'>> {
  private min = Number.NEGATIVE_INFINITY;
  private max = Number.POSITIVE_INFINITY;
  private faultMask = 0;
  private up = 0;
  private down = 0;
  private lastQuality: Quality = 'good';
  private lastValue = 0;

  constructor(
    cfg: Cfg<'out_of_range'>,
    private readonly sensor?: Pick<SensorConfig, 'min' | 'max'>,
  ) {
    super(cfg);
    this.prepare();
  }

  protected override prepare(): void {
    const c = this.cfg;
    this.min = c.min ?? this.sensor?.min ?? Number.NEGATIVE_INFINITY;
    this.max = c.max ?? this.sensor?.max ?? Number.POSITIVE_INFINITY;
    this.faultMask = 0;
    for (const f of c.faults) this.faultMask |= QUALITY_BIT[f];
  }

  judge(_t: number, x: number, quality: Quality): Change {
    this.lastQuality = quality;
    this.lastValue = x;
    const fault = (QUALITY_BIT[quality] & this.faultMask) !== 0 || Number.isNaN(x) || x < this.min || x > this.max;
    const n = this.cfg.persistence;
    if (!this.active) {
      this.up = fault ? this.up + 1 : 0;
      if (this.up >= n) {
        this.active = true;
        this.down = 0;
        return 1;
      }
    } else {
      this.down = fault ? 0 : this.down + 1;
      if (this.down >= n) {
        this.active = false;
        this.up = 0;
        return -1;
      }
    }
    return 0;
  }

  evidence(): Record<string, unknown> {
    const min = Number.isFinite(this.min) ? this.min : null;
    const max = Number.isFinite(this.max) ? this.max : null;
    const x = this.lastValue;
    const reason =
      this.lastQuality !== 'good'
        ? `quality_${this.lastQuality}`
        : x < this.min
          ? 'below_min'
          : x > this.max
            ? 'above_max'
            : 'ok';
    return { min, max, limit: x < this.min ? min : max, quality: this.lastQuality, reason };
  }
}

const QUALITY_BIT: Record<Quality, number> = { good: 0, stale: 1, comm_error: 2, bad: 4 };

export function createDetector(cfg: ScalarConfig, sensor?: Pick<SensorConfig, 'min' | 'max'>): ScalarDetector {
  switch (cfg.type) {
    case 'threshold':
      return new ThresholdDetector(cfg);
    case 'count_over':
      return new CountOverDetector(cfg);
    case 'zscore':
      return new ZScoreDetector(cfg);
    case 'rate_of_change':
      return new RateOfChangeDetector(cfg);
    case 'flatline':
      return new FlatlineDetector(cfg);
    case 'out_of_range':
      return new OutOfRangeDetector(cfg, sensor);
  }
}
