/**
 * The hot path: readings in, detection, interlocks, and events queued for the store.
 * Everything here is synchronous; the store only queues.
 */
import { Aggregator } from './aggregate.js';
import type { AgentConfig } from './config/schema.js';
import { createDetector, type Detector } from './detect/detectors.js';
import type { Interlocks, SensorWatch } from './interlock.js';
import { sensorKey } from './reading.js';
import { type AgentEvent, type Anomaly, QUALITIES, type Quality, type Reading } from './types.js';

export interface PipelineCounters {
  readings: number;
  byQuality: Record<Quality, number>;
  unknownSensor: number;
  anomalies: number;
  trips: number;
}

export class Pipeline {
  readonly counters: PipelineCounters = {
    readings: 0,
    byQuality: Object.fromEntries(QUALITIES.map((q) => [q, 0])) as Record<Quality, number>,
    unknownSensor: 0,
    anomalies: 0,
    trips: 0,
  };
  private readonly detectors = new Map<string, Detector[]>();
  private readonly known = new Set<string>();
  /** Sensors the interlocks watch (debounce, fail-safe); told of every reading after the detectors. */
  private readonly watches = new Map<string, SensorWatch>();
  private readonly aggregator: Aggregator;
  /** Optional observer for anomalies (tests, API); called after the interlock acted. */
  onAnomaly: ((a: Anomaly) => void) | undefined;

  constructor(
    config: Pick<AgentConfig, 'detectors' | 'assets' | 'aggregation'>,
    private readonly interlocks: Interlocks,
    private readonly emit: (ev: AgentEvent) => void,
  ) {
    for (const asset of config.assets) for (const s of asset.sensors) this.known.add(sensorKey(asset.id, s.id));
    for (const d of config.detectors) {
      const key = sensorKey(d.asset, d.sensor);
      const list = this.detectors.get(key) ?? [];
      list.push(createDetector(d));
      this.detectors.set(key, list);
    }
    for (const w of interlocks.watched()) this.watches.set(sensorKey(w.asset, w.sensor), w);
    this.aggregator = new Aggregator(config.aggregation.window, emit);
  }

  /** Processes a batch in order. The caller may reuse the array afterwards. */
  ingest(batch: readonly Reading[]): void {
    const c = this.counters;
    for (let i = 0; i < batch.length; i++) {
      const r = batch[i] as Reading;
      const key = sensorKey(r.asset, r.sensor);
      if (!this.known.has(key)) {
        c.unknownSensor++;
        continue;
      }
      c.readings++;
      c.byQuality[r.quality]++;
      const dets = this.detectors.get(key);
      if (dets) {
        for (let j = 0; j < dets.length; j++) {
          const a = (dets[j] as Detector).update(r);
          if (a) this.handle(a);
        }
      }
      const w = this.watches.get(key);
      if (w !== undefined) w.seen(r);
      this.aggregator.add(r, key);
    }
  }

  private handle(a: Anomaly): void {
    this.counters.anomalies++;
    // Act first, record second: the stop command must not wait for bookkeeping.
    if (this.interlocks.onAnomaly(a)) this.counters.trips++;
    this.emit({ kind: 'anomaly', key: a.asset, eventTime: a.eventTime, payload: { ...a } });
    this.onAnomaly?.(a);
  }

  /** Closes all open windows (shutdown). */
  flush(): void {
    this.aggregator.flush();
  }
}
