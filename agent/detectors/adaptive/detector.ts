/**
 * `adaptive`: an unsupervised per-sensor detector that needs no tuning (README.md beside this file).
 *
 * Per reading (point mode; or per closed window feature), allocation-free:
 *  - baseline: a robust location `m` and scale `s` (mean absolute deviation), started from the
 *    median and MAD of the learning readings, then updated by an EWMA over `memory` readings with
 *    the deviation clipped at CLIP·s (a Huber-type update: one wild reading moves nothing much);
 *  - score: the largest of the reading's deviation |x − m|/s, the deviation of a short mean (FAST
 *    readings) × LEVEL_GAIN and that of a slow mean (SLOW readings) × SLOW_GAIN, so a small sustained
 *    shift scores like a spike; while raised the slow mean follows the short one;
 *  - daily profile: 48 time-of-day slots, each folded once per visit (day) from the mean of its
 *    normal readings, each with its own spread; from the third visit, when the profile's spread is
 *    under SEASON_RATIO of the flat spread, readings are scored against their slot, with a quantile
 *    of their own (those scores are smaller);
 *  - limit: learned from the detector's own normal scores: a tracked high quantile (Q) of the
 *    scores times MARGIN, never below MIN_LIMIT, divided by `sensitivity`. So a noisy, spiky sensor
 *    gets a high limit and a quiet one a low limit with the same config;
 *  - gated learning: while raised, and for any reading past the limit, neither the baseline nor the
 *    quantile learns (a fault is not learned as normal). A deviation that holds `accept_after`
 *    readings is a new operating level (load change, level shift): the baseline restarts at the
 *    short mean and the alarm clears;
 *  - clear: when the quick part of the score (reading, short mean) falls below CLEAR of the limit;
 *    after a raise, the next raise waits REARM readings and must beat the recent record score
 *    (decaying over RECORD_MEMORY readings) unless it is past RECORD_CAP × the limit (a cap that grows
 *    CAP_BOOST-fold after each raise only it let through): one alarm per episode, and a spike that
 *    recurs at the same size raises once.
 * Causal: each decision uses only the readings before and at it.
 */

import type { Quality } from '../../types.js';
import { type Change, ScalarDetector } from '../common.js';
import type { AdaptiveConfig, LearnedState } from './types.js';

/** Internal constants, fixed for every sensor (tests and the tuning script may override them). */
export interface AdaptiveTuning {
  clip: number;
  fast: number;
  levelGain: number;
  quantile: number;
  margin: number;
  minLimit: number;
  clear: number;
  /** Readings after a raise before the next raise (one alarm per episode; a flapping fault raises once). */
  rearm: number;
  /** Time-of-day slots of the daily profile (0: off). */
  slots: number;
  /** The daily profile is used when its spread is below this part of the flat spread. */
  seasonRatio: number;
  /** EWMA weight of a slot's mean per visit. */
  slotAlpha: number;
  /** Readings of the slow mean (0: off), a second timescale for small sustained shifts. */
  slow: number;
  /** Weight of the slow mean's deviation in the score. */
  slowGain: number;
  /** Each time-of-day slot scores against its own spread, floored at this part of the profile's spread (0: one spread). */
  slotSpread: number;
  /** A raise needs the score above `recordFactor` × the recent record score (decaying over `recordMemory` readings; 0: off). */
  recordMemory: number;
  recordFactor: number;
  /** The record holds back raises only up to this × the limit: a deviation past it always raises (after the re-arm hold-off). */
  recordCap: number;
  /** Each raise that only the cap let through multiplies the cap by this (decaying back over `recordMemory`). */
  capBoost: number;
}

export const ADAPTIVE_TUNING: AdaptiveTuning = {
  clip: 4,
  fast: 6,
  levelGain: 2.5,
  quantile: 0.98,
  margin: 2,
  minLimit: 5,
  clear: 0.9,
  rearm: 100,
  slots: 48,
  seasonRatio: 0.8,
  slotAlpha: 0.05,
  slow: 200,
  slowGain: 5,
  slotSpread: 0.25,
  recordMemory: 1000,
  recordFactor: 1,
  recordCap: 2,
  capBoost: 8,
};

const STATE_VERSION = 2;

export class AdaptiveDetector extends ScalarDetector<AdaptiveConfig> {
  private learned: Float64Array;
  private nLearn = 0;
  private learningPhase = true;
  private m = 0;
  private s = 1;
  private f = 0;
  private q = 0;
  private alpha = 0;
  private alphaF = 0;
  private alphaS = 0;
  private fs = 0;
  private rec = 0;
  private capGain = 1;
  private recDecay = 0;
  private qStep = 0;
  private score = 0;
  private limit = Number.POSITIVE_INFINITY;
  private held = 0;
  private sinceRaise = Number.POSITIVE_INFINITY;
  private floor = 1e-9;
  private lastT = Number.NaN;
  private slotMean = new Float64Array(0);
  private slotN = new Uint32Array(0);
  private slotDev = new Float64Array(0);
  private slotFrom = Number.NaN;
  private slotTo = Number.NaN;
  private slotDevN = new Uint32Array(0);
  private nSeas = 0;

  private sSeas = 0;
  /** Quantile of the scores against the daily profile (tracked apart: they are smaller). */
  private qS = 3;
  private seasonal = false;
  private slot = -1;
  private visitSum = 0;
  private visitN = 0;
  private learnedAt = 0;
  private accepted = 0;
  private readonly k: AdaptiveTuning;

  constructor(cfg: AdaptiveConfig, tuning: Partial<AdaptiveTuning> = {}) {
    super(cfg);
    this.k = { ...ADAPTIVE_TUNING, ...tuning };
    this.learned = new Float64Array(cfg.learn.readings);
    this.prepare();
  }

  protected override prepare(): void {
    const c = this.cfg;
    this.alpha = 2 / (c.memory + 1);
    this.alphaF = 2 / (this.k.fast + 1);
    this.alphaS = this.k.slow > 0 ? 2 / (this.k.slow + 1) : 0;
    this.recDecay = this.k.recordMemory > 0 ? 1 - 1 / this.k.recordMemory : 0;
    if (this.learned.length !== c.learn.readings && this.learningPhase) {
      this.learned = new Float64Array(c.learn.readings);
      this.nLearn = 0;
    }
    this.qStep = this.alpha * 4;
    this.setLimit();
  }

  override learning(): boolean {
    return this.learningPhase;
  }

  override relearn(): void {
    this.learningPhase = true;
    this.nLearn = 0;
    if (this.learned.length !== this.cfg.learn.readings) this.learned = new Float64Array(this.cfg.learn.readings);
    this.active = false;
    this.held = 0;
    this.sinceRaise = Number.POSITIVE_INFINITY;
    this.rec = 0;
    this.capGain = 1;
  }

  judge(t: number, x: number, quality: Quality): Change {
    if (quality !== 'good' || !Number.isFinite(x)) return 0;
    if (t < this.lastT) {
      this.outOfOrder++;
      return 0;
    }
    this.lastT = t;
    if (this.learningPhase) {
      this.learn(t, x);
      return 0;
    }
    const k = this.k;
    const s = Math.max(this.s, this.floor);
    this.f += this.alphaF * (x - this.f);
    let zf = Math.max(Math.abs(x - this.m) / s, (Math.abs(this.f - this.m) / s) * k.levelGain);
    if (this.alphaS > 0) {
      // While raised the slow mean follows the short one: it raises on a small lasting shift but does
      // not hold an alarm up for its own memory once the reading is back.
      this.fs = this.active ? this.f : this.fs + this.alphaS * (x - this.fs);
      zf = Math.max(zf, (Math.abs(this.fs - this.m) / s) * k.slowGain);
    }
    let zs = Number.NaN;
    this.seasonal = false;
    if (k.slots > 0) {
      // The slot changes every 86 400 000 / slots ms: recomputed only when t leaves the current one.
      if (!(t >= this.slotFrom && t < this.slotTo)) {
        const width = 86_400_000 / k.slots;
        const slot = Math.floor(((t % 86_400_000) / 86_400_000) * k.slots);
        this.slotFrom = t - (t % 86_400_000) + slot * width;
        this.slotTo = this.slotFrom + width;
        if (slot !== this.slot) this.closeVisit(slot);
      }
      if ((this.slotN[this.slot] as number) >= 3) {
        const sp = k.slotSpread > 0 ? Math.max(this.slotDev[this.slot] as number, k.slotSpread * this.sSeas) : this.sSeas;
        zs = Math.abs(x - (this.slotMean[this.slot] as number)) / Math.max(sp, this.floor);
        this.seasonal = this.sSeas < k.seasonRatio * this.s;
      }
    }
    const z = this.seasonal ? zs : zf;
    this.setLimit();
    this.score = z;
    // The cap grows after each raise only the cap let through (a spike that recurs far past the
    // limit), and decays back over the record's memory.
    if (this.capGain > 1) this.capGain = 1 + (this.capGain - 1) * this.recDecay;
    const rec = Math.min(this.rec * k.recordFactor, k.recordCap * this.limit * this.capGain);
    const capped = this.rec * k.recordFactor > rec;
    this.rec = Math.max(z, this.rec * this.recDecay);

    if (!this.active) {
      this.sinceRaise++;
      if (z > this.limit && this.sinceRaise > k.rearm && z > rec) {
        this.active = true;
        this.held = 0;
        this.sinceRaise = 0;
        if (capped) this.capGain *= k.capBoost;
        return 1;
      }
      // Inside the re-arm hold-off a reading past the limit is not learned either.
      if (z <= this.limit) this.learnNormal(x, zf, zs);
      return 0;
    }
    this.held++;
    this.sinceRaise++;
    if (z < this.limit * k.clear) {
      this.active = false;
      this.learnNormal(x, zf, zs);
      return -1;
    }
    if (this.held >= this.cfg.accept_after) {
      // A new operating level: learn it, and clear.
      this.m = this.f;
      this.fs = this.f;
      // Scores against the old level say nothing about the new one.
      this.rec = 0;
      this.capGain = 1;
      this.accepted++;
      this.active = false;
      return -1;
    }
    return 0;
  }

  private learnNormal(x: number, z: number, zs: number): void {
    const k = this.k;
    if (k.slots > 0) {
      const i = this.slot;
      if ((this.slotN[i] as number) >= 3) {
        const r = x - (this.slotMean[i] as number);
        const lim = k.clip * Math.max(this.sSeas, this.floor);
        const rc = r > lim ? lim : Math.max(r, -lim);
        // Both spreads start as plain averages (rate 1/n), then forget at their EWMA rate.
        this.nSeas++;
        this.sSeas += Math.max(this.alpha, 1 / this.nSeas) * (Math.abs(this.nSeas === 1 ? r : rc) - this.sSeas);
        if (k.slotSpread > 0) {
          const sd = this.slotDev[i] as number;
          const n = (this.slotDevN[i] as number) + 1;
          this.slotDevN[i] = n;
          this.slotDev[i] = sd + Math.max(Math.min(1, this.alpha * k.slots), 1 / n) * (Math.abs(n === 1 ? r : rc) - sd);
        }
        this.qS += this.qStep * (zs > this.qS ? k.quantile : k.quantile - 1) * Math.max(this.qS, 1);
      }
      this.visitSum += x;
      this.visitN++;
    }
    const s = Math.max(this.s, this.floor);
    const d = x - this.m;
    const lim = k.clip * s;
    const dc = d > lim ? lim : Math.max(d, -lim);
    const a = this.alpha;
    this.m += a * dc;
    this.s += a * (Math.abs(dc) - this.s);
    // Stochastic-approximation quantile of the normal scores.
    this.q += this.qStep * (z > this.q ? k.quantile : k.quantile - 1) * Math.max(this.q, 1);
  }

  /** A time-of-day slot's visit ended: fold its mean of normal readings into the slot's profile. */
  private closeVisit(next: number): void {
    const i = this.slot;
    if (i >= 0 && this.visitN > 0) {
      const n = this.slotN[i] as number;
      const v = this.visitSum / this.visitN;
      const sm = this.slotMean[i] as number;
      this.slotMean[i] = n === 0 ? v : sm + Math.max(this.k.slotAlpha, 1 / (n + 1)) * (v - sm);
      this.slotN[i] = n + 1;
    }

    this.slot = next;
    this.visitSum = 0;
    this.visitN = 0;
  }

  private setLimit(): void {
    const k = this.k;
    const l = Math.max(k.margin * (this.seasonal ? this.qS : this.q), k.minLimit);
    this.limit = l / this.cfg.sensitivity;
  }

  private learn(t: number, x: number): void {
    this.learned[this.nLearn++] = x;
    if (this.nLearn < this.learned.length) return;
    const v = Float64Array.from(this.learned).sort();
    const n = v.length;
    const med = n % 2 ? (v[(n - 1) / 2] as number) : ((v[n / 2 - 1] as number) + (v[n / 2] as number)) / 2;
    let mad = 0;
    let range = 0;
    for (let i = 0; i < n; i++) {
      mad += Math.abs((v[i] as number) - med);
      range = Math.max(range, Math.abs(v[i] as number));
    }
    mad /= n;
    this.m = med;
    if (this.k.slots > 0) {
      this.slotMean = new Float64Array(this.k.slots);
      this.slotN = new Uint32Array(this.k.slots);
      this.sSeas = 2 * Math.max(mad, 1e-9);
      this.slotDev = new Float64Array(this.k.slots).fill(this.sSeas);
      this.slotDevN = new Uint32Array(this.k.slots);
      this.nSeas = 0;
      this.qS = 3;
      this.slot = -1;
      this.slotFrom = Number.NaN;
    }
    this.f = this.learned[n - 1] as number;
    this.fs = med;
    // A flat learning period has no spread: floor the scale at a small part of the level.
    this.floor = Math.max(1e-9, 1e-3 * range);
    this.s = Math.max(mad, this.floor);
    let q = 0;
    // The scores the learning readings would have had against their median, with the slow mean (from
    // the median) run through them: a drift already under way during learning sets the limit too.
    const dev = new Float64Array(n);
    let fs = med;
    for (let i = 0; i < n; i++) {
      const x = this.learned[i] as number;
      fs += this.alphaS * (x - fs);
      dev[i] = Math.max(Math.abs(x - med), Math.abs(fs - med) * this.k.slowGain) / this.s;
    }
    dev.sort();
    q = dev[Math.min(n - 1, Math.floor(this.k.quantile * n))] as number;
    this.q = q;
    this.learningPhase = false;
    this.learnedAt = t;
    this.setLimit();
  }

  evidence(): Record<string, unknown> {
    return {
      score: this.score,
      limit: this.limit,
      clear_at: this.limit * this.k.clear,
      baseline: { level: this.m, spread: this.s, short_mean: this.f },
      accepted_levels: this.accepted,
    };
  }

  /** Contract E: the learned baseline and limit, or undefined while still learning. */
  snapshot(): LearnedState | undefined {
    if (this.learningPhase) return undefined;
    return {
      v: STATE_VERSION,
      learned_at: this.learnedAt,
      m: this.m,
      s: this.s,
      f: this.f,
      q: this.q,
      slow: this.fs,
      record: this.rec,
      cap_gain: this.capGain,
      season: {
        mean: Array.from(this.slotMean),
        n: Array.from(this.slotN),
        dev: Array.from(this.slotDev),
        dev_n: Array.from(this.slotDevN),
        spread_n: this.nSeas,
        spread: this.sSeas,
        q: this.qS,
        slot: this.slot,
        visit_sum: this.visitSum,
        visit_n: this.visitN,
      },
      floor: this.floor,
    };
  }

  /** Contract E: restores a snapshot; false (keep learning) when it does not fit. */
  restore(st: LearnedState): boolean {
    const { m, s, f, q, floor } = st as Record<string, unknown>;
    const nums = [m, s, f, q, floor, st.learned_at];
    if ((st.v !== STATE_VERSION && st.v !== 1) || !nums.every((n) => typeof n === 'number' && Number.isFinite(n))) return false;
    this.m = m as number;
    this.s = s as number;
    this.f = f as number;
    this.q = q as number;
    this.floor = floor as number;
    this.slotFrom = Number.NaN;
    // Layout 1 (before the slow mean, the record and the slots' own spreads) restores with their starting values.
    const { slow, record } = st as Record<string, unknown>;
    this.fs = typeof slow === 'number' && Number.isFinite(slow) ? slow : this.m;
    this.rec = typeof record === 'number' && Number.isFinite(record) ? record : 0;
    const { cap_gain } = st as Record<string, unknown>;
    this.capGain = typeof cap_gain === 'number' && cap_gain >= 1 ? cap_gain : 1;
    const season = st.season as
      | {
          mean?: unknown;
          n?: unknown;
          dev?: unknown;
          spread?: unknown;
          q?: unknown;
          slot?: unknown;
          visit_sum?: unknown;
          visit_n?: unknown;
        }
      | undefined;
    const k = this.k.slots;
    if (
      k > 0 &&
      season &&
      Array.isArray(season.mean) &&
      Array.isArray(season.n) &&
      season.mean.length === k &&
      season.n.length === k &&
      typeof season.spread === 'number'
    ) {
      this.slotMean = Float64Array.from(season.mean as number[]);
      this.slotN = Uint32Array.from(season.n as number[]);
      this.sSeas = season.spread;
      this.slotDev =
        Array.isArray(season.dev) && season.dev.length === k && season.dev.every((d) => typeof d === 'number')
          ? Float64Array.from(season.dev as number[])
          : new Float64Array(k).fill(this.sSeas);
      const dn = (season as { dev_n?: unknown }).dev_n;
      this.slotDevN =
        Array.isArray(dn) && dn.length === k ? Uint32Array.from(dn as number[]) : new Uint32Array(k).fill(1_000_000);
      const sn = (season as { spread_n?: unknown }).spread_n;
      this.nSeas = typeof sn === 'number' ? sn : 1_000_000;
      this.qS = typeof season.q === 'number' ? season.q : 3;
      this.slot = typeof season.slot === 'number' ? season.slot : -1;
      this.slotFrom = Number.NaN;
      this.visitSum = typeof season.visit_sum === 'number' ? season.visit_sum : 0;
      this.visitN = typeof season.visit_n === 'number' ? season.visit_n : 0;
    } else if (k > 0) {
      this.slotMean = new Float64Array(k);
      this.slotN = new Uint32Array(k);
      this.sSeas = 2 * this.s;
      this.slotDev = new Float64Array(k).fill(this.sSeas);
      this.slotDevN = new Uint32Array(k);
      this.nSeas = 0;
    }
    this.learnedAt = st.learned_at;
    this.learningPhase = false;
    this.nLearn = 0;
    this.active = false;
    this.held = 0;
    this.setLimit();
    return true;
  }
}
