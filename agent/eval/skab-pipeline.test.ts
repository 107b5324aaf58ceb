/** The pipeline replay must give exactly the predictions of the detector it wraps (no drift between eval and agent). */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { StreamingDetector } from '../detectors/multivariate/streaming.js';
import { loadSkabFile, SKAB_FIT_ROWS, skabRoot } from './skab-data.js';
import { replaySkabFile, skabConfig } from './skab-pipeline.js';

const root = skabRoot();
const missing = existsSync(join(root, 'valve1')) ? undefined : `SKAB data not found at ${root} (set SKAB_DIR)`;
if (missing && process.env.CI) throw new Error(missing);
if (missing) console.warn(`\n!!! SKIPPING SKAB pipeline test: ${missing}\n`);

describe.skipIf(!!missing)('SKAB through the pipeline', () => {
  it.each(['valve1/1.csv', 'other/9.csv'])(
    '%s: multivariate detector in the pipeline = StreamingDetector called directly',
    (name) => {
      const run = loadSkabFile(join(root, name), name);
      const rep = replaySkabFile(run, skabConfig());
      const rows: Float64Array[] = [];
      for (let i = 0; i < SKAB_FIT_ROWS; i++) rows.push(Float64Array.from(run.channels, (c) => c[i] as number));
      const det = new StreamingDetector({
        channels: [0, 1, 2, 3, 6, 7],
        tauSec: 8,
        thresholdFactor: 1.4,
        onCount: 5,
        offCount: 5,
      }).fit(run.times.subarray(0, SKAB_FIT_ROWS), rows);
      const want = new Uint8Array(run.length - SKAB_FIT_ROWS);
      const row = new Float64Array(8);
      for (let i = SKAB_FIT_ROWS; i < run.length; i++) {
        for (let j = 0; j < 8; j++) row[j] = (run.channels[j] as Float64Array)[i] as number;
        want[i - SKAB_FIT_ROWS] = det.update(run.times[i] as number, row).alarm ? 1 : 0;
      }
      expect(Array.from(rep.predictions.get('mv-maxz') as Uint8Array)).toEqual(Array.from(want));
      expect(want.some((v) => v === 1)).toBe(true);
    },
  );
});
