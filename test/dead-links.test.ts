/**
 * Links that die quietly (issue 19), each with real components, in the whole agent: detected within the
 * configured time, reported (per-device health as /metrics and the twin read it, an `alarm` event
 * `type: device`), the sensors behind the link go bad so the fail-safe stop (docs/safety.md) trips the
 * asset, and the link recovers by itself without a restart.
 *
 * - Modbus TCP half-open: pymodbus behind the test proxy, which stops forwarding without closing.
 * - A vanished tty: the agent's serial port is a socat pty under a stable name (as udev's
 *   /dev/serial/by-id/… link); the pty disappears and comes back under the same name.
 * - A silent MQTT broker: the real Mosquitto frozen with SIGSTOP, then SIGCONT.
 *
 * Detection and recovery times are printed (measured, not asserted).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import mqtt from 'mqtt';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { Agent } from '../agent/agent.js';
import { parseConfig } from '../agent/config/load.js';
import type { DeviceView } from '../agent/health.js';
import type { AgentEvent, Reading } from '../agent/types.js';
import { freePort } from './helpers/free-port.js';
import { mosquittoUnavailable, startMosquitto } from './helpers/mosquitto.js';
import { pymodbusUnavailable, rtuUnavailable, startPymodbus, startRtuPair } from './helpers/pymodbus.js';
import { startProxy } from './helpers/tcp-proxy.js';
import { tempDir } from './helpers/tmp.js';
import { waitFor } from './helpers/wait.js';

const missing = rtuUnavailable() ?? pymodbusUnavailable() ?? mosquittoUnavailable();
if (missing && process.env.CI) throw new Error(`CI must run the dead-link tests: ${missing}`);
if (missing) console.warn(`\n!!! SKIPPING dead-link tests: ${missing}\n`);

const silent = pino({ level: 'silent' });
const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

interface Run {
  agent: Agent;
  events: AgentEvent[];
  readings: Reading[];
  device(source: string, device: string): DeviceView;
  alarms(state: 'raised' | 'cleared'): Array<Record<string, unknown>>;
  trips(): Array<Record<string, unknown>>;
}

async function runAgent(yaml: string): Promise<Run> {
  const res = await parseConfig(yaml, 'dead-links.yaml');
  if (!res.ok) throw new Error(JSON.stringify(res.errors));
  const agent = await Agent.create(res.config, { logger: silent });
  const events: AgentEvent[] = [];
  const readings: Reading[] = [];
  agent.eventTaps.push((ev) => events.push(ev));
  agent.readingTaps.push((b) => readings.push(...b));
  await agent.start();
  cleanups.push(() => agent.stop());
  return {
    agent,
    events,
    readings,
    device: (source, device) => {
      const d = agent.devices.find((x) => x.source === source && x.device === device);
      if (!d) throw new Error(`no device ${source}/${device}`);
      return d.view();
    },
    alarms: (state) =>
      events
        .filter((e) => e.kind === 'alarm' && e.payload.type === 'device' && e.payload.state === state)
        .map((e) => e.payload as Record<string, unknown>),
    trips: () =>
      events.filter((e) => e.kind === 'action' && e.payload.type === 'trip').map((e) => e.payload as Record<string, unknown>),
  };
}

/** One asset whose temperature is watched by a tripping detector: the fail-safe watches it (default policy stop). */
const plantYaml = (source: string, sensorAddress: string) => `
gateway: { id: gw-dead-links }
store: { path: ':memory:' }
sources:
${source}
assets:
  - id: pump-1
    sensors:
      - { id: temperature, metric: temperature, unit: degC, source: link-src${sensorAddress} }
detectors:
  - { id: overheat, type: threshold, asset: pump-1, sensor: temperature, setpoint: 90, severity: critical, trip: true }
actuators:
  - { id: log-stop, type: log }
interlocks:
  - asset: pump-1
    actions: [{ actuator: log-stop, command: stop }]
    fail_safe: { bad_readings: 3, silent_after: 3s }
`;

const good = (r: Run, since: number) => r.readings.filter((x) => x.quality === 'good' && x.ingestTime >= since).length;

describe.skipIf(!!missing)('dead links are detected, reported and recovered without a restart', () => {
  it('Modbus TCP: a half-open connection (the proxy stops forwarding without closing)', async () => {
    const server = await startPymodbus({ image: { units: { '1': { holding: { '0': [55] } } } } });
    cleanups.push(() => server.stop());
    const proxy = await startProxy({ targetPort: server.port });
    cleanups.push(() => proxy.close());
    const r = await runAgent(
      plantYaml(
        `  - { id: link-src, type: modbus, host: 127.0.0.1, port: ${proxy.port}, poll_interval: 100ms, timeout: 200ms, retries: 0,
      unit_backoff_min: 100ms, unit_backoff_max: 300ms, reconnect_min: 100ms, reconnect_max: 500ms,
      dead_link_after: 1s, stale_session_timeouts: 100, keepalive: 2s }`,
        ', address: { unit_id: 1, address: 0 }',
      ),
    );
    await waitFor(() => good(r, 0) >= 5, { what: 'good readings through the proxy' });
    expect(r.device('link-src', 'link')).toMatchObject({ status: 'ok', connects: 1, dead_links: 0 });

    const cut = Date.now();
    proxy.stall(true);
    await waitFor(() => r.device('link-src', 'link').dead_links >= 1, {
      what: 'the half-open link declared dead',
      timeoutMs: 10_000,
    });
    const detected = Date.now() - cut;
    await waitFor(() => r.trips().length >= 1, { what: 'the fail-safe to trip pump-1', timeoutMs: 10_000 });
    const tripped = Date.now() - cut;
    expect(r.trips()[0]).toMatchObject({ asset: 'pump-1', detector: 'fail_safe:bad' });
    const raised = r.alarms('raised');
    expect(raised.map((a) => `${a.source}/${a.device}`)).toContain('link-src/unit-1');
    expect(['down', 'failing']).toContain(r.device('link-src', 'unit-1').status);
    expect(r.device('link-src', 'unit-1').errors.timeout).toBeGreaterThan(0);

    const back = Date.now();
    proxy.stall(false);
    await waitFor(() => good(r, back) >= 3, { what: 'good readings after the link returns', timeoutMs: 15_000 });
    const recovered = Date.now() - back;
    await waitFor(() => r.alarms('cleared').some((a) => a.device === 'unit-1'), { what: 'the device alarm to clear' });
    const link = r.device('link-src', 'link');
    expect(link.status).toBe('ok');
    expect(link.connects).toBeGreaterThanOrEqual(2);
    // The trip stays latched until a person acknowledges it (the fail-safe condition has cleared now).
    expect(r.agent.interlocks.state('pump-1')).toBe('tripped');
    console.log(
      `modbus half-open (timeout 200 ms, dead_link_after 1 s): dead link declared ${detected} ms after the stall, fail-safe trip after ${tripped} ms, good readings ${recovered} ms after the link returned; link ${JSON.stringify({ connects: link.connects, disconnects: link.disconnects, dead_links: link.dead_links })}`,
    );
  });

  it('Modbus RTU: the tty vanishes (adapter unplugged) and comes back under the same name', async () => {
    // pymodbus serves RTU on a pty pair; a TCP relay reaches that line, and the "USB adapter" is a third
    // pty (socat) bridged to the relay, at a stable path like /dev/serial/by-id/…: killing that socat
    // removes the tty, starting it again brings it back under the same name.
    const pair = await startRtuPair({ image: { units: { '1': { holding: { '0': [55] } } } } });
    cleanups.push(() => pair.stop());
    const relayPort = await freePort();
    const relay = spawnSocat([`TCP-LISTEN:${relayPort},bind=127.0.0.1,reuseaddr,fork`, `FILE:${pair.clientPath},raw,echo=0`]);
    cleanups.push(() => relay.kill('SIGKILL'));
    await waitFor(() => /listening on/.test(relay.log()), { what: 'the relay to listen' });
    const dir = tempDir();
    cleanups.push(dir.remove);
    const tty = join(dir.path, 'usb-FTDI_RS485_A10K3J2P-if00-port0');
    const plug = async () => {
      const adapter = spawnSocat([`PTY,raw,echo=0,link=${tty}`, `TCP:127.0.0.1:${relayPort}`]);
      await waitFor(() => existsSync(tty) && /starting data transfer loop/.test(adapter.log()), { what: 'the tty to appear' });
      return adapter;
    };
    let adapter = await plug();
    cleanups.push(() => adapter.kill('SIGKILL'));
    const r = await runAgent(
      plantYaml(
        `  - { id: link-src, type: modbus, transport: rtu, serial_port: ${tty}, baud_rate: 19200, poll_interval: 100ms, timeout: 200ms,
      retries: 0, unit_backoff_min: 100ms, unit_backoff_max: 300ms, reconnect_min: 100ms, reconnect_max: 500ms, dead_link_after: 1s }`,
        ', address: { unit_id: 1, address: 0 }',
      ),
    );
    await waitFor(() => good(r, 0) >= 5, { what: 'good readings over the tty' });

    const unplugged = Date.now();
    adapter.kill('SIGKILL');
    await waitFor(() => !existsSync(tty), { what: 'the tty to vanish' });
    await waitFor(() => r.device('link-src', 'link').status === 'down', { what: 'the link reported down', timeoutMs: 10_000 });
    const detected = Date.now() - unplugged;
    await waitFor(() => r.trips().length >= 1, { what: 'the fail-safe to trip pump-1', timeoutMs: 10_000 });
    expect(r.trips()[0]).toMatchObject({ asset: 'pump-1', detector: 'fail_safe:bad' });
    expect(r.alarms('raised').map((a) => a.device)).toContain('link');
    // Stays down (reopen attempts fail: the file is gone) until it returns.
    await new Promise((res) => setTimeout(res, 1000));
    expect(r.device('link-src', 'link').status).toBe('down');

    const replugged = Date.now();
    adapter = await plug();
    await waitFor(() => good(r, replugged) >= 3, { what: 'good readings after the tty returns', timeoutMs: 15_000 });
    const recovered = Date.now() - replugged;
    await waitFor(() => r.device('link-src', 'link').status === 'ok', { what: 'the link ok again' });
    await waitFor(() => r.alarms('cleared').some((a) => a.device === 'link'), { what: 'the link alarm to clear' });
    const link = r.device('link-src', 'link');
    expect(link.connects).toBeGreaterThanOrEqual(2);
    console.log(
      `modbus rtu tty vanished: link down ${detected} ms after unplug, good readings ${recovered} ms after the tty returned; link ${JSON.stringify({ connects: link.connects, disconnects: link.disconnects, errors: link.errors })}`,
    );
  });

  it('MQTT: a broker frozen with SIGSTOP (no FIN, no answers) is detected by keepalive', async () => {
    const broker = await startMosquitto();
    cleanups.push(() => broker.stop());
    const topic = `dead-links/${Date.now()}/pump-1/temperature`;
    const r = await runAgent(
      plantYaml(
        `  - id: link-src
    type: mqtt
    url: mqtt://127.0.0.1:${broker.port}
    client_id: dead-links-src
    keepalive: 1s
    connect_timeout: 1s
    reconnect_min: 100ms
    reconnect_max: 500ms
    subscriptions: [{ topic: '${topic}', format: number, asset: pump-1, sensor: temperature, qos: 1 }]`,
        '',
      ),
    );
    const pub = await mqtt.connectAsync(`mqtt://127.0.0.1:${broker.port}`, { reconnectPeriod: 100 });
    cleanups.push(() => pub.endAsync(true));
    let value = 20;
    const ticker = setInterval(() => {
      if (pub.connected) pub.publish(topic, String(value++ % 50), { qos: 0 });
    }, 100);
    cleanups.push(() => clearInterval(ticker));
    await waitFor(() => good(r, 0) >= 5, { what: 'readings from the broker' });
    expect(r.device('link-src', 'broker').status).toBe('ok');

    const frozen = Date.now();
    broker.signal('SIGSTOP');
    cleanups.push(() => broker.signal('SIGCONT'));
    await waitFor(() => r.device('link-src', 'broker').dead_links >= 1, {
      what: 'the silent broker detected',
      timeoutMs: 10_000,
    });
    const detected = Date.now() - frozen;
    expect(r.device('link-src', 'broker').status).toBe('down');
    expect(r.alarms('raised').map((a) => a.device)).toContain('broker');
    // No readings arrive: the watched sensor goes silent and the fail-safe trips the asset.
    await waitFor(() => r.trips().length >= 1, { what: 'the fail-safe to trip pump-1', timeoutMs: 10_000 });
    expect(r.trips()[0]).toMatchObject({ asset: 'pump-1', detector: 'fail_safe:silent' });

    const thawed = Date.now();
    broker.signal('SIGCONT');
    await waitFor(() => good(r, thawed) >= 3, { what: 'readings after the broker answers again', timeoutMs: 20_000 });
    const recovered = Date.now() - thawed;
    await waitFor(() => r.device('link-src', 'broker').status === 'ok', { what: 'the broker ok again' });
    const b = r.device('link-src', 'broker');
    expect(b.connects).toBeGreaterThanOrEqual(2);
    console.log(
      `mqtt broker SIGSTOP (keepalive 1 s): dead link declared ${detected} ms after the freeze, readings ${recovered} ms after SIGCONT; broker ${JSON.stringify({ connects: b.connects, disconnects: b.disconnects, dead_links: b.dead_links, latency_ms: b.latency_ms })}`,
    );
  });
});

function spawnSocat(args: string[]): ChildProcess & { log(): string } {
  const child = spawn('socat', ['-d', '-d', ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  child.stderr?.on('data', (c: Buffer) => {
    log += c.toString();
  });
  return Object.assign(child, { log: () => log });
}
