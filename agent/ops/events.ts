/**
 * Per asset, the recent events a technician reads on the dashboard: anomalies raised and cleared,
 * trips (and dry-run or suppressed ones), acknowledgements, failed stop/release commands, control
 * changes of the asset's detectors, and sensor faults (fail-safe alarms, out_of_range anomalies).
 *
 * Fed by the same events that go to the store (an event tap), and seeded at start from the last
 * events in the store, so a restart does not empty the list. Kept in memory (a ring per asset):
 * the API never queries SQLite on the thread that runs detection. The rings share one budget
 * (TOTAL events, about 400 bytes each), so a gateway with thousands of assets keeps fewer per asset
 * (never fewer than MIN_PER_ASSET) instead of growing for as long as its rings take to fill.
 */
import type { AgentConfig } from '../config/schema.js';
import type { Db } from '../store/db.js';
import type { AgentEvent } from '../types.js';

export type AssetEventType =
  | 'anomaly'
  | 'cleared'
  | 'trip'
  | 'dry_run_trip'
  | 'suppressed'
  | 'ack'
  | 'command_failed'
  | 'control'
  | 'sensor_fault'
  | 'sensor_back';

export interface AssetEvent {
  /** Event time (ms since the epoch). */
  readonly t: number;
  readonly type: AssetEventType;
  /** One sentence for a person. */
  readonly summary: string;
  readonly detector?: string;
  readonly sensor?: string;
  readonly severity?: string;
  readonly by?: string;
}

const MAX_PER_ASSET = 100;
const MIN_PER_ASSET = 10;
const TOTAL = 20_000;
/** How far back in the store the seed looks (sequence numbers), so a huge store is not scanned. */
const SEED_SCAN = 200_000;

type P = Record<string, unknown>;
const str = (v: unknown): string => (typeof v === 'string' ? v : v === undefined || v === null ? '' : String(v));

export class AssetEventLog {
  /** Raw events per asset; described only when read, so the tap on the trip path stays a few field reads. */
  private readonly rings = new Map<string, AgentEvent[]>();
  private readonly detectorAsset = new Map<string, string>();
  private readonly detectorType = new Map<string, string>();
  private readonly detectorSensor = new Map<string, string>();
  private readonly units = new Map<string, string>();
  /** Events kept per asset: the shared budget split over the assets. */
  readonly perAsset: number;

  constructor(config: Pick<AgentConfig, 'assets' | 'detectors'>) {
    this.perAsset = Math.max(MIN_PER_ASSET, Math.min(MAX_PER_ASSET, Math.floor(TOTAL / Math.max(1, config.assets.length))));
    for (const a of config.assets) {
      this.rings.set(a.id, []);
      for (const s of a.sensors) this.units.set(`${a.id}/${s.id}`, s.unit);
    }
    for (const d of config.detectors) {
      this.detectorAsset.set(d.id, d.asset);
      this.detectorType.set(d.id, d.type);
      if ('sensor' in d) this.detectorSensor.set(d.id, d.sensor);
    }
  }

  /** Seeds the lists from the store's latest events (read-only connection, before the agent starts). */
  seed(db: Db): void {
    const rows = db
      .prepare(
        `SELECT kind, key, event_time, payload FROM events
         WHERE seq > (SELECT COALESCE(MAX(seq), 0) FROM events) - ? AND kind IN ('anomaly', 'action', 'audit', 'alarm')
         ORDER BY seq DESC LIMIT ?`,
      )
      .all(SEED_SCAN, this.perAsset * Math.max(1, this.rings.size) * 4) as Array<{
      kind: AgentEvent['kind'];
      key: string;
      event_time: number;
      payload: string;
    }>;
    for (let i = rows.length - 1; i >= 0; i--) {
      const r = rows[i] as (typeof rows)[number];
      let payload: P;
      try {
        payload = JSON.parse(r.payload) as P;
      } catch {
        continue;
      }
      this.onEvent({ kind: r.kind, key: r.key, eventTime: r.event_time, payload });
    }
  }

  /** An event tap: a few field reads, nothing for the routine kinds; the sentence is built when read. */
  onEvent(ev: AgentEvent): void {
    const asset = this.assetOf(ev);
    if (asset === undefined) return;
    const ring = this.rings.get(asset);
    if (!ring) return;
    ring.push(ev);
    if (ring.length > this.perAsset) ring.shift();
  }

  /** Newest first; undefined for an unknown asset. */
  list(asset: string, limit = 50): AssetEvent[] | undefined {
    const ring = this.rings.get(asset);
    if (!ring) return undefined;
    const out: AssetEvent[] = [];
    for (let i = ring.length - 1; i >= 0 && out.length < limit; i--) {
      const ev = ring[i] as AgentEvent;
      const e = this.describe(ev, ev.payload as P);
      if (e) out.push(e.event);
    }
    return out;
  }

  /** The asset an event belongs on, or undefined when it is not listed. */
  private assetOf(ev: AgentEvent): string | undefined {
    const p = ev.payload as P;
    switch (ev.kind) {
      case 'anomaly':
        return ev.key;
      case 'action':
        return p.type === 'trip' ||
          p.type === 'dry_run_trip' ||
          p.type === 'suppressed' ||
          (p.type === 'command_result' && p.ok !== true)
          ? ev.key
          : undefined;
      case 'audit':
        if (p.type === 'ack') return ev.key;
        return p.type === 'control' ? this.detectorAsset.get(str(p.detector)) : undefined;
      case 'alarm':
        return p.type === 'fail_safe' ? ev.key : undefined;
      default:
        return undefined;
    }
  }

  private value(asset: string, sensor: string, v: unknown): string {
    if (typeof v !== 'number' || !Number.isFinite(v)) return '';
    const unit = this.units.get(`${asset}/${sensor}`);
    return `${Number(v.toFixed(2))}${unit ? ` ${unit}` : ''}`;
  }

  private describe(ev: AgentEvent, p: P): { asset: string; event: AssetEvent } | undefined {
    const asset = ev.key;
    const t = ev.eventTime;
    const detector = str(p.detector);
    const sensor = str(p.sensor) || this.detectorSensor.get(detector) || '';
    if (ev.kind === 'anomaly') {
      const fault = this.detectorType.get(detector) === 'out_of_range';
      const severity = str(p.severity);
      if (p.state === 'cleared')
        return {
          asset,
          event: {
            t,
            type: fault ? 'sensor_back' : 'cleared',
            summary: `${detector} cleared on ${sensor}`,
            detector,
            sensor,
            severity,
          },
        };
      const v = this.value(asset, sensor, p.value);
      return {
        asset,
        event: {
          t,
          type: fault ? 'sensor_fault' : 'anomaly',
          summary: `${fault ? 'sensor fault' : severity}: ${detector} raised on ${sensor}${v ? ` at ${v}` : ''}${p.trip === true ? ' (trips)' : ''}`,
          detector,
          sensor,
          severity,
        },
      };
    }
    if (ev.kind === 'action') {
      const v = this.value(asset, sensor, p.value);
      switch (p.type) {
        case 'trip': {
          const to = Array.isArray(p.commands) ? (p.commands as P[]).map((c) => `${str(c.command)} to ${str(c.actuator)}`) : [];
          return {
            asset,
            event: {
              t,
              type: 'trip',
              summary: `tripped by ${detector}${v ? ` at ${v}` : ''}${to.length ? `; sent ${to.join(', ')}` : ''}`,
              detector,
              severity: str(p.severity),
            },
          };
        }
        case 'dry_run_trip':
          return {
            asset,
            event: { t, type: 'dry_run_trip', summary: `would have tripped by ${detector} (dry run: nothing sent)`, detector },
          };
        case 'suppressed':
          return {
            asset,
            event: {
              t,
              type: 'suppressed',
              summary: `trip by ${detector} not acted on (${str(p.reason).replace('_', ' ')})`,
              detector,
            },
          };
        case 'command_result':
          if (p.ok === true) return undefined;
          return {
            asset,
            event: {
              t,
              type: 'command_failed',
              summary: `${str(p.phase)} command "${str(p.command)}" to ${str(p.actuator)} failed: ${str(p.error)}`,
            },
          };
        default:
          return undefined;
      }
    }
    if (ev.kind === 'audit') {
      if (p.type === 'ack') {
        const by = str(p.by);
        return { asset, event: { t, type: 'ack', summary: `acknowledged by ${by} (${str(p.via) || 'api'})`, by } };
      }
      if (p.type === 'control') {
        const target = this.detectorAsset.get(detector);
        if (!target) return undefined;
        const applied = p.applied && typeof p.applied === 'object' ? (p.applied as P) : {};
        const previous = p.previous && typeof p.previous === 'object' ? (p.previous as P) : {};
        const changes = Object.keys(applied).map((k) => `${k} ${JSON.stringify(previous[k])} → ${JSON.stringify(applied[k])}`);
        const by = str(p.by);
        return {
          asset: target,
          event: {
            t,
            type: 'control',
            summary: `${detector}: ${str(p.op)}${changes.length ? ` ${changes.join(', ')}` : ''}${by ? ` by ${by}` : ''}`,
            detector,
            ...(by ? { by } : {}),
          },
        };
      }
      return undefined;
    }
    if (ev.kind === 'alarm' && p.type === 'fail_safe') {
      const back = p.state === 'cleared';
      return {
        asset,
        event: {
          t,
          type: back ? 'sensor_back' : 'sensor_fault',
          summary: back
            ? `sensor ${sensor} is back (${str(p.cause)})`
            : `sensor ${sensor} ${p.cause === 'silent' ? 'went silent' : 'reads bad'} (fail-safe: ${str(p.policy)})`,
          sensor,
        },
      };
    }
    return undefined;
  }
}
