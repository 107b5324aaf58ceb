/**
 * Research aid: runs the adaptive detector directly (no pipeline) over the 56 NAB files with the
 * internal constants given as JSON on the command line, and prints the corpus scores (PER_FILE=1:
 * per file). ADAPTIVE_TUNING was chosen with scripts/research/nab-sweep.ts (many settings at once,
 * with odd/even halves); `npm run eval:nab` runs the real pipeline through backtest.
 *   tsx scripts/research/nab-tune.ts '{"margin":1.6}' ['{"memory":2000}']
 */
import { parseConfigOrThrow } from '../../agent/config/load.js';
import { AdaptiveDetector, type AdaptiveTuning } from '../../agent/detectors/adaptive/detector.js';
import type { AdaptiveConfig } from '../../agent/detectors/adaptive/types.js';
import { loadNabSeries, nabWindows } from '../../agent/eval/nab-data.js';
import { NAB_COSTS, NAB_PROFILE_NAMES, normaliseNab, scoreNabFile } from '../../agent/eval/nab-score.js';

const tuning = JSON.parse(process.argv[2] ?? '{}') as Partial<AdaptiveTuning>;
const over = JSON.parse(process.argv[3] ?? '{}') as Record<string, unknown>;
const cfg = (
  await parseConfigOrThrow(
    `sources: [{ id: s, type: simulator }]\nassets: [{ id: a, sensors: [{ id: v, metric: other, source: s }] }]\ndetectors: [{ id: d, asset: a, sensor: v }]`,
  )
).detectors[0] as AdaptiveConfig;
const config = { ...cfg, ...over } as AdaptiveConfig;
const windows = nabWindows();
const raw: Record<string, number> = { standard: 0, reward_low_FP_rate: 0, reward_low_FN_rate: 0 };
let nw = 0;
const per: string[] = [];
for (const [file, ws] of windows) {
  const { times, values } = loadNabSeries(file);
  const det = new AdaptiveDetector(config, tuning);
  const hit = new Uint8Array(times.length);
  for (let i = 0; i < times.length; i++) if (det.judge(times[i] as number, values[i] as number, 'good') === 1) hit[i] = 1;
  for (const p of NAB_PROFILE_NAMES) {
    const s = scoreNabFile(times, (i) => hit[i] === 1, ws, NAB_COSTS[p]);
    raw[p] = (raw[p] as number) + s.score;
    if (p === 'standard') {
      nw += s.windows;
      per.push(`${file.padEnd(60)} ${s.score.toFixed(2).padStart(7)} ${s.detected}/${s.windows} fp ${s.fp}`);
    }
  }
}
if (process.env.PER_FILE) console.log(per.join('\n'));
console.log(
  NAB_PROFILE_NAMES.map((p) => `${p} ${normaliseNab(raw[p] as number, nw, NAB_COSTS[p]).toFixed(1)}`).join('  '),
  JSON.stringify(tuning),
  JSON.stringify(over),
);
