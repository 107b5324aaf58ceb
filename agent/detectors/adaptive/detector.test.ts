import { describe, expect, it } from 'vitest';
import { parseConfigOrThrow } from '../../config/load.js';
import { safetyWarnings } from '../../config/semantic.js';
import { AdaptiveDetector } from './detector.js';
import type { AdaptiveConfig } from './types.js';

async function config(extra = ''): Promise<AdaptiveConfig> {
  const c = await parseConfigOrThrow(
    `sources: [{ id: s, type: simulator }]\nassets: [{ id: a, sensors: [{ id: v, metric: other, source: s }] }]\ndetectors: [{ id: d, asset: a, sensor: v${extra} }]`,
  );
  return c.detectors[0] as AdaptiveConfig;
}

/** Deterministic noise in [-1, 1). */
function noise(seed: number): () => number {
  let s = seed;
  return () => {
    s = (s * 1103515245 + 12345) & 0x7fffffff;
    return (2 * s) / 0x7fffffff - 1;
  };
}

/** Runs a series through a detector; returns the index of every change as [i, change]. */
function run(det: AdaptiveDetector, xs: ArrayLike<number>, from = 0): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  for (let i = 0; i < xs.length; i++) {
    const c = det.judge(1000 * (from + i), xs[i] as number, 'good');
    if (c !== 0) out.push([i, c]);
  }
  return out;
}

function series(n: number, f: (i: number, r: number) => number, seed = 1): Float64Array {
  const r = noise(seed);
  return Float64Array.from({ length: n }, (_, i) => f(i, r()));
}

describe('adaptive detector', () => {
  it('is what a detector entry with only the sensor becomes; every default is filled in', async () => {
    const c = await config();
    expect(c).toMatchObject({ type: 'adaptive', sensitivity: 1, learn: { readings: 150 }, memory: 2000, accept_after: 300 });
  });

  it('edge-agent validate warns when an adaptive detector trips: it is no protection against a known limit', async () => {
    const c = await parseConfigOrThrow(
      'sources: [{ id: s, type: simulator }]\nassets: [{ id: a, sensors: [{ id: v, metric: other, source: s }] }]\ndetectors: [{ id: d, asset: a, sensor: v, trip: true }]\nactuators: [{ id: stop, type: log }]\ninterlocks: [{ asset: a, actions: [{ actuator: stop }] }]',
    );
    expect(safetyWarnings(c)).toMatchObject([
      { path: ['detectors', 0, 'trip'], message: expect.stringMatching(/is adaptive: .* no protection/) },
    ]);
  });

  it('learns, stays quiet on its own noise, and raises once on a spike', async () => {
    const xs = series(3000, (i, r) => 20 + r + (i === 2000 ? 15 : 0));
    const det = new AdaptiveDetector(await config());
    expect(det.snapshot()).toBeUndefined();
    const changes = run(det, xs);
    expect(det.learning()).toBe(false);
    expect(changes[0]).toEqual([2000, 1]);
    expect(changes.filter(([, c]) => c === 1)).toHaveLength(1);
  });

  it('needs no tuning: the same series scaled by 1000 and shifted gives the same decisions', async () => {
    const xs = series(3000, (i, r) => r + (i > 2000 && i < 2050 ? 4 : 0) + (i === 1200 ? 9 : 0));
    const a = run(new AdaptiveDetector(await config()), xs);
    const b = run(
      new AdaptiveDetector(await config()),
      xs.map((x) => 1e3 * x + 5e4),
    );
    expect(a.length).toBeGreaterThan(0);
    expect(b).toEqual(a);
  });

  it('is causal: the decisions on a prefix do not depend on what follows', async () => {
    const xs = series(4000, (i, r) => 5 * Math.sin(i / 50) + r + (i > 3000 ? 10 : 0) + (i === 1700 ? 30 : 0));
    const full = run(new AdaptiveDetector(await config()), xs);
    const prefix = run(new AdaptiveDetector(await config()), xs.subarray(0, 2500));
    expect(prefix).toEqual(full.filter(([i]) => i < 2500));
  });

  it('accepts a level shift that holds accept_after readings, then watches the new level', async () => {
    const xs = series(3000, (i, r) => 10 + r + (i >= 1000 ? 8 : 0) + (i === 2500 ? 20 : 0));
    const det = new AdaptiveDetector(await config(', accept_after: 50'));
    const changes = run(det, xs);
    expect(changes[0]).toEqual([1000, 1]);
    expect(changes[1]?.[1]).toBe(-1);
    expect(changes[1]?.[0]).toBeLessThanOrEqual(1050);
    expect(det.evidence()).toMatchObject({ accepted_levels: 1 });
    // At the new level the spike still raises: the shift was learned, the detector was not blinded.
    expect(changes.slice(2)).toContainEqual([2500, 1]);
  });

  it('does not learn a fault as normal: a deviation shorter than accept_after stays raised throughout', async () => {
    const xs = series(2500, (i, r) => 10 + r + (i >= 1000 && i < 1800 ? 6 : 0));
    const changes = run(new AdaptiveDetector(await config(', accept_after: 5000')), xs);
    expect(changes[0]).toEqual([1000, 1]);
    const cleared = changes.find(([, c]) => c === -1);
    expect(cleared?.[0]).toBeGreaterThanOrEqual(1800);
  });

  it('learns a daily profile: once it explains the sensor, a value normal for the day but not for the hour raises', async () => {
    // 5-minute readings for 10 days of a daily cycle 10 ± 5; on day 8 at the cycle's low (value 5)
    // the sensor reads 14 for an hour: inside the range seen every day, wrong for that time of day.
    const day = 288;
    const low = 8 * day + Math.round(0.75 * day);
    const r = noise(3);
    const det = new AdaptiveDetector(await config());
    const changes: Array<[number, number]> = [];
    for (let i = 0; i < 10 * day; i++) {
      const tod = (i % day) / day;
      const x = 10 + 5 * Math.sin(2 * Math.PI * tod) + 0.3 * r() + (i >= low && i < low + 12 ? 9 : 0);
      const c = det.judge(Date.UTC(2026, 0, 1) + 300_000 * i, x, 'good');
      if (c !== 0) changes.push([i, c]);
    }
    expect(changes.filter(([i, c]) => c === 1 && i >= 4 * day && i < low)).toEqual([]);
    expect(changes).toContainEqual([low, 1]);
  });

  it('follows slow drift without alarms', async () => {
    const xs = series(20_000, (i, r) => 100 + i * 0.002 + r);
    expect(run(new AdaptiveDetector(await config()), xs)).toEqual([]);
  });

  it('sensitivity scales the limit', async () => {
    const xs = series(3000, (i, r) => r + (i === 2000 ? 4 : 0));
    expect(run(new AdaptiveDetector(await config()), xs)).toContainEqual([2000, 1]);
    expect(run(new AdaptiveDetector(await config(', sensitivity: 0.5')), xs)).toEqual([]);
  });

  it('snapshot/restore: a restored detector decides as the one that learned (contract E)', async () => {
    const xs = series(4000, (i, r) => 3 * Math.sin(i / 40) + r + (i === 3000 ? 40 : 0) + (i > 3500 ? 9 : 0));
    const a = new AdaptiveDetector(await config());
    run(a, xs.subarray(0, 2000));
    const snap = a.snapshot();
    expect(snap).toMatchObject({ v: 2 });
    const b = new AdaptiveDetector(await config());
    expect(b.restore(JSON.parse(JSON.stringify(snap)))).toBe(true);
    expect(b.learning()).toBe(false);
    const rest = xs.subarray(2000);
    const ta = run(a, rest, 2000);
    const tb = run(b, rest, 2000);
    expect(tb).toEqual(ta);
    expect(ta).toContainEqual([1000, 1]);
    expect(new AdaptiveDetector(await config()).restore({ v: 99, learned_at: 0 })).toBe(false);
    expect(new AdaptiveDetector(await config()).restore({ v: 1, learned_at: 0, m: 'x' })).toBe(false);
  });

  it('relearn starts a new learning phase; bad readings are not judged', async () => {
    const det = new AdaptiveDetector(await config(', learn: { readings: 10 }'));
    for (let i = 0; i < 10; i++) det.judge(i, 1 + (i % 2) * 0.1, 'good');
    expect(det.learning()).toBe(false);
    expect(det.judge(11, 1e9, 'bad')).toBe(0);
    det.relearn();
    expect(det.learning()).toBe(true);
    expect(det.snapshot()).toBeUndefined();
  });
});
