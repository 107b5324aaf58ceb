/**
 * The whole agent stopping a machine through real components: a coil on pymodbus (read back by the
 * test's own client), a command on Mosquitto (received by an independent subscriber) and a local
 * program, in configured order; with the event store's disk full and no Kafka configured (the sync
 * component is not merged yet, so "Kafka down" here means: there is none). Then re-assertion and an
 * operator ack over MQTT, with the audit trail checked in the SQLite file.
 */
import { execFileSync } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, rmSync, statfsSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import ModbusSerial from 'modbus-serial';
import mqtt, { type MqttClient } from 'mqtt';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { Agent } from '../agent/agent.js';
import { parseConfig } from '../agent/config/load.js';
import type { BoundSensor } from '../agent/driver.js';
import { makeReading } from '../agent/reading.js';
import { openDb } from '../agent/store/db.js';
import { mosquittoUnavailable, startMosquitto } from './helpers/mosquitto.js';
import { pymodbusUnavailable, startPymodbus } from './helpers/pymodbus.js';
import { tempDir } from './helpers/tmp.js';
import { waitFor } from './helpers/wait.js';

const ModbusRTU = ModbusSerial.default;

const missing = mosquittoUnavailable() ?? pymodbusUnavailable();
if (missing && process.env.CI) throw new Error(`CI needs mosquitto and pymodbus: ${missing}`);
if (missing) console.warn(`SKIPPING actuation end-to-end tests: ${missing}`);

const silent = pino({ level: 'silent' });
const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function yaml(opts: { db: string; mqttPort: number; plcPort: number; marker: string; reassert: string }): string {
  return `
store: { path: ${opts.db}, flush_interval: 50ms }
aggregation: { window: 200ms }
sources:
  - { id: sim, type: simulator, seed: 3, rate: 50, tick: 20ms }
assets:
  - id: pump-1
    sensors:
      - { id: temperature, metric: temperature, unit: degC, source: sim }
detectors:
  - { id: overheat, type: threshold, asset: pump-1, sensor: temperature, setpoint: 150, trip: true, severity: critical }
actuators:
  - id: plc
    type: modbus-write
    port: ${opts.plcPort}
    commands: { stop: { coil: 4 }, reset: { coil: 4, value: false } }
  - id: bus
    type: mqtt-publish
    url: mqtt://127.0.0.1:${opts.mqttPort}
    command_topic: plant/{asset}/command
    ack_topic: plant/ack
  - id: horn
    type: exec
    commands: { sound: { file: touch, args: ["${opts.marker}"] } }
interlocks:
  - asset: pump-1
    reassert_every: ${opts.reassert}
    actions:
      - { actuator: plc, command: stop, release: reset }
      - { actuator: bus, command: stop }
      - { actuator: horn, command: sound }
`;
}

async function world(dbDir: string, reassert = '0') {
  const broker = await startMosquitto();
  cleanups.push(() => broker.stop());
  const plc = await startPymodbus({ image: { units: { '1': { coils: { '0': Array(16).fill(false) } } } } });
  cleanups.push(() => plc.stop());
  const dir = tempDir();
  cleanups.push(() => dir.remove());
  const marker = join(dir.path, 'horn');
  const res = await parseConfig(
    yaml({ db: join(dbDir, 'agent.db'), mqttPort: broker.port, plcPort: plc.port, marker, reassert }),
    'e2e.yaml',
  );
  if (!res.ok) throw new Error(JSON.stringify(res.errors));
  const sub = mqtt.connect(`mqtt://127.0.0.1:${broker.port}`, { clientId: 'independent-subscriber' });
  cleanups.push(() => void sub.end(true));
  await new Promise<void>((resolve) => sub.once('connect', () => resolve()));
  await sub.subscribeAsync('plant/+/command', { qos: 1 });
  const commands: Array<Record<string, unknown>> = [];
  sub.on('message', (_t, p) => commands.push(JSON.parse(p.toString()) as Record<string, unknown>));
  const reader = new ModbusRTU();
  await reader.connectTCP('127.0.0.1', { port: plc.port });
  reader.setID(1);
  cleanups.push(() => new Promise<void>((r) => reader.close(() => r())));
  const coil = async () => (await reader.readCoils(4, 1)).data[0];
  return { broker, plc, config: res.config, marker, commands, coil, sub: sub as MqttClient };
}

function hotReading(agent: Agent): void {
  const sensor: BoundSensor = { ...(agent.config.assets[0]?.sensors[0] as BoundSensor), asset: 'pump-1' };
  const t = Date.now();
  agent.pipeline.ingest([makeReading(sensor, 180, t, t)]);
}

/** Why a small tmpfs cannot be mounted here (not root, or no CAP_SYS_ADMIN in a container), or undefined. */
function tmpfsUnavailable(): string | undefined {
  if (process.getuid?.() !== 0) return 'mounting a tmpfs needs root';
  const probe = tempDir('edge-agent-mount-probe-');
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=64k', 'tmpfs', probe.path], { stdio: 'pipe' });
    execFileSync('umount', [probe.path], { stdio: 'pipe' });
    return undefined;
  } catch (err) {
    return `cannot mount a tmpfs: ${(err as { stderr?: Buffer }).stderr?.toString().trim() || (err as Error).message}`;
  } finally {
    probe.remove();
  }
}

describe.skipIf(!!missing)('stopping a machine end to end', () => {
  const noMount = tmpfsUnavailable();
  if (noMount && process.env.CI) throw new Error(`CI needs root for the disk-full test: ${noMount}`);
  if (noMount) console.warn(`SKIPPING the disk-full case: ${noMount}`);

  it.skipIf(!!noMount)(
    'stops the machine (coil, MQTT, local program, in order) while the store disk is full and no Kafka exists',
    async () => {
      const mnt = tempDir('edge-agent-full-');
      cleanups.push(() => mnt.remove());
      execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', mnt.path]);
      cleanups.push(() => execFileSync('umount', ['-l', mnt.path]));
      const w = await world(mnt.path);
      const agent = await Agent.create(w.config, { logger: silent });
      cleanups.push(() => agent.stop());
      await agent.start();

      // Fill the filesystem to the last byte.
      const filler = join(mnt.path, 'filler');
      const fd = openSync(filler, 'w');
      const chunk = Buffer.alloc(64 * 1024, 1);
      try {
        for (;;) writeSync(fd, chunk);
      } catch (err) {
        expect((err as NodeJS.ErrnoException).code).toBe('ENOSPC');
      }
      try {
        for (;;) writeSync(fd, chunk, 0, 512);
      } catch {}
      closeSync(fd);
      expect(statfsSync(mnt.path).bavail).toBe(0);
      // Freed before the agent's stop (registered earlier, runs later), so the store can flush and close.
      cleanups.push(() => rmSync(filler, { force: true }));
      await waitFor(() => agent.store.stats.writeErrors > 0, { what: 'the store to hit the full disk', timeoutMs: 10_000 });

      expect(await w.coil()).toBe(false);
      hotReading(agent);
      expect(agent.interlocks.state('pump-1')).toBe('tripped');
      await waitFor(async () => (await w.coil()) === true, { what: 'the stop coil on the PLC' });
      const cmd = await waitFor(() => w.commands[0], { what: 'the MQTT stop at the independent subscriber' });
      expect(cmd).toMatchObject({ asset: 'pump-1', command: 'stop', reason: { detector: 'overheat', phase: 'trip' } });
      await waitFor(() => existsSync(w.marker), { what: 'the horn program to run' });
      expect(agent.store.stats.lastError).toMatch(/full|SQLITE_FULL/i);
    },
  );

  it('re-asserts until an operator acks over MQTT; the ack releases the coil; the audit trail is in the store', async () => {
    const dir = tempDir();
    cleanups.push(() => dir.remove());
    mkdirSync(dir.path, { recursive: true });
    const w = await world(dir.path, '300ms');
    const agent = await Agent.create(w.config, { logger: silent });
    cleanups.push(() => agent.stop());
    await agent.start();
    hotReading(agent);
    await waitFor(() => w.commands.filter((c) => (c.reason as { phase: string }).phase === 'reassert').length >= 2, {
      what: 'two re-asserted stops',
    });
    expect(await w.coil()).toBe(true);
    // The operator acks over MQTT (the actuator subscribes on connect: repeat until it lands).
    await waitFor(
      async () => {
        await w.sub.publishAsync('plant/ack', JSON.stringify({ asset: 'pump-1', by: 'alice' }), { qos: 1 });
        return agent.interlocks.state('pump-1') === 'running';
      },
      { what: 'the MQTT ack', intervalMs: 200 },
    );
    await waitFor(async () => (await w.coil()) === false, { what: 'the release (reset) command' });
    const after = w.commands.length;
    await new Promise((r) => setTimeout(r, 700));
    expect(w.commands.length).toBe(after);
    await agent.stop();

    const db = openDb(join(dir.path, 'agent.db'), 'NORMAL', true);
    const rows = db.prepare("SELECT kind, payload FROM events WHERE kind IN ('action', 'audit') ORDER BY seq").all() as Array<{
      kind: string;
      payload: string;
    }>;
    db.close();
    const events = rows.map((r) => JSON.parse(r.payload) as Record<string, unknown>);
    const trip = events.find((e) => e.type === 'trip') as {
      reading_event_time: number;
      decided_at: number;
      commands: Array<{ actuator: string; sent_at: number }>;
    };
    expect(trip.reading_event_time).toBeLessThanOrEqual(trip.decided_at);
    expect(trip.commands.map((c) => c.actuator)).toEqual(['plc', 'bus', 'horn']);
    const results = events.filter((e) => e.type === 'command_result' && e.phase === 'trip');
    expect(results).toHaveLength(3);
    for (const r of results) {
      expect(r.ok).toBe(true);
      expect(r.sent_at as number).toBeGreaterThanOrEqual(trip.decided_at);
      expect(r.acked_at as number).toBeGreaterThanOrEqual(r.sent_at as number);
    }
    expect(results.find((r) => r.actuator === 'plc')).toMatchObject({ ack: { verified: true, read_back: [true] } });
    expect(events.filter((e) => e.type === 'reassert').length).toBeGreaterThanOrEqual(2);
    expect(events.find((e) => e.type === 'ack')).toMatchObject({ asset: 'pump-1', by: 'alice', via: 'mqtt' });
    expect(events.find((e) => e.type === 'command_result' && e.phase === 'release')).toMatchObject({
      ok: true,
      command: 'reset',
    });
  });
});
