/**
 * NAB corpus loader (data in ../shared/data/nab, MIT; read at evaluation/test time only, never
 * copied into the project). Override the root with NAB_DIR.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { type NabProfileName, parseNabTime } from './nab-score.js';

export const NAB_DEFAULT_ROOT = '/work/shared/data/nab';

export function nabRoot(): string {
  return process.env.NAB_DIR ?? NAB_DEFAULT_ROOT;
}

export function nabAvailable(root = nabRoot()): boolean {
  return existsSync(join(root, 'labels', 'combined_windows.json'));
}

/** File name (`<category>/<name>.csv`) → anomaly windows [start, end] epoch ms. */
export function nabWindows(root = nabRoot()): Map<string, Array<[number, number]>> {
  const raw = JSON.parse(readFileSync(join(root, 'labels', 'combined_windows.json'), 'utf8')) as Record<
    string,
    Array<[string, string]>
  >;
  return new Map(Object.entries(raw).map(([k, ws]) => [k, ws.map(([a, b]) => [parseNabTime(a), parseNabTime(b)])]));
}

export interface NabSeries {
  name: string;
  times: Float64Array;
  values: Float64Array;
}

export function loadNabSeries(name: string, root = nabRoot()): NabSeries {
  const lines = readFileSync(join(root, 'data', name), 'utf8').split('\n');
  const times: number[] = [];
  const values: number[] = [];
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i] as string;
    const comma = line.indexOf(',');
    if (comma < 0) continue;
    times.push(parseNabTime(line.slice(0, comma)));
    values.push(Number(line.slice(comma + 1)));
  }
  return { name, times: Float64Array.from(times), values: Float64Array.from(values) };
}

export interface PublishedRow {
  file: string;
  score: number;
  tp: number;
  fp: number;
  fn: number;
}

/** A published detector's per-file raw scores (`results/<d>/<d>_<profile>_scores.csv`). */
export function publishedScores(detector: string, profile: NabProfileName, root = nabRoot()): PublishedRow[] {
  const path = join(root, 'results', detector, `${detector}_${profile}_scores.csv`);
  const lines = readFileSync(path, 'utf8').trim().split('\n');
  const head = (lines.shift() as string).split(',');
  const at = (f: string[], k: string) => f[head.indexOf(k)] as string;
  return lines
    .map((l) => l.split(','))
    .filter((f) => at(f, 'File') !== 'Totals' && at(f, 'File') !== '')
    .map((f) => ({
      file: at(f, 'File'),
      score: Number(at(f, 'Score')),
      tp: Number(at(f, 'TP')),
      fp: Number(at(f, 'FP')),
      fn: Number(at(f, 'FN')),
    }));
}

/** The published detectors listed in the data's README, best first. */
export const NAB_PUBLISHED = [
  'ARTime',
  'contextOSE',
  'numenta',
  'htmjava',
  'knncad',
  'earthgeckoSkyline',
  'relativeEntropy',
  'windowedGaussian',
  'bayesChangePt',
] as const;
