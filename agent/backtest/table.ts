/**
 * Historian exports for `edge-agent backtest`: a CSV (`,` or `;` separated, header row) or JSONL file,
 * read into columns in file order (never sorted: replay order is file order).
 *
 * Wide layout: one time column and one column per sensor (NAB: `timestamp,value`; SKAB:
 * `datetime;Accelerometer1RMS;...;anomaly;changepoint`). Long layout: columns `asset`, `sensor`,
 * `value` (and optionally `quality`), one reading per row. The time column is the first of
 * `timestamp`, `time`, `datetime`, `event_time`, `t`, or else the first column; values are ISO
 * times, `YYYY-MM-DD hh:mm:ss` (read as UTC), or epoch milliseconds.
 */
import { readFileSync } from 'node:fs';
import { QUALITIES, type Quality } from '../types.js';

export const TIME_COLUMNS = ['timestamp', 'time', 'datetime', 'event_time', 't'] as const;

export interface WideTable {
  layout: 'wide';
  times: Float64Array;
  /** Column name → values (NaN where empty or not a number). */
  columns: Map<string, Float64Array>;
}

export interface LongTable {
  layout: 'long';
  times: Float64Array;
  asset: string[];
  sensor: string[];
  values: Float64Array;
  quality: Quality[];
}

export type Table = WideTable | LongTable;

/** Parses a timestamp: ISO 8601, `YYYY-MM-DD hh:mm:ss[.fff]` (UTC unless it carries an offset), or epoch ms. */
export function parseTime(s: string): number {
  const v = s.trim();
  if (/^-?\d+(\.\d+)?$/.test(v)) return Number(v);
  const naive = /^\d{4}-\d\d-\d\d[ T]\d\d:\d\d(:\d\d(\.\d+)?)?$/.test(v);
  return Date.parse(naive ? `${v.replace(' ', 'T')}Z` : v);
}

function timeColumn(header: readonly string[]): number {
  for (const name of TIME_COLUMNS) {
    const i = header.findIndex((h) => h.toLowerCase() === name);
    if (i >= 0) return i;
  }
  return 0;
}

function fromRecords(header: string[], rows: Array<Array<string | number | null | undefined>>): Table {
  const tc = timeColumn(header);
  const times = new Float64Array(rows.length);
  const num = (v: unknown) => (v === '' || v === null || v === undefined ? Number.NaN : Number(v));
  const lower = header.map((h) => h.toLowerCase());
  if (lower.includes('sensor') && lower.includes('value')) {
    const ai = lower.indexOf('asset');
    const si = lower.indexOf('sensor');
    const vi = lower.indexOf('value');
    const qi = lower.indexOf('quality');
    const out: LongTable = { layout: 'long', times, asset: [], sensor: [], values: new Float64Array(rows.length), quality: [] };
    rows.forEach((r, k) => {
      times[k] = typeof r[tc] === 'number' ? (r[tc] as number) : parseTime(String(r[tc] ?? ''));
      out.asset.push(ai >= 0 ? String(r[ai] ?? '') : '');
      out.sensor.push(String(r[si] ?? ''));
      out.values[k] = num(r[vi]);
      const q = qi >= 0 ? String(r[qi] ?? 'good') || 'good' : 'good';
      if (!QUALITIES.includes(q as Quality)) throw new Error(`row ${k + 2}: unknown quality "${q}"`);
      out.quality.push(q as Quality);
    });
    return out;
  }
  const columns = new Map<string, Float64Array>();
  header.forEach((h, i) => {
    if (i !== tc) columns.set(h, new Float64Array(rows.length));
  });
  rows.forEach((r, k) => {
    times[k] = typeof r[tc] === 'number' ? (r[tc] as number) : parseTime(String(r[tc] ?? ''));
    header.forEach((h, i) => {
      if (i !== tc) (columns.get(h) as Float64Array)[k] = num(r[i]);
    });
  });
  return { layout: 'wide', times, columns };
}

export function parseCsv(text: string): Table {
  const lines = text.split(/\r?\n/).filter((l) => l.trim() !== '');
  const first = lines.shift() ?? '';
  const sep = first.includes(';') && !first.includes(',') ? ';' : ',';
  const header = first.split(sep).map((h) => h.trim().replace(/^"|"$/g, ''));
  return fromRecords(
    header,
    lines.map((l) => l.split(sep).map((f) => f.trim().replace(/^"|"$/g, ''))),
  );
}

export function parseJsonl(text: string): Table {
  const objs = text
    .split(/\r?\n/)
    .filter((l) => l.trim() !== '')
    .map((l, i) => {
      try {
        return JSON.parse(l) as Record<string, unknown>;
      } catch {
        throw new Error(`line ${i + 1}: not JSON`);
      }
    });
  const header: string[] = [];
  for (const o of objs) for (const k of Object.keys(o)) if (!header.includes(k)) header.push(k);
  return fromRecords(
    header,
    objs.map((o) => header.map((h) => o[h] as string | number | null | undefined)),
  );
}

export function readTable(file: string): Table {
  const text = readFileSync(file, 'utf8');
  return /\.jsonl?$/i.test(file) ? parseJsonl(text) : parseCsv(text);
}
