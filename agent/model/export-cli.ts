/** `edge-agent export --normal ...` (argument checks and output); the logic is in export.ts. */
import { existsSync } from 'node:fs';
import { duration } from '../config/schema.js';
import { openDb } from '../store/db.js';
import { exportNormalWindows, writeTrainingCsv } from './export.js';

export interface ExportArgs {
  normal?: boolean;
  out?: string;
  since?: string;
  until?: string;
  margin?: string;
  asset?: string[];
}

const EX_USAGE = 64;

function time(name: string, v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  const t = Date.parse(v);
  if (Number.isNaN(t)) throw new Error(`--${name}: "${v}" is not an ISO date/time (e.g. 2026-01-31T00:00:00Z)`);
  return t;
}

/** Returns the process exit code. */
export function runExport(dbPath: string, a: ExportArgs): number {
  if (!a.normal || !a.out) {
    process.stderr.write('export: --normal and --out FILE are required (only normal-operation export exists)\n');
    return EX_USAGE;
  }
  let since: number | undefined;
  let until: number | undefined;
  let marginMs: number;
  try {
    since = time('since', a.since);
    until = time('until', a.until);
    const m = duration.safeParse(a.margin ?? '10m');
    if (!m.success) throw new Error(`--margin: "${a.margin}" is not a duration (e.g. 10m)`);
    marginMs = m.data;
  } catch (err) {
    process.stderr.write(`export: ${(err as Error).message}\n`);
    return EX_USAGE;
  }
  if (!existsSync(dbPath)) {
    process.stderr.write(`export: no event store at ${dbPath}\n`);
    return 1;
  }
  const db = openDb(dbPath, 'NORMAL', true);
  try {
    const r = exportNormalWindows(db, { since, until, marginMs, assets: a.asset });
    writeTrainingCsv(a.out, r, dbPath);
    process.stdout.write(
      `wrote ${r.rows.length} normal windows (${r.features.length} features, ${r.windowMs} ms) to ${a.out}; skipped ${r.skippedNearEvents} near anomalies/trips/alarms, ${r.skippedIncomplete} incomplete\n`,
    );
    return r.rows.length > 0 ? 0 : 1;
  } finally {
    db.close();
  }
}
