/**
 * Research aid: runs the adaptive detector directly (no pipeline) over the 56 NAB files for each
 * candidate setting (one JSON object per line on stdin: {"tuning": {...}, "config": {...}}), and
 * prints the three profile scores with where the standard points go (windows detected, the value of
 * the first detections, the false positives' cost), on all files and on the odd/even halves
 * (files in sorted order), so a setting chosen on one half can be scored on the other. Last, the
 * held-out figure of choosing among all the candidates: per profile, the candidate best on the even
 * files scores the odd ones and vice versa (raw scores of both halves summed, then normalised).
 *   tsx scripts/research/nab-sweep.ts < candidates.jsonl
 */
import { readFileSync } from 'node:fs';
import { parseConfigOrThrow } from '../../agent/config/load.js';
import { AdaptiveDetector, type AdaptiveTuning } from '../../agent/detectors/adaptive/detector.js';
import type { AdaptiveConfig } from '../../agent/detectors/adaptive/types.js';
import { loadNabSeries, nabWindows } from '../../agent/eval/nab-data.js';
import { NAB_COSTS, NAB_PROFILE_NAMES, normaliseNab, scoreNabFile } from '../../agent/eval/nab-score.js';

const base = (
  await parseConfigOrThrow(
    `sources: [{ id: s, type: simulator }]\nassets: [{ id: a, sensors: [{ id: v, metric: other, source: s }] }]\ndetectors: [{ id: d, asset: a, sensor: v }]`,
  )
).detectors[0] as AdaptiveConfig;
const windows = [...nabWindows()].sort((a, b) => a[0].localeCompare(b[0]));
const series = windows.map(([f]) => loadNabSeries(f));
const lines = readFileSync(0, 'utf8')
  .split('\n')
  .filter((l) => l.trim());
const halves: Array<{ line: string; raw: Record<string, number>[] }> = [];
for (const l of lines) {
  const c = JSON.parse(l) as { tuning?: Partial<AdaptiveTuning>; config?: Record<string, unknown> };
  const config = { ...base, ...c.config } as AdaptiveConfig;
  const raw = [0, 1].map(() => ({ standard: 0, reward_low_FP_rate: 0, reward_low_FN_rate: 0, w: 0 }) as Record<string, number>);
  let det = 0;
  let nw = 0;
  let tp = 0;
  let fpCost = 0;
  let fps = 0;
  for (let f = 0; f < windows.length; f++) {
    const ws = (windows[f] as [string, Array<[number, number]>])[1];
    const { times, values } = series[f] as { times: Float64Array; values: Float64Array };
    const d = new AdaptiveDetector(config, c.tuning);
    const hit = new Uint8Array(times.length);
    for (let i = 0; i < times.length; i++) if (d.judge(times[i] as number, values[i] as number, 'good') === 1) hit[i] = 1;
    const h = raw[f % 2] as Record<string, number>;
    for (const p of NAB_PROFILE_NAMES) {
      const s = scoreNabFile(times, (i) => hit[i] === 1, ws, NAB_COSTS[p]);
      h[p] = (h[p] as number) + s.score;
      if (p === 'standard') {
        h.w = (h.w as number) + s.windows;
        nw += s.windows;
        det += s.detected;
        fps += s.fp;
      }
    }
    tp += scoreNabFile(times, (i) => hit[i] === 1, ws, { tpWeight: 1, fpWeight: 0, fnWeight: 0 }).score;
    fpCost -= scoreNabFile(times, (i) => hit[i] === 1, ws, { tpWeight: 0, fpWeight: 0.11, fnWeight: 0 }).score;
  }
  halves.push({ line: l, raw });
  const norm = (p: string, h: Record<string, number>[]) =>
    normaliseNab(
      h.reduce((a, x) => a + (x[p] as number), 0),
      h.reduce((a, x) => a + (x.w as number), 0),
      NAB_COSTS[p as 'standard'],
    );
  const all = NAB_PROFILE_NAMES.map((p) => norm(p, raw)).map((x) => x.toFixed(1));
  const odd = NAB_PROFILE_NAMES.map((p) => norm(p, [raw[1] as Record<string, number>]).toFixed(1));
  const even = NAB_PROFILE_NAMES.map((p) => norm(p, [raw[0] as Record<string, number>]).toFixed(1));
  console.log(
    `${all.join(' ')} | even ${even.join(' ')} | odd ${odd.join(' ')} | det ${det}/${nw} tp ${tp.toFixed(1)} fp ${fps} cost ${fpCost.toFixed(1)} | ${l}`,
  );
}

if (halves.length > 1) {
  const first = halves[0] as { raw: Record<string, number>[] };
  const w = [0, 1].map((h) => (first.raw[h] as Record<string, number>).w as number);
  const out = NAB_PROFILE_NAMES.map((p) => {
    const best = (h: number) =>
      halves.reduce((b, c) =>
        ((c.raw[h] as Record<string, number>)[p] as number) > ((b.raw[h] as Record<string, number>)[p] as number) ? c : b,
      );
    const onEven = best(0);
    const onOdd = best(1);
    const raw =
      ((onEven.raw[1] as Record<string, number>)[p] as number) + ((onOdd.raw[0] as Record<string, number>)[p] as number);
    return `${p} ${normaliseNab(raw, (w[0] as number) + (w[1] as number), NAB_COSTS[p]).toFixed(1)} (chosen on even: ${onEven.line}; on odd: ${onOdd.line})`;
  });
  console.log(`held out over ${halves.length} candidates:\n  ${out.join('\n  ')}`);
}
