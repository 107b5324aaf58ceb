// 2-fold check of the hyperparameter choice: select on one half of the files, report on the other.
import { StreamingDetector } from '../../agent/detectors/multivariate/streaming.js';
import { loadSkab, SKAB_FIT_ROWS, type SkabRun } from '../../agent/eval/skab-data.js';
import { type SkabScore, scoreSkab } from '../../agent/eval/skab-score.js';

const runs = loadSkab();
const NO_TEMPS = [0, 1, 2, 3, 6, 7];
function predict(run: SkabRun, o: { tauSec: number; thresholdFactor: number; onCount: number; offCount: number }): Uint8Array {
  const rows: Float64Array[] = [];
  for (let i = 0; i < SKAB_FIT_ROWS; i++) rows.push(Float64Array.from(run.channels, (c) => c[i] as number));
  const det = new StreamingDetector({ ...o, channels: NO_TEMPS }).fit(run.times.subarray(0, SKAB_FIT_ROWS), rows);
  const out = new Uint8Array(run.length - SKAB_FIT_ROWS);
  const row = new Float64Array(8);
  for (let i = SKAB_FIT_ROWS; i < run.length; i++) {
    for (let j = 0; j < 8; j++) row[j] = (run.channels[j] as Float64Array)[i] as number;
    out[i - SKAB_FIT_ROWS] = det.update(run.times[i] as number, row).alarm ? 1 : 0;
  }
  return out;
}
const grid: { tauSec: number; thresholdFactor: number; onCount: number; offCount: number }[] = [];
for (const tauSec of [3, 5, 8, 10, 15])
  for (const thresholdFactor of [1.1, 1.25, 1.4, 1.5, 1.75])
    for (const [onCount, offCount] of [
      [1, 1],
      [3, 3],
      [5, 5],
      [5, 10],
      [8, 8],
    ] as [number, number][])
      grid.push({ tauSec, thresholdFactor, onCount, offCount });
const preds = grid.map((g) => runs.map((r) => predict(r, g)));
const score = (gi: number, idx: number[]): SkabScore =>
  scoreSkab(
    idx.map((i) => ({
      times: runs[i]!.times.subarray(SKAB_FIT_ROWS),
      labels: runs[i]!.anomaly.subarray(SKAB_FIT_ROWS),
      changepoints: runs[i]!.changepoint.subarray(SKAB_FIT_ROWS),
      predictions: preds[gi]![i]!,
    })),
  );
// objective: F1 + NAB/100 among configs with FAR < 13.55 %
const obj = (s: SkabScore) => (s.far < 0.1355 ? s.f1 + s.nab.standard / 100 : -1);
const folds = [runs.map((_, i) => i).filter((i) => i % 2 === 0), runs.map((_, i) => i).filter((i) => i % 2 === 1)];
const byGroup = (g: string) => runs.map((r, i) => (r.name.startsWith(g) ? i : -1)).filter((i) => i >= 0);
const splits: [string, number[], number[]][] = [
  ['even->odd', folds[0]!, folds[1]!],
  ['odd->even', folds[1]!, folds[0]!],
  ['valve1->valve2+other', byGroup('valve1'), [...byGroup('valve2'), ...byGroup('other')]],
  ['valve2+other->valve1', [...byGroup('valve2'), ...byGroup('other')], byGroup('valve1')],
];
for (const [name, tr, te] of splits) {
  let best = 0;
  for (let g = 1; g < grid.length; g++) if (obj(score(g, tr)) > obj(score(best, tr))) best = g;
  const s = score(best, te);
  console.log(
    `${name.padEnd(22)} chose ${JSON.stringify(grid[best])} -> held-out F1 ${s.f1.toFixed(4)} FAR ${(100 * s.far).toFixed(2)} MAR ${(100 * s.mar).toFixed(2)} NAB ${s.nab.standard.toFixed(2)}`,
  );
}
