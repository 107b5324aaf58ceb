/**
 * `edge-agent export --normal`: a site's own normal-operation windows as training data.
 *
 * Reads the per-sensor `aggregate` events of the store, joins them per asset and window, and keeps
 * only windows with no anomaly, action (trip, command) or alarm of that asset within `margin`
 * before or after. Each window becomes one CSV row of `<sensor>.<stat>` features (mean, min, max:
 * what the aggregates hold), in the format scripts/train-model.py reads; the feature names are the
 * agent's own (agent/model/features.ts), so a model trained on the export runs on the same windows.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import type { Db } from '../store/db.js';

export const EXPORT_STATS = ['mean', 'min', 'max'] as const;

export interface ExportOptions {
  readonly since?: number | undefined;
  readonly until?: number | undefined;
  /** Keep this far (ms) from any anomaly/action/alarm of the asset. */
  readonly marginMs: number;
  readonly assets?: readonly string[] | undefined;
}

export interface ExportResult {
  readonly windowMs: number;
  readonly features: string[];
  readonly rows: Array<{ asset: string; windowStart: number; values: number[] }>;
  readonly skippedNearEvents: number;
  readonly skippedIncomplete: number;
}

interface AggPayload {
  asset: string;
  sensor: string;
  window_start: number;
  window_end: number;
  good: number;
  mean: number | null;
  min: number | null;
  max: number | null;
}

export function exportNormalWindows(db: Db, o: ExportOptions): ExportResult {
  const since = o.since ?? 0;
  const until = o.until ?? Number.MAX_SAFE_INTEGER;
  const aggs = db
    .prepare("SELECT payload FROM events WHERE kind = 'aggregate' AND event_time >= ? AND event_time < ? ORDER BY seq")
    .all(since, until) as Array<{ payload: string }>;
  const incidents = db
    .prepare(
      "SELECT key, event_time FROM events WHERE kind IN ('anomaly', 'action', 'alarm') AND event_time >= ? AND event_time < ?",
    )
    .all(since - o.marginMs, until + o.marginMs) as Array<{ key: string; event_time: number }>;
  const incidentTimes = new Map<string, number[]>();
  for (const e of incidents) {
    const list = incidentTimes.get(e.key) ?? [];
    list.push(e.event_time);
    incidentTimes.set(e.key, list);
  }

  const windows = new Map<string, { asset: string; start: number; end: number; sensors: Map<string, AggPayload> }>();
  const sensorsByAsset = new Map<string, Set<string>>();
  let windowMs = 0;
  for (const { payload } of aggs) {
    const p = JSON.parse(payload) as AggPayload;
    if (o.assets && !o.assets.includes(p.asset)) continue;
    const len = p.window_end - p.window_start;
    if (windowMs === 0) windowMs = len;
    else if (len !== windowMs)
      throw new Error(`aggregates with different window lengths (${windowMs} and ${len} ms): export a range with one setting`);
    const k = `${p.asset}\u0000${p.window_start}`;
    let w = windows.get(k);
    if (!w) {
      w = { asset: p.asset, start: p.window_start, end: p.window_end, sensors: new Map() };
      windows.set(k, w);
    }
    w.sensors.set(p.sensor, p);
    let s = sensorsByAsset.get(p.asset);
    if (!s) sensorsByAsset.set(p.asset, (s = new Set()));
    s.add(p.sensor);
  }
  // Columns every exported asset has, so all rows share one layout.
  const sets = [...sensorsByAsset.values()];
  const sensors = sets.length === 0 ? [] : [...(sets[0] as Set<string>)].filter((x) => sets.every((s) => s.has(x))).sort();
  const features = sensors.flatMap((s) => EXPORT_STATS.map((st) => `${s}.${st}`));

  const rows: ExportResult['rows'] = [];
  let skippedNearEvents = 0;
  let skippedIncomplete = 0;
  for (const w of windows.values()) {
    const times = incidentTimes.get(w.asset);
    if (times?.some((t) => t >= w.start - o.marginMs && t < w.end + o.marginMs)) {
      skippedNearEvents++;
      continue;
    }
    const values: number[] = [];
    let complete = true;
    for (const s of sensors) {
      const p = w.sensors.get(s);
      if (!p || p.good === 0 || p.mean === null || p.min === null || p.max === null) {
        complete = false;
        break;
      }
      values.push(p.mean, p.min, p.max);
    }
    if (!complete) {
      skippedIncomplete++;
      continue;
    }
    rows.push({ asset: w.asset, windowStart: w.start, values });
  }
  rows.sort((a, b) => a.windowStart - b.windowStart || (a.asset < b.asset ? -1 : 1));
  return { windowMs, features, rows, skippedNearEvents, skippedIncomplete };
}

/** The CSV scripts/train-model.py reads. */
export function toTrainingCsv(r: ExportResult, source: string): string {
  const lines = [`# window_ms=${r.windowMs} source=${source}`, ['asset', 'window_start', ...r.features].join(',')];
  for (const row of r.rows) lines.push(`${row.asset},${row.windowStart},${row.values.join(',')}`);
  return `${lines.join('\n')}\n`;
}

export function writeTrainingCsv(path: string, r: ExportResult, source: string): void {
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, toTrainingCsv(r, source));
}
