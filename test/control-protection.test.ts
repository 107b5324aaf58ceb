/**
 * No control message, signed or not, can stop an interlock from tripping. Every operation (the real
 * ones and made-up ones) is tried with every parameter any detector type has (plus protection
 * names that no detector has, like `enabled` or `interlock`) and a spread of values, each signed
 * with the gateway's trusted key and sent with the longest valid_for allowed, through the same
 * `handle` the MQTT and Kafka control topics use. After each message, and after all of them
 * together, a reading past the weakest limit the bounds allow (setpoint 95 + delta_up 5 = 100)
 * must trip the asset: 150 degC.
 */
import { generateKeyPairSync } from 'node:crypto';
import { pino } from 'pino';
import { beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../agent/config/load.js';
import { type AgentConfig, detectorSchema } from '../agent/config/schema.js';
import { ControlPlane, type ControlResult } from '../agent/control/control.js';
import { signBody } from '../agent/control/envelope.js';
import type { ActuatorDriver } from '../agent/driver.js';
import { Interlocks } from '../agent/interlock.js';
import { Pipeline } from '../agent/pipeline.js';
import { makeReading } from '../agent/reading.js';

const silent = pino({ level: 'silent' });
const T0 = Date.parse('2026-06-01T12:00:00Z');
const YAML = `
gateway: { id: gw-p }
control:
  max_rate: 10000
  limits:
    overheat: { setpoint: [70, 95], delta_up: [0, 5], delta_down: [0, 10] }
    spike: { limit: [3, 8], persistence: [1, 3], clear_ratio: [0.5, 1] }
    watch: { limit: [3, 8] }
sources: [{ id: plc, type: simulator }]
assets:
  - id: pump-1
    sensors: [{ id: temperature, metric: temperature, unit: degC, source: plc }]
detectors:
  - { id: overheat, type: threshold, asset: pump-1, sensor: temperature, setpoint: 80, severity: critical, trip: true }
  - { id: spike, type: zscore, asset: pump-1, sensor: temperature, limit: 4, learn: { readings: 20 }, trip: true }
  - { id: watch, type: zscore, asset: pump-1, sensor: temperature, limit: 4, learn: { readings: 20 } }
actuators: [{ id: stop, type: log }]
interlocks:
  - asset: pump-1
    actions: [{ actuator: stop, command: stop }]
`;

const { privateKey, publicKey } = generateKeyPairSync('ed25519');
let config: AgentConfig;
beforeAll(async () => {
  const res = await parseConfig(YAML, 'protection.yaml');
  if (!res.ok) throw new Error(JSON.stringify(res.errors));
  config = res.config;
});

/** A fresh agent core (pipeline, interlock, control plane) on a simulated clock; the baseline is learned. */
function world() {
  let clock = T0;
  const actuator: ActuatorDriver = { init() {}, async start() {}, async stop() {}, execute: async () => ({ ok: true }) };
  const emit = () => {};
  const interlocks = new Interlocks(
    config.interlocks,
    new Map([['stop', actuator]]),
    emit,
    silent,
    () => clock,
    config.detectors,
  );
  const pipeline = new Pipeline(config, interlocks, emit, () => clock);
  const control = new ControlPlane({ config, pipeline, emit, logger: silent, now: () => clock });
  control.setKeys(new Map([['k1', publicKey]]));
  const sensor = { ...(config.assets[0]?.sensors[0] as AgentConfig['assets'][0]['sensors'][0]), asset: 'pump-1' };
  const feed = (value: number) => {
    clock += 100;
    pipeline.ingest([makeReading(sensor, value, clock, clock)]);
  };
  for (let i = 0; i < 30; i++) feed(60 + (i % 3) * 0.5);
  let n = 0;
  const send = (cmd: Record<string, unknown>): Promise<ControlResult> => {
    const body = {
      id: `m-${++n}`,
      by: 'trusted-but-wrong',
      gateway_id: 'gw-p',
      issued_at: new Date(clock).toISOString(),
      expires_at: new Date(clock + 600_000).toISOString(),
      ...cmd,
    };
    return control.handle(JSON.stringify(signBody(body, privateKey, 'k1')), 'test');
  };
  const unsigned = (cmd: Record<string, unknown>) => control.handle(JSON.stringify({ id: `u-${++n}`, ...cmd }), 'test');
  return { interlocks, pipeline, control, feed, send, unsigned };
}

const OPS = ['set', 'reset', 'relearn', 'model', 'shutdown', 'disable', 'enable', 'delete', 'ack', 'trip', 'override', 'unlatch'];
const DETECTORS = ['overheat', 'spike', 'watch', 'nope'];
const PARAMS = [
  ...new Set([
    ...detectorSchema.options.flatMap((o) => Object.keys(o.shape)),
    'enabled',
    'interlock',
    'interlocks',
    'actions',
    'dry_run',
    'actuator',
    'fail_safe',
    'debounce',
    'model_version',
  ]),
];
const VALUES: unknown[] = [false, true, 0, -1e9, 1e9, 3, 5, 95, 100, null, 'below', 'info', 'rise', 'x', {}, []];

function messages(): Array<Record<string, unknown>> {
  const out: Array<Record<string, unknown>> = [];
  for (const op of OPS)
    for (const detector of DETECTORS) {
      out.push({ op, detector });
      if (op !== 'set') out.push({ op, detector, params: { model_version: 'v9' } });
      if (op === 'set' || op === 'override' || op === 'disable')
        for (const p of PARAMS) for (const v of VALUES) out.push({ op, detector, params: { [p]: v }, valid_for: '8h' });
    }
  // Every changeable parameter at its weakest bound at once.
  out.push({ op: 'set', detector: 'overheat', params: { setpoint: 95, delta_up: 5, delta_down: 10 }, valid_for: '8h' });
  out.push({ op: 'set', detector: 'spike', params: { limit: 8, persistence: 3, clear_ratio: 0.5 }, valid_for: '8h' });
  return out;
}

function tripsAt150(w: ReturnType<typeof world>): boolean {
  for (let i = 0; i < 5; i++) w.feed(150);
  return w.interlocks.state('pump-1') === 'tripped';
}

describe('no control message can stop an interlock from tripping', () => {
  it('each operation with each parameter and value, alone, signed by a trusted key', async () => {
    const all = messages();
    expect(PARAMS).toEqual(expect.arrayContaining(['trip', 'direction', 'severity', 'enabled', 'setpoint', 'limit', 'learn']));
    let applied = 0;
    const failures: string[] = [];
    for (const m of all) {
      const w = world();
      const res = await w.send(m);
      if (res.ok) {
        applied++;
        expect(['set', 'reset', 'relearn']).toContain(m.op);
      }
      if (!tripsAt150(w)) failures.push(`${JSON.stringify(m)} -> ${JSON.stringify(res)}`);
    }
    expect(failures).toEqual([]);
    // The test is not vacuous: some of these messages were valid and applied.
    expect(applied).toBeGreaterThan(10);
    console.info(
      `protection: ${all.length} signed messages tried one by one, ${applied} applied, the interlock tripped after every one`,
    );
  }, 300_000);

  it('all of them in sequence, signed and unsigned, on one running pipeline', async () => {
    const w = world();
    let applied = 0;
    for (const m of messages()) {
      if ((await w.send(m)).ok) applied++;
      expect((await w.unsigned(m)).ok).toBe(false);
      w.feed(60);
    }
    expect(applied).toBeGreaterThan(10);
    expect(w.interlocks.state('pump-1')).toBe('running');
    expect(tripsAt150(w)).toBe(true);
  }, 300_000);

  it('protection fields are refused with their reason, relearn of a tripping detector too', async () => {
    const w = world();
    for (const p of ['trip', 'direction', 'severity', 'enabled', 'interlock', 'sensor', 'asset', 'window'])
      expect(await w.send({ op: 'set', detector: 'overheat', params: { [p]: false }, valid_for: '1h' })).toMatchObject({
        ok: false,
        error: expect.stringMatching(new RegExp(`cannot change "${p}".*config reload`)),
      });
    expect(await w.send({ op: 'relearn', detector: 'spike' })).toMatchObject({
      ok: false,
      error: expect.stringMatching(/protects an interlock/),
    });
    expect(await w.send({ op: 'relearn', detector: 'watch' })).toMatchObject({ ok: true });
    expect(await w.send({ op: 'set', detector: 'overheat', params: { setpoint: 95 } })).toMatchObject({
      ok: false,
      error: expect.stringMatching(/weaker protection than the file's 80: send it with valid_for/),
    });
    expect(await w.send({ op: 'set', detector: 'overheat', params: { setpoint: 95 }, valid_for: '9h' })).toMatchObject({
      ok: false,
      error: expect.stringMatching(/exceeds control.max_valid_for/),
    });
  });
});
