/**
 * The MQTT source against a real Mosquitto: the whole agent ingesting through the pipeline under
 * 10,000 random and malformed payloads; a broker restart and messages published while the agent was
 * down (QoS 1, persistent session); TLS with a client certificate.
 */

import { randomUUID } from 'node:crypto';
import mqtt, { type MqttClient } from 'mqtt';
import { pino } from 'pino';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { Agent } from '../agent/agent.js';
import { parseConfig } from '../agent/config/load.js';
import type { BoundSensor, SourceContext } from '../agent/driver.js';
import { rng } from '../agent/prng.js';
import type { Reading } from '../agent/types.js';
import { PublishFraming } from '../drivers/mqtt/framing.js';
import { type MqttConfig, mqttSchema } from '../drivers/mqtt/schema.js';
import { clientOptions, MqttSource } from '../drivers/mqtt/source.js';
import { mosquittoUnavailable, startMosquitto } from './helpers/mosquitto.js';
import { tempDir } from './helpers/tmp.js';
import { waitFor } from './helpers/wait.js';

const missing = mosquittoUnavailable({ tls: true });
if (missing && process.env.CI) throw new Error(`CI must run the MQTT driver tests: ${missing}`);
if (missing) console.warn(`\n!!! SKIPPING MQTT driver tests against Mosquitto: ${missing}\n`);

const silent = pino({ level: 'silent' });
const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function publisher(url: string, options: mqtt.IClientOptions = {}): Promise<MqttClient> {
  const client = await mqtt.connectAsync(url, { reconnectPeriod: 0, clientId: `pub-${randomUUID()}`, ...options });
  cleanups.push(() => client.endAsync(true));
  return client;
}

interface Fuzzed {
  topic: string;
  payload: Buffer;
  valid: number;
  malformed: number;
}

/**
 * Random messages whose expected outcome the generator knows: `valid` readings to ingest and
 * `malformed` rejections to count (one per bad message, or per bad item inside a batch).
 */
function fuzz(n: number, prefix: string, seed: number, maxBytes: number): Fuzzed[] {
  const rnd = rng(seed);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)] as T;
  const assets = ['pump-0', 'pump-1', 'pump-2'];
  const sensors = ['temperature', 'pressure'];
  const ts = () => Date.UTC(2026, 0, 1) + Math.floor(rnd() * 86_400_000);
  const num = () => Math.round((rnd() * 200 - 50) * 1000) / 1000;
  const out: Fuzzed[] = [];
  const json = (topic: string, doc: unknown, valid: number, malformed: number) =>
    out.push({ topic, payload: Buffer.from(JSON.stringify(doc)), valid, malformed });
  for (let i = 0; i < n; i++) {
    const a = pick(assets);
    const s = pick(sensors);
    const kind = Math.floor(rnd() * 16);
    const one = `${prefix}/${a}/${s}/json`;
    switch (kind) {
      case 0:
      case 1:
      case 2:
        json(one, { value: num(), ts: ts() }, 1, 0);
        break;
      case 3: {
        const items = Array.from({ length: 1 + Math.floor(rnd() * 5) }, () => rnd());
        const readings = items.map((r) =>
          r < 0.7 ? { id: pick(sensors), v: num() } : { id: pick(sensors), v: pick(['x', null, {}, []]) },
        );
        const good = items.filter((r) => r < 0.7).length;
        json(`${prefix}/${a}/batch`, { readings }, good, items.length - good);
        break;
      }
      case 4:
        out.push({ topic: `${prefix}/${a}/${s}/num`, payload: Buffer.from(String(num())), valid: 1, malformed: 0 });
        break;
      case 5:
        out.push({ topic: `${prefix}/${a}/${s}/num`, payload: Buffer.from(`${num()}kg`), valid: 0, malformed: 1 });
        break;
      case 6: // truncated JSON
        out.push({
          topic: one,
          payload: Buffer.from(JSON.stringify({ value: num(), ts: ts() }).slice(0, -1 - Math.floor(rnd() * 5))),
          valid: 0,
          malformed: 1,
        });
        break;
      case 7: {
        // random bytes; the leading 0xff makes them invalid JSON whatever follows
        const bytes = Buffer.alloc(1 + Math.floor(rnd() * 300));
        for (let j = 0; j < bytes.length; j++) bytes[j] = Math.floor(rnd() * 256);
        bytes[0] = 0xff;
        out.push({ topic: one, payload: bytes, valid: 0, malformed: 1 });
        break;
      }
      case 8: // oversize but otherwise valid
        json(one, { value: num(), ts: ts(), pad: 'x'.repeat(maxBytes) }, 0, 1);
        break;
      case 9:
        json(one, { value: pick(['12', null, 'abc', 'NaN', { v: 1 }]), ts: ts() }, 0, 1);
        break;
      case 10:
        json(one, { value: num(), ts: pick([-1, 12, 'soon', null, 1e20]) }, 0, 1);
        break;
      case 11: // a sensor nobody configured
        json(`${prefix}/${a}/humidity/json`, { value: num(), ts: ts() }, 0, 1);
        break;
      case 12: // a topic level that is not a valid id
        json(`${prefix}/pump 1!/${s}/json`, { value: num(), ts: ts() }, 0, 1);
        break;
      case 13:
        out.push({ topic: one, payload: Buffer.alloc(0), valid: 0, malformed: 1 });
        break;
      case 14:
        out.push({
          topic: one,
          payload: Buffer.from(`${'['.repeat(5000)}${']'.repeat(5000)}`.slice(0, maxBytes)),
          valid: 0,
          malformed: 1,
        });
        break;
      default:
        json(one, pick([[], 42, 'text', null]), 0, 1);
    }
  }
  return out;
}

describe.skipIf(!!missing)('mqtt source against Mosquitto', () => {
  it('keeps the whole agent up under 10,000 random and malformed payloads and ingests exactly the valid ones', async () => {
    const broker = await startMosquitto();
    cleanups.push(() => broker.stop());
    const dir = tempDir();
    cleanups.push(() => dir.remove());
    const prefix = `fz-${randomUUID().slice(0, 8)}`;
    const maxBytes = 4096;
    const assets = ['pump-0', 'pump-1', 'pump-2']
      .map(
        (a) => `  - id: ${a}
    sensors:
      - { id: temperature, metric: temperature, source: mq }
      - { id: pressure, metric: pressure, source: mq }`,
      )
      .join('\n');
    const yaml = `
store: { path: ${dir.path}/agent.db, flush_interval: 50ms }
log: { level: silent }
sources:
  - id: mq
    type: mqtt
    url: mqtt://127.0.0.1:${broker.port}
    client_id: agent-${prefix}
    max_payload_bytes: ${maxBytes}
    subscriptions:
      - { topic: "${prefix}/+/+/json", asset_segment: 1, sensor_segment: 2, value_path: value, time_path: ts }
      - { topic: "${prefix}/+/batch", asset_segment: 1, items_path: readings, sensor_path: id, value_path: v }
      - { topic: "${prefix}/+/+/num", format: number, asset_segment: 1, sensor_segment: 2 }
assets:
${assets}
`;
    const res = await parseConfig(yaml, 'mqtt.yaml');
    if (!res.ok) throw new Error(JSON.stringify(res.errors));
    const agent = await Agent.create(res.config, { logger: silent });
    await agent.start();
    cleanups.push(() => agent.stop());
    const counters = agent.sourceCounters.get('mq') as NonNullable<ReturnType<typeof agent.sourceCounters.get>>;

    const messages = fuzz(10_000, prefix, 7, maxBytes);
    const valid = messages.reduce((n, m) => n + m.valid, 0);
    const malformed = messages.reduce((n, m) => n + m.malformed, 0);
    const pub = await publisher(`mqtt://127.0.0.1:${broker.port}`);
    for (let i = 0; i < messages.length; i += 500) {
      await Promise.all(messages.slice(i, i + 500).map((m) => pub.publishAsync(m.topic, m.payload, { qos: 1 })));
    }
    await waitFor(() => counters.readings === valid && counters.malformed === malformed, {
      what: `${valid} readings and ${malformed} malformed (have ${counters.readings} and ${counters.malformed})`,
      timeoutMs: 30_000,
    });
    // A sentinel after everything: when it arrives, nothing else is still on its way.
    await pub.publishAsync(`${prefix}/pump-0/temperature/num`, '1', { qos: 1 });
    await waitFor(() => counters.readings === valid + 1, { what: 'the sentinel' });
    console.log(`mqtt fuzz: ${messages.length} messages, ${valid} valid readings ingested, ${malformed} rejections counted`);
    expect(counters.malformed).toBe(malformed);
    expect(counters.reconnects).toBe(0);
    // Every valid reading is accounted for: accepted, or counted as late or future-stamped by the
    // event-time checks (the fuzz stamps some readings with random times).
    const c = agent.pipeline.counters;
    expect(c.readings + c.late + c.future).toBe(valid + 1);
    expect(c.readings).toBeGreaterThan(valid / 4);
    expect(c.unknownSensor).toBe(0);
    expect(valid).toBeGreaterThan(2000);
    expect(malformed).toBeGreaterThan(4000);
  });

  function source(config: Record<string, unknown>, sensors: BoundSensor[], env: NodeJS.ProcessEnv = {}) {
    const readings: Reading[] = [];
    const ctx: SourceContext = {
      id: 'mq',
      sensors,
      logger: silent,
      emit: (batch) => readings.push(...batch),
      count: () => {},
      now: Date.now,
    };
    const src = new MqttSource({ ...(mqttSchema.parse(config) as MqttConfig), id: 'mq' }, ctx, { env });
    src.init();
    cleanups.push(() => src.stop());
    return { src, readings };
  }
  const sensor: BoundSensor = { asset: 'pump-1', id: 'temperature', metric: 'temperature', unit: 'degC', source: 'mq' };

  it('reconnects after a broker restart and receives QoS 1 messages published while the agent was down', async () => {
    const broker = await startMosquitto({ persistence: true });
    cleanups.push(() => broker.stop());
    const topic = `rs-${randomUUID().slice(0, 8)}/pump-1/temperature`;
    const cfg = {
      url: `mqtt://127.0.0.1:${broker.port}`,
      client_id: `agent-${randomUUID()}`,
      reconnect_min: '100ms',
      reconnect_max: '1s',
      subscriptions: [{ topic: `${topic.split('/')[0]}/+/+`, format: 'number', asset_segment: 1, sensor_segment: 2 }],
    };
    const values = (rs: Reading[]) => rs.map((r) => r.value);
    const first = source(cfg, [sensor]);
    await first.src.start();
    expect(first.src.connected).toBe(true);

    let pub = await publisher(`mqtt://127.0.0.1:${broker.port}`);
    for (let i = 0; i < 10; i++) await pub.publishAsync(topic, String(i), { qos: 1 });
    await waitFor(() => first.readings.length === 10, { what: '10 messages before the restart' });

    // 1. The broker restarts under a running agent: it reconnects by itself.
    await pub.endAsync(true);
    await broker.restart();
    await waitFor(() => first.src.broker.connects === 2 && first.src.connected, {
      what: 'the source to reconnect',
      timeoutMs: 20_000,
    });
    pub = await publisher(`mqtt://127.0.0.1:${broker.port}`);
    for (let i = 10; i < 20; i++) await pub.publishAsync(topic, String(i), { qos: 1 });
    await waitFor(() => first.readings.length === 20, { what: '10 messages after the restart' });
    expect(values(first.readings)).toEqual(Array.from({ length: 20 }, (_, i) => i));

    // 2. The agent is down while 200 messages are published, and the broker restarts meanwhile.
    await first.src.stop();
    for (let i = 20; i < 220; i++) await pub.publishAsync(topic, String(i), { qos: 1 });
    await pub.endAsync(true);
    await broker.restart();
    const second = source(cfg, [sensor]);
    await second.src.start();
    await waitFor(() => second.readings.length >= 200, { what: 'the 200 messages queued while the agent was down' });
    const got = values(second.readings);
    expect(new Set(got)).toEqual(new Set(Array.from({ length: 200 }, (_, i) => i + 20)));
    console.log(`mqtt restart: 200 queued QoS 1 messages received after the agent came back (${got.length - 200} duplicates)`);
  });

  it('connects over TLS with a client certificate and the password from the environment, to a broker that requires one', async () => {
    // Mosquitto with a password_file (made by mosquitto_passwd) and allow_anonymous false: the password is checked.
    const users = { agent: 's3cret', plc: 'plc-pw' };
    const broker = await startMosquitto({ tls: true, requireClientCert: true, users });
    cleanups.push(() => broker.stop());
    const prefix = `tls-${randomUUID().slice(0, 8)}`;
    const config = (password: string) =>
      source(
        {
          url: `mqtts://127.0.0.1:${broker.tlsPort}`,
          username: 'agent',
          password_env: 'TEST_MQTT_PASSWORD',
          connect_timeout: '1s',
          reconnect_min: '5s',
          tls: { ca_file: broker.caFile, cert_file: broker.clientCertFile, key_file: broker.clientKeyFile },
          subscriptions: [{ topic: `${prefix}/#`, asset: 'pump-1', sensor: 'temperature', value_path: 'v' }],
        },
        [sensor],
        { TEST_MQTT_PASSWORD: password },
      );
    // A wrong password is refused by the broker (not authorised): no connection, no exception, the link is down.
    const wrong = config('wrong');
    await wrong.src.start();
    expect(wrong.src.connected).toBe(false);
    await waitFor(() => wrong.src.broker.view().status === 'down', { what: 'the refused link reported down' });
    await wrong.src.stop();
    // Anonymous clients are refused too.
    await expect(publisher(`mqtt://127.0.0.1:${broker.port}`)).rejects.toThrow(/not authori[sz]ed/i);

    const { src, readings } = config('s3cret');
    await src.start();
    expect(src.connected).toBe(true);
    const pub = await publisher(`mqtt://127.0.0.1:${broker.port}`, { username: 'plc', password: 'plc-pw' });
    await pub.publishAsync(`${prefix}/a/b`, JSON.stringify({ v: 63.5 }), { qos: 1 });
    await waitFor(() => readings.length === 1, { what: 'a reading over TLS' });
    expect(readings[0]).toMatchObject({ asset: 'pump-1', sensor: 'temperature', value: 63.5, quality: 'good', unit: 'degC' });
    expect(src.broker.view()).toMatchObject({ status: 'ok', connects: 1, requests: 1 });
  });

  it.each([4, 5] as const)(
    'MQTT %i: reads QoS 0, 1 and 2, payloads larger than a socket read and bursts; QoS 0 and 1 framed by the source under 3.1.1',
    async (protocol_version) => {
      const broker = await startMosquitto();
      cleanups.push(() => broker.stop());
      const prefix = `fr-${randomUUID().slice(0, 8)}`;
      const { src, readings } = source(
        {
          url: `mqtt://127.0.0.1:${broker.port}`,
          client_id: `agent-${prefix}`,
          protocol_version,
          max_payload_bytes: 300_000,
          subscriptions: [{ topic: `${prefix}/+/+`, qos: 2, asset_segment: 1, sensor_segment: 2, value_path: 'v' }],
        },
        [sensor],
      );
      await src.start();
      // The messages MQTT.js itself delivers: under 3.1.1 only QoS 2 (the rest is framed by the source).
      const viaMqttJs: number[] = [];
      (src as unknown as { client: MqttClient }).client.on('message', (_t, p) => viaMqttJs.push(JSON.parse(p.toString()).v));
      const pub = await publisher(`mqtt://127.0.0.1:${broker.port}`, { protocolVersion: protocol_version });
      const topic = `${prefix}/pump-1/temperature`;
      const n = 6000;
      const qosOf = (i: number) => (i % 3) as 0 | 1 | 2;
      // Every 500th message is padded past 64 KB (more than one socket read); one is over the limit.
      const body = (i: number) => JSON.stringify(i % 500 === 7 ? { v: i, pad: 'x'.repeat(200_000) } : { v: i });
      // In groups of 20: the broker's in-flight window for QoS 1 and 2 from one publisher.
      for (let i = 0; i < n; i += 20) {
        const group = Array.from({ length: Math.min(20, n - i) }, (_, k) => i + k);
        await Promise.all(group.map((j) => pub.publishAsync(topic, body(j), { qos: qosOf(j) })));
      }
      await pub.publishAsync(topic, JSON.stringify({ v: -1, pad: 'x'.repeat(400_000) }), { qos: 1 });
      // A sentinel after everything, at each QoS: when all three arrived, nothing else is on its way.
      for (const q of [0, 1, 2] as const) await pub.publishAsync(topic, JSON.stringify({ v: n + q }), { qos: q });
      await waitFor(() => [0, 1, 2].every((q) => readings.some((r) => r.value === n + q)), {
        what: `the sentinels (have ${readings.length} readings)`,
        timeoutMs: 30_000,
      });
      const values = readings.map((r) => r.value).filter((v) => v < n);
      expect(values).toHaveLength(n);
      for (const q of [0, 1, 2]) {
        const got = values.filter((v) => qosOf(v) === q);
        // In publish order within each QoS (MQTT orders messages of one QoS from one publisher).
        expect(got).toEqual(Array.from({ length: n }, (_, i) => i).filter((i) => qosOf(i) === q));
      }
      expect(src.stats.malformed.oversize).toBe(1);
      expect(src.broker.view()).toMatchObject({ connects: 1, requests: n + 4 });
      const viaMqttJsAtQos01 = viaMqttJs.filter((v) => v >= 0 && v < n && qosOf(v) < 2).length;
      if (protocol_version === 4) expect(viaMqttJsAtQos01).toBe(0);
      else expect(viaMqttJsAtQos01).toBe(4000);
    },
  );

  it('drops the connection and reconnects when its own framing throws, and the QoS 1 message comes again', async () => {
    const broker = await startMosquitto();
    cleanups.push(() => broker.stop());
    const prefix = `fx-${randomUUID().slice(0, 8)}`;
    const { src, readings } = source(
      {
        url: `mqtt://127.0.0.1:${broker.port}`,
        client_id: `agent-${prefix}`,
        reconnect_min: '100ms',
        subscriptions: [{ topic: `${prefix}/+/+`, format: 'number', asset_segment: 1, sensor_segment: 2 }],
      },
      [sensor],
    );
    await src.start();
    const feed = PublishFraming.prototype.feed;
    let fail = true;
    const spy = vi.spyOn(PublishFraming.prototype, 'feed').mockImplementation(function (this: PublishFraming, chunk, sink) {
      if (fail && chunk.includes(Buffer.from('41.5'))) {
        fail = false;
        throw new Error('framing bug');
      }
      feed.call(this, chunk, sink);
    });
    cleanups.push(() => spy.mockRestore());
    const pub = await publisher(`mqtt://127.0.0.1:${broker.port}`);
    await pub.publishAsync(`${prefix}/pump-1/temperature`, '41.5', { qos: 1 });
    await waitFor(() => readings.length === 1, { what: 'the message after the reconnect' });
    expect(fail).toBe(false);
    expect(readings[0]?.value).toBe(41.5);
    expect(src.broker.connects).toBe(2);
  });

  it('does not connect over TLS without the client certificate, and does not throw either', async () => {
    const broker = await startMosquitto({ tls: true, requireClientCert: true });
    cleanups.push(() => broker.stop());
    const { src } = source(
      {
        url: `mqtts://127.0.0.1:${broker.tlsPort}`,
        connect_timeout: '1s',
        tls: { ca_file: broker.caFile },
        subscriptions: [{ topic: 'x/#', asset: 'pump-1', sensor: 'temperature' }],
      },
      [sensor],
    );
    await src.start();
    expect(src.connected).toBe(false);
  });
});

describe('mqtt client options', () => {
  const base = { url: 'mqtts://broker.example:8883', subscriptions: [{ topic: 'a/#', asset: 'a', sensor: 's' }] };
  it('uses a fixed client id and a persistent session by default', () => {
    const o = clientOptions({ ...(mqttSchema.parse(base) as MqttConfig), id: 'mq' }, {});
    expect(o).toMatchObject({ clientId: 'edge-agent-mq', clean: false, host: 'broker.example', port: 8883, protocol: 'mqtts' });
  });
  it('takes the password from the named environment variable and fails clearly without it', () => {
    const cfg = { ...(mqttSchema.parse({ ...base, username: 'u', password_env: 'PW' }) as MqttConfig), id: 'mq' };
    expect(clientOptions(cfg, { PW: 'x' })).toMatchObject({ username: 'u', password: 'x' });
    expect(() => clientOptions(cfg, {})).toThrow('environment variable PW (password_env) is not set');
  });
});
