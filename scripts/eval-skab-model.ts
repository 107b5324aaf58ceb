/**
 * SKAB rows for the on-device model, alone and in an ensemble with a simple rule.
 *
 *   npx tsx scripts/eval-skab-model.ts [--window 10] [--quantile 0.99] [--margin 1.5]
 *
 * Protocol: per file, window features (agent/model/features.ts, 8 channels × mean/std/min/max/
 * rms/slope over the last `window` rows: causal) of rows 0–399 are written to a temp directory,
 * scripts/train-model.py fits one autoencoder per file there (one Python process for all 34), and
 * the agent's own card check and runner (agent/model/runner.ts) score rows 400+. Predictions use
 * the agent's rule: raise above the card threshold, clear below threshold × 0.8.
 * The rule: per channel, |value − mean| > 4 std of rows 0–399 on any channel.
 * Ensembles combine the two through agent/model/ensemble.ts.
 *
 * SKAB is GPL-3.0: everything fitted here lives in the temp directory and is deleted afterwards.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { loadSkab, SKAB_FIT_ROWS, type SkabRun } from '../agent/eval/skab-data.js';
import { type SkabScoreFile, scoreSkab } from '../agent/eval/skab-score.js';
import { computeFeatures, FeatureLayout } from '../agent/judge/features.js';
import { readCardFile } from '../agent/model/card.js';
import { type EnsemblePolicy, Ensembles } from '../agent/model/ensemble.js';
import { FEATURE_STATS, modelStat } from '../agent/model/features.js';
import { InlineRunner } from '../agent/model/runner.js';
import { tempDir } from '../test/helpers/tmp.js';

const { values } = parseArgs({
  options: {
    window: { type: 'string', default: '10' },
    quantile: { type: 'string', default: '0.99' },
    margin: { type: 'string', default: '1.5' },
    epochs: { type: 'string', default: '150' },
    keep: { type: 'boolean', default: false },
  },
});
const W = Number(values.window);
const CH = ['a1', 'a2', 'cur', 'pres', 'temp', 'thermo', 'volt', 'flow'];
const NAMES = CH.flatMap((c) => FEATURE_STATS.map((s) => `${c}.${s}`));

const layout = new FeatureLayout();
const scratch = new Float64Array(layout.size);
let good = new Uint8Array(0);

/** The model's feature vector of rows [end - W + 1, end], computed by the window engine's features. */
function windowAt(run: SkabRun, end: number): Float32Array {
  const from = Math.max(0, end - W + 1);
  if (good.length < run.times.length) good = new Uint8Array(run.times.length).fill(1);
  const out = new Float32Array(NAMES.length);
  CH.forEach((_, c) => {
    computeFeatures(run.times, run.channels[c] as Float64Array, good, from, end + 1, layout, scratch);
    FEATURE_STATS.forEach((st, k) => {
      out[c * FEATURE_STATS.length + k] = modelStat(scratch, st);
    });
  });
  return out;
}

const t0 = performance.now();
const runs = loadSkab();
const tmp = tempDir('edge-agent-skab-model-');
try {
  const jobs = runs.map((run, i) => {
    const lines = [`# window_ms=${W * 1000}`, `asset,window_start,${NAMES.join(',')}`];
    for (let r = W - 1; r < SKAB_FIT_ROWS; r++)
      lines.push(`f${i},${run.times[r]},${Array.from(windowAt(run, r) ?? []).join(',')}`);
    const input = join(tmp.path, `f${i}.csv`);
    writeFileSync(input, `${lines.join('\n')}\n`);
    return {
      input,
      out_dir: tmp.path,
      name: `f${i}`,
      version: `skab-eval-f${i}`,
      quantile: Number(values.quantile),
      margin: Number(values.margin),
      epochs: Number(values.epochs),
      seed: 1,
      no_timestamp: true,
      description: 'SKAB evaluation only (GPL-3.0 data): never shipped',
    };
  });
  const manifest = join(tmp.path, 'jobs.json');
  writeFileSync(manifest, JSON.stringify(jobs));
  const tTrain = performance.now();
  execFileSync('/usr/bin/python3', [new URL('./train-model.py', import.meta.url).pathname, '--manifest', manifest, '--quiet'], {
    stdio: 'inherit',
  });
  const trainSecs = (performance.now() - tTrain) / 1000;

  const runner = new InlineRunner();
  const names = [
    'model alone',
    'rule alone (abs z > 4 on any channel)',
    'ensemble any(model, rule)',
    'ensemble all(model, rule)',
  ];
  const files: SkabScoreFile[][] = names.map(() => []);
  for (let i = 0; i < runs.length; i++) {
    const run = runs[i] as SkabRun;
    const f = readCardFile(join(tmp.path, `f${i}.card.json`));
    await runner.load(i + 1, f);
    const rows = run.length - SKAB_FIT_ROWS;
    const n = NAMES.length;
    const data = new Float32Array(rows * n);
    for (let r = 0; r < rows; r++) data.set(windowAt(run, SKAB_FIT_ROWS + r) as Float32Array, r * n);
    const scores = await runner.run(i + 1, data, rows);
    await runner.release(i + 1);

    const mu = run.channels.map((c) => c.subarray(0, SKAB_FIT_ROWS).reduce((a, b) => a + b, 0) / SKAB_FIT_ROWS);
    const sd = run.channels.map((c, j) =>
      Math.max(
        1e-9,
        Math.sqrt(c.subarray(0, SKAB_FIT_ROWS).reduce((a, b) => a + (b - (mu[j] as number)) ** 2, 0) / SKAB_FIT_ROWS),
      ),
    );
    const policies: EnsemblePolicy[] = [
      { id: 'any', asset: 'p', members: ['model', 'rule'], combine: 'any', severity: 'warning', trip: true },
      { id: 'all', asset: 'p', members: ['model', 'rule'], combine: 'all', severity: 'warning', trip: true },
    ];
    const ens = new Ensembles(policies);
    const state = { any: 0, all: 0 };
    const preds = names.map(() => new Uint8Array(rows));
    let modelOn = false;
    let ruleOn = false;
    for (let r = 0; r < rows; r++) {
      const row = SKAB_FIT_ROWS + r;
      const s = scores[r] as number;
      const nextModel: boolean = modelOn ? s >= f.card.threshold * 0.8 : s > f.card.threshold;
      const nextRule = run.channels.some((c, j) => Math.abs((c[row] as number) - (mu[j] as number)) > 4 * (sd[j] as number));
      const t = run.times[row] as number;
      for (const [member, now, prev] of [
        ['model', nextModel, modelOn],
        ['rule', nextRule, ruleOn],
      ] as const) {
        if (now === prev) continue;
        for (const a of ens.update('p', member, now, t)) state[a.detector as 'any' | 'all'] = a.state === 'raised' ? 1 : 0;
      }
      modelOn = nextModel;
      ruleOn = nextRule;
      (preds[0] as Uint8Array)[r] = modelOn ? 1 : 0;
      (preds[1] as Uint8Array)[r] = ruleOn ? 1 : 0;
      (preds[2] as Uint8Array)[r] = state.any;
      (preds[3] as Uint8Array)[r] = state.all;
    }
    const base = {
      times: run.times.subarray(SKAB_FIT_ROWS),
      labels: run.anomaly.subarray(SKAB_FIT_ROWS),
      changepoints: run.changepoint.subarray(SKAB_FIT_ROWS),
    };
    preds.forEach((p, k) => {
      (files[k] as SkabScoreFile[]).push({ ...base, predictions: p });
    });
  }
  await runner.close();

  const pct = (v: number) => (v * 100).toFixed(2);
  const out = [
    `SKAB, ${runs.length} files, per-file autoencoder on rows 0–${SKAB_FIT_ROWS - 1} (window ${W} rows, ${NAMES.length} features, threshold q${values.quantile} × ${values.margin}, ${values.epochs} epochs); training ${trainSecs.toFixed(1)} s, total ${((performance.now() - t0) / 1000).toFixed(1)} s`,
    '',
    '| Detector | F1 | FAR % | MAR % | NAB std | NAB LowFP | NAB LowFN |',
    '| --- | --- | --- | --- | --- | --- | --- |',
  ];
  const rows: Array<Record<string, unknown>> = [];
  names.forEach((name, k) => {
    const s = scoreSkab(files[k] as SkabScoreFile[]);
    rows.push({ name: `onnx ${name}`, f1: s.f1, far: s.far, mar: s.mar, nab: s.nab, best: false });
    out.push(
      `| ${name} | ${s.f1.toFixed(4)} | ${pct(s.far)} | ${pct(s.mar)} | ${s.nab.standard.toFixed(2)} | ${s.nab.lowFp.toFixed(2)} | ${s.nab.lowFn.toFixed(2)} |`,
    );
  });
  process.stdout.write(`${out.join('\n')}\n`);
  // npm run eval:skab runs the pipeline rows first; the model and ensemble rows join the same file.
  const json = 'data/eval-skab.json';
  if (existsSync(json)) {
    const doc = JSON.parse(readFileSync(json, 'utf8')) as { rows: Array<Record<string, unknown>> };
    doc.rows = [...doc.rows.filter((r) => !String(r.name).startsWith('onnx ')), ...rows];
    writeFileSync(json, `${JSON.stringify(doc, null, 2)}\n`);
    process.stdout.write(`added ${rows.length} model rows to ${json}\n`);
  }
} finally {
  if (!values.keep) tmp.remove();
}
