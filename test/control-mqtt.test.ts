/**
 * The control plane over a real MQTT control topic (private Mosquitto), persisted in the real SQLite
 * file, with the real service (API, twin) and the real CLI:
 * - unsigned, forged, expired, out-of-bounds and replayed messages are each refused with their
 *   reason and change nothing; a valid signed one is applied at once, answered, audited, visible in
 *   `edge-agent control show` and in /api/twin, survives a restart (and cannot be replayed after
 *   it); `edge-agent control reset` undoes it through the running agent's API.
 * - The config file changing under a stored override: the start-up log and `control show` name the
 *   conflict, and the file's value applies.
 */
import { execFile } from 'node:child_process';
import { generateKeyPairSync, randomUUID } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import mqtt, { type MqttClient } from 'mqtt';
import { pino } from 'pino';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { Agent } from '../agent/agent.js';
import { parseConfig } from '../agent/config/load.js';
import { openDb } from '../agent/store/db.js';
import { testSigner } from './helpers/control.js';
import { freePort } from './helpers/free-port.js';
import { type Mosquitto, mosquittoUnavailable, startMosquitto } from './helpers/mosquitto.js';
import { startService, TOKEN } from './helpers/service.js';
import { tempDir } from './helpers/tmp.js';
import { waitFor } from './helpers/wait.js';

const missing = mosquittoUnavailable({ tls: true });
if (missing && process.env.CI) throw new Error(`CI must run the Mosquitto tests: ${missing}`);
if (missing) console.warn(`\n!!! SKIPPING MQTT control topic tests: ${missing}\n`);

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const cli = (args: string[]) =>
  new Promise<{ status: number; stdout: string; stderr: string }>((resolve) => {
    execFile(
      process.execPath,
      ['bin/edge-agent.js', ...args],
      { encoding: 'utf8', env: { PATH: process.env.PATH } },
      (err, stdout, stderr) => resolve({ status: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
  });

interface Reply {
  ok: boolean;
  id?: string;
  error?: string;
  reason?: string;
}

const yamlOf = (o: { db: string; port: number; topic: string; keys: string; apiPort?: number; setpoint?: number }) => `
gateway: { id: gw-ctl }
store: { path: ${o.db}, flush_interval: 50ms }
log: { level: silent }
api: { listen: '127.0.0.1:${o.apiPort ?? 0}', token: '${TOKEN}' }
twin: { interval: 1s, history: 1m }
control:
  mqtt: { url: "mqtt://127.0.0.1:${o.port}", topic: "${o.topic}/set", reply_topic: "${o.topic}/reply", client_id: "agent-${randomUUID()}" }
  keys_file: ${o.keys}
  limits: { hot: { setpoint: [50, 95], delta_up: [0, 5] } }
sources: [{ id: sim, type: simulator, seed: 3, rate: 50, tick: 20ms }]
assets:
  - id: pump-1
    sensors: [{ id: temperature, metric: temperature, unit: degC, source: sim }]
detectors:
  - { id: hot, type: threshold, asset: pump-1, sensor: temperature, setpoint: ${o.setpoint ?? 90}, delta_down: 2 }
`;

const setpointOf = (a: Agent) => {
  const d = a.pipeline.detector('hot');
  return d ? (d.config as { setpoint: number }).setpoint : undefined;
};

async function client(port: number, topic: string): Promise<{ c: MqttClient; replies: Reply[] }> {
  const c = await mqtt.connectAsync(`mqtt://127.0.0.1:${port}`, { reconnectPeriod: 0 });
  cleanups.push(() => c.endAsync(true));
  const replies: Reply[] = [];
  c.on('message', (_t, p) => replies.push(JSON.parse(p.toString()) as Reply));
  await c.subscribeAsync(`${topic}/reply`, { qos: 1 });
  return { c, replies };
}

describe.skipIf(!!missing)('MQTT control topic (signed messages)', () => {
  it('refuses unsigned, forged, expired, out-of-bounds and replayed messages; applies a signed one visibly, durably and reversibly', async () => {
    const broker: Mosquitto = await startMosquitto();
    cleanups.push(() => broker.stop());
    const dir = tempDir();
    cleanups.push(() => dir.remove());
    const db = join(dir.path, 'agent.db');
    const topic = `edge/${randomUUID()}`;
    const signer = testSigner(dir.path, 'gw-ctl');
    const apiPort = await freePort();
    const file = join(dir.path, 'agent.yaml');
    const yaml = yamlOf({ db, port: broker.port, topic, keys: signer.keysFile, apiPort });
    writeFileSync(file, yaml);

    let { service } = await startService(yaml, file);
    cleanups.push(() => service.stop());
    const agent = () => service.agent as Agent;
    await agent().controlTopic?.ready();
    const { c, replies } = await client(broker.port, topic);
    const set = `${topic}/set`;
    const setpoint = () => setpointOf(agent());

    // The simulated pump runs at about 65 degC: nothing fires at 90.
    await waitFor(() => agent().pipeline.counters.readings > 20, { what: 'readings' });
    expect(agent().pipeline.counters.anomalies).toBe(0);

    const cmd = { op: 'set', detector: 'hot', params: { setpoint: 55 } };
    const forger = generateKeyPairSync('ed25519').privateKey;
    await c.publishAsync(set, JSON.stringify({ ...cmd, id: 'plain-1', by: 'mallory' }), { qos: 1 });
    await c.publishAsync(set, signer.sign({ ...cmd, id: 'forged-1' }, { key: forger }), { qos: 1 });
    await c.publishAsync(set, signer.sign({ ...cmd, id: 'old-1' }, { now: Date.now() - 600_000 }), { qos: 1 });
    await c.publishAsync(set, signer.sign({ ...cmd, id: 'far-1', params: { setpoint: 40 } }), { qos: 1 });
    await c.publishAsync(set, signer.sign({ ...cmd, id: 'trip-1', params: { trip: true, setpoint: 60 } }), { qos: 1 });
    await waitFor(() => replies.length >= 5, { what: 'five refusals' });
    expect(replies[0]).toMatchObject({ ok: false, reason: 'unsigned' });
    expect(replies[0]?.error).toMatch(/^unsigned message/);
    expect(replies[1]).toMatchObject({ ok: false, reason: 'bad_signature' });
    expect(replies[2]).toMatchObject({ ok: false, id: 'old-1', reason: 'expired' });
    expect(replies[3]).toMatchObject({ ok: false, id: 'far-1', reason: 'refused' });
    expect(replies[3]?.error).toMatch(/setpoint 40 is outside its bounds \[50, 95\]/);
    expect(replies[4]).toMatchObject({ ok: false, id: 'trip-1' });
    expect(replies[4]?.error).toMatch(/cannot change "trip"/);
    // Nothing changed: the file's setpoint, no stored override.
    expect(setpoint()).toBe(90);
    expect((await cli(['control', 'show', '--config', file])).stdout).toMatch(/no run-time overrides/);

    const good = signer.sign({ ...cmd, id: 'good-1', by: 'anna' });
    await c.publishAsync(set, good, { qos: 1 });
    await waitFor(() => replies.length >= 6, { what: 'the answer to the good message' });
    expect(replies[5]).toMatchObject({ ok: true, id: 'good-1' });
    expect(setpoint()).toBe(55);
    // Applied without a restart: the next readings are judged against 55.
    await waitFor(() => agent().pipeline.counters.anomalies > 0, { what: 'an anomaly under the new setpoint' });
    await c.publishAsync(set, good, { qos: 1 });
    await waitFor(() => replies.length >= 7, { what: 'the answer to the replay' });
    expect(replies[6]).toMatchObject({ ok: false, id: 'good-1', reason: 'replayed' });

    // Counted, and visible: /api/status, the twin (contract B) and `control show`.
    const status = (await (await fetch(`http://127.0.0.1:${apiPort}/api/status`)).json()) as { control: unknown };
    expect(status.control).toMatchObject({
      applied: 1,
      rejected: 6,
      rejected_by_reason: { unsigned: 1, bad_signature: 1, expired: 1, refused: 2, replayed: 1 },
      overrides: [{ detector: 'hot', param: 'setpoint', value: 55, file_value: 90, message_id: 'good-1' }],
    });
    const twin = (await (await fetch(`http://127.0.0.1:${apiPort}/api/twin`)).json()) as {
      assets: Array<{
        settings: Record<string, Record<string, unknown>>;
        sensors: Array<{ limits: Array<Record<string, unknown>> }>;
      }>;
    };
    expect(twin.assets[0]?.settings.hot?.setpoint).toMatchObject({
      value: 55,
      file_value: 90,
      origin: 'override',
      by: 'anna',
      message_id: 'good-1',
    });
    expect(twin.assets[0]?.settings.hot?.delta_up).toMatchObject({ value: 0, file_value: 0, origin: 'file' });
    expect(twin.assets[0]?.sensors[0]?.limits[0]).toMatchObject({ detector: 'hot', raise: 55, origin: 'override' });
    const shown = await cli(['control', 'show', '--config', file]);
    expect(shown.stdout).toMatch(
      /hot\.setpoint {2}file 90 {2}effective 55 {2}override 55 {2}by anna {2}at \S+ {2}message good-1 {2}expires -/,
    );

    // Durable: a restart restores it, and the captured message still cannot be replayed.
    await service.stop();
    ({ service } = await startService(yaml, file));
    await agent().controlTopic?.ready();
    expect(setpoint()).toBe(55);
    await c.publishAsync(set, good, { qos: 1 });
    await waitFor(() => replies.length >= 8, { what: 'the answer to the replay after a restart' });
    expect(replies[7]).toMatchObject({ ok: false, id: 'good-1', reason: 'replayed' });

    // Reversible: `control reset` through the running agent's API.
    const reset = await cli(['control', 'reset', 'hot', '--by', 'Jana Novak', '--config', file]);
    expect(reset.stdout).toMatch(/reset to the config file: hot/);
    expect(reset.status).toBe(0);
    expect(setpoint()).toBe(90);
    expect((await cli(['control', 'show', '--config', file])).stdout).toMatch(/no run-time overrides/);
    const after = (await (await fetch(`http://127.0.0.1:${apiPort}/api/twin`)).json()) as typeof twin;
    expect(after.assets[0]?.settings.hot?.setpoint).toMatchObject({ value: 90, file_value: 90, origin: 'file' });
    await service.stop();

    const store = openDb(db, 'NORMAL', true);
    try {
      const audits = store
        .prepare(
          `SELECT json_extract(payload, '$.type') AS type, json_extract(payload, '$.op') AS op,
             json_extract(payload, '$.kind') AS kind, json_extract(payload, '$.message_id') AS id
           FROM events WHERE kind = 'audit' AND json_extract(payload, '$.type') LIKE 'control%' ORDER BY seq`,
        )
        .all();
      expect(audits).toEqual([
        { type: 'control_rejected', op: null, kind: 'unsigned', id: null },
        { type: 'control_rejected', op: null, kind: 'bad_signature', id: null },
        { type: 'control_rejected', op: null, kind: 'expired', id: 'old-1' },
        { type: 'control_rejected', op: null, kind: 'refused', id: 'far-1' },
        { type: 'control_rejected', op: null, kind: 'refused', id: 'trip-1' },
        { type: 'control', op: 'set', kind: null, id: 'good-1' },
        { type: 'control_rejected', op: null, kind: 'replayed', id: 'good-1' },
        { type: 'control_rejected', op: null, kind: 'replayed', id: 'good-1' },
        { type: 'control', op: 'reset', kind: null, id: expect.stringMatching(/^api-reset-/) },
      ]);
      const twins = store
        .prepare("SELECT payload FROM events WHERE kind = 'twin' ORDER BY seq")
        .all()
        .map(
          (r) =>
            JSON.parse((r as { payload: string }).payload) as { settings: Record<string, Record<string, { origin: string }>> },
        );
      // The twin events sent to Kafka carry the effective values and their origin too.
      expect(twins.some((t) => t.settings.hot?.setpoint?.origin === 'override')).toBe(true);
    } finally {
      store.close();
    }
  }, 120_000);

  it('names the conflict when the config file changed under a stored override; the file value applies', async () => {
    const broker: Mosquitto = await startMosquitto();
    cleanups.push(() => broker.stop());
    const dir = tempDir();
    cleanups.push(() => dir.remove());
    const db = join(dir.path, 'agent.db');
    const topic = `edge/${randomUUID()}`;
    const signer = testSigner(dir.path, 'gw-ctl');
    const file = join(dir.path, 'agent.yaml');
    const lines: string[] = [];
    const logger = pino(
      { level: 'info' },
      new Writable({
        write(chunk, _enc, cb) {
          lines.push(...chunk.toString().split('\n').filter(Boolean));
          cb();
        },
      }),
    );
    const start = async (setpoint: number) => {
      const yaml = yamlOf({ db, port: broker.port, topic, keys: signer.keysFile, setpoint });
      writeFileSync(file, yaml);
      const res = await parseConfig(yaml, file);
      if (!res.ok) throw new Error(JSON.stringify(res.errors));
      const a = await Agent.create(res.config, { logger });
      await a.start();
      cleanups.push(() => a.stop());
      await a.controlTopic?.ready();
      return a;
    };

    const first = await start(80);
    const { c, replies } = await client(broker.port, topic);
    await c.publishAsync(
      `${topic}/set`,
      signer.sign({ op: 'set', detector: 'hot', params: { setpoint: 60 }, id: 'm-60', by: 'anna' }),
      {
        qos: 1,
      },
    );
    await waitFor(() => replies.length >= 1, { what: 'answer' });
    expect(replies[0]).toMatchObject({ ok: true, id: 'm-60' });
    await first.stop();

    // Unchanged file: the start-up log names the override with both values.
    lines.length = 0;
    const second = await start(80);
    expect(setpointOf(second)).toBe(60);
    const inForce = lines.map((l) => JSON.parse(l)).find((l) => l.msg === 'run-time override in force');
    expect(inForce).toMatchObject({
      detector: 'hot',
      param: 'setpoint',
      file_value: 80,
      value: 60,
      by: 'anna',
      message_id: 'm-60',
    });
    await second.stop();

    // The file now says 70: the file's value applies and the conflict is named, in the log and in `control show`.
    lines.length = 0;
    const third = await start(70);
    expect(setpointOf(third)).toBe(70);
    const conflict = lines.map((l) => JSON.parse(l)).find((l) => /config file changed under a run-time override/.test(l.msg));
    expect(conflict).toMatchObject({ detector: 'hot', param: 'setpoint', file_value_then: 80, file_value_now: 70, override: 60 });
    expect(third.control.overridesView()).toEqual([
      expect.objectContaining({
        detector: 'hot',
        param: 'setpoint',
        value: 60,
        file_value: 70,
        conflict: { file_value_then: 80, file_value_now: 70 },
      }),
    ]);
    await third.stop();
    const shown = await cli(['control', 'show', '--config', file]);
    expect(shown.stdout).toMatch(/hot\.setpoint {2}file 70 {2}effective 70 {2}override 60/);
    expect(shown.stdout).toMatch(/CONFLICT hot\.setpoint: the config file changed 80 -> 70 since the override 60 was made/);
    // With the agent stopped, `control reset` works on the store.
    const reset = await cli(['control', 'reset', '--by', 'Jana Novak', '--config', file]);
    expect(reset.stdout).toMatch(/the agent is not reachable .*in the store: reset hot to the config file/);
    expect((await cli(['control', 'show', '--config', file])).stdout).toMatch(/no run-time overrides/);
  }, 120_000);

  it('connects over TLS with a client certificate and the password from the environment; a missing variable fails at init', async () => {
    const broker: Mosquitto = await startMosquitto({ tls: true, requireClientCert: true });
    cleanups.push(() => broker.stop());
    const dir = tempDir();
    cleanups.push(() => dir.remove());
    const topic = `edge/${randomUUID()}`;
    const signer = testSigner(dir.path, 'gw-ctl');
    const yaml = yamlOf({ db: join(dir.path, 'agent.db'), port: broker.port, topic, keys: signer.keysFile }).replace(
      `url: "mqtt://127.0.0.1:${broker.port}"`,
      `url: "mqtts://127.0.0.1:${broker.tlsPort}", username: agent, password_env: TEST_CONTROL_PASSWORD, ` +
        `tls: { ca_file: "${broker.caFile}", cert_file: "${broker.clientCertFile}", key_file: "${broker.clientKeyFile}" }`,
    );
    const res = await parseConfig(yaml, 'tls.yaml');
    if (!res.ok) throw new Error(JSON.stringify(res.errors));
    const logger = pino({ level: 'silent' });
    await expect(Agent.create(res.config, { logger })).rejects.toThrow(
      'environment variable TEST_CONTROL_PASSWORD (password_env) is not set',
    );

    vi.stubEnv('TEST_CONTROL_PASSWORD', 's3cret');
    cleanups.push(() => vi.unstubAllEnvs());
    const a = await Agent.create(res.config, { logger });
    await a.start();
    cleanups.push(() => a.stop());
    await a.controlTopic?.ready();
    // The test's own client talks plain MQTT to the same broker.
    const { c, replies } = await client(broker.port, topic);
    await c.publishAsync(`${topic}/set`, signer.sign({ op: 'set', detector: 'hot', params: { setpoint: 60 }, id: 'tls-1' }), {
      qos: 1,
    });
    await waitFor(() => replies.length >= 1, { what: 'the answer over TLS' });
    expect(replies[0]).toMatchObject({ ok: true, id: 'tls-1' });
    expect(setpointOf(a)).toBe(60);
  }, 60_000);
});
