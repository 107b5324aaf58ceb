/**
 * Interlock semantics with fake timers and a recording actuator: latch, re-assert, ack, release,
 * debounce, cooldown, rate limit, dry-run, fail-safe, action order, and the synchronous hot path.
 */
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { Aftermath, HOLD_MS } from './aftermath.js';
import { parseConfig } from './config/load.js';
import type { AgentConfig } from './config/schema.js';
import { type ActuatorCommand, type ActuatorDriver, type ActuatorResult, type BoundSensor, bindSensor } from './driver.js';
import { Interlocks } from './interlock.js';
import type { LatchJournal } from './latch-journal.js';
import { Pipeline } from './pipeline.js';
import { makeReading } from './reading.js';
import type { AgentEvent, Quality } from './types.js';

const silent = pino({ level: 'silent' });

async function configWith(interlockExtra: string, actions = '[{ actuator: stop, command: stop, release: reset }]') {
  const yaml = `
sources: [{ id: sim, type: simulator }]
assets:
  - id: pump
    sensors:
      - { id: temp, metric: temperature, source: sim }
      - { id: flow, metric: flow, source: sim }
detectors:
  - { id: hot, type: threshold, asset: pump, sensor: temp, setpoint: 100, delta_down: 10, trip: true }
actuators: [{ id: stop, type: log }, { id: horn, type: log }]
interlocks:
  - asset: pump
    actions: ${actions}
${interlockExtra
  .split('\n')
  .map((l) => `    ${l}`)
  .join('\n')}
`;
  const res = await parseConfig(yaml, 'test.yaml');
  if (!res.ok) throw new Error(JSON.stringify(res.errors));
  return res.config;
}

interface Harness {
  calls: Array<{ actuator: string; command: string; phase: unknown; at: number }>;
  events: AgentEvent[];
  interlocks: Interlocks;
  pipeline: Pipeline;
  feed(value: number, opts?: { sensor?: string; quality?: Quality; at?: number }): void;
  ofType(type: string): Array<Record<string, unknown>>;
}

function recorder(name: string, calls: Harness['calls'], result: () => Promise<ActuatorResult>): ActuatorDriver {
  return {
    init() {},
    async start() {},
    async stop() {},
    execute(cmd: ActuatorCommand) {
      calls.push({ actuator: name, command: cmd.command, phase: cmd.reason.phase, at: Date.now() });
      return result();
    },
  };
}

function harness(config: AgentConfig, result: () => Promise<ActuatorResult> = () => Promise.resolve({ ok: true })): Harness {
  const calls: Harness['calls'] = [];
  const events: AgentEvent[] = [];
  const actuators = new Map([
    ['stop', recorder('stop', calls, result)],
    ['horn', recorder('horn', calls, result)],
  ]);
  const emit = (e: AgentEvent) => events.push(e);
  const interlocks = new Interlocks(config.interlocks, actuators, emit, silent, Date.now, config.detectors);
  const pipeline = new Pipeline(config, interlocks, emit);
  interlocks.start();
  const sensors = new Map<string, BoundSensor>(
    config.assets[0]?.sensors.map((s) => [s.id, bindSensor(s, 'pump')] as const) ?? [],
  );
  return {
    calls,
    events,
    interlocks,
    pipeline,
    feed(value, { sensor = 'temp', quality = 'good', at = Date.now() } = {}) {
      pipeline.ingest([makeReading(sensors.get(sensor) as BoundSensor, value, at, Date.now(), quality)]);
    },
    ofType: (type) => events.map((e) => e.payload as Record<string, unknown>).filter((p) => p.type === type),
  };
}

beforeEach(() => {
  vi.useFakeTimers({ now: Date.UTC(2026, 0, 1) });
});
afterEach(() => {
  vi.useRealTimers();
});

describe('interlock', () => {
  it('trips synchronously: every action is called in order before ingest returns, before the trip is recorded', async () => {
    const h = harness(await configWith('', '[{ actuator: stop, command: stop }, { actuator: horn, command: sound }]'));
    let callsWhenFirstEvent = -1;
    const emitted = h.events.push.bind(h.events);
    h.events.push = (...e: AgentEvent[]) => {
      if (callsWhenFirstEvent < 0) callsWhenFirstEvent = h.calls.length;
      return emitted(...e);
    };
    h.feed(50);
    h.feed(120);
    expect(h.calls.map((c) => `${c.actuator}:${c.command}`)).toEqual(['stop:stop', 'horn:sound']);
    expect(callsWhenFirstEvent).toBe(2);
    expect(h.interlocks.state('pump')).toBe('tripped');
    const [trip] = h.ofType('trip');
    expect(trip).toMatchObject({ asset: 'pump', detector: 'hot', value: 120, reading_event_time: Date.now() });
    expect(trip?.commands).toHaveLength(2);
    await vi.advanceTimersByTimeAsync(0);
    const results = h.ofType('command_result');
    expect(results.map((r) => [r.actuator, r.phase, r.ok])).toEqual([
      ['stop', 'trip', true],
      ['horn', 'trip', true],
    ]);
    expect(results[0]).toHaveProperty('acked_at');
  });

  it('with an aftermath: the stop goes at once, its records follow HOLD_MS later in order (journal, trip, anomaly), and an ack keeps them before its own', async () => {
    const config = await configWith('reassert_every: 0');
    const seq: string[] = [];
    const calls: Harness['calls'] = [];
    const actuators = new Map([['stop', recorder('stop', calls, () => Promise.resolve({ ok: true }))]]);
    const journal = {
      tripped: (r: { asset: string }) => seq.push(`journal:tripped:${r.asset}`),
      released: (asset: string) => seq.push(`journal:released:${asset}`),
    } as unknown as LatchJournal;
    const aftermath = new Aftermath((err) => {
      throw err;
    });
    const emit = (e: AgentEvent) => aftermath.run(() => seq.push(`${e.kind}:${(e.payload as { type?: string }).type ?? ''}`));
    const interlocks = new Interlocks(config.interlocks, actuators, emit, silent, Date.now, config.detectors, {
      journal,
      aftermath,
    });
    const pipeline = new Pipeline(config, interlocks, emit);
    interlocks.start();
    const temp = bindSensor(config.assets[0]?.sensors[0] as AgentConfig['assets'][number]['sensors'][number], 'pump');
    pipeline.ingest([makeReading(temp, 120, Date.now(), Date.now(), 'good')]);
    expect(calls.map((c) => c.command)).toEqual(['stop']);
    expect(interlocks.state('pump')).toBe('tripped');
    expect(seq).toEqual([]);
    // The release within the hold: its command goes at once, its records after the trip's.
    pipeline.ingest([makeReading(temp, 50, Date.now(), Date.now(), 'good')]);
    expect(interlocks.ack('pump', 'alice', 'cli')).toEqual({ ok: true, state: 'running' });
    expect(calls.map((c) => c.command)).toEqual(['stop', 'reset']);
    expect(seq).toEqual([]);
    await vi.advanceTimersByTimeAsync(HOLD_MS);
    expect(seq).toEqual([
      'journal:tripped:pump',
      'action:trip',
      'anomaly:',
      'anomaly:',
      'journal:released:pump',
      'audit:ack',
      'action:command_result',
      'action:command_result',
    ]);
  });

  it('latches: clearing and re-raising does not trip again until acknowledged; then it does', async () => {
    const h = harness(await configWith('reassert_every: 0'));
    h.feed(120);
    h.feed(50);
    h.feed(130);
    expect(h.calls).toHaveLength(1);
    h.feed(50);
    expect(h.interlocks.ack('pump', 'alice', 'cli')).toEqual({ ok: true, state: 'running' });
    expect(h.interlocks.ack('pump', 'alice', 'cli')).toMatchObject({ ok: false, reason: 'not_tripped' });
    expect(h.ofType('ack')[0]).toMatchObject({ asset: 'pump', by: 'alice', via: 'cli' });
    // The release command went out on ack.
    expect(h.calls.map((c) => `${c.command}:${c.phase}`)).toEqual(['stop:trip', 'reset:release']);
    h.feed(50);
    h.feed(130);
    expect(h.calls.map((c) => c.command)).toEqual(['stop', 'reset', 'stop']);
  });

  it('re-asserts the stop on its period until acknowledged, and not after', async () => {
    const h = harness(await configWith('reassert_every: 2s'));
    h.feed(120);
    await vi.advanceTimersByTimeAsync(1999);
    expect(h.calls).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(1);
    expect(h.calls.map((c) => c.phase)).toEqual(['trip', 'reassert']);
    await vi.advanceTimersByTimeAsync(4000);
    expect(h.calls.filter((c) => c.phase === 'reassert')).toHaveLength(3);
    expect(h.ofType('reassert').map((r) => r.count)).toEqual([1, 2, 3]);
    h.feed(50);
    h.interlocks.ack('pump', 'bob');
    await vi.advanceTimersByTimeAsync(10_000);
    expect(h.calls.filter((c) => c.phase === 'reassert')).toHaveLength(3);
  });

  it('keeps re-asserting while the device fails, and records each failure', async () => {
    const h = harness(await configWith('reassert_every: 1s'), () => Promise.resolve({ ok: false, error: 'timeout' }));
    h.feed(120);
    await vi.advanceTimersByTimeAsync(3000);
    const failed = h.ofType('command_result').filter((r) => r.ok === false);
    expect(failed.map((r) => r.phase)).toEqual(['trip', 'reassert', 'reassert', 'reassert']);
  });

  it('debounce by readings: trips on the Nth consecutive raised reading; a clear in between resets', async () => {
    const h = harness(await configWith('debounce: { readings: 3 }'));
    h.feed(120);
    h.feed(120);
    h.feed(80); // below setpoint - delta_down: cleared
    h.feed(120);
    h.feed(120);
    expect(h.calls).toHaveLength(0);
    h.feed(120);
    expect(h.calls).toHaveLength(1);
    expect(h.ofType('trip')[0]).toMatchObject({ detector: 'hot' });
  });

  it('debounce by duration (event time): trips once the anomaly has been raised that long', async () => {
    const h = harness(await configWith('debounce: { duration: 2s }'));
    const t0 = Date.now();
    h.feed(120, { at: t0 });
    h.feed(120, { at: t0 + 1000 });
    h.feed(120, { at: t0 + 1999 });
    expect(h.calls).toHaveLength(0);
    h.feed(120, { at: t0 + 2000 });
    expect(h.calls).toHaveLength(1);
    expect(h.ofType('trip')[0]).toMatchObject({ reading_event_time: t0 + 2000 });
  });

  it('cooldown: after an ack, trips are suppressed (audited) for the cooldown, then act again', async () => {
    const h = harness(await configWith('cooldown: 10s\nreassert_every: 0'));
    h.feed(120);
    h.feed(50);
    h.interlocks.ack('pump', 'alice');
    await vi.advanceTimersByTimeAsync(5000);
    h.feed(120);
    expect(h.interlocks.state('pump')).toBe('running');
    expect(h.ofType('suppressed')[0]).toMatchObject({ reason: 'cooldown', detector: 'hot' });
    h.feed(50);
    await vi.advanceTimersByTimeAsync(5000);
    h.feed(120);
    expect(h.interlocks.state('pump')).toBe('tripped');
    expect(h.calls.filter((c) => c.phase === 'trip')).toHaveLength(2);
  });

  it('rate limit: at most max_trips per window', async () => {
    const h = harness(await configWith('rate_limit: { max_trips: 2, per: 1m }\nreassert_every: 0'));
    for (let i = 0; i < 3; i++) {
      h.feed(120);
      h.feed(50);
      h.interlocks.ack('pump', 'alice');
      await vi.advanceTimersByTimeAsync(1000);
    }
    expect(h.ofType('trip')).toHaveLength(2);
    expect(h.ofType('suppressed')[0]).toMatchObject({ reason: 'rate_limit' });
    await vi.advanceTimersByTimeAsync(60_000);
    h.feed(120);
    expect(h.ofType('trip')).toHaveLength(3);
  });

  it('dry run: decides, latches and records what would be sent; sends nothing, not even re-asserts', async () => {
    const h = harness(await configWith('dry_run: true\nreassert_every: 1s'));
    h.feed(120);
    await vi.advanceTimersByTimeAsync(5000);
    expect(h.calls).toHaveLength(0);
    expect(h.interlocks.state('pump')).toBe('tripped');
    expect(h.ofType('trip')).toHaveLength(0);
    expect(h.ofType('dry_run_trip')[0]).toMatchObject({
      detector: 'hot',
      would_send: [{ actuator: 'stop', command: 'stop' }],
    });
    h.interlocks.ack('pump', 'commissioner');
    expect(h.calls).toHaveLength(0);
  });

  it('fail-safe alarm: a silent watched sensor raises an alarm and clears it when readings return; no stop', async () => {
    const h = harness(await configWith('fail_safe: { policy: alarm, silent_after: 5s }'));
    h.feed(50);
    await vi.advanceTimersByTimeAsync(4000);
    expect(h.events.filter((e) => e.kind === 'alarm')).toHaveLength(0);
    await vi.advanceTimersByTimeAsync(3000);
    const alarms = () => h.events.filter((e) => e.kind === 'alarm').map((e) => e.payload as Record<string, unknown>);
    expect(alarms()).toEqual([expect.objectContaining({ state: 'raised', cause: 'silent', sensor: 'temp' })]);
    expect(h.calls).toHaveLength(0);
    h.feed(50);
    expect(alarms()[1]).toMatchObject({ state: 'cleared', cause: 'silent' });
  });

  it('fail-safe stop: a silent sensor trips the asset; bad readings too, after bad_readings in a row', async () => {
    const h = harness(await configWith('fail_safe: { policy: stop, silent_after: 5s, bad_readings: 2 }\nreassert_every: 0'));
    await vi.advanceTimersByTimeAsync(7000);
    expect(h.calls.map((c) => c.command)).toEqual(['stop']);
    expect(h.ofType('trip')[0]).toMatchObject({ detector: 'fail_safe:silent' });
    // Still silent: the ack is refused, naming the condition.
    expect(h.interlocks.ack('pump', 'alice')).toMatchObject({
      ok: false,
      raised: [{ detector: 'fail_safe:silent', sensor: 'temp' }],
    });
    h.feed(50);
    expect(h.interlocks.ack('pump', 'alice')).toMatchObject({ ok: true });

    h.feed(50, { quality: 'comm_error' });
    h.feed(50);
    h.feed(50, { quality: 'bad' });
    expect(h.interlocks.state('pump')).toBe('running');
    h.feed(50, { quality: 'bad' });
    expect(h.interlocks.state('pump')).toBe('tripped');
    expect(h.ofType('trip')[1]).toMatchObject({ detector: 'fail_safe:bad' });
  });

  it('fail-safe watches the listed sensors too, and policy none watches nothing', async () => {
    const watched = harness(await configWith('fail_safe: { policy: alarm, silent_after: 1s, sensors: [flow] }'));
    watched.feed(50);
    await vi.advanceTimersByTimeAsync(2000);
    expect(watched.ofType('fail_safe').map((p) => p.sensor)).toEqual(expect.arrayContaining(['flow']));
    const none = harness(await configWith('fail_safe: { policy: none, silent_after: 1s }'));
    await vi.advanceTimersByTimeAsync(5000);
    expect(none.events).toHaveLength(0);
  });

  it('restored trips are re-asserted at start', async () => {
    const config = await configWith('reassert_every: 1s');
    const calls: Harness['calls'] = [];
    const il = new Interlocks(
      config.interlocks,
      new Map([['stop', recorder('stop', calls, () => Promise.resolve({ ok: true }))]]),
      () => {},
      silent,
      Date.now,
      config.detectors,
    );
    il.restore(['pump']);
    il.start();
    expect(calls.map((c) => c.phase)).toEqual(['reassert']);
    await vi.advanceTimersByTimeAsync(1000);
    expect(calls).toHaveLength(2);
    il.stop();
    await vi.advanceTimersByTimeAsync(5000);
    expect(calls).toHaveLength(2);
  });

  it('calls afterCommands once per driver, after every command of the decision (trip, re-assert, release)', async () => {
    const config = await configWith(
      'reassert_every: 10s',
      '[{ actuator: stop, command: stop, release: reset }, { actuator: horn, command: sound }, { actuator: stop, command: brake }]',
    );
    const seq: string[] = [];
    const driver = (name: string): ActuatorDriver => ({
      init() {},
      async start() {},
      async stop() {},
      execute(cmd: ActuatorCommand) {
        seq.push(`${name}:${cmd.command}`);
        return Promise.resolve({ ok: true });
      },
      afterCommands() {
        seq.push(`after:${name}`);
      },
    });
    const il = new Interlocks(
      config.interlocks,
      new Map([
        ['stop', driver('stop')],
        ['horn', driver('horn')],
      ]),
      () => {},
      silent,
      Date.now,
      config.detectors,
    );
    il.start();
    const p = new Pipeline(config, il, () => {});
    const sensor = { ...(config.assets[0]?.sensors[0] as BoundSensor), asset: 'pump' };
    p.ingest([makeReading(sensor, 120, Date.now(), Date.now())]);
    expect(seq).toEqual(['stop:stop', 'horn:sound', 'stop:brake', 'after:stop', 'after:horn']);
    seq.length = 0;
    await vi.advanceTimersByTimeAsync(10_000);
    expect(seq).toEqual(['stop:stop', 'horn:sound', 'stop:brake', 'after:stop', 'after:horn']);
    seq.length = 0;
    p.ingest([makeReading(sensor, 50, Date.now(), Date.now())]);
    expect(il.ack('pump', 'alice', 'api')).toMatchObject({ ok: true });
    expect(seq).toEqual(['stop:reset', 'after:stop']);
    il.stop();
  });

  it('a throwing actuator does not stop the other actions', async () => {
    const config = await configWith('', '[{ actuator: stop, command: stop }, { actuator: horn, command: sound }]');
    const calls: Harness['calls'] = [];
    const events: AgentEvent[] = [];
    const broken: ActuatorDriver = {
      init() {},
      async start() {},
      async stop() {},
      execute() {
        throw new TypeError('boom');
      },
    };
    const il = new Interlocks(
      config.interlocks,
      new Map([
        ['stop', broken],
        ['horn', recorder('horn', calls, () => Promise.resolve({ ok: true }))],
      ]),
      (e) => events.push(e),
      silent,
      Date.now,
      config.detectors,
    );
    const p = new Pipeline(config, il, (e) => events.push(e));
    const sensor = { ...(config.assets[0]?.sensors[0] as BoundSensor), asset: 'pump' };
    p.ingest([makeReading(sensor, 120, Date.now(), Date.now())]);
    expect(calls.map((c) => c.actuator)).toEqual(['horn']);
    await vi.advanceTimersByTimeAsync(0);
    expect(events.map((e) => e.payload).filter((x) => x.type === 'command_result')).toEqual(
      expect.arrayContaining([expect.objectContaining({ actuator: 'stop', ok: false, error: 'boom' })]),
    );
  });
});

describe('interlock config checks', () => {
  it('names an action command the actuator does not define, and a fail-safe sensor the asset lacks', async () => {
    const res = await parseConfig(
      `
sources: [{ id: sim, type: simulator }]
assets: [{ id: pump, sensors: [{ id: temp, metric: temperature, source: sim }] }]
actuators:
  - { id: relay, type: exec, commands: { stop: { file: touch, args: [x] } } }
interlocks:
  - asset: pump
    fail_safe: { sensors: [flow] }
    actions: [{ actuator: relay, command: stpo, release: reset }]
`,
      'c.yaml',
    );
    expect(res.ok).toBe(false);
    const messages = res.ok ? [] : res.errors.map((e) => `${e.path}: ${e.message}`);
    expect(messages).toEqual(
      expect.arrayContaining([
        'interlocks[0].actions[0].command: actuator "relay" has no command "stpo"',
        'interlocks[0].actions[0].release: actuator "relay" has no command "reset"',
        'interlocks[0].fail_safe.sensors[0]: asset "pump" has no sensor "flow"',
      ]),
    );
  });
});
