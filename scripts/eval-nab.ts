/**
 * `npm run eval:nab`: the 56 NAB series (../shared/data/nab, MIT) replayed through `edge-agent
 * backtest` (the real pipeline, replay clock) with ONE config for every file, scored with NAB's
 * three profiles, beside the published detectors (their per-file raw scores, normalised the same way).
 *
 *   tsx scripts/eval-nab.ts [--config FILE]   (default: each file's column named as the only sensor,
 *                                              i.e. the default detector, adaptive, with no settings)
 * Every raise of a detector is one detection at the row that produced it (NAB scores detections).
 */
import { basename } from 'node:path';
import { parseArgs } from 'node:util';
import { defaultConfig } from '../agent/backtest/cli.js';
import { backtest } from '../agent/backtest/replay.js';
import { nabScores } from '../agent/backtest/score.js';
import { readTable } from '../agent/backtest/table.js';
import { formatConfigError, loadConfigFile } from '../agent/config/load.js';
import type { AgentConfig } from '../agent/config/schema.js';
import { NAB_PUBLISHED, nabAvailable, nabRoot, nabWindows, publishedScores } from '../agent/eval/nab-data.js';
import { NAB_COSTS, NAB_PROFILE_NAMES, type NabProfileName, normaliseNab } from '../agent/eval/nab-score.js';

const { values } = parseArgs({ options: { config: { type: 'string' }, 'per-file': { type: 'boolean' } } });
if (!nabAvailable()) {
  process.stderr.write(`NAB corpus not found at ${nabRoot()} (set NAB_DIR)\n`);
  process.exit(1);
}
let fixed: AgentConfig | undefined;
if (values.config) {
  const res = await loadConfigFile(values.config);
  if (!res.ok) throw new Error(res.errors.map(formatConfigError).join('\n'));
  fixed = res.config;
}

const windows = nabWindows();
const raw: Record<NabProfileName, number> = { standard: 0, reward_low_FP_rate: 0, reward_low_FN_rate: 0 };
let nWindows = 0;
let detected = 0;
let fps = 0;
let rows = 0;
let ms = 0;
const started = performance.now();
for (const [file, ws] of windows) {
  const table = readTable(`${nabRoot()}/data/${file}`);
  const { config, columns } = fixed
    ? {
        config: fixed,
        columns: [{ column: 'value', asset: fixed.assets[0]?.id ?? '', sensor: fixed.assets[0]?.sensors[0]?.id ?? '' }],
      }
    : await defaultConfig(table, 'asset', new Set());
  const res = backtest(config, table, { columns });
  rows += res.rows;
  ms += res.elapsedMs;
  const scores = nabScores(res, ws);
  for (const s of scores) {
    raw[s.profile] += s.raw;
    if (s.profile === 'standard') {
      nWindows += s.windows;
      detected += s.detected;
      fps += s.fp;
      if (values['per-file'])
        process.stdout.write(
          `${basename(file).padEnd(48)} ${s.raw.toFixed(3).padStart(8)}  ${s.detected}/${s.windows} windows, ${s.fp} FP\n`,
        );
    }
  }
}
const norm = (p: NabProfileName, r: number) => normaliseNab(r, nWindows, NAB_COSTS[p]);
const line = (name: string, s: number[]) => `| ${name.padEnd(30)} | ${s.map((x) => x.toFixed(1).padStart(8)).join(' | ')} |`;
const out = [
  `NAB, ${windows.size} files, ${nWindows} windows, one config (${values.config ?? 'default: adaptive, no settings'}), causal replay through the pipeline`,
  `${rows} rows replayed in ${(ms / 1000).toFixed(1)} s of pipeline time (${((performance.now() - started) / 1000).toFixed(1)} s with loading and scoring)`,
  `edge-agent: ${detected}/${nWindows} windows detected, ${fps} false-positive detections`,
  '',
  `| ${'detector'.padEnd(30)} | standard | low FP   | low FN   |`,
  `|${'-'.repeat(32)}|----------|----------|----------|`,
  line(
    'edge-agent (this run)',
    NAB_PROFILE_NAMES.map((p) => norm(p, raw[p])),
  ),
];
for (const det of NAB_PUBLISHED) {
  out.push(
    line(
      `${det} (published)`,
      NAB_PROFILE_NAMES.map((p) =>
        norm(
          p,
          publishedScores(det, p).reduce((a, r) => a + r.score, 0),
        ),
      ),
    ),
  );
}
process.stdout.write(`${out.join('\n')}\n`);
