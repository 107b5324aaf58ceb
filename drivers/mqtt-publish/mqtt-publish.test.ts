/**
 * The mqtt-publish actuator on a real Mosquitto: an independent subscriber receives the command, a late
 * subscriber gets the retained state, and an ack published on the ack topic reaches the interlock.
 */
import mqtt, { type MqttClient } from 'mqtt';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { ActuatorContext, ActuatorDriver } from '../../agent/driver.js';
import { type Mosquitto, mosquittoUnavailable, startMosquitto } from '../../test/helpers/mosquitto.js';
import { waitFor } from '../../test/helpers/wait.js';
import mqttPublish from './index.js';
import { brokerIsLoopback, type MqttPublisher } from './publisher.js';

const missing = mosquittoUnavailable({ tls: true });
if (missing && process.env.CI) throw new Error(`CI needs mosquitto: ${missing}`);
if (missing) console.warn(`SKIPPING mqtt-publish tests: ${missing}`);

const silent = pino({ level: 'silent' });

async function subscriber(
  url: string,
  topic: string,
): Promise<{ client: MqttClient; got: Array<{ topic: string; payload: string; retain: boolean }> }> {
  const client = mqtt.connect(url, { clientId: `test-sub-${Math.random().toString(16).slice(2)}` });
  const got: Array<{ topic: string; payload: string; retain: boolean }> = [];
  client.on('message', (t, p, packet) => got.push({ topic: t, payload: p.toString(), retain: packet.retain }));
  await new Promise<void>((resolve) => client.once('connect', () => resolve()));
  await client.subscribeAsync(topic, { qos: 1 });
  return { client, got };
}

describe.skipIf(!!missing)('mqtt-publish on Mosquitto', () => {
  let broker: Mosquitto;
  let url: string;
  const cleanup: Array<() => Promise<void> | void> = [];

  beforeAll(async () => {
    broker = await startMosquitto();
    url = `mqtt://127.0.0.1:${broker.port}`;
  });
  afterAll(async () => {
    for (const c of cleanup.reverse()) await c();
    await broker?.stop();
  });

  async function actuator(options: Record<string, unknown>, ctx: Partial<ActuatorContext> = {}): Promise<ActuatorDriver> {
    const config = mqttPublish.schema.parse({ url, ...options });
    const id = `act-${Math.random().toString(16).slice(2)}`;
    const d = await mqttPublish.create({ ...config, id }, { id, logger: silent, now: Date.now, ...ctx });
    await d.init();
    await d.start();
    cleanup.push(() => d.stop());
    return d;
  }

  it('publishes the stop at QoS 1 to an independent subscriber, and mirrors it on the retained state topic', async () => {
    const sub = await subscriber(url, 'plant/+/command');
    cleanup.push(() => void sub.client.end(true));
    const d = await actuator({ command_topic: 'plant/{asset}/command', state_topic: 'plant/{asset}/state' });
    const res = await d.execute({ asset: 'pump-1', command: 'stop', reason: { detector: 'hot', phase: 'trip' } });
    expect(res).toMatchObject({ ok: true, ack: { topic: 'plant/pump-1/command', queued: false } });
    const msg = await waitFor(() => sub.got[0], { what: 'the stop command' });
    expect(msg.topic).toBe('plant/pump-1/command');
    expect(JSON.parse(msg.payload)).toMatchObject({ asset: 'pump-1', command: 'stop', reason: { detector: 'hot' } });
    expect(msg.retain).toBe(false);

    const late = await subscriber(url, 'plant/pump-1/state');
    cleanup.push(() => void late.client.end(true));
    const state = await waitFor(() => late.got[0], { what: 'the retained state' });
    expect(state.retain).toBe(true);
    expect(JSON.parse(state.payload)).toMatchObject({ asset: 'pump-1', command: 'stop', phase: 'trip' });
  });

  it('yields to a broker on this machine once per event-loop turn, after a storm of stops has been written, none lost; never after a release', async () => {
    const sub = await subscriber(url, 'storm/+/cmd');
    cleanup.push(() => void sub.client.end(true));
    const d = (await actuator({ command_topic: 'storm/{asset}/cmd' })) as MqttPublisher;
    const stream = (d as unknown as { client: { stream: { bytesWritten: number } } }).client.stream;
    const sleeps: Array<{ us: number; bytesWritten: number }> = [];
    d.sleep = (us) => sleeps.push({ us, bytesWritten: stream.bytesWritten });
    d.afterCommands();
    expect(sleeps).toHaveLength(0); // nothing written yet: no sleep

    // 100 assets trip in one turn: the interlock calls afterCommands after each decision.
    const before = stream.bytesWritten;
    const results = [];
    for (let i = 0; i < 100; i++) {
      results.push(d.execute({ asset: `p${i}`, command: 'stop', reason: { phase: 'trip' } }));
      d.afterCommands();
    }
    expect(sleeps).toHaveLength(1);
    expect(sleeps[0]?.us).toBe(200);
    // The sleep came after the first stop had been handed to the kernel.
    expect(sleeps[0]?.bytesWritten).toBeGreaterThan(before);
    expect((await Promise.all(results)).every((r) => r.ok)).toBe(true);
    await waitFor(() => sub.got.length === 100, { what: 'all 100 stops' });
    expect(new Set(sub.got.map((m) => m.topic)).size).toBe(100);

    // A later turn may sleep again, once.
    await new Promise((r) => setImmediate(r));
    await d.execute({ asset: 'p0', command: 'stop', reason: { phase: 'reassert' } });
    d.afterCommands();
    d.afterCommands();
    expect(sleeps).toHaveLength(2);

    // A release is written at once, but earns no sleep: nothing waits for a machine to restart.
    await new Promise((r) => setImmediate(r));
    const released = stream.bytesWritten;
    const reset = d.execute({ asset: 'p0', command: 'reset', reason: { phase: 'release' } });
    expect(stream.bytesWritten).toBeGreaterThan(released);
    d.afterCommands();
    expect(sleeps).toHaveLength(2);
    expect(await reset).toMatchObject({ ok: true });
    await waitFor(() => sub.got.some((m) => m.topic === 'storm/p0/cmd' && m.payload.includes('"reset"')), {
      what: 'the release',
    });
  });

  it('never yields with yield_to_broker_us 0, nor towards a broker on another machine', async () => {
    const d = (await actuator({ command_topic: 'noyield/{asset}/cmd', yield_to_broker_us: 0 })) as MqttPublisher;
    let slept = 0;
    d.sleep = () => void slept++;
    await d.execute({ asset: 'p', command: 'stop', reason: {} });
    d.afterCommands();
    expect(slept).toBe(0);
    expect(brokerIsLoopback('mqtt://127.0.0.1:1883')).toBe(true);
    expect(brokerIsLoopback('mqtts://localhost:8883')).toBe(true);
    expect(brokerIsLoopback('mqtt://[::1]:1883')).toBe(true);
    expect(brokerIsLoopback('mqtt://127.10.0.3')).toBe(true);
    expect(brokerIsLoopback('mqtt://10.0.0.5:1883')).toBe(false);
    expect(brokerIsLoopback('mqtt://broker.plant.local:1883')).toBe(false);
    expect(brokerIsLoopback('mqtt://127.0.0.1.example.com')).toBe(false);
    // The driver decides at construction: a remote URL turns the yield off (no connection is made here).
    const config = mqttPublish.schema.parse({ url: 'mqtt://10.0.0.5:1883', command_topic: 'x' });
    const remote = (await mqttPublish.create(
      { ...config, id: 'r' },
      { id: 'r', logger: silent, now: Date.now },
    )) as MqttPublisher;
    expect((remote as unknown as { yieldUs: number }).yieldUs).toBe(0);
    expect((d as unknown as { yieldUs: number }).yieldUs).toBe(0);
  });

  it('text format sends the command name only', async () => {
    const sub = await subscriber(url, 'text/+/cmd');
    cleanup.push(() => void sub.client.end(true));
    const d = await actuator({ command_topic: 'text/{asset}/cmd', format: 'text' });
    await d.execute({ asset: 'fan', command: 'off', reason: {} });
    expect((await waitFor(() => sub.got[0], { what: 'the command' })).payload).toBe('off');
  });

  it('hands acks from the ack topic to the interlock, and counts malformed ones', async () => {
    const acks: Array<[string, string, string]> = [];
    await actuator(
      { command_topic: 'a/{asset}/cmd', ack_topic: 'plant/ack' },
      {
        ack: (asset, by, via) => {
          acks.push([asset, by, via]);
          return { ok: true, state: 'running' };
        },
      },
    );
    const pub = mqtt.connect(url, { clientId: 'test-operator' });
    cleanup.push(() => void pub.end(true));
    await new Promise<void>((resolve) => pub.once('connect', () => resolve()));
    // The actuator subscribes on connect; retry until the ack arrives.
    await waitFor(
      async () => {
        await pub.publishAsync('plant/ack', 'not json', { qos: 1 });
        await pub.publishAsync('plant/ack', JSON.stringify({ asset: 'pump-1', by: 'alice' }), { qos: 1 });
        return acks.length > 0;
      },
      { what: 'the ack', intervalMs: 100 },
    );
    expect(acks[0]).toEqual(['pump-1', 'alice', 'mqtt']);
  });

  it('answers every ack on the reply topic; a refused one names the tripping conditions still raised (contract C)', async () => {
    const replies = await subscriber(url, 'plant/ack2/reply');
    cleanup.push(() => void replies.client.end(true));
    await actuator(
      { command_topic: 'b/{asset}/cmd', ack_topic: 'plant/ack2' },
      {
        ack: () => ({
          ok: false,
          reason: 'raised',
          error: 'asset "pump-1" stays tripped: its tripping condition still holds (overheat on temperature)',
          raised: [{ detector: 'overheat', sensor: 'temperature' }],
        }),
      },
    );
    const pub = mqtt.connect(url, { clientId: 'test-operator-2' });
    cleanup.push(() => void pub.end(true));
    await new Promise<void>((resolve) => pub.once('connect', () => resolve()));
    const reply = await waitFor(
      async () => {
        await pub.publishAsync('plant/ack2', JSON.stringify({ asset: 'pump-1', by: 'alice' }), { qos: 1 });
        return replies.got[0];
      },
      { what: 'the ack answer', intervalMs: 100 },
    );
    expect(JSON.parse(reply.payload)).toEqual({
      ok: false,
      asset: 'pump-1',
      by: 'alice',
      error: expect.stringContaining('still holds'),
      raised: [{ detector: 'overheat', sensor: 'temperature' }],
    });
  });

  it('delivers a command published right after a broker restart, once the client has reconnected', async () => {
    const own = await startMosquitto();
    const ownUrl = `mqtt://127.0.0.1:${own.port}`;
    cleanup.push(() => own.stop());
    const config = mqttPublish.schema.parse({ url: ownUrl, command_topic: 'q/{asset}/cmd', ack_timeout: '20s' });
    const d = await mqttPublish.create({ ...config, id: 'q' }, { id: 'q', logger: silent, now: Date.now });
    await d.start();
    cleanup.push(() => d.stop());
    const sub = mqtt.connect(ownUrl, { clientId: 'q-sub', clean: false });
    cleanup.push(() => void sub.end(true));
    await new Promise<void>((resolve) => sub.once('connect', () => resolve()));
    await sub.subscribeAsync('q/+/cmd', { qos: 1 });
    const got: string[] = [];
    sub.on('message', (_t, p) => got.push(p.toString()));
    await own.restart().then(() => {}); // drops both clients; persistence keeps sub's session
    const res = await d.execute({ asset: 'p', command: 'stop', reason: {} });
    expect(res.ok).toBe(true);
    await waitFor(() => got.length > 0, { what: 'the queued stop', timeoutMs: 15_000 });
    expect(JSON.parse(got[0] as string)).toMatchObject({ command: 'stop' });
  });

  it('publishes over TLS with a client certificate and the password from the environment', async () => {
    const tls = await startMosquitto({ tls: true, requireClientCert: true });
    cleanup.push(() => tls.stop());
    const sub = await subscriber(`mqtt://127.0.0.1:${tls.port}`, 't/+/cmd');
    cleanup.push(() => void sub.client.end(true));
    vi.stubEnv('TEST_PUBLISH_PASSWORD', 's3cret');
    cleanup.push(() => void vi.unstubAllEnvs());
    const d = await actuator({
      url: `mqtts://127.0.0.1:${tls.tlsPort}`,
      username: 'agent',
      password_env: 'TEST_PUBLISH_PASSWORD',
      tls: { ca_file: tls.caFile, cert_file: tls.clientCertFile, key_file: tls.clientKeyFile },
      command_topic: 't/{asset}/cmd',
    });
    const res = await d.execute({ asset: 'pump-1', command: 'stop', reason: {} });
    expect(res).toMatchObject({ ok: true, ack: { queued: false } });
    expect(JSON.parse((await waitFor(() => sub.got[0], { what: 'the stop over TLS' })).payload)).toMatchObject({
      command: 'stop',
    });
  });

  it('refuses at init a password variable that is not set, and a password given twice', async () => {
    const init = async (options: Record<string, unknown>) => {
      const config = mqttPublish.schema.parse({ url, command_topic: 'x', ...options });
      const d = await mqttPublish.create({ ...config, id: 'p' }, { id: 'p', logger: silent, now: Date.now });
      await d.init();
    };
    await expect(init({ password_env: 'TEST_PUBLISH_UNSET_PASSWORD' })).rejects.toThrow(
      'environment variable TEST_PUBLISH_UNSET_PASSWORD (password_env) is not set',
    );
    vi.stubEnv('TEST_PUBLISH_PW', 'x');
    cleanup.push(() => void vi.unstubAllEnvs());
    await expect(init({ password: 'y', password_env: 'TEST_PUBLISH_PW' })).rejects.toThrow(
      'give password or password_env, not both',
    );
  });
});
