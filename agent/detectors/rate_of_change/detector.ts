import type { Quality } from '../../types.js';
import { type Change, ScalarDetector } from '../common.js';
import type { RateOfChangeConfig } from './schema.js';

export class RateOfChangeDetector extends ScalarDetector<RateOfChangeConfig> {
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
