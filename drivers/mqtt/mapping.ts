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

/** Exact powers of ten (10^0 … 10^22 are exact doubles). */
const POW10 = Array.from({ length: 23 }, (_, i) => 10 ** i);

/** What {@link scanFlat} found: the numbers under the two wanted keys (NaN when absent). */
interface Scanned {
  a: number;
  b: number;
}

const keyBytes = (k: string | undefined): Uint8Array | undefined =>
  k !== undefined && /^[\x20-\x7e]*$/.test(k) && !/["\\]/.test(k) ? Buffer.from(k, 'latin1') : undefined;

const isWs = (c: number) => c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d;

/**
 * Reads a flat JSON object of numbers (`{"value":51.2,"ts":1767225600000}`) straight from the bytes,
 * without decoding the payload to a string or building an object: the numbers under keys `ka` and `kb`
 * (the last one when a key repeats, as JSON.parse) go to `out`. Returns false, and the caller parses the
 * message as before, for anything else: a value that is not a number, a key with an escape or a
 * non-ASCII byte, a number that the exact fast path below cannot convert, or malformed JSON. So every
 * message it accepts gives what `JSON.parse` gives.
 *
 * A number is converted exactly when its digits form an integer below 2^53 and it has at most 22
 * decimals and no exponent: both operands of the one division are then exact doubles and the division
 * rounds once, as the correctly rounded conversion does.
 */
function scanFlat(p: Uint8Array, ka: Uint8Array, kb: Uint8Array | undefined, out: Scanned): boolean {
  const n = p.length;
  let i = 0;
  out.a = Number.NaN;
  out.b = Number.NaN;
  while (i < n && isWs(p[i] as number)) i++;
  if (p[i] !== 0x7b) return false; // {
  i++;
  while (i < n && isWs(p[i] as number)) i++;
  if (p[i] === 0x7d) return false; // {}: let JSON.parse decide
  for (;;) {
    if (p[i] !== 0x22) return false; // "
    const k0 = ++i;
    while (i < n) {
      const c = p[i] as number;
      if (c === 0x22) break;
      if (c === 0x5c || c < 0x20 || c > 0x7e) return false;
      i++;
    }
    if (i >= n) return false;
    const k1 = i++;
    while (i < n && isWs(p[i] as number)) i++;
    if (p[i] !== 0x3a) return false; // :
    i++;
    while (i < n && isWs(p[i] as number)) i++;
    // number: -?(0|[1-9][0-9]*)(\.[0-9]+)?
    let neg = false;
    if (p[i] === 0x2d) {
      neg = true;
      i++;
    }
    let m = 0;
    let digits = 0;
    let c = p[i] as number;
    if (c === 0x30) {
      i++;
      c = p[i] as number;
      if (c >= 0x30 && c <= 0x39) return false; // leading zero
    } else if (c >= 0x31 && c <= 0x39) {
      while (c >= 0x30 && c <= 0x39) {
        m = m * 10 + (c - 0x30);
        digits++;
        c = p[++i] as number;
      }
    } else return false;
    let frac = 0;
    if (c === 0x2e) {
      c = p[++i] as number;
      if (!(c >= 0x30 && c <= 0x39)) return false;
      while (c >= 0x30 && c <= 0x39) {
        m = m * 10 + (c - 0x30);
        frac++;
        digits++;
        c = p[++i] as number;
      }
    }
    if (c === 0x65 || c === 0x45) return false; // exponent: JSON.parse
    if (digits > 15 || frac > 22) return false; // may not be exact: JSON.parse
    let v = frac === 0 ? m : m / (POW10[frac] as number);
    if (neg) v = -v;
    const len = k1 - k0;
    if (len === ka.length && same(p, k0, ka)) out.a = v;
    if (kb !== undefined && len === kb.length && same(p, k0, kb)) out.b = v;
    while (i < n && isWs(p[i] as number)) i++;
    if (p[i] === 0x2c) {
      i++;
      while (i < n && isWs(p[i] as number)) i++;
      continue;
    }
    if (p[i] !== 0x7d) return false;
    i++;
    while (i < n && isWs(p[i] as number)) i++;
    return i === n;
  }
}

function same(p: Uint8Array, at: number, k: Uint8Array): boolean {
  for (let j = 0; j < k.length; j++) if (p[at + j] !== k[j]) return false;
  return true;
}

/** One value read by `CompiledSubscription.single`. */
export interface SingleValue {
  value: number;
  eventTime: number;
}

export interface CompiledSubscription {
  readonly config: SubscriptionConfig;
  matches(levels: readonly string[]): boolean;
  /** Maps one message; appends to `out`. */
  map(levels: readonly string[], payload: Buffer, arrival: number, out: MapResult): void;
  /**
   * The asset and sensor ids when the topic alone gives both (fixed ids or topic levels, one value per
   * message: no `fields`, no id paths); 'bad_id' when a level is not a valid id; undefined when the
   * payload decides. The source caches this per topic.
   */
  topicIds(levels: readonly string[]): { asset: string; sensor: string } | 'bad_id' | undefined;
  /**
   * For a subscription whose `topicIds` gives both ids: reads the message's one value into `out` and
   * returns undefined, or returns what is wrong with it, or null when the payload holds several items
   * (then `map` handles it). Same results as `map` for those messages, without per-message allocations
   * besides the parsed JSON.
   */
  single(payload: Buffer, arrival: number, out: SingleValue): MalformedReason | null | undefined;
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

  // A one-key path read straight off the parsed object: `single` accepts only numbers, booleans and
  // strings there, and no inherited property of a JSON object is one, so no own-property check is
  // needed (Object.hasOwn per key showed in a profile at 20k messages/s).
  const oneKey = (p: Path): string | undefined => (p.length === 1 && typeof p[0] === 'string' ? p[0] : undefined);
  const valueKey = oneKey(valuePath);
  const timeKey = timePath ? oneKey(timePath) : undefined;

  const idsFromTopic =
    !fields &&
    (config.asset !== undefined || config.asset_segment !== undefined) &&
    (config.sensor !== undefined || config.sensor_segment !== undefined);

  const NUMBER_RE = /^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/;
  // The byte-level fast path of `single` (scanFlat): one-key value and time paths, the JSON format.
  const valueBytes = config.format === 'number' || itemsPath ? undefined : keyBytes(valueKey);
  const timeBytes = timeKey !== undefined ? keyBytes(timeKey) : undefined;
  const scanFast = valueBytes !== undefined && (!timePath || timeBytes !== undefined);
  const scanned: Scanned = { a: Number.NaN, b: Number.NaN };

  return {
    config,
    matches,
    topicIds(levels) {
      if (!idsFromTopic) return undefined;
      const asset = idFrom(config.asset, config.asset_segment, undefined, levels, undefined);
      const sensor = idFrom(config.sensor, config.sensor_segment, undefined, levels, undefined);
      return asset && sensor ? { asset, sensor } : 'bad_id';
    },
    single(payload, arrival, out) {
      if (config.format === 'number') {
        const text = payload.toString('utf8').trim();
        const value = NUMBER_RE.test(text) ? Number(text) : Number.NaN;
        if (!Number.isFinite(value)) return 'not_number';
        out.value = value;
        out.eventTime = arrival;
        return undefined;
      }
      if (scanFast && scanFlat(payload, valueBytes, timeBytes, scanned) && !Number.isNaN(scanned.a)) {
        let t = arrival;
        if (timePath) {
          if (Number.isNaN(scanned.b)) return 'bad_time';
          const parsed = parseTime(scanned.b, config.time_format);
          if (parsed === undefined) return 'bad_time';
          t = parsed;
        }
        out.value = scanned.a;
        out.eventTime = t;
        return undefined;
      }
      let doc: unknown;
      try {
        doc = JSON.parse(payload.toString('utf8'));
      } catch {
        return 'not_json';
      }
      if (itemsPath || Array.isArray(doc)) return null;
      if (doc === null || typeof doc !== 'object') return 'bad_value';
      const o = doc as Record<string, unknown>;
      let t = arrival;
      if (timePath) {
        const parsed = parseTime(timeKey !== undefined ? o[timeKey] : get(doc, timePath), config.time_format);
        if (parsed === undefined) return 'bad_time';
        t = parsed;
      }
      const value = toValue(valueKey !== undefined ? o[valueKey] : get(doc, valuePath));
      if (value === undefined) return 'bad_value';
      out.value = value;
      out.eventTime = t;
      return undefined;
    },
    map(levels, payload, arrival, out) {
      if (config.format === 'number') {
        const text = payload.toString('utf8').trim();
        const value = NUMBER_RE.test(text) ? Number(text) : Number.NaN;
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
