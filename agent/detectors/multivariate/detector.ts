/**
 * The multivariate detector of one asset, on the pipeline: assembles rows from the asset's
 * sensors, learns a baseline in a learning phase (after commissioning, i.e. from the first rows
 * it sees, or after a relearn command), then scores each row with `StreamingDetector`.
 *
 * Row assembly: a row is the set of readings with one event time. It is scored as soon as every
 * sensor has reported at that time (so a source that polls all sensors at once is decided in the
 * same tick as its last reading); a row left incomplete is scored, with the missing sensors held
 * at their last value, when a reading with a later event time arrives. Readings older than the
 * current row are counted and ignored (the row is already decided).
 */
import type { Anomaly, Quality } from '../../types.js';
import { AdaptiveRows } from '../adaptive/rows.js';
import type { LearnedState, LearningProgress } from '../common.js';
import type { MultivariateConfig } from './schema.js';
import { type DetectorStatistic, StreamingDetector } from './streaming.js';

const STAT: Record<Exclude<MultivariateConfig['statistic'], 'adaptive'>, DetectorStatistic> = {
  max_abs_z: 'maxAbsZ',
  rms_z: 'rmsZ',
  t2: 't2',
  q: 'q',
  t2q: 't2q',
};

/**
 * `statistic: adaptive`: smoothing, on/off counts and level acceptance around `AdaptiveRows`
 * (agent/detectors/adaptive/rows.ts), which keeps learning the rows' joint normal behaviour.
 */
class AdaptiveRowDetector {
  readonly rows: AdaptiveRows;
  private readonly sm: Float64Array;
  private lastT = Number.NaN;
  private over = 0;
  private under = 0;
  private held = 0;
  alarm = false;
  accepted = 0;

  constructor(
    d: number,
    private cfg: MultivariateConfig,
  ) {
    this.rows = new AdaptiveRows(d, { memory: cfg.memory, limitFactor: cfg.limit_factor });
    this.sm = new Float64Array(d);
  }

  setConfig(cfg: MultivariateConfig): void {
    this.cfg = cfg;
    this.rows.setOptions({ memory: cfg.memory, limitFactor: cfg.limit_factor });
  }

  private smooth(t: number, row: Float64Array): Float64Array {
    const tau = this.cfg.smoothing;
    if (Number.isNaN(this.lastT) || tau <= 0) this.sm.set(row);
    else {
      const a = 1 - Math.exp(-Math.max(t - this.lastT, 0) / tau);
      for (let j = 0; j < row.length; j++)
        this.sm[j] = (this.sm[j] as number) + a * ((row[j] as number) - (this.sm[j] as number));
    }
    this.lastT = t;
    return this.sm;
  }

  fit(times: readonly number[], rows: readonly Float64Array[]): void {
    const smoothed = rows.map((r, i) => Float64Array.from(this.smooth(times[i] as number, r)));
    this.rows.fit(smoothed);
  }

  update(t: number, row: Float64Array): { raised: boolean; cleared: boolean; statistic: number } {
    const x = this.smooth(t, row);
    const score = this.rows.update(x, this.alarm);
    const c = this.cfg;
    let raised = false;
    let cleared = false;
    if (!this.alarm) {
      this.over = score > 1 ? this.over + 1 : 0;
      if (this.over >= c.on_count) {
        this.alarm = raised = true;
        this.over = this.under = this.held = 0;
      }
    } else {
      this.held++;
      this.under = score <= 1 ? this.under + 1 : 0;
      if (this.under >= c.off_count) {
        this.alarm = false;
        cleared = true;
      } else if (this.held >= c.accept_after) {
        this.rows.accept(x);
        this.accepted++;
        this.alarm = false;
        cleared = true;
      }
    }
    return { raised, cleared, statistic: score };
  }
}

export class MultivariateDetector {
  active = false;
  outOfOrder = 0;
  private readonly d: number;
  private readonly row: Float64Array;
  private readonly seen: Uint8Array;
  private nSeen = 0;
  private rowTime = Number.NaN;
  private pending = false;
  private det: StreamingDetector;
  private ad: AdaptiveRowDetector | undefined;
  private learningPhase = true;
  private learnTimes: number[] = [];
  private learnRows: Float64Array[] = [];
  private readonly z: Float64Array;
  private statistic = 0;
  /** The rows the baseline was fitted on (kept for `snapshot()`: refitting them restores it exactly). */
  private fitTimes: number[] = [];
  private fitRows: Float64Array[] = [];
  private learnedAt = 0;

  constructor(public cfg: MultivariateConfig) {
    this.d = cfg.sensors.length;
    this.row = new Float64Array(this.d).fill(Number.NaN);
    this.seen = new Uint8Array(this.d);
    this.z = new Float64Array(this.d);
    this.det = this.makeDetector();
    this.ad = cfg.statistic === 'adaptive' ? new AdaptiveRowDetector(this.d, cfg) : undefined;
  }

  get id(): string {
    return this.cfg.id;
  }

  learning(): boolean {
    return this.learningPhase;
  }

  // --- contract E: learned state survives restarts ------------------------------------------------
  /** The learning rows (bounded by `learn.readings` / `learn.duration`); undefined while still learning. */
  snapshot(): LearnedState | undefined {
    if (this.ad) return this.learningPhase ? undefined : this.ad.rows.snapshot(this.learnedAt, this.cfg.sensors);
    if (this.learningPhase || this.fitRows.length === 0) return undefined;
    return {
      v: 1,
      learned_at: this.fitTimes[this.fitTimes.length - 1] as number,
      sensors: [...this.cfg.sensors],
      times: [...this.fitTimes],
      rows: this.fitRows.map((r) => Array.from(r)),
    };
  }

  /** Refits on the stored rows; false (and still learning) when they do not fit this detector. */
  restore(s: LearnedState): boolean {
    if (this.cfg.statistic === 'adaptive') {
      const ad = new AdaptiveRowDetector(this.d, this.cfg);
      if (!ad.rows.restore(s, this.cfg.sensors)) return false;
      this.ad = ad;
      this.learnedAt = s.learned_at;
      this.learnTimes = [];
      this.learnRows = [];
      this.learningPhase = false;
      this.active = false;
      return true;
    }
    const { times, rows, sensors } = s as { times?: unknown; rows?: unknown; sensors?: unknown };
    if (s.v !== 1 || !Array.isArray(times) || !Array.isArray(rows) || rows.length !== times.length || rows.length < 3)
      return false;
    if (JSON.stringify(sensors) !== JSON.stringify(this.cfg.sensors)) return false;
    if (!rows.every((r) => Array.isArray(r) && r.length === this.d && r.every((x) => typeof x === 'number'))) return false;
    const fitTimes = times as number[];
    const fitRows = (rows as number[][]).map((r) => Float64Array.from(r));
    const det = this.makeDetector();
    try {
      det.fit(fitTimes, fitRows);
    } catch {
      return false;
    }
    this.det = det;
    this.fitTimes = fitTimes;
    this.fitRows = fitRows;
    this.learnTimes = [];
    this.learnRows = [];
    this.learningPhase = false;
    return true;
  }

  learningProgress(): LearningProgress | undefined {
    if (!this.learningPhase) return undefined;
    const { readings, duration } = this.cfg.learn;
    const since = this.learnTimes[0] ?? null;
    return {
      since,
      until: since !== null && duration !== undefined ? since + duration : null,
      seen: this.learnRows.length,
      of: readings ?? null,
    };
  }
  // -------------------------------------------------------------------------------------------------

  private makeDetector(): StreamingDetector {
    const c = this.cfg;
    return new StreamingDetector({
      statistic: c.statistic === 'adaptive' ? 'maxAbsZ' : STAT[c.statistic],
      tauSec: c.smoothing / 1000,
      thresholdFactor: c.limit_factor,
      thresholdQuantile: 1,
      onCount: c.on_count,
      offCount: c.off_count,
    });
  }

  reconfigure(cfg: MultivariateConfig): void {
    const structural = cfg.statistic !== this.cfg.statistic || cfg.smoothing !== this.cfg.smoothing;
    this.cfg = cfg;
    if (structural) {
      this.relearn();
      return;
    }
    this.ad?.setConfig(cfg);
    this.det.setThresholdFactor(cfg.limit_factor);
    this.det.setPersistence(cfg.on_count, cfg.off_count);
  }

  relearn(): void {
    this.learningPhase = true;
    this.learnTimes = [];
    this.learnRows = [];
    this.fitTimes = [];
    this.fitRows = [];
    this.active = false;
    this.det = this.makeDetector();
    this.ad = this.cfg.statistic === 'adaptive' ? new AdaptiveRowDetector(this.d, this.cfg) : undefined;
  }

  /**
   * Feeds one reading of channel `ch`. Returns 1 / -1 when the alarm rose / cleared on a row that
   * was scored now (its time is `rowTime()`), else 0.
   */
  add(ch: number, t: number, x: number, quality: Quality): -1 | 0 | 1 {
    if (quality !== 'good' || !Number.isFinite(x)) return 0;
    let change: -1 | 0 | 1 = 0;
    if (t !== this.rowTime) {
      if (t < this.rowTime) {
        this.outOfOrder++;
        return 0;
      }
      if (this.pending) change = this.score();
      this.rowTime = t;
      this.seen.fill(0);
      this.nSeen = 0;
      this.pending = false;
    }
    this.row[ch] = x;
    if (this.seen[ch] === 0) {
      this.seen[ch] = 1;
      this.nSeen++;
    }
    this.pending = true;
    if (this.nSeen === this.d) {
      const c2 = this.score();
      if (c2 !== 0) change = c2;
    }
    return change;
  }

  private scoredTime = Number.NaN;

  private score(): -1 | 0 | 1 {
    this.pending = false;
    this.scoredTime = this.rowTime;
    for (let j = 0; j < this.d; j++) if (Number.isNaN(this.row[j] as number)) return 0;
    if (this.learningPhase) {
      this.learnTimes.push(this.rowTime);
      this.learnRows.push(Float64Array.from(this.row));
      const { readings, duration } = this.cfg.learn;
      const n = this.learnRows.length;
      const done =
        (readings !== undefined && n >= readings) ||
        (duration !== undefined && this.rowTime - (this.learnTimes[0] as number) >= duration);
      if (done && n >= 3) {
        this.learnedAt = this.rowTime;
        if (this.ad) this.ad.fit(this.learnTimes, this.learnRows);
        else this.det.fit(this.learnTimes, this.learnRows);
        // The adaptive form keeps its own state (snapshot()); the others refit on these rows.
        this.fitTimes = this.ad ? [] : this.learnTimes;
        this.fitRows = this.ad ? [] : this.learnRows;
        this.learnTimes = [];
        this.learnRows = [];
        this.learningPhase = false;
      }
      return 0;
    }
    const out = this.ad ? this.ad.update(this.rowTime, this.row) : this.det.update(this.rowTime, this.row);
    this.statistic = out.statistic;
    if (out.raised) {
      this.active = true;
      return 1;
    }
    if (out.cleared) {
      this.active = false;
      return -1;
    }
    return 0;
  }

  anomaly(change: 1 | -1): Anomaly {
    const c = this.cfg;
    if (this.ad) this.ad.rows.deviations(this.z);
    else this.det.channelZ(this.z);
    let top = 0;
    const z: Record<string, number> = {};
    for (let j = 0; j < this.d; j++) {
      z[c.sensors[j] as string] = this.z[j] as number;
      if (Math.abs(this.z[j] as number) > Math.abs(this.z[top] as number)) top = j;
    }
    return {
      detector: c.id,
      detectorType: 'multivariate',
      asset: c.asset,
      sensor: c.sensors[top] as string,
      severity: c.severity,
      state: change === 1 ? 'raised' : 'cleared',
      eventTime: this.scoredTime,
      value: this.statistic,
      trip: c.trip,
      evidence: {
        statistic: c.statistic,
        score: this.statistic,
        limit: this.ad ? 1 : this.det.threshold,
        ...(this.ad && {
          max_abs_z: this.ad.rows.zMax,
          z_limit: this.ad.rows.zLimit,
          joint: this.ad.rows.joint,
          joint_limit: this.ad.rows.jointLimit,
          accepted_levels: this.ad.accepted,
        }),
        on_count: c.on_count,
        off_count: c.off_count,
        smoothing_ms: c.smoothing,
        z,
        top_sensor: c.sensors[top],
      },
    };
  }
}
