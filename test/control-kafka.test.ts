/**
 * The Kafka control topic with a real broker: the same verification as MQTT (one code path).
 * Unsigned, forged, expired, out-of-bounds, replayed and model-without-a-model messages are each
 * answered on the reply topic with their reason and change nothing; a signed `set` is applied,
 * audited (the audit reaches Kafka through the sync), survives a restart, and a signed `reset` over
 * Kafka returns to the file.
 */
import { generateKeyPairSync } from 'node:crypto';
import { join } from 'node:path';
import { Kafka, logLevel } from 'kafkajs';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Agent } from '../agent/agent.js';
import { parseConfig } from '../agent/config/load.js';
import { testSigner } from './helpers/control.js';
import {
  consumeAll,
  consumeWithKcat,
  type KafkaBroker,
  kafkaAvailable,
  kcatAvailable,
  requireOrSkip,
  startKafka,
} from './helpers/kafka.js';
import { silent } from './helpers/sync.js';
import { tempDir } from './helpers/tmp.js';
import { waitFor } from './helpers/wait.js';

const haveKafka = requireOrSkip(kafkaAvailable(), 'Kafka broker (java + Kafka jars or mvn)');
const haveKcat = haveKafka && requireOrSkip(kcatAvailable(), 'kcat');

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

describe.skipIf(!haveKcat)('Kafka control topic (signed messages)', () => {
  let broker: KafkaBroker | undefined;
  beforeAll(async () => {
    broker = await startKafka({ partitions: 1 });
  }, 600_000);
  afterAll(async () => {
    await broker?.destroy();
  });

  it('refuses unsigned, forged, expired, out-of-bounds, replayed and model messages; applies, keeps and resets a signed one', async () => {
    if (!broker) throw new Error('beforeAll did not finish');
    const brokers = broker.brokers;
    const dir = tempDir();
    cleanups.push(dir.remove);
    const prefix = `c${Date.now().toString(36)}.`;
    const signer = testSigner(dir.path, 'gw-ctl');
    const yaml = `
gateway: { id: gw-ctl }
store: { path: ${join(dir.path, 'agent.db')}, flush_interval: 50ms }
log: { level: silent }
sync: { kafka: { brokers: ['${brokers}'], topic_prefix: '${prefix}' } }
control:
  kafka: { topic: ${prefix}control, reply_topic: ${prefix}control-replies }
  keys_file: ${signer.keysFile}
  limits: { overheat: { setpoint: [70, 95] } }
sources: [{ id: sim, type: simulator, rate: 5 }]
assets:
  - id: pump-1
    sensors: [{ id: temperature, metric: temperature, unit: degC, source: sim }]
detectors:
  - { id: overheat, type: threshold, asset: pump-1, sensor: temperature, setpoint: 90, trip: true }
actuators: [{ id: stop, type: log }]
interlocks: [{ asset: pump-1, actions: [{ actuator: stop, command: stop }] }]
`;
    const res = await parseConfig(yaml, 'ctl.yaml');
    if (!res.ok) throw new Error(JSON.stringify(res.errors));
    const admin = new Kafka({ brokers: [brokers], logLevel: logLevel.NOTHING }).admin();
    await admin.connect();
    await admin.createTopics({
      waitForLeaders: true,
      topics: [
        { topic: `${prefix}control`, numPartitions: 1 },
        { topic: `${prefix}control-replies`, numPartitions: 1 },
      ],
    });
    await admin.disconnect();
    const start = async () => {
      const a = await Agent.create(res.config, { logger: silent });
      cleanups.push(() => a.stop());
      await a.start();
      await a.kafkaControl?.ready();
      return a;
    };
    const setpoint = (a: Agent) => {
      const d = a.pipeline.detector('overheat');
      return d ? (d.config as { setpoint: number }).setpoint : undefined;
    };
    const producer = new Kafka({ brokers: [brokers], logLevel: logLevel.NOTHING }).producer();
    await producer.connect();
    cleanups.push(() => producer.disconnect());
    const send = (...values: string[]) =>
      producer.send({ topic: `${prefix}control`, messages: values.map((value) => ({ value })) });
    const replies = async (n: number) =>
      (await consumeAll(brokers, `${prefix}control-replies`, { expected: n, timeoutMs: 60_000 })).map(
        (r) => JSON.parse(r.value ?? '{}') as { ok: boolean; id?: string; error?: string; reason?: string },
      );

    let agent = await start();
    const cmd = { op: 'set', detector: 'overheat', params: { setpoint: 80 } };
    const good = signer.sign({ ...cmd, id: 'good-1', by: 'cloud' });
    await send(
      JSON.stringify({ ...cmd, id: 'plain-1' }),
      signer.sign({ ...cmd, id: 'forged-1' }, { key: generateKeyPairSync('ed25519').privateKey }),
      signer.sign({ ...cmd, id: 'old-1' }, { now: Date.now() - 3_600_000 }),
      signer.sign({ ...cmd, id: 'far-1', params: { setpoint: 99 } }),
      signer.sign({ op: 'model', params: { model_version: 'v9' }, id: 'model-1' }),
    );
    const refused = await replies(5);
    expect(refused.map((r) => [r.ok, r.reason])).toEqual([
      [false, 'unsigned'],
      [false, 'bad_signature'],
      [false, 'expired'],
      [false, 'refused'],
      [false, 'refused'],
    ]);
    expect(refused[3]?.error).toMatch(/setpoint 99 is outside its bounds \[70, 95\]/);
    expect(refused[4]?.error).toMatch(/no model is configured/);
    expect(setpoint(agent)).toBe(90);

    await send(good, good);
    const all = await replies(7);
    expect(all[5]).toMatchObject({ ok: true, id: 'good-1' });
    expect(all[6]).toMatchObject({ ok: false, id: 'good-1', reason: 'replayed' });
    expect(setpoint(agent)).toBe(80);
    expect(agent.control.overridesView()).toEqual([
      expect.objectContaining({
        detector: 'overheat',
        param: 'setpoint',
        value: 80,
        file_value: 90,
        by: 'cloud',
        message_id: 'good-1',
      }),
    ]);
    // The audit trail goes to Kafka through the sync.
    await waitFor(
      async () =>
        (await consumeWithKcat(brokers, `${prefix}audit`)).some((r) => {
          const p = JSON.parse(r.value ?? '{}').payload;
          return p?.type === 'control' && p.message_id === 'good-1' && p.origin === `kafka:${prefix}control`;
        }),
      { what: 'control audit event in Kafka', timeoutMs: 30_000, intervalMs: 500 },
    );

    await agent.stop();
    agent = await start();
    expect(setpoint(agent)).toBe(80);
    await send(signer.sign({ op: 'reset', detector: 'overheat', id: 'reset-1', by: 'cloud' }));
    const last = await replies(8);
    expect(last[7]).toMatchObject({ ok: true, id: 'reset-1', op: 'reset' });
    expect(setpoint(agent)).toBe(90);
    expect(agent.control.overridesView()).toEqual([]);
  }, 180_000);
});
