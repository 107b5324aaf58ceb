/**
 * npm run bench [-- SECTION ...]: runs the benchmark sections, prints a table and writes the same
 * figures to data/bench-results.json. Timing is measured here, never asserted in tests.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { actuation } from './bench/actuation.js';
import { adaptive } from './bench/adaptive.js';
import { detection } from './bench/detection.js';
import { drivers } from './bench/drivers.js';
import { failsafe } from './bench/failsafe.js';
import { footprint } from './bench/footprint.js';
import { foundation } from './bench/foundation.js';
import { judge } from './bench/judge.js';
import { kafka } from './bench/kafka.js';
import { model } from './bench/model.js';
import { scale } from './bench/scale.js';
import { sync } from './bench/sync.js';
import type { BenchRow, BenchSection } from './bench/types.js';

const SECTIONS: BenchSection[] = [
  foundation,
  detection,
  judge,
  adaptive,
  model,
  drivers,
  actuation,
  failsafe,
  sync,
  kafka,
  footprint,
  scale,
];

const wanted = process.argv.slice(2);
const rows: BenchRow[] = [];
const skipped: Array<{ section: string; reason: string }> = [];
for (const section of SECTIONS) {
  if (wanted.length > 0 && !wanted.includes(section.name)) continue;
  process.stderr.write(`bench: ${section.name} ...\n`);
  try {
    rows.push(...(await section.run()));
  } catch (err) {
    skipped.push({ section: section.name, reason: (err as Error).message });
    process.stderr.write(`bench: ${section.name} FAILED: ${(err as Error).message}\n`);
  }
}

const fmt = (v: number) => (Math.abs(v) >= 1000 ? Math.round(v).toLocaleString('en-US') : String(v));
const lines = rows.map((r) => {
  const base = r.baseline ? `  vs ${r.baseline.name}: ${fmt(r.baseline.value)} (ratio ${r.baseline.ratio})` : '';
  return `${r.section.padEnd(12)} ${r.name.padEnd(90)} ${fmt(r.value).padStart(14)} ${r.unit}${base}${r.note ? `  [${r.note}]` : ''}`;
});
process.stdout.write(`${lines.join('\n')}\n`);
mkdirSync('data', { recursive: true });
// A run of some sections keeps the other sections' rows of the previous file.
const OUT = 'data/bench-results.json';
const ran = new Set(SECTIONS.filter((s) => wanted.length === 0 || wanted.includes(s.name)).map((s) => s.name));
const kept: BenchRow[] = existsSync(OUT)
  ? ((JSON.parse(readFileSync(OUT, 'utf8')) as { rows?: BenchRow[] }).rows ?? []).filter((r) => !ran.has(r.section))
  : [];
const result = {
  generated_at: new Date().toISOString(),
  machine: { cpus: cpus().length, cpu_model: cpus()[0]?.model, node: process.version },
  rows: [...kept, ...rows],
  failed: skipped,
};
writeFileSync(OUT, `${JSON.stringify(result, null, 2)}\n`);
process.stdout.write(`wrote ${OUT}\n`);
if (skipped.length > 0) process.exitCode = 1;
