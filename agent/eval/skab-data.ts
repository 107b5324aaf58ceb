/**
 * SKAB (Skoltech Anomaly Benchmark) CSV loader and the leaderboard file list.
 *
 * The data set is GPL-3.0: it is read from disk at evaluation/test time only
 * (default root /work/shared/data/skab, override with SKAB_DIR). Nothing from
 * it is copied into this project.
 *
 * File selection (matches SKAB's own notebooks, `core/utils.py::load_skab`):
 * every `*.csv` under the data root except `anomaly-free/` -> 34 files
 * (valve1: 16, valve2: 4, other: 14). Each file is split by row index:
 * rows [0, 400) are the fit set, rows [400, n) are scored.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';

export const SKAB_CHANNELS = [
  'Accelerometer1RMS',
  'Accelerometer2RMS',
  'Current',
  'Pressure',
  'Temperature',
  'Thermocouple',
  'Voltage',
  'Volume Flow RateRMS',
] as const;

export type SkabChannel = (typeof SKAB_CHANNELS)[number];

/** Rows [0, SKAB_FIT_ROWS) of each file are the fit set; the rest is scored. */
export const SKAB_FIT_ROWS = 400;

export const SKAB_DEFAULT_ROOT = '/work/shared/data/skab';

export interface SkabRun {
  /** Path relative to the data root, e.g. `valve1/3.csv`. */
  name: string;
  /** Row timestamps, epoch ms (the CSV's naive datetimes are read as UTC). */
  times: Float64Array;
  /** One column per channel, in SKAB_CHANNELS order. */
  channels: Float64Array[];
  anomaly: Uint8Array;
  changepoint: Uint8Array;
  length: number;
}

export function skabRoot(): string {
  return process.env.SKAB_DIR ?? SKAB_DEFAULT_ROOT;
}

/** `YYYY-MM-DD hh:mm:ss` -> epoch ms (UTC; no DST ambiguity). */
export function parseSkabTime(s: string): number {
  const m = /^(\d{4})-(\d{2})-(\d{2})[ T](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?$/.exec(s.trim());
  if (!m) throw new Error(`bad SKAB datetime: ${s}`);
  const frac = m[7] ? Number(`0.${m[7]}`) * 1000 : 0;
  return Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3]), Number(m[4]), Number(m[5]), Number(m[6])) + frac;
}

export function parseSkabCsv(text: string, name = '<memory>'): SkabRun {
  const lines = text.split(/\r?\n/).filter((l) => l.length > 0);
  const header = (lines[0] ?? '').split(';').map((h) => h.trim());
  const col = (h: string): number => {
    const i = header.indexOf(h);
    if (i < 0) throw new Error(`${name}: missing column ${h}`);
    return i;
  };
  const iTime = col('datetime');
  const iCh = SKAB_CHANNELS.map(col);
  const iAn = col('anomaly');
  const iCp = col('changepoint');
  const n = lines.length - 1;
  const times = new Float64Array(n);
  const channels = SKAB_CHANNELS.map(() => new Float64Array(n));
  const anomaly = new Uint8Array(n);
  const changepoint = new Uint8Array(n);
  for (let r = 0; r < n; r++) {
    const f = (lines[r + 1] as string).split(';');
    times[r] = parseSkabTime(f[iTime] ?? '');
    for (let c = 0; c < iCh.length; c++) {
      const v = Number(f[iCh[c] as number]);
      if (!Number.isFinite(v)) throw new Error(`${name}: row ${r} channel ${c} not numeric`);
      (channels[c] as Float64Array)[r] = v;
    }
    anomaly[r] = Number(f[iAn]) === 1 ? 1 : 0;
    changepoint[r] = Number(f[iCp]) === 1 ? 1 : 0;
  }
  return { name, times, channels, anomaly, changepoint, length: n };
}

export function loadSkabFile(path: string, name = path): SkabRun {
  return parseSkabCsv(readFileSync(path, 'utf8'), name);
}

/**
 * The 34 labelled files used by the SKAB leaderboard (relative paths, sorted
 * by folder then numerically). `anomaly-free/` is excluded, as upstream does.
 */
export function listSkabFiles(root = skabRoot()): string[] {
  const out: string[] = [];
  const walk = (dir: string): void => {
    for (const e of readdirSync(dir)) {
      const p = join(dir, e);
      if (statSync(p).isDirectory()) walk(p);
      else if (e.endsWith('.csv')) out.push(relative(root, p));
    }
  };
  walk(root);
  const key = (p: string): [string, number] => {
    const parts = p.split('/');
    return [parts.slice(0, -1).join('/'), Number.parseInt(parts.at(-1) ?? '', 10)];
  };
  return out
    .filter((p) => !p.includes('anomaly-free'))
    .sort((a, b) => {
      const [da, na] = key(a);
      const [db, nb] = key(b);
      return da === db ? na - nb : da < db ? -1 : 1;
    });
}

export function loadSkab(root = skabRoot()): SkabRun[] {
  return listSkabFiles(root).map((f) => loadSkabFile(join(root, f), f));
}

/** Row-major copy of rows [from, to) of a run (for fitting). */
export function rowsOf(run: SkabRun, from = 0, to = run.length): number[][] {
  const rows: number[][] = [];
  for (let r = from; r < to; r++) rows.push(run.channels.map((c) => c[r] as number));
  return rows;
}
