/**
 * Event-time windows over one sensor's readings.
 *
 * A `SensorSeries` buffers the sensor's accepted readings sorted by event time (out-of-order
 * readings within the allowed lateness are inserted in place) and closes its time windows when the
 * source's watermark passes their end: tumbling windows (hop = size) and sliding/hopping windows
 * (start aligned to multiples of hop since the epoch, so two gateways agree on window edges).
 * Windows without readings are skipped, so a clock jump does not iterate empty windows.
 * Count windows close by arrival: every `hop` readings, over the last `count`.
 *
 * A closed window is handed to its sinks as a reused `ClosedWindow` object: sinks copy what they keep.
 */

import { computeFeatures, F, FeatureLayout } from './features.js';
import type { WindowConfig } from './window-schema.js';

export interface ClosedWindow {
  readonly spec: WindowConfig;
  start: number;
  end: number;
  readonly layout: FeatureLayout;
  /** Feature vector, laid out by `layout`. */
  readonly features: Float64Array;
  /** Event times of the first and last good reading in the window (NaN when none). */
  first: number;
  last: number;
}

/** The reused closed-window object of a window (built once its layout is final). */
function closedWindow(spec: WindowConfig, layout: FeatureLayout): ClosedWindow {
  const features = new Float64Array(layout.size);
  return { spec, start: 0, end: 0, layout, features, first: Number.NaN, last: Number.NaN };
}

/** Sets the first and last good reading's event time of readings [from, to) on `w`. */
function goodSpan(times: Float64Array, good: Uint8Array, from: number, to: number, w: ClosedWindow): void {
  let i = from;
  while (i < to && good[i] !== 1) i++;
  let j = to - 1;
  while (j >= i && good[j] !== 1) j--;
  w.first = i < to ? (times[i] as number) : Number.NaN;
  w.last = i < to ? (times[j] as number) : Number.NaN;
}

export type WindowSink = (w: ClosedWindow) => void;

/** Smallest window end (aligned to `hop`) of a window of length `size` that contains `t`. */
function firstEnd(t: number, size: number, hop: number): number {
  return (Math.floor((t - size) / hop) + 1) * hop + size;
}

export class TimeWindow {
  readonly size: number;
  readonly hop: number;
  nextEnd = Number.NaN;
  readonly layout = new FeatureLayout();
  readonly sinks: WindowSink[] = [];
  private closed: ClosedWindow | undefined;

  constructor(readonly spec: Extract<WindowConfig, { type: 'tumbling' | 'sliding' }>) {
    this.size = spec.size;
    this.hop = spec.type === 'sliding' ? spec.hop : spec.size;
    for (const b of spec.bands ?? []) this.layout.addBand(b);
  }

  /** Called after the layout is final (all consumers registered). */
  window(): ClosedWindow {
    this.closed ??= closedWindow(this.spec, this.layout);
    return this.closed;
  }

  admit(t: number): void {
    const e = firstEnd(t, this.size, this.hop);
    if (!(e >= this.nextEnd)) this.nextEnd = e;
  }
}

export class CountWindow {
  readonly count: number;
  readonly hop: number;
  readonly layout = new FeatureLayout();
  readonly sinks: WindowSink[] = [];
  private times: Float64Array;
  private values: Float64Array;
  private good: Uint8Array;
  private tail = 0;
  private since = 0;
  private closed: ClosedWindow | undefined;

  constructor(readonly spec: Extract<WindowConfig, { type: 'count' }>) {
    this.count = spec.count;
    this.hop = spec.hop ?? spec.count;
    for (const b of spec.bands ?? []) this.layout.addBand(b);
    const cap = this.count * 2;
    this.times = new Float64Array(cap);
    this.values = new Float64Array(cap);
    this.good = new Uint8Array(cap);
  }

  window(): ClosedWindow {
    this.closed ??= closedWindow(this.spec, this.layout);
    return this.closed;
  }

  add(t: number, v: number, good: boolean): void {
    if (this.tail === this.times.length) {
      const keep = this.count - 1;
      this.times.copyWithin(0, this.tail - keep, this.tail);
      this.values.copyWithin(0, this.tail - keep, this.tail);
      this.good.copyWithin(0, this.tail - keep, this.tail);
      this.tail = keep;
    }
    this.times[this.tail] = t;
    this.values[this.tail] = v;
    this.good[this.tail] = good ? 1 : 0;
    this.tail++;
    this.since++;
    if (this.tail >= this.count && this.since >= this.hop) {
      this.since = 0;
      const w = this.window();
      const from = this.tail - this.count;
      w.start = this.times[from] as number;
      w.end = this.times[this.tail - 1] as number;
      computeFeatures(this.times, this.values, this.good, from, this.tail, this.layout, w.features);
      goodSpan(this.times, this.good, from, this.tail, w);
      for (let i = 0; i < this.sinks.length; i++) (this.sinks[i] as WindowSink)(w);
    }
  }
}

/** Initial capacity of a sensor's reading buffer; it doubles on demand (makeRoom). */
const SERIES_INITIAL = 16;

export class SensorSeries {
  private times = new Float64Array(SERIES_INITIAL);
  private values = new Float64Array(SERIES_INITIAL);
  private good = new Uint8Array(SERIES_INITIAL);
  private head = 0;
  private tail = 0;
  readonly windows: TimeWindow[] = [];

  get buffered(): number {
    return this.tail - this.head;
  }

  /** Earliest window end among this sensor's windows (NaN when nothing is buffered). */
  deadline(): number {
    let d = Number.NaN;
    for (let i = 0; i < this.windows.length; i++) {
      const e = (this.windows[i] as TimeWindow).nextEnd;
      if (!(e >= d)) d = e;
    }
    return d;
  }

  add(t: number, v: number, good: boolean): void {
    if (this.tail === this.times.length) this.makeRoom();
    let i = this.tail;
    if (i > this.head && (this.times[i - 1] as number) > t) {
      // Out of order (within the lateness): insert after every reading stamped at or before t.
      i = this.upperBound(t);
      this.times.copyWithin(i + 1, i, this.tail);
      this.values.copyWithin(i + 1, i, this.tail);
      this.good.copyWithin(i + 1, i, this.tail);
    }
    this.times[i] = t;
    this.values[i] = v;
    this.good[i] = good ? 1 : 0;
    this.tail++;
    for (let k = 0; k < this.windows.length; k++) (this.windows[k] as TimeWindow).admit(t);
  }

  /** Closes every window whose end is at or before `watermark`, then evicts readings no window needs. */
  advance(watermark: number): void {
    let keepFrom = Number.POSITIVE_INFINITY;
    for (let k = 0; k < this.windows.length; k++) {
      const w = this.windows[k] as TimeWindow;
      while (w.nextEnd <= watermark) {
        const start = w.nextEnd - w.size;
        const i0 = this.lowerBound(start);
        const i1 = this.lowerBound(w.nextEnd);
        if (i1 > i0) {
          const cw = w.window();
          cw.start = start;
          cw.end = w.nextEnd;
          computeFeatures(this.times, this.values, this.good, i0, i1, w.layout, cw.features);
          goodSpan(this.times, this.good, i0, i1, cw);
          for (let s = 0; s < w.sinks.length; s++) (w.sinks[s] as (x: ClosedWindow) => void)(cw);
        }
        const next = w.nextEnd + w.hop;
        const first = this.lowerBound(next - w.size);
        if (first < this.tail) {
          // Jump over windows that hold no reading (gaps, a clock that jumped forward).
          w.nextEnd = Math.max(next, firstEnd(this.times[first] as number, w.size, w.hop));
        } else {
          w.nextEnd = Number.NaN;
        }
      }
      const need = w.nextEnd - w.size;
      if (need < keepFrom) keepFrom = need;
    }
    this.head = keepFrom === Number.POSITIVE_INFINITY ? this.tail : this.lowerBound(keepFrom);
    if (this.head === this.tail) {
      this.head = 0;
      this.tail = 0;
    }
  }

  /** Closes every window that holds a reading (shutdown / end of a replay). */
  flush(): void {
    this.advance(Number.POSITIVE_INFINITY);
  }

  private makeRoom(): void {
    const n = this.tail - this.head;
    if (this.head > 0 && n < this.times.length * 0.75) {
      this.times.copyWithin(0, this.head, this.tail);
      this.values.copyWithin(0, this.head, this.tail);
      this.good.copyWithin(0, this.head, this.tail);
    } else {
      const cap = this.times.length * 2;
      const t = new Float64Array(cap);
      const v = new Float64Array(cap);
      const g = new Uint8Array(cap);
      t.set(this.times.subarray(this.head, this.tail));
      v.set(this.values.subarray(this.head, this.tail));
      g.set(this.good.subarray(this.head, this.tail));
      this.times = t;
      this.values = v;
      this.good = g;
    }
    this.head = 0;
    this.tail = n;
  }

  private lowerBound(t: number): number {
    let lo = this.head;
    let hi = this.tail;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if ((this.times[mid] as number) < t) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  private upperBound(t: number): number {
    let lo = this.head;
    let hi = this.tail;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if ((this.times[mid] as number) <= t) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }
}

/** The base features as a plain object (for evidence and aggregate payloads; allocates). */
export function baseFeatures(w: ClosedWindow): Record<string, number | null> {
  const out: Record<string, number | null> = {};
  const f = w.features;
  for (let i = 0; i < w.layout.size; i++) {
    const v = f[i] as number;
    out[w.layout.nameOf(i)] = Number.isFinite(v) ? v : null;
  }
  return out;
}

export { F };
