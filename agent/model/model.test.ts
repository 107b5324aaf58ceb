import { copyFileSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { tempDir } from '../../test/helpers/tmp.js';
import { waitFor } from '../../test/helpers/wait.js';
import type { AgentConfig } from '../config/schema.js';
import type { AgentEvent } from '../types.js';
import { type ModelCard, ModelCardError, parseCard, readCardFile, sha256 } from './card.js';
import { createModelControl } from './control.js';
import { extractFeatures, seriesStats, WindowExtractor, type WindowReadings } from './features.js';
import { ModelHook } from './hook.js';
import { WindowQueue } from './queue.js';
import { InlineRunner, type ModelRunner, type RunnerKind, WorkerRunner } from './runner.js';
import { layoutOf, type ModelScore, ModelService } from './service.js';

const silent = pino({ level: 'silent' });
const MODELS = new URL('../../models/', import.meta.url).pathname;
const FIXTURES = new URL('../../test/fixtures/models/', import.meta.url).pathname;

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** A temp models dir holding the shipped default and the test fixtures. */
function modelsDir(): string {
  const dir = tempDir('edge-agent-models-');
  cleanups.push(() => dir.remove());
  for (const f of ['default.onnx', 'default.card.json']) copyFileSync(join(MODELS, f), join(dir.path, f));
  return dir.path;
}

function stage(dir: string, name: string): void {
  for (const f of [`${name}.onnx`, `${name}.card.json`]) copyFileSync(join(FIXTURES, f), join(dir, f));
}

const readCard = (path: string): ModelCard & Record<string, unknown> => JSON.parse(readFileSync(path, 'utf8'));
const writeCard = (path: string, c: unknown) => writeFileSync(path, JSON.stringify(c, null, 2));

function service(
  dir: string,
  runner: RunnerKind | ModelRunner,
  over: { queueSize?: number; batchSize?: number; watch?: boolean } = {},
) {
  const events: AgentEvent[] = [];
  const s = new ModelService({
    dir,
    card: 'default.card.json',
    runner,
    queueSize: over.queueSize ?? 256,
    batchSize: over.batchSize ?? 16,
    watch: over.watch ?? false,
    watchDebounceMs: 100,
    emit: (e) => events.push(e),
    logger: silent,
    gatewayId: 'gw-test',
  });
  cleanups.push(() => s.stop());
  return { s, events };
}

describe('model card against the graph', () => {
  it('accepts the shipped default: card, sha256, graph and a smoke inference agree', async () => {
    const f = readCardFile(join(MODELS, 'default.card.json'));
    expect(f.card.features.names).toHaveLength(18);
    expect(f.card.training.description).toMatch(/simulator/i);
    expect(f.card.training.source).toMatch(/gen-sim-windows/);
    const r = new InlineRunner();
    cleanups.push(() => r.close());
    await r.load(1, f);
    const scores = await r.run(1, Float32Array.from(f.card.normalization.mean), 1);
    expect(scores[0]).toBeLessThan(f.card.threshold);
  });

  it.each([
    ['inputs.0.name', (c: ModelCard) => ((c.inputs[0] as { name: string }).name = 'x')],
    ['outputs.0.name', (c: ModelCard) => ((c.outputs[0] as { name: string }).name = 'reconstruction')],
  ])('refuses a card whose %s does not match the graph', async (field, mutate) => {
    const dir = modelsDir();
    const path = join(dir, 'default.card.json');
    const c = readCard(path);
    mutate(c);
    if (field === 'outputs.0.name') c.output.name = 'reconstruction';
    writeCard(path, c);
    for (const runner of [new InlineRunner(), new WorkerRunner()]) {
      cleanups.push(() => runner.close());
      const err = await runner.load(1, readCardFile(path)).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(ModelCardError);
      expect((err as ModelCardError).field).toBe(field);
      expect((err as Error).message).toContain('default.card.json');
    }
  });

  it('refuses a graph whose input width differs from the card (shape), in the worker too', async () => {
    const dir = modelsDir();
    copyFileSync(join(FIXTURES, 'narrow.onnx'), join(dir, 'narrow.onnx'));
    const path = join(dir, 'default.card.json');
    const c = readCard(path);
    c.model_file = 'narrow.onnx';
    c.sha256 = sha256(readFileSync(join(dir, 'narrow.onnx')));
    writeCard(path, c);
    const worker = new WorkerRunner();
    cleanups.push(() => worker.close());
    const err = await worker.load(1, readCardFile(path)).catch((e: unknown) => e);
    expect((err as ModelCardError).field).toBe('inputs.0.shape');
    expect((err as Error).message).toMatch(/card says \["batch",18\], graph has \["batch",6\]/);
    // and the service refuses to start on it
    const { s } = service(dir, 'inline');
    await expect(s.start()).rejects.toThrow(/inputs\.0\.shape/);
  });

  it('refuses a sha256 mismatch and inconsistent card fields, naming the field', () => {
    const dir = modelsDir();
    const path = join(dir, 'default.card.json');
    const c = readCard(path);
    writeCard(path, { ...c, sha256: '0'.repeat(64) });
    expect(() => readCardFile(path)).toThrow(/sha256: card says 0+, default\.onnx is [0-9a-f]{64}/);
    expect(() => parseCard({ ...c, normalization: { ...c.normalization, mean: [1, 2] } })).toThrow(
      /normalization\.mean: has 2 values for 18 features/,
    );
    expect(() =>
      parseCard({ ...c, features: { ...c.features, names: [...c.features.names.slice(1), 'temperature.median'] } }),
    ).toThrow(/features\.names\.17/);
    expect(() => parseCard({ ...c, threshold: -1 })).toThrow(/^threshold:/);
  });
});

describe('features', () => {
  it('computes mean/std/min/max/rms/slope per sensor in the card order', () => {
    const s = seriesStats({ times: [0, 1000, 2000, 3000], values: [1, 2, 3, 4] });
    expect(s).toEqual({ mean: 2.5, std: Math.sqrt(1.25), min: 1, max: 4, rms: Math.sqrt(7.5), slope: 1 });
    const w: WindowReadings = {
      asset: 'a',
      start: 0,
      end: 4000,
      sensors: new Map([['p', { times: [0, 1000], values: [2, 2] }]]),
    };
    expect(Array.from(extractFeatures(w, ['p.max', 'p.slope', 'p.std']) ?? [])).toEqual([2, 0, 0]);
    expect(extractFeatures(w, ['p.mean', 'q.mean'])).toBeUndefined();
  });

  it('closes a tumbling window per asset when a later window starts; late readings are counted', () => {
    const closed: WindowReadings[] = [];
    const ex = new WindowExtractor(1000, new Set(['t']), (w) => closed.push(w), 0);
    const r = (asset: string, t: number, v: number) =>
      ({ asset, sensor: 't', metric: 'temperature', value: v, unit: '', eventTime: t, ingestTime: t, quality: 'good' }) as const;
    ex.add(r('a', 100, 1));
    ex.add(r('b', 150, 5));
    ex.add(r('a', 900, 3));
    ex.add(r('a', 1100, 7));
    ex.add(r('a', 50, 9));
    expect(closed).toHaveLength(1);
    expect(closed[0]?.sensors.get('t')?.values).toEqual([1, 3]);
    expect(ex.late).toBe(1);
    ex.flush();
    expect(closed.map((w) => `${w.asset}@${w.start}`).sort()).toEqual(['a@0', 'a@1000', 'b@0']);

    // by default a window covered for less than half its length (started mid-window) is skipped
    const full: WindowReadings[] = [];
    const ex2 = new WindowExtractor(1000, new Set(['t']), (w) => full.push(w));
    for (const t of [700, 800, 900, 1000, 1500, 1900, 2000]) ex2.add(r('a', t, 1));
    expect(full.map((w) => w.start)).toEqual([1000]);
    expect(ex2.partial).toBe(1);
  });
});

describe('inference queue', () => {
  const w = (asset: string, i: number) => ({ asset, windowStart: i, features: new Float32Array(1), layout: 'L' });

  it('keeps the newest window per asset when full, and counts what it coalesced or dropped', () => {
    const q = new WindowQueue(4);
    for (let i = 0; i < 5; i++) {
      q.offer(w('a', i));
      q.offer(w('b', i));
    }
    // full at 4 → coalesced to {a3,b3}... every further pair coalesces again
    expect(q.size).toBeLessThanOrEqual(4);
    const c = q.counters;
    expect(c.offered).toBe(10);
    expect(c.coalesced).toBeGreaterThan(0);
    const taken = q.take(10);
    expect(taken.filter((x) => x.asset === 'a').at(-1)?.windowStart).toBe(4);
    expect(taken.filter((x) => x.asset === 'b').at(-1)?.windowStart).toBe(4);
    expect(c.offered).toBe(c.taken + c.coalesced + c.dropped + q.size);

    const q2 = new WindowQueue(2);
    for (const a of ['a', 'b', 'c', 'd']) q2.offer(w(a, 0));
    expect(q2.counters.dropped).toBe(2);
    expect(q2.take(5).map((x) => x.asset)).toEqual(['c', 'd']);
  });

  it('coalesces while inference is behind, never blocks offer, and scores the newest windows', async () => {
    const dir = modelsDir();
    let release: () => void = () => {};
    const gate = new Promise<void>((r) => (release = r));
    const inner = new InlineRunner();
    const slow: ModelRunner = {
      load: (slot, f) => inner.load(slot, f),
      run: async (slot, data, rows) => {
        await gate;
        return inner.run(slot, data, rows);
      },
      release: (slot) => inner.release(slot),
      close: () => inner.close(),
    };
    const { s } = service(dir, slow, { queueSize: 8, batchSize: 4 });
    await s.start();
    const layout = (s.current as { layout: string }).layout;
    const scores: ModelScore[] = [];
    s.onScore((x) => scores.push(x));
    const f = Float32Array.from(s.current?.card.normalization.mean ?? []);
    const t0 = performance.now();
    for (let i = 0; i < 300; i++) s.offer(`pump-${i % 3}`, i, f, layout);
    expect(performance.now() - t0).toBeLessThan(1000);
    expect(s.queued).toBeLessThanOrEqual(8);
    release();
    await s.idle();
    const c = s.counters;
    expect(c.offered).toBe(300);
    expect(c.coalesced).toBeGreaterThan(280);
    expect(c.offered).toBe(c.scored + c.coalesced + c.dropped + c.failedWindows + c.discardedOnSwap);
    // the last window of every asset was scored
    for (const a of ['pump-0', 'pump-1', 'pump-2'])
      expect(Math.max(...scores.filter((x) => x.asset === a).map((x) => x.windowStart))).toBeGreaterThanOrEqual(297);
  });
});

describe('hot swap', () => {
  it('a swap under load loses no window: every offered window is scored, old then new version', async () => {
    const dir = modelsDir();
    stage(dir, 'alt');
    const { s, events } = service(dir, 'worker', { queueSize: 100_000, batchSize: 64 });
    await s.start();
    const versions: string[] = [];
    s.onScore((x) => versions.push(x.modelVersion));
    const layout = (s.current as { layout: string }).layout;
    const mean = s.current?.card.normalization.mean ?? [];
    let swap: Promise<unknown> | undefined;
    for (let i = 0; i < 4000; i++) {
      s.offer(
        `pump-${i % 20}`,
        i,
        Float32Array.from(mean, (m) => m * (1 + (i % 7) / 100)),
        layout,
      );
      if (i === 1500) swap = createModelControl(s).apply({ model_version: 'test-alt-2' });
      if (i % 100 === 0) await new Promise((r) => setImmediate(r));
    }
    expect(await swap).toMatchObject({ ok: true, version: 'test-alt-2', previous: 'sim-ae-1.0.0' });
    await s.idle();
    const c = s.counters;
    expect(c).toMatchObject({ offered: 4000, scored: 4000, coalesced: 0, dropped: 0, failedWindows: 0, discardedOnSwap: 0 });
    expect(versions).toHaveLength(4000);
    const firstNew = versions.indexOf('test-alt-2');
    expect(firstNew).toBeGreaterThan(0);
    expect(versions.slice(firstNew).every((v) => v === 'test-alt-2')).toBe(true);
    expect(events.find((e) => e.kind === 'audit' && e.payload.to === 'test-alt-2')?.payload).toMatchObject({
      type: 'model_swap',
      source: 'control',
      from: 'sim-ae-1.0.0',
    });
  });

  it('a model dropped into the watched directory is validated and swapped in', async () => {
    const dir = modelsDir();
    const { s, events } = service(dir, 'inline', { watch: true });
    await s.start();
    copyFileSync(join(FIXTURES, 'alt.onnx'), join(dir, 'alt.onnx'));
    copyFileSync(join(FIXTURES, 'alt.card.json'), join(dir, 'alt.card.json'));
    await waitFor(() => s.current?.version === 'test-alt-2', { what: 'dropped model to become active' });
    expect(events.filter((e) => e.kind === 'audit').map((e) => e.payload.source)).toEqual(['startup', 'file']);
  });

  it('a corrupt model file is rejected with an alarm and the old model keeps scoring', async () => {
    const dir = modelsDir();
    const { s, events } = service(dir, 'worker', { watch: true });
    await s.start();
    // garbage whose sha256 matches its card: only the runtime can tell it is not a graph
    const junk = Buffer.from('this is not an onnx graph'.repeat(40));
    writeFileSync(join(dir, 'broken.onnx'), junk);
    const c = readCard(join(dir, 'default.card.json'));
    writeCard(join(dir, 'broken.card.json'), { ...c, version: 'broken-1', model_file: 'broken.onnx', sha256: sha256(junk) });
    await waitFor(() => events.find((e) => e.kind === 'alarm'), { what: 'rejection alarm' });
    const alarm = events.find((e) => e.kind === 'alarm');
    expect(alarm?.payload).toMatchObject({
      type: 'model_rejected',
      source: 'file',
      field: 'model_file',
      kept_version: 'sim-ae-1.0.0',
    });
    expect(String(alarm?.payload.reason)).toMatch(/not a loadable ONNX graph/);

    // the active model's own file is truncated on disk: rejected too, the loaded copy keeps running
    writeFileSync(join(dir, 'default.onnx'), readFileSync(join(MODELS, 'default.onnx')).subarray(0, 100));
    await waitFor(() => events.filter((e) => e.kind === 'alarm').length === 2, { what: 'second alarm' });
    expect(events.filter((e) => e.kind === 'alarm')[1]?.payload).toMatchObject({ field: 'sha256', kept_version: 'sim-ae-1.0.0' });

    const res = await createModelControl(s).apply({ model_version: 'nope' });
    expect(res).toMatchObject({ ok: false, kept: 'sim-ae-1.0.0' });
    expect(await createModelControl(s).apply({ version: 'x' })).toMatchObject({ ok: false });

    const got: ModelScore[] = [];
    s.onScore((x) => got.push(x));
    const cur = s.current as NonNullable<typeof s.current>;
    s.offer('pump-1', 0, Float32Array.from(cur.card.normalization.mean), layoutOf(cur.card));
    await s.idle();
    expect(got).toMatchObject([{ modelVersion: 'sim-ae-1.0.0' }]);
  });
});

describe('what the model reports', () => {
  it('names the version scoring each asset (the twin shows it) and times each batch (telemetry)', async () => {
    const dir = modelsDir();
    stage(dir, 'alt');
    const { s } = service(dir, 'inline');
    const sensors = (ids: string[]) => ids.map((id) => ({ id }));
    const config = {
      assets: [
        { id: 'pump-1', sensors: sensors(['temperature', 'pressure', 'vibration']) },
        { id: 'fan', sensors: sensors(['temperature']) },
      ],
      model: undefined,
      ensembles: [],
    } as unknown as Pick<AgentConfig, 'assets' | 'model' | 'ensembles'>;
    const hook = new ModelHook(config, s, () => {}, silent);
    expect(hook.modelVersion('pump-1')).toBeNull();
    const seconds: number[] = [];
    s.onInference((x) => seconds.push(x));
    await s.start();
    expect(hook.modelVersion('pump-1')).toBe('sim-ae-1.0.0');
    expect(hook.modelVersion('fan')).toBeNull();
    expect(await createModelControl(s).apply({ model_version: 'test-alt-2' })).toMatchObject({ ok: true });
    expect(hook.modelVersion('pump-1')).toBe('test-alt-2');

    const cur = s.current as NonNullable<typeof s.current>;
    s.offer('pump-1', 0, Float32Array.from(cur.card.normalization.mean), layoutOf(cur.card));
    await s.idle();
    expect(seconds).toHaveLength(1);
    expect(seconds[0]).toBeGreaterThanOrEqual(0);
  });
});
