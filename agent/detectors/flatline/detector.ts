import type { Quality } from '../../types.js';
import { type Change, ScalarDetector } from '../common.js';
import type { FlatlineConfig } from './schema.js';

export class FlatlineDetector extends ScalarDetector<FlatlineConfig> {
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
