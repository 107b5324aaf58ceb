import type { Quality } from '../../types.js';
import { type Change, type LearnedState, type LearningProgress, ScalarDetector } from '../common.js';
import type { ZscoreConfig } from './schema.js';

export class ZScoreDetector extends ScalarDetector<ZscoreConfig> {
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
