import type { Quality } from '../../types.js';
import { type Change, ScalarDetector } from '../common.js';
import type { CountOverConfig } from './schema.js';

export class CountOverDetector extends ScalarDetector<CountOverConfig> {
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
