/**
 * `edge-agent backtest FILE [options]`: replay a historian export through the real pipeline
 * (agent/backtest/replay.ts) and write what the detectors would have done.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { parseArgs } from 'node:util';
import { formatConfigError, loadConfigFile, parseConfig } from '../config/load.js';
import type { AgentConfig } from '../config/schema.js';
import { parseNabTime } from '../eval/nab-score.js';
import { type BacktestResult, backtest, type ColumnMapping, defaultColumns, type TimelineEntry } from './replay.js';
import { nabScores, pointCounts, pointRates } from './score.js';
import { readTable, type Table } from './table.js';

export const BACKTEST_USAGE = `usage: edge-agent backtest FILE [options]

Replays FILE (a CSV with a header row, or JSONL) through the real detection pipeline and interlocks
in event time and file order, with a replay clock (dry run: nothing is sent to any actuator).

  --config FILE          agent config whose detectors and interlocks to replay. Without it, every
                         value column becomes a sensor with the default detector (adaptive)
  --asset ID             asset of the columns (default: the config's only asset, or "asset")
  --sensor COL=[ASSET/]SENSOR   map a column to a configured sensor (repeatable; default: the
                         columns named like a sensor of the config)
  --detector ID          count only these detectors in the scores (repeatable; default: all)
  --out DIR              write detections.<fmt> (every raised/cleared event, with its row) and
                         timeline.<fmt> (alarm intervals and trips) to DIR
  --format csv|jsonl     output format (default csv)
  --labels FILE          NAB windows json ({"<file>": [[start, end], ...]}): print NAB scores
  --labels-key KEY       the key of this file in --labels (default: the key ending in FILE's name)
  --label-column COL     0/1 label column in FILE (SKAB: anomaly): print F1, FAR and MAR
  --json                 print the summary as JSON
`;

const LABEL_COLUMNS = new Set(['anomaly', 'changepoint', 'label', 'is_anomaly']);
const safeId = (s: string) =>
  s
    .replace(/[^A-Za-z0-9_.-]/g, '_')
    .replace(/^[^A-Za-z0-9]+/, '')
    .slice(0, 64) || 'value';

/** The config used without --config: one asset, each value column a sensor with the default detector. */
export async function defaultConfig(
  table: Table,
  asset: string,
  exclude: ReadonlySet<string>,
): Promise<{ config: AgentConfig; columns: ColumnMapping[] }> {
  if (table.layout !== 'wide') throw new Error('a long (asset,sensor,value) export needs --config');
  const columns = [...table.columns.keys()]
    .filter((c) => !exclude.has(c) && !LABEL_COLUMNS.has(c.toLowerCase()))
    .map((column) => ({ column, asset, sensor: safeId(column) }));
  const yaml = [
    'sources: [{ id: historian, type: simulator }]',
    `assets: [{ id: ${JSON.stringify(asset)}, sensors: [${columns.map((c) => `{ id: ${JSON.stringify(c.sensor)}, metric: other, source: historian }`).join(', ')}] }]`,
    `detectors: [${columns.map((c) => `{ id: ${JSON.stringify(c.sensor)}, asset: ${JSON.stringify(asset)}, sensor: ${JSON.stringify(c.sensor)} }`).join(', ')}]`,
  ].join('\n');
  const res = await parseConfig(yaml, 'backtest-default.yaml');
  if (!res.ok) throw new Error(res.errors.map(formatConfigError).join('\n'));
  return { config: res.config, columns };
}

function csvCell(v: unknown): string {
  if (v === null || v === undefined) return '';
  const s = typeof v === 'object' ? JSON.stringify(v) : String(v);
  return /[",\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

export function formatRows(
  rows: ReadonlyArray<Record<string, unknown>>,
  keys: readonly string[],
  format: 'csv' | 'jsonl',
): string {
  if (format === 'jsonl') return rows.map((r) => JSON.stringify(r)).join('\n') + (rows.length ? '\n' : '');
  return `${[keys.join(','), ...rows.map((r) => keys.map((k) => csvCell(r[k])).join(','))].join('\n')}\n`;
}

const iso = (t: number | null) => (t === null ? null : new Date(t).toISOString());

export function writeOutputs(res: BacktestResult, dir: string, format: 'csv' | 'jsonl'): void {
  mkdirSync(dir, { recursive: true });
  const det = res.detections.map((d) => ({ ...d, time: iso(d.event_time) }));
  writeFileSync(
    join(dir, `detections.${format}`),
    formatRows(
      det,
      [
        'row',
        'time',
        'event_time',
        'detector',
        'detector_type',
        'asset',
        'sensor',
        'state',
        'value',
        'severity',
        'trip',
        'evidence',
      ],
      format,
    ),
  );
  const tl = res.timeline.map((e: TimelineEntry) => ({ ...e, start_time: iso(e.start), end_time: iso(e.end) }));
  writeFileSync(
    join(dir, `timeline.${format}`),
    formatRows(
      tl,
      ['kind', 'detector', 'asset', 'sensor', 'start_time', 'end_time', 'start', 'end', 'start_row', 'end_row'],
      format,
    ),
  );
}

function windowsFor(labelsFile: string, key: string | undefined, file: string): Array<[number, number]> {
  const all = JSON.parse(readFileSync(labelsFile, 'utf8')) as Record<string, Array<[string, string]>>;
  const k = key ?? Object.keys(all).find((x) => x === file || x.endsWith(`/${basename(file)}`) || x === basename(file));
  if (k === undefined || !all[k]) throw new Error(`no entry for ${key ?? basename(file)} in ${labelsFile} (use --labels-key)`);
  const t = (s: string) => (/^\d{4}-\d\d-\d\d /.test(s) ? parseNabTime(s) : Date.parse(s));
  return all[k].map(([a, b]) => [t(a), t(b)]);
}

export async function backtestCommand(argv: string[]): Promise<number> {
  const { positionals, values } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      config: { type: 'string', short: 'c' },
      asset: { type: 'string' },
      sensor: { type: 'string', multiple: true },
      detector: { type: 'string', multiple: true },
      out: { type: 'string' },
      format: { type: 'string' },
      labels: { type: 'string' },
      'labels-key': { type: 'string' },
      'label-column': { type: 'string' },
      json: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  const file = positionals[0];
  if (values.help || !file) {
    process.stdout.write(BACKTEST_USAGE);
    return values.help ? 0 : 64;
  }
  const format = (values.format ?? 'csv') as 'csv' | 'jsonl';
  if (format !== 'csv' && format !== 'jsonl') throw new Error('--format is csv or jsonl');
  const table = readTable(file);
  const labelColumn = values['label-column'];
  let config: AgentConfig;
  let columns: ColumnMapping[] | undefined;
  if (values.config) {
    const res = await loadConfigFile(values.config);
    if (!res.ok) {
      for (const e of res.errors) process.stderr.write(`${formatConfigError(e)}\n`);
      return 78;
    }
    config = res.config;
  } else {
    ({ config, columns } = await defaultConfig(table, values.asset ?? 'asset', new Set(labelColumn ? [labelColumn] : [])));
  }
  if (values.sensor?.length) {
    const only = values.asset ?? (config.assets.length === 1 ? config.assets[0]?.id : undefined);
    columns = values.sensor.map((m) => {
      const eq = m.lastIndexOf('=');
      if (eq <= 0) throw new Error(`--sensor ${m}: expected COLUMN=[ASSET/]SENSOR`);
      const target = m.slice(eq + 1);
      const [asset, sensor] = target.includes('/') ? target.split('/', 2) : [only, target];
      if (!asset) throw new Error(`--sensor ${m}: which asset? (--asset ID or COLUMN=ASSET/SENSOR)`);
      return { column: m.slice(0, eq), asset, sensor: sensor as string };
    });
  }
  columns ??= defaultColumns(config, table);
  const res = backtest(config, table, {
    columns,
    ...(values.detector?.length ? { detectors: new Set(values.detector) } : {}),
  });
  if (values.out) writeOutputs(res, values.out, format);
  const raised = res.detections.filter((d) => d.state === 'raised').length;
  const summary: Record<string, unknown> = {
    file,
    rows: res.rows,
    readings: res.counters.readings,
    late: res.counters.late,
    out_of_order: res.counters.outOfOrder,
    raised,
    trips: res.timeline.filter((e) => e.kind === 'trip').length,
    elapsed_ms: Math.round(res.elapsedMs),
  };
  if (values.labels) {
    const nab = nabScores(res, windowsFor(values.labels, values['labels-key'], file));
    summary.nab = Object.fromEntries(
      nab.map((s) => [s.profile, { raw: s.raw, normalised: s.normalised, windows: s.windows, detected: s.detected, fp: s.fp }]),
    );
  }
  if (labelColumn) {
    if (table.layout !== 'wide' || !table.columns.has(labelColumn))
      throw new Error(`no label column "${labelColumn}" in ${file}`);
    const c = pointCounts(res.activeRows, table.columns.get(labelColumn) as Float64Array);
    summary.points = { ...c, ...pointRates(c) };
  }
  if (values.json) {
    process.stdout.write(`${JSON.stringify(summary, null, 2)}\n`);
    return 0;
  }
  const lines = [
    `${file}: ${res.rows} rows, ${res.counters.readings} readings (${res.counters.late} late, ${res.counters.outOfOrder} out of order) in ${summary.elapsed_ms} ms`,
    `  ${raised} alarms raised, ${summary.trips} trips (dry run)${values.out ? `; written to ${values.out}` : ''}`,
  ];
  if (summary.nab) {
    for (const [p, s] of Object.entries(
      summary.nab as Record<string, { raw: number; normalised: number; windows: number; detected: number; fp: number }>,
    ))
      lines.push(
        `  NAB ${p.padEnd(18)} ${s.normalised.toFixed(1).padStart(6)} (raw ${s.raw.toFixed(3)}; ${s.detected}/${s.windows} windows detected, ${s.fp} false positives)`,
      );
  }
  if (summary.points) {
    const p = summary.points as ReturnType<typeof pointRates> & { tp: number; fp: number; fn: number; tn: number };
    lines.push(
      `  F1 ${p.f1.toFixed(3)}  FAR ${(100 * p.far).toFixed(2)} %  MAR ${(100 * p.mar).toFixed(2)} %  (TP ${p.tp} FP ${p.fp} FN ${p.fn} TN ${p.tn})`,
    );
  }
  process.stdout.write(`${lines.join('\n')}\n`);
  return 0;
}
