/**
 * The one window engine. Every consumer of windows (window detectors, the routine aggregates, the
 * model's feature vectors) registers a sink on a sensor's window here; consumers that ask for the
 * same window spec on the same sensor share one window, computed once.
 *
 * Per source, the engine keeps the watermark (latest event time minus the allowed lateness) that
 * the event-time gate checks readings against; when it passes a window's end, the window closes and
 * its sinks run, in this tick. Count windows close by arrival.
 *
 * All sensors of a source share its watermark, so their windows (e.g. every sensor's 10 s aggregate)
 * fall due at the same instant. The engine does not close them all in that reading's tick: it sweeps
 * the source's sensors and closes at most CLOSE_BUDGET sensors' windows per reading, continuing with
 * the next readings, so a gateway with thousands of sensors spreads that work over a few
 * milliseconds instead of stalling every reading behind it. A window's features come from the
 * buffered readings inside its bounds, so closing it a few readings later gives the same result;
 * with CLOSE_BUDGET or fewer sensors per source nothing is deferred. The live agent goes further
 * (`closeBudget` 0, `onPending`, `sweep`): no close with a reading, all between event-loop turns.
 */

import type { WindowConfig } from './window-schema.js';
import { CountWindow, SensorSeries, TimeWindow, type WindowSink } from './windows.js';

/** Most sensors whose due windows one reading closes; the rest follow with the next readings. */
export const CLOSE_BUDGET = 32;

/** One source's event-time clock. */
export interface SourceClock {
  readonly id: string;
  maxTime: number;
  watermark: number;
  /** Earliest end of an open window among the source's sensors (NaN: none). */
  deadline: number;
  readonly series: SensorSeries[];
  /** The sweep over `series` closing due windows: next index, and how many were visited this pass. */
  cursor: number;
  swept: number;
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
  /** Most sensors whose due windows one reading closes (CLOSE_BUDGET unless the owner lowers it). */
  closeBudget = CLOSE_BUDGET;
  /**
   * Called when a reading leaves a sweep unfinished. The live agent lowers `closeBudget` and continues
   * the sweep with `sweep()` between event-loop turns, so that a burst of readings arriving together
   * (one TCP chunk of MQTT messages) does not also carry every sensor's window close.
   */
  onPending: (() => void) | undefined;

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
        cursor: 0,
        swept: 0,
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
    const newest = t > src.maxTime;
    if (newest) {
      src.maxTime = t;
      src.watermark = t - this.lateness;
    }
    if (src.watermark >= src.deadline) this.advance(src);
    return !newest && t < src.maxTime;
  }

  /**
   * Continues unfinished sweeps without a reading, closing the due windows of at most `budget` sensors
   * per source. Returns true when no sweep is left unfinished.
   */
  sweep(budget: number): boolean {
    let done = true;
    for (const src of this.sources.values()) {
      if (src.deadline !== Number.NEGATIVE_INFINITY) continue;
      this.advance(src, budget);
      if (src.deadline === Number.NEGATIVE_INFINITY) done = false;
    }
    return done;
  }

  /** Closes all open windows (shutdown, end of a replay). */
  flush(): void {
    for (const src of this.sources.values()) {
      for (const s of src.series) s.flush();
      src.deadline = Number.NaN;
      src.swept = 0;
    }
  }

  /**
   * Continues the source's sweep: closes the due windows of at most CLOSE_BUDGET sensors. While a
   * sweep is under way the source's deadline stays -Infinity, so the next reading continues it; a
   * finished pass sets the deadline to the earliest window end left.
   */
  private advance(src: SourceClock, closes = this.closeBudget): void {
    const all = src.series;
    const n = all.length;
    let budget = closes;
    while (src.swept < n) {
      const s = all[src.cursor] as SensorSeries;
      if (s.deadline() <= src.watermark) {
        if (budget === 0) {
          src.deadline = Number.NEGATIVE_INFINITY;
          this.onPending?.();
          return;
        }
        budget--;
        s.advance(src.watermark);
      }
      src.cursor = src.cursor + 1 === n ? 0 : src.cursor + 1;
      src.swept++;
    }
    src.swept = 0;
    let deadline = Number.NaN;
    for (let i = 0; i < n; i++) {
      const d = (all[i] as SensorSeries).deadline();
      if (!(d >= deadline)) deadline = d;
    }
    src.deadline = deadline;
  }
}
