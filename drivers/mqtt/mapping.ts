/**
 * Topic + payload → values, compiled once at init. Pure: no I/O, no clock (arrival time is passed in).
 * Every failure is a bounded reason, never an exception: a poison message is counted and skipped.
 */
import type { SubscriptionConfig, TimeFormat } from './schema.js';

export const MALFORMED_REASONS = [
  'oversize',
  'not_json',
  'not_number',
  'no_items',
  'bad_value',
  'bad_time',
  'bad_id',
  'unknown_sensor',
] as const;
export type MalformedReason = (typeof MALFORMED_REASONS)[number];

export interface MappedValue {
  readonly asset: string;
  readonly sensor: string;
  readonly value: number;
  readonly eventTime: number;
}

export interface MapResult {
  readonly values: MappedValue[];
  /** One entry per rejected message or item. */
  readonly errors: MalformedReason[];
}

type Path = readonly (string | number)[];

const ID_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;
// Event times outside this window are garbage (a counter, a wrong unit), not a plausible clock.
const MIN_TIME = Date.UTC(2000, 0, 1);
const MAX_TIME = Date.UTC(2100, 0, 1);

export function parsePath(p: string): Path {
  const out: (string | number)[] = [];
  for (const part of p.replace(/\[(\d+)\]/g, '.$1').split('.')) out.push(/^\d+$/.test(part) ? Number(part) : part);
  return out;
}

function get(root: unknown, path: Path): unknown {
  let cur = root;
  for (const key of path) {
    if (cur === null || typeof cur !== 'object') return undefined;
    if (typeof key === 'number') {
      if (!Array.isArray(cur)) {
        cur = (cur as Record<string, unknown>)[String(key)];
        continue;
      }
      cur = cur[key];
    } else {
      if (Array.isArray(cur) || !Object.hasOwn(cur, key)) return undefined;
      cur = (cur as Record<string, unknown>)[key];
    }
  }
  return cur;
}

function toValue(v: unknown): number | undefined {
  if (typeof v === 'number') return Number.isFinite(v) ? v : undefined;
  if (typeof v === 'boolean') return v ? 1 : 0;
  return undefined;
}

export function parseTime(v: unknown, format: TimeFormat): number | undefined {
  let t: number | undefined;
  if (format === 'iso') t = typeof v === 'string' ? Date.parse(v) : undefined;
  else if (typeof v === 'number') t = format === 'epoch_s' ? v * 1000 : v;
  if (t === undefined || !Number.isFinite(t) || t < MIN_TIME || t > MAX_TIME) return undefined;
  return Math.round(t);
}

export function compileFilter(filter: string): (levels: readonly string[]) => boolean {
  const parts = filter.split('/');
  const hash = parts.at(-1) === '#';
  const fixed = hash ? parts.slice(0, -1) : parts;
  return (levels) => {
    if (hash ? levels.length < fixed.length : levels.length !== fixed.length) return false;
    for (let i = 0; i < fixed.length; i++) {
      const f = fixed[i] as string;
      if (f !== '+' && f !== levels[i]) return false;
    }
    return true;
  };
}

export interface CompiledSubscription {
  readonly config: SubscriptionConfig;
  matches(levels: readonly string[]): boolean;
  /** Maps one message; appends to `out`. */
  map(levels: readonly string[], payload: Buffer, arrival: number, out: MapResult): void;
}

export function compileSubscription(config: SubscriptionConfig): CompiledSubscription {
  const matches = compileFilter(config.topic);
  const valuePath = parsePath(config.value_path);
  const itemsPath = config.items_path ? parsePath(config.items_path) : undefined;
  const timePath = config.time_path ? parsePath(config.time_path) : undefined;
  const assetPath = config.asset_path ? parsePath(config.asset_path) : undefined;
  const sensorPath = config.sensor_path ? parsePath(config.sensor_path) : undefined;
  const fields = config.fields ? Object.entries(config.fields).map(([sensor, p]) => [sensor, parsePath(p)] as const) : undefined;

  const idFrom = (
    fixed: string | undefined,
    segment: number | undefined,
    path: Path | undefined,
    levels: readonly string[],
    item: unknown,
  ) => {
    const v = fixed ?? (segment !== undefined ? levels[segment] : path ? get(item, path) : undefined);
    return typeof v === 'string' && ID_RE.test(v) ? v : undefined;
  };

  const mapItem = (levels: readonly string[], item: unknown, arrival: number, out: MapResult) => {
    const asset = idFrom(config.asset, config.asset_segment, assetPath, levels, item);
    if (!asset) {
      out.errors.push('bad_id');
      return;
    }
    let t = arrival;
    if (timePath) {
      const parsed = parseTime(get(item, timePath), config.time_format);
      if (parsed === undefined) {
        out.errors.push('bad_time');
        return;
      }
      t = parsed;
    }
    if (fields) {
      for (const [sensor, p] of fields) {
        const value = toValue(get(item, p));
        if (value === undefined) out.errors.push('bad_value');
        else out.values.push({ asset, sensor, value, eventTime: t });
      }
      return;
    }
    const sensor = idFrom(config.sensor, config.sensor_segment, sensorPath, levels, item);
    if (!sensor) {
      out.errors.push('bad_id');
      return;
    }
    const value = toValue(get(item, valuePath));
    if (value === undefined) out.errors.push('bad_value');
    else out.values.push({ asset, sensor, value, eventTime: t });
  };

  return {
    config,
    matches,
    map(levels, payload, arrival, out) {
      if (config.format === 'number') {
        const text = payload.toString('utf8').trim();
        const value = /^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(text) ? Number(text) : Number.NaN;
        if (!Number.isFinite(value)) {
          out.errors.push('not_number');
          return;
        }
        const asset = idFrom(config.asset, config.asset_segment, undefined, levels, undefined);
        const sensor = idFrom(config.sensor, config.sensor_segment, undefined, levels, undefined);
        if (!asset || !sensor) out.errors.push('bad_id');
        else out.values.push({ asset, sensor, value, eventTime: arrival });
        return;
      }
      let doc: unknown;
      try {
        doc = JSON.parse(payload.toString('utf8'));
      } catch {
        out.errors.push('not_json');
        return;
      }
      const items = itemsPath ? get(doc, itemsPath) : Array.isArray(doc) ? doc : undefined;
      if (itemsPath && !Array.isArray(items)) {
        out.errors.push('no_items');
        return;
      }
      if (Array.isArray(items)) {
        if (items.length === 0) out.errors.push('no_items');
        for (const item of items) mapItem(levels, item, arrival, out);
        return;
      }
      if (doc === null || typeof doc !== 'object') {
        out.errors.push('bad_value');
        return;
      }
      mapItem(levels, doc, arrival, out);
    },
  };
}
