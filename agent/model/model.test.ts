import { copyFileSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { tempDir } from '../../test/helpers/tmp.js';
import { waitFor } from '../../test/helpers/wait.js';
import type { AgentConfig } from '../config/schema.js';
import { WindowEngine } from '../judge/engine.js';
import type { AgentEvent } from '../types.js';
import { type ModelCard, ModelCardError, parseCard, readCardFile, sha256 } from './card.js';
import { createModelControl } from './control.js';
import { FeatureAssembler, modelStat } from './features.js';
import { WindowQueue } from './queue.js';
import { InlineRunner, type ModelRunner, type RunnerKind, WorkerRunner } from './runner.js';
import { layoutOf, type ModelScore, ModelService } from './service.js';
import { ModelStage } from './stage.js';

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
  /** An engine with one source and tumbling windows of `ms` on each sensor, feeding an assembler. */
  function assemble(ms: number, sensors: string[], names: string[], minCoverage?: number) {
    const out: Array<{ asset: string; start: number; f: number[] }> = [];
    const counters = { incomplete: 0, partial: 0 };
    const engine = new WindowEngine(0);
    const asm = new FeatureAssembler(
      'a',
      sensors,
      names,
      ms,
      (asset, start, f) => out.push({ asset, start, f: Array.from(f) }),
      counters,
      minCoverage,
    );
    const sw = sensors.map((_, k) => {
      const w = engine.sensor('src');
      engine.window(w, { type: 'tumbling', size: ms }, (cw) => asm.add(k, cw));
      return w;
    });
    const add = (k: number, t: number, v: number, good = true) => engine.add(sw[k] as (typeof sw)[number], t, v, good);
    return { out, counters, engine, add };
  }

  it('computes mean/std/min/max/rms/slope per sensor in the card order, from the window engine', () => {
    const a = assemble(4000, ['p'], ['p.mean', 'p.std', 'p.min', 'p.max', 'p.rms', 'p.slope'], 0);
    for (const [i, v] of [1, 2, 3, 4].entries()) a.add(0, i * 1000, v);
    a.engine.flush();
    const f = a.out[0]?.f ?? [];
    const expected = [2.5, Math.sqrt(1.25), 1, 4, Math.sqrt(7.5), 1];
    for (const [i, x] of expected.entries()) expect(f[i]).toBeCloseTo(x, 5);
    // population std, as the models are trained on
    expect(modelStat(Float64Array.of(2, 2, 2, 2, 2, 0), 'std')).toBe(0);
  });

  it('a window is scored once every needed sensor closed it; a sensor without a good reading makes it incomplete', () => {
    const a = assemble(1000, ['p', 'q'], ['p.mean', 'q.mean'], 0);
    a.add(0, 100, 1);
    a.add(1, 150, 5);
    a.add(0, 900, 3);
    a.add(0, 1100, 7); // closes [0, 1000) of p and q (one source, one watermark)
    expect(a.out).toEqual([{ asset: 'a', start: 0, f: [2, 5] }]);
    a.add(0, 1200, 8);
    a.add(0, 2100, 1); // q had nothing in [1000, 2000)
    a.add(1, 2200, 1, false);
    a.engine.flush();
    expect(a.out).toHaveLength(1);
    expect(a.counters.incomplete).toBe(2);
  });

  it('skips a window covered for less than half its length (started mid-window)', () => {
    const a = assemble(1000, ['t'], ['t.mean']);
    for (const t of [700, 800, 900, 1000, 1500, 1900, 2000]) a.add(0, t, 1);
    a.engine.flush();
    expect(a.out.map((w) => w.start)).toEqual([1000]);
    expect(a.counters.partial).toBe(2);
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
    } as unknown as Pick<AgentConfig, 'assets' | 'model'>;
    const hook = new ModelStage(config, s, () => () => {}, silent);
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
