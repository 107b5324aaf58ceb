import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { type Mosquitto, mosquittoUnavailable, startMosquitto } from './helpers/mosquitto.js';
import { waitFor } from './helpers/wait.js';

const missing = mosquittoUnavailable({ tls: true });
if (missing && process.env.CI) throw new Error(`CI must run the Mosquitto tests: ${missing}`);
if (missing) console.warn(`\n!!! SKIPPING Mosquitto infrastructure tests: ${missing}\n`);

describe.skipIf(!!missing)('mosquitto test broker (TLS, persistence, restart)', () => {
  let broker: Mosquitto;
  const clients: MqttClient[] = [];
  const topicPrefix = `test/${randomUUID()}`;

  beforeAll(async () => {
    broker = await startMosquitto({ tls: true, requireClientCert: true });
  });
  afterAll(async () => {
    await broker?.stop();
  });
  afterEach(async () => {
    await Promise.all(clients.splice(0).map((c) => c.endAsync(true)));
  });

  const tlsOptions = (): IClientOptions => ({
    ca: readFileSync(broker.caFile as string),
    cert: readFileSync(broker.clientCertFile as string),
    key: readFileSync(broker.clientKeyFile as string),
    rejectUnauthorized: true,
  });

  /** Connects and resolves on CONNACK; handlers attached by the caller before that see queued messages. */
  const open = (url: string, options: IClientOptions, beforeConnect?: (c: MqttClient) => void) => {
    const client = mqtt.connect(url, { reconnectPeriod: 0, connectTimeout: 5000, ...options });
    clients.push(client);
    beforeConnect?.(client);
    return new Promise<MqttClient>((resolve, reject) => {
      client.once('connect', () => resolve(client));
      client.once('error', reject);
    });
  };

  it('publishes and subscribes with QoS 1 over mutual TLS', async () => {
    const topic = `${topicPrefix}/tls`;
    const received: string[] = [];
    const sub = await open(`mqtts://127.0.0.1:${broker.tlsPort}`, tlsOptions(), (c) =>
      c.on('message', (t, payload) => t === topic && received.push(payload.toString())),
    );
    await sub.subscribeAsync(topic, { qos: 1 });
    const pub = await open(`mqtts://127.0.0.1:${broker.tlsPort}`, tlsOptions());
    await pub.publishAsync(topic, 'over-tls', { qos: 1 });
    await waitFor(() => received.length === 1, { what: 'the TLS message', timeoutMs: 5000 });
    expect(received).toEqual(['over-tls']);
  });

  it('refuses a TLS client without a certificate', async () => {
    const { ca } = tlsOptions();
    await expect(open(`mqtts://127.0.0.1:${broker.tlsPort}`, { ca })).rejects.toThrow(/certificate/i);
  });

  it('keeps a QoS 1 message for an offline persistent session across a broker restart', async () => {
    const topic = `${topicPrefix}/persistent`;
    const clientId = `sub-${randomUUID().slice(0, 8)}`;
    const session: IClientOptions = { clientId, clean: false };

    const first = await open(`mqtt://127.0.0.1:${broker.port}`, session);
    await first.subscribeAsync(topic, { qos: 1 });
    await first.endAsync();

    const pub = await open(`mqtt://127.0.0.1:${broker.port}`, {});
    await pub.publishAsync(topic, 'queued-before-restart', { qos: 1 });
    await pub.endAsync();

    const portBefore = broker.port;
    await broker.restart();
    expect(broker.port).toBe(portBefore);

    const pub2 = await open(`mqtt://127.0.0.1:${broker.port}`, {});
    await pub2.publishAsync(topic, 'queued-after-restart', { qos: 1 });

    const received: string[] = [];
    let sessionPresent: boolean | undefined;
    await open(`mqtt://127.0.0.1:${broker.port}`, session, (c) => {
      c.on('message', (t, payload) => t === topic && received.push(payload.toString()));
      c.once('connect', (connack) => {
        sessionPresent = connack.sessionPresent;
      });
    });
    await waitFor(() => received.length >= 2, { what: 'both queued messages after restart', timeoutMs: 5000 });
    expect(sessionPresent).toBe(true);
    expect(received).toEqual(['queued-before-restart', 'queued-after-restart']);
  });
});
