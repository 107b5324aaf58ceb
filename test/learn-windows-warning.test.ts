import { describe, expect, it } from 'vitest';
import { parseConfigOrThrow } from '../agent/config/load.js';
import { safetyWarnings } from '../agent/config/semantic.js';

const cfg = (detector: string) =>
  parseConfigOrThrow(
    `sources: [{ id: s, type: simulator }]\nassets: [{ id: a, sensors: [{ id: v, metric: other, source: s }] }]\ndetectors: [${detector}]`,
  );

describe('learn.readings of a window detector (issue 15)', () => {
  it('validate says how long learning lasts when readings count closed windows', async () => {
    const c = await cfg('{ id: z, type: zscore, asset: a, sensor: v, limit: 4, window: { type: tumbling, size: 1h } }');
    expect(safetyWarnings(c)).toMatchObject([
      { path: ['detectors', 0, 'learn', 'readings'], message: expect.stringContaining('400 windows, 16.7 days without alarms') },
    ]);
  });

  it('no warning in point mode, with learn.duration, or for short windows', async () => {
    for (const d of [
      '{ id: z, type: zscore, asset: a, sensor: v, limit: 4 }',
      '{ id: z, type: zscore, asset: a, sensor: v, limit: 4, window: { type: tumbling, size: 1h }, learn: { duration: 8h } }',
      '{ id: z, type: zscore, asset: a, sensor: v, limit: 4, window: { type: tumbling, size: 1s } }',
    ])
      expect(safetyWarnings(await cfg(d))).toEqual([]);
  });
});
