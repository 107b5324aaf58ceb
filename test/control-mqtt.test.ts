/**
 * Setpoints over a real MQTT control topic (private Mosquitto), persisted in the real SQLite file:
 * a good update is applied without a restart and answered; a poison message is rejected with its
 * reason and breaks nothing; both are audited; the update survives an agent restart.
 */
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import mqtt, { type MqttClient } from 'mqtt';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { Agent } from '../agent/agent.js';
import { parseConfig } from '../agent/config/load.js';
import { openDb } from '../agent/store/db.js';
import { type Mosquitto, mosquittoUnavailable, startMosquitto } from './helpers/mosquitto.js';
import { tempDir } from './helpers/tmp.js';
import { waitFor } from './helpers/wait.js';

const missing = mosquittoUnavailable();
if (missing && process.env.CI) throw new Error(`CI must run the Mosquitto tests: ${missing}`);
if (missing) console.warn(`\n!!! SKIPPING MQTT control topic tests: ${missing}\n`);

const silent = pino({ level: 'silent' });
const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function makeAgent(dbPath: string, brokerPort: number, topic: string) {
  const res = await parseConfig(
    `
store: { path: ${dbPath}, flush_interval: 50ms }
control:
  mqtt: { url: "mqtt://127.0.0.1:${brokerPort}", topic: "${topic}/set", reply_topic: "${topic}/reply", client_id: "agent-${randomUUID()}" }
sources: [{ id: sim, type: simulator, seed: 3, rate: 50, tick: 20ms }]
assets:
  - id: pump-1
    sensors: [{ id: temperature, metric: temperature, unit: degC, source: sim }]
detectors:
  - { id: hot, type: threshold, asset: pump-1, sensor: temperature, setpoint: 90, delta_down: 2 }
`,
    'test.yaml',
  );
  if (!res.ok) throw new Error(JSON.stringify(res.errors));
  const agent = await Agent.create(res.config, { logger: silent });
  await agent.start();
  cleanups.push(() => agent.stop());
  await agent.controlTopic?.ready();
  return agent;
}

describe.skipIf(!!missing)('MQTT control topic', () => {
  it('applies a good setpoint at once, rejects a poison message, audits both, and keeps the setpoint across a restart', async () => {
    const broker: Mosquitto = await startMosquitto();
    cleanups.push(() => broker.stop());
    const dir = tempDir();
    cleanups.push(() => dir.remove());
    const dbPath = join(dir.path, 'agent.db');
    const topic = `edge/${randomUUID()}`;

    const agent = await makeAgent(dbPath, broker.port, topic);
    const client: MqttClient = await mqtt.connectAsync(`mqtt://127.0.0.1:${broker.port}`, { reconnectPeriod: 0 });
    cleanups.push(() => client.endAsync(true));
    const replies: Array<{ ok: boolean; id?: string; error?: string }> = [];
    client.on('message', (_t, p) => replies.push(JSON.parse(p.toString())));
    await client.subscribeAsync(`${topic}/reply`, { qos: 1 });

    // The simulated pump runs at about 65 degC: nothing fires at 90.
    await waitFor(() => agent.pipeline.counters.readings > 20, { what: 'readings' });
    expect(agent.pipeline.counters.anomalies).toBe(0);

    await client.publishAsync(`${topic}/set`, 'this is not json', { qos: 1 });
    await client.publishAsync(
      `${topic}/set`,
      JSON.stringify({ op: 'set', detector: 'hot', params: { setpoint: 'hot' }, id: 'bad-1' }),
      {
        qos: 1,
      },
    );
    await client.publishAsync(
      `${topic}/set`,
      JSON.stringify({ op: 'set', detector: 'hot', params: { setpoint: 50 }, id: 'm-1' }),
      {
        qos: 1,
      },
    );
    await waitFor(() => replies.length >= 3, { what: 'three replies' });
    expect(replies[0]).toMatchObject({ ok: false });
    expect(replies[0]?.error).toMatch(/^not JSON/);
    expect(replies[1]).toMatchObject({ ok: false, id: 'bad-1' });
    expect(replies[1]?.error).toMatch(/setpoint/);
    expect(replies[2]).toMatchObject({ ok: true, id: 'm-1' });
    // Applied without a restart: the next readings are judged against 50.
    await waitFor(() => agent.pipeline.counters.anomalies > 0, { what: 'an anomaly under the new setpoint' });
    expect(agent.pipeline.detector('hot')?.config).toMatchObject({ setpoint: 50 });
    await agent.stop();

    const db = openDb(dbPath, 'NORMAL', true);
    try {
      const sp = db.prepare('SELECT detector, params, message_id, origin FROM setpoints').all();
      expect(sp).toEqual([{ detector: 'hot', params: '{"setpoint":50}', message_id: 'm-1', origin: `mqtt:${topic}/set` }]);
      const audits = db
        .prepare(
          "SELECT json_extract(payload, '$.type') AS type, json_extract(payload, '$.message_id') AS id FROM events WHERE kind = 'audit' ORDER BY seq",
        )
        .all();
      expect(audits).toEqual([
        { type: 'control_rejected', id: null },
        { type: 'control_rejected', id: 'bad-1' },
        { type: 'control', id: 'm-1' },
      ]);
    } finally {
      db.close();
    }

    const again = await makeAgent(dbPath, broker.port, topic);
    expect(again.pipeline.detector('hot')?.config).toMatchObject({ setpoint: 50 });
  });
});
