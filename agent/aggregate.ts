/**
 * Routine telemetry: per-sensor tumbling event-time windows. These aggregates, not every raw
 * reading, are what the store keeps, and their counts add up to every reading accepted.
 */
import type { AgentEvent, Reading } from './types.js';

interface Acc {
  readonly asset: string;
  readonly sensor: string;
  readonly metric: string;
  readonly unit: string;
  start: number;
  count: number;
  good: number;
  min: number;
  max: number;
  sum: number;
  last: number;
}

export class Aggregator {
  private readonly accs = new Map<string, Acc>();

  constructor(
    private readonly windowMs: number,
    private readonly emit: (ev: AgentEvent) => void,
  ) {}

  add(r: Reading, key: string): void {
    const start = r.eventTime - (r.eventTime % this.windowMs);
    let acc = this.accs.get(key);
    if (acc && start !== acc.start) {
      // A reading from another window closes the current one. Out-of-order readings within an
      // older window are counted in the current one rather than dropped (the windowed engine
      // handles lateness precisely).
      if (start > acc.start) {
        this.close(acc);
        this.reset(acc, start);
      }
    }
    if (!acc) {
      acc = {
        asset: r.asset,
        sensor: r.sensor,
        metric: r.metric,
        unit: r.unit,
        start,
        count: 0,
        good: 0,
        min: Infinity,
        max: -Infinity,
        sum: 0,
        last: 0,
      };
      this.accs.set(key, acc);
    }
    acc.count++;
    if (r.quality === 'good') {
      acc.good++;
      if (r.value < acc.min) acc.min = r.value;
      if (r.value > acc.max) acc.max = r.value;
      acc.sum += r.value;
      acc.last = r.value;
    }
  }

  /** Emits every open window (on shutdown), so no accepted reading goes unaccounted. */
  flush(): void {
    for (const acc of this.accs.values()) if (acc.count > 0) this.close(acc);
    this.accs.clear();
  }

  private reset(acc: Acc, start: number): void {
    acc.start = start;
    acc.count = 0;
    acc.good = 0;
    acc.min = Infinity;
    acc.max = -Infinity;
    acc.sum = 0;
  }

  private close(acc: Acc): void {
    const good = acc.good > 0;
    this.emit({
      kind: 'aggregate',
      key: acc.asset,
      eventTime: acc.start,
      payload: {
        asset: acc.asset,
        sensor: acc.sensor,
        metric: acc.metric,
        unit: acc.unit,
        window_start: acc.start,
        window_end: acc.start + this.windowMs,
        count: acc.count,
        good: acc.good,
        min: good ? acc.min : null,
        max: good ? acc.max : null,
        mean: good ? acc.sum / acc.good : null,
        last: good ? acc.last : null,
      },
    });
  }
}
