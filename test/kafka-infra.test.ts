import { CompressionTypes, type Message, Partitioners, type Producer } from 'kafkajs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type ConsumedRecord,
  consumeAll,
  consumeWithKcat,
  createTopic,
  type KafkaBroker,
  kafkaAvailable,
  kafkaClient,
  kcatAvailable,
  requireOrSkip,
  startKafka,
  startKafkaBehindProxy,
} from './helpers/kafka.js';
import { type Flapper, startFlapper, type TcpProxy } from './helpers/tcp-proxy.js';

const TOTAL = 1000;
const KEYS = 10;

const haveKafka = requireOrSkip(kafkaAvailable(), 'Kafka broker (java + Kafka jars or mvn)');
const haveKcat = haveKafka && requireOrSkip(kcatAvailable(), 'kcat');

function message(seq: number): Message {
  return { key: `key-${seq % KEYS}`, value: JSON.stringify({ seq }), headers: { seq: String(seq) } };
}

/** Narrows a value set up in beforeAll. */
function ready<T>(value: T | undefined): T {
  if (value === undefined) throw new Error('beforeAll did not finish');
  return value;
}

const seqOf = (r: ConsumedRecord) => (JSON.parse(r.value ?? '{}') as { seq: number }).seq;

function idempotentProducer(brokers: string, overrides: Parameters<typeof kafkaClient>[1] = {}): Producer {
  return kafkaClient(brokers, overrides).producer({
    idempotent: true,
    maxInFlightRequests: 1,
    createPartitioner: Partitioners.DefaultPartitioner,
  });
}

/** Per partition, the first occurrences of each seq must be strictly increasing. */
function assertPartitionOrder(records: ConsumedRecord[]): void {
  const byPartition = new Map<number, ConsumedRecord[]>();
  for (const r of records) byPartition.set(r.partition, [...(byPartition.get(r.partition) ?? []), r]);
  for (const [partition, list] of byPartition) {
    list.sort((a, b) => a.offset - b.offset);
    const seen = new Set<number>();
    let last = -1;
    for (const r of list) {
      const seq = seqOf(r);
      if (seen.has(seq)) continue;
      seen.add(seq);
      expect(seq, `partition ${partition} offset ${r.offset}`).toBeGreaterThan(last);
      last = seq;
    }
  }
}

describe.skipIf(!haveKafka)('kafka test broker', () => {
  let broker: KafkaBroker | undefined;
  const topic = 'infra-basic';

  beforeAll(async () => {
    const t0 = Date.now();
    broker = await startKafka({ partitions: 3 });
    console.info(`Kafka ${broker.version} ready on ${broker.brokers} in ${Date.now() - t0} ms`);
  }, 600_000);

  afterAll(async () => {
    await broker?.destroy();
  });

  it('delivers 1000 idempotent acks=-1 messages in per-key order', async () => {
    const brokers = ready(broker).brokers;
    await createTopic(brokers, topic, 3);
    const producer = idempotentProducer(brokers);
    await producer.connect();
    try {
      for (let i = 0; i < TOTAL; i += 100) {
        const messages = Array.from({ length: 100 }, (_, j) => message(i + j));
        await producer.send({ topic, acks: -1, compression: CompressionTypes.None, messages });
      }
    } finally {
      await producer.disconnect();
    }

    const records = await consumeAll(brokers, topic, { expected: TOTAL, settleMs: 500 });
    expect(records).toHaveLength(TOTAL);
    expect(new Set(records.map(seqOf)).size).toBe(TOTAL);
    expect(new Set(records.map((r) => r.partition)).size).toBe(3);
    assertPartitionOrder(records);
    for (const r of records) expect(r.headers.seq).toBe(String(seqOf(r)));

    // Within a key, seq must follow offsets exactly (no gaps or reordering).
    for (let k = 0; k < KEYS; k++) {
      const seqs = records
        .filter((r) => r.key === `key-${k}`)
        .sort((a, b) => a.offset - b.offset)
        .map(seqOf);
      expect(seqs).toEqual(Array.from({ length: TOTAL / KEYS }, (_, n) => n * KEYS + k));
    }
  });

  it.skipIf(!haveKcat)('kcat sees the same records', async () => {
    const viaKcat = await consumeWithKcat(ready(broker).brokers, topic);
    expect(viaKcat).toHaveLength(TOTAL);
    expect(new Set(viaKcat.map(seqOf)).size).toBe(TOTAL);
    assertPartitionOrder(viaKcat);
  });

  it('keeps the data across restart()', async () => {
    await ready(broker).restart();
    const viaKafkajs = await consumeAll(ready(broker).brokers, topic, { expected: TOTAL });
    expect(viaKafkajs).toHaveLength(TOTAL);
  });
});

describe.skipIf(!haveKafka)('kafka through a flapping TCP proxy', () => {
  let broker: KafkaBroker | undefined;
  let proxy: TcpProxy | undefined;
  let flapper: Flapper | undefined;
  const topic = 'infra-chaos';

  beforeAll(async () => {
    ({ broker, proxy } = await startKafkaBehindProxy({ partitions: 3 }));
    expect(broker.brokers).toBe(`127.0.0.1:${proxy.port}`);
  }, 600_000);

  afterAll(async () => {
    await flapper?.stop();
    await broker?.destroy();
    await proxy?.close();
  });

  it('delivers every message at least once, in order per partition, despite connection cuts', async () => {
    const brokers = ready(broker).brokers;
    await createTopic(brokers, topic, 3);
    const producer = idempotentProducer(brokers, {
      connectionTimeout: 1000,
      requestTimeout: 5000,
      retry: { retries: 3, initialRetryTime: 100, maxRetryTime: 1000 },
    });
    await producer.connect();

    const disruptions = 10;
    flapper = startFlapper(ready(proxy), { minIntervalMs: 50, maxIntervalMs: 250, maxCuts: disruptions, downMs: 100, seed: 42 });
    let appRetries = 0;
    let batches = 0;
    const deadline = Date.now() + 90_000;
    try {
      // Pace the sends so the whole flapper schedule overlaps with producing.
      for (let i = 0; i < TOTAL; i += 10) {
        const messages = Array.from({ length: 10 }, (_, j) => message(i + j));
        // At-least-once at the application level: resend the batch until acked.
        for (;;) {
          try {
            await producer.send({ topic, acks: -1, messages });
            break;
          } catch (err) {
            if (Date.now() > deadline) throw err;
            appRetries++;
          }
        }
        batches++;
        if (flapper.cuts < disruptions) await new Promise((r) => setTimeout(r, 20));
      }
    } finally {
      await producer.disconnect().catch(() => {});
    }
    const cutsDuringProduce = flapper.cuts;
    const cuts = await flapper.stop();
    console.info(
      `chaos: ${cutsDuringProduce}/${cuts} disruptions during ${batches} sends, ` +
        `${flapper.connectionsCut} connections cut, ${appRetries} app-level resends`,
    );
    expect(cutsDuringProduce).toBeGreaterThanOrEqual(disruptions / 2);
    expect(flapper.connectionsCut).toBeGreaterThan(0);

    const records = await consumeAll(brokers, topic, { expected: TOTAL, settleMs: 1000 });
    const unique = new Set(records.map(seqOf));
    expect(unique.size).toBe(TOTAL);
    expect(records.length).toBeGreaterThanOrEqual(TOTAL);
    assertPartitionOrder(records);
    if (records.length > TOTAL) console.info(`chaos: ${records.length - TOTAL} duplicates (allowed)`);
  }, 180_000);
});
