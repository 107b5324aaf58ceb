/**
 * The one window engine. Every consumer of windows (window detectors, the routine aggregates, the
 * model's feature vectors) registers a sink on a sensor's window here; consumers that ask for the
 * same window spec on the same sensor share one window, computed once.
 *
 * Per source, the engine keeps the watermark (latest event time minus the allowed lateness) that
 * the event-time gate checks readings against; when it passes a window's end, the window closes and
 * its sinks run, in this tick. Count windows close by arrival.
 */

import type { WindowConfig } from './window-schema.js';
import { CountWindow, SensorSeries, TimeWindow, type WindowSink } from './windows.js';

/** One source's event-time clock. */
export interface SourceClock {
  readonly id: string;
  maxTime: number;
  watermark: number;
  /** Earliest end of an open window among the source's sensors (NaN: none). */
  deadline: number;
  readonly series: SensorSeries[];
  late: number;
  future: number;
  untrusted: number;
}

/** One sensor's windows. */
export interface SensorWindows {
  readonly source: SourceClock;
  readonly series: SensorSeries;
  readonly counts: CountWindow[];
  readonly bySpec: Map<string, TimeWindow | CountWindow>;
}

export class WindowEngine {
  readonly sources = new Map<string, SourceClock>();

  constructor(private readonly lateness: number) {}

  /** The windows of a new sensor read by `source`. */
  sensor(source: string): SensorWindows {
    let src = this.sources.get(source);
    if (!src) {
      src = {
        id: source,
        maxTime: Number.NEGATIVE_INFINITY,
        watermark: Number.NEGATIVE_INFINITY,
        deadline: Number.NaN,
        series: [],
        late: 0,
        future: 0,
        untrusted: 0,
      };
      this.sources.set(source, src);
    }
    const sw: SensorWindows = { source: src, series: new SensorSeries(), counts: [], bySpec: new Map() };
    src.series.push(sw.series);
    return sw;
  }

  /**
   * Registers `sink` on the window of this spec on this sensor (shared with every consumer of the
   * same spec) and returns the window, so the caller can ask it to compute a percentile or find a
   * feature's index. A window added while readings flow opens with the next reading.
   */
  window(sw: SensorWindows, spec: WindowConfig, sink: WindowSink): TimeWindow | CountWindow {
    const key = JSON.stringify(spec);
    let w = sw.bySpec.get(key);
    if (!w) {
      if (spec.type === 'count') {
        w = new CountWindow(spec);
        sw.counts.push(w);
      } else {
        w = new TimeWindow(spec);
        sw.series.windows.push(w);
      }
      sw.bySpec.set(key, w);
    }
    w.sinks.push(sink);
    return w;
  }

  /** Removes a sink; a window left without sinks stops being computed. */
  unregister(sw: SensorWindows, spec: WindowConfig, sink: WindowSink): void {
    const key = JSON.stringify(spec);
    const w = sw.bySpec.get(key);
    if (!w) return;
    const i = w.sinks.indexOf(sink);
    if (i >= 0) w.sinks.splice(i, 1);
    if (w.sinks.length > 0) return;
    sw.bySpec.delete(key);
    if (w instanceof CountWindow) sw.counts.splice(sw.counts.indexOf(w), 1);
    else sw.series.windows.splice(sw.series.windows.indexOf(w), 1);
  }

  /**
   * Adds an accepted reading (the gate passed it) and advances its source's watermark; windows
   * whose end the watermark passed close now. Returns true when the reading is older than an
   * earlier one of its source (accepted within the lateness).
   */
  add(sw: SensorWindows, t: number, value: number, good: boolean): boolean {
    const counts = sw.counts;
    for (let j = 0; j < counts.length; j++) (counts[j] as CountWindow).add(t, value, good);
    const src = sw.source;
    sw.series.add(t, value, good);
    const d = sw.series.deadline();
    if (!(d >= src.deadline)) src.deadline = d;
    if (t > src.maxTime) {
      src.maxTime = t;
      src.watermark = t - this.lateness;
      if (src.watermark >= src.deadline) this.advance(src);
      return false;
    }
    return t < src.maxTime;
  }

  /** Closes all open windows (shutdown, end of a replay). */
  flush(): void {
    for (const src of this.sources.values()) {
      for (const s of src.series) s.flush();
      src.deadline = Number.NaN;
    }
  }

  private advance(src: SourceClock): void {
    let deadline = Number.NaN;
    for (let i = 0; i < src.series.length; i++) {
      const s = src.series[i] as SensorSeries;
      s.advance(src.watermark);
      const d = s.deadline();
      if (!(d >= deadline)) deadline = d;
    }
    src.deadline = deadline;
  }
}
