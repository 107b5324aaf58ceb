import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { parseConfig } from '../config/load.js';
import type { AgentConfig } from '../config/schema.js';
import { Interlocks } from '../interlock.js';
import { Pipeline } from '../pipeline.js';
import { openDb } from '../store/db.js';
import type { AgentEvent } from '../types.js';
import { ControlPlane } from './control.js';
import { signBody } from './envelope.js';
import { SetpointStore } from './setpoints.js';

const T0 = Date.parse('2026-06-01T12:00:00Z');
const silent = pino({ level: 'silent' });
const { privateKey, publicKey } = generateKeyPairSync('ed25519');
const dirs: string[] = [];
afterEach(() => {
  vi.useRealTimers();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

async function setup(limits = '{ hot: { setpoint: [40, 95] } }', maxRate = 1000) {
  const res = await parseConfig(
    `
gateway: { id: gw-1 }
control: { limits: ${limits}, max_valid_for: 1h, max_rate: ${maxRate} }
sources: [{ id: plc, type: simulator }]
assets: [{ id: pump, sensors: [{ id: temp, metric: temperature, unit: degC, source: plc }] }]
detectors:
  - { id: hot, type: threshold, asset: pump, sensor: temp, setpoint: 80 }
`,
    'c.yaml',
  );
  if (!res.ok) throw new Error(JSON.stringify(res.errors));
  const config: AgentConfig = res.config;
  const clock = { now: T0 };
  const events: AgentEvent[] = [];
  const emit = (ev: AgentEvent) => events.push(ev);
  const pipeline = new Pipeline(config, new Interlocks([], new Map(), emit, silent, () => clock.now), emit, () => clock.now);
  const control = new ControlPlane({ config, pipeline, emit, logger: silent, now: () => clock.now });
  control.setKeys(new Map([['k', publicKey]]));
  let n = 0;
  const send = (cmd: Record<string, unknown>) =>
    control.handle(
      JSON.stringify(
        signBody(
          {
            id: `m-${++n}`,
            by: 'tech',
            gateway_id: 'gw-1',
            issued_at: new Date(clock.now).toISOString(),
            expires_at: new Date(clock.now + 60_000).toISOString(),
            ...cmd,
          },
          privateKey,
          'k',
        ),
      ),
      'test',
    );
  const setpoint = () => (pipeline.detector('hot')?.config as { setpoint: number } | undefined)?.setpoint;
  return { config, clock, events, pipeline, control, send, setpoint };
}

describe('control plane', () => {
  it('a weaker value with valid_for holds until then; the file value returns on its own, audited', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    const w = await setup();
    const changes: string[] = [];
    w.control.listeners.push((d) => changes.push(d));
    expect(await w.send({ op: 'set', detector: 'hot', params: { setpoint: 90 }, valid_for: '10m' })).toMatchObject({
      ok: true,
      expires_at: new Date(T0 + 600_000).toISOString(),
    });
    expect(w.setpoint()).toBe(90);
    expect(w.control.settings('hot').setpoint).toMatchObject({
      value: 90,
      file_value: 80,
      origin: 'override',
      expires_at: T0 + 600_000,
    });
    w.clock.now = T0 + 600_000;
    vi.advanceTimersByTime(600_000);
    expect(w.setpoint()).toBe(80);
    expect(w.control.settings('hot').setpoint).toMatchObject({ value: 80, origin: 'file' });
    expect(changes).toEqual(['hot', 'hot']);
    expect(w.events.map((e) => e.payload.type)).toEqual(['control', 'control_expired']);
  });

  it('a tighter value needs no expiry; a later weaker one in the same override needs one', async () => {
    const w = await setup();
    expect(await w.send({ op: 'set', detector: 'hot', params: { setpoint: 60 } })).toMatchObject({ ok: true });
    expect(await w.send({ op: 'set', detector: 'hot', params: { setpoint: 85 } })).toMatchObject({
      ok: false,
      error: expect.stringMatching(/weaker protection/),
    });
    expect(w.setpoint()).toBe(60);
  });

  it('unauthenticated refusals are counted each time, but logged and audited at most once per 10 s per kind', async () => {
    const w = await setup();
    for (let i = 0; i < 50; i++)
      expect(await w.control.handle('{"op":"set"}', 'test')).toMatchObject({ ok: false, reason: 'unsigned' });
    expect(w.control.counters.byReason.unsigned).toBe(50);
    expect(w.events).toHaveLength(1);
    w.clock.now += 10_000;
    await w.control.handle('{"op":"set"}', 'test');
    expect(w.events).toHaveLength(2);
    expect(w.events[1]?.payload).toMatchObject({ type: 'control_rejected', kind: 'unsigned', suppressed_since_last: 49 });
  });

  it('checks at most control.max_rate messages per second; the rest are refused unchecked', async () => {
    const w = await setup(undefined, 5);
    const res = [];
    for (let i = 0; i < 8; i++) res.push(await w.send({ op: 'set', detector: 'hot', params: { setpoint: 60 + i } }));
    expect(res.map((r) => (r.ok ? 'ok' : r.reason))).toEqual([
      'ok',
      'ok',
      'ok',
      'ok',
      'ok',
      'rate_limited',
      'rate_limited',
      'rate_limited',
    ]);
    expect(w.setpoint()).toBe(64);
    w.clock.now += 400;
    expect(await w.send({ op: 'set', detector: 'hot', params: { setpoint: 70 } })).toMatchObject({ ok: true });
    expect(await w.send({ op: 'set', detector: 'hot', params: { setpoint: 71 } })).toMatchObject({ ok: true });
    expect(await w.send({ op: 'set', detector: 'hot', params: { setpoint: 72 } })).toMatchObject({
      ok: false,
      reason: 'rate_limited',
    });
  });

  it('without keys every message is refused', async () => {
    const w = await setup();
    const c = new ControlPlane({
      config: w.config,
      pipeline: w.pipeline,
      emit: () => {},
      logger: silent,
      now: () => w.clock.now,
    });
    c.loadKeys({ CREDENTIALS_DIRECTORY: '/nonexistent' });
    expect(await c.handle('{}', 'test')).toMatchObject({
      ok: false,
      reason: 'no_keys',
      error: expect.stringMatching(/control-keys/),
    });
  });

  it('overrides stored before signing existed are checked again at start: a stored trip:false is dropped, a bounded setpoint kept', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'control-'));
    dirs.push(dir);
    const path = join(dir, 'agent.db');
    const legacy = openDb(path, 'NORMAL');
    const insert = legacy.prepare(
      'INSERT INTO setpoints (detector, params, updated_at, message_id, origin) VALUES (?, ?, ?, ?, ?)',
    );
    insert.run('hot', '{"trip":false,"setpoint":50}', T0 - 1000, 'attack', 'mqtt:plant/set');
    legacy.close();
    const w = await setup();
    const store = SetpointStore.open(path);
    w.control.restore(store);
    expect(w.pipeline.detector('hot')?.config).toMatchObject({ setpoint: 80, trip: false });
    expect(w.events.map((e) => e.payload)).toEqual([
      expect.objectContaining({
        type: 'control_rejected',
        origin: 'restore',
        reason: expect.stringMatching(/cannot change "trip"/),
      }),
    ]);
    expect(store.all()).toEqual([]);
    store.save({
      detector: 'hot',
      params: { setpoint: 50 },
      updatedAt: T0 - 1000,
      messageId: 'old',
      origin: 'mqtt',
      by: null,
      expiresAt: null,
      fileParams: null,
      meta: {},
    });
    const again = await setup();
    again.control.restore(store);
    expect(again.setpoint()).toBe(50);
    store.close();
  });
});
