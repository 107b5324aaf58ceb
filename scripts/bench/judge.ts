/**
 * Before/after figures of the judge restructure (issue 16), in one run: the `detection` section's
 * workload (50 assets × 5 sensors, every detector type, windows, range trips, interlocks; readings/s
 * on one core and the reading → trip decision latency) measured on this tree and on main before
 * the restructure (commit BASELINE, extracted with `git archive` into a temp dir that borrows this
 * checkout's node_modules). Each tree runs in its own child process, alternately, ROUNDS times;
 * each figure is the median of its rounds, so a noisy moment hits both trees alike.
 */
import { execFileSync } from 'node:child_process';
import { symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from '../../test/helpers/tmp.js';
import type { BenchRow, BenchSection } from './types.js';
import { round } from './types.js';

const BASELINE = '4b337e8';
const ROUNDS = 5;
const ROOT = join(import.meta.dirname, '..', '..');

/** Runs the detection section of the tree at `root` in a child process; its rows. */
function detectionRows(root: string): BenchRow[] {
  const code = `import(${JSON.stringify(join(root, 'scripts/bench/detection.ts'))}).then((m) => m.detection.run()).then((r) => process.stdout.write(JSON.stringify(r)))`;
  const out = execFileSync(process.execPath, ['--import', 'tsx', '-e', code], { cwd: root, encoding: 'utf8' });
  return JSON.parse(out) as BenchRow[];
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;

export const judge: BenchSection = {
  name: 'judge',
  requires: ['git'],
  async run(): Promise<BenchRow[]> {
    const base = tempDir('edge-agent-bench-baseline-');
    try {
      execFileSync('sh', [
        '-c',
        `git -C "${ROOT}" archive ${BASELINE} agent drivers scripts test package.json tsconfig.json | tar -x -C "${base.path}"`,
      ]);
      symlinkSync(join(ROOT, 'node_modules'), join(base.path, 'node_modules'));
      const runs: Record<'before' | 'after', BenchRow[][]> = { before: [], after: [] };
      for (let i = 0; i < ROUNDS; i++) {
        runs.before.push(detectionRows(base.path));
        runs.after.push(detectionRows(ROOT));
      }
      const after = runs.after[0] as BenchRow[];
      return after.map((row, k) => {
        const value = median(runs.after.map((r) => (r[k] as BenchRow).value));
        const before = median(runs.before.map((r) => (r[k] as BenchRow).value));
        return {
          section: 'judge',
          name: row.name,
          value,
          unit: row.unit,
          baseline: { name: `main@${BASELINE} (before)`, value: before, ratio: round(value / before) },
          note: `median of ${ROUNDS} alternating runs per tree`,
        };
      });
    } finally {
      base.remove();
    }
  },
};
