/**
 * The transactional producer of the syncer: librdkafka through the native API of
 * `@confluentinc/kafka-javascript` (the maintained successor of kafkajs; docs/sync.md has the
 * measurements that chose it). Record encoding, batching, compression and the wire protocol run in
 * librdkafka's C threads; JavaScript only hands over key, value, timestamp and headers per record.
 *
 * One page = beginTransaction, produce every record, sendOffsetsToTransaction (the cursor in the
 * offset-commit metadata), commitTransaction. Per-record delivery reports give each record's
 * partition and offset (the store's sequence ↔ offset map).
 */
import { createRequire } from 'node:module';
import type { KafkaConsumer, LibrdKafkaError, MessageHeader, Producer } from '@confluentinc/kafka-javascript';
import type { KafkaSyncConfig } from './kafka.js';

const require = createRequire(import.meta.url);
type Native = typeof import('@confluentinc/kafka-javascript');
let native: Native | undefined;
/** Loaded on first use: the addon is built at `npm ci` (scripts/build-kafka-client.mjs). */
function rdkafka(): Native {
  native ??= require('@confluentinc/kafka-javascript') as Native;
  return native;
}

export const CODEC = { none: 'none', gzip: 'gzip', snappy: 'snappy', lz4: 'lz4' } as const;

/** librdkafka settings shared by the producer and the cursor consumer: brokers, TLS, SASL, timeouts. */
export function rdkafkaConfig(
  cfg: KafkaSyncConfig,
  clientId: string,
  env: NodeJS.ProcessEnv = process.env,
): Record<string, string | number | boolean> {
  const out: Record<string, string | number | boolean> = {
    'bootstrap.servers': cfg.brokers.join(','),
    'client.id': clientId,
    'socket.timeout.ms': Math.max(10, cfg.request_timeout),
    'reconnect.backoff.max.ms': Math.min(cfg.retry_max, 5000),
    // Loopback brokers advertise "localhost"; no IPv6/IPv4 preference surprises.
    'broker.address.family': 'any',
    log_level: 0,
  };
  const tls = cfg.tls;
  const sasl = cfg.sasl;
  out['security.protocol'] = tls ? (sasl ? 'sasl_ssl' : 'ssl') : sasl ? 'sasl_plaintext' : 'plaintext';
  if (tls) {
    out['enable.ssl.certificate.verification'] = tls.reject_unauthorized;
    if (!tls.reject_unauthorized) out['ssl.endpoint.identification.algorithm'] = 'none';
    if (tls.ca_file) out['ssl.ca.location'] = tls.ca_file;
    if (tls.cert_file) out['ssl.certificate.location'] = tls.cert_file;
    if (tls.key_file) out['ssl.key.location'] = tls.key_file;
  }
  if (sasl) {
    const password = sasl.password || env.EDGE_KAFKA_PASSWORD;
    if (!password) throw new Error('sync.kafka.sasl: no password (set the environment variable EDGE_KAFKA_PASSWORD)');
    out['sasl.mechanisms'] = sasl.mechanism.toUpperCase();
    out['sasl.username'] = sasl.username;
    out['sasl.password'] = password;
  }
  return out;
}

export interface ProducerOptions {
  readonly config: KafkaSyncConfig;
  readonly clientId: string;
  readonly transactionalId: string;
  readonly cursorGroup: string;
  /** Largest record batch the topics accept (their max.message.bytes); batches are cut below it. */
  readonly maxBatchBytes: number;
  /** Partition count of every event topic (read at connect): records are partitioned here, by murmur2 of the key. */
  readonly partitions: ReadonlyMap<string, number>;
  /** Most records one transaction holds (sizes librdkafka's queue). */
  readonly maxTxnEvents: number;
  readonly env?: NodeJS.ProcessEnv;
}

/** Where one transaction's records of one topic-partition went (a contiguous run of sequences in produce order). */
export interface Delivered {
  readonly topic: string;
  readonly partition: number;
  /** Offset of the first record (the lowest reported; librdkafka reports a partition in produce order). */
  readonly offset: number;
  readonly firstSeq: number;
  readonly lastSeq: number;
  readonly count: number;
}

/**
 * Kafka's murmur2 (the Java client's `Utils.murmur2`, librdkafka's `murmur2_random` partitioner and
 * kafkajs' default): the same key lands on the same partition whichever client produced it.
 */
export function murmur2(data: Uint8Array): number {
  const m = 0x5bd1e995;
  const length = data.length;
  let h = 0x9747b28c ^ length;
  const tail = length & ~3;
  for (let i = 0; i < tail; i += 4) {
    let k =
      (data[i] as number) | ((data[i + 1] as number) << 8) | ((data[i + 2] as number) << 16) | ((data[i + 3] as number) << 24);
    k = Math.imul(k, m);
    k ^= k >>> 24;
    k = Math.imul(k, m);
    h = Math.imul(h, m) ^ k;
  }
  const rest = length & 3;
  if (rest === 3) h ^= (data[tail + 2] as number) << 16;
  if (rest >= 2) h ^= (data[tail + 1] as number) << 8;
  if (rest >= 1) {
    h ^= data[tail] as number;
    h = Math.imul(h, m);
  }
  h ^= h >>> 13;
  h = Math.imul(h, m);
  h ^= h >>> 15;
  return h | 0;
}

/** The partition of a keyed record: `murmur2(key) & 0x7fffffff` modulo the partition count. */
export function partitionOf(key: string, partitions: number): number {
  return (murmur2(Buffer.from(key)) & 0x7fffffff) % partitions;
}

interface TopicPartitionRun {
  readonly topic: string;
  readonly partition: number;
  firstSeq: number;
  lastSeq: number;
  count: number;
  delivered: number;
  offset: number;
}

/** One topic's partitioning: key → partition, computed once per key, and this transaction's runs. */
class TopicState {
  private readonly byKey = new Map<string, number>();
  readonly runs: Array<TopicPartitionRun | undefined>;

  constructor(
    readonly topic: string,
    readonly partitions: number,
  ) {
    this.runs = new Array(partitions);
  }

  partition(key: string): number {
    let p = this.byKey.get(key);
    if (p === undefined) {
      // Keys are asset ids: few. Bounded anyway.
      if (this.byKey.size >= 100_000) this.byKey.clear();
      p = partitionOf(key, this.partitions);
      this.byKey.set(key, p);
    }
    return p;
  }
}

function wrap(err: LibrdKafkaError | null | undefined): Error | undefined {
  if (!err) return undefined;
  const e = new Error(`${err.message || 'Kafka error'}${err.code !== undefined ? ` (code ${err.code})` : ''}`);
  (e as Error & { fatal?: boolean }).fatal = (err as { isFatal?: boolean }).isFatal === true;
  return e;
}

function call(fn: (cb: (err: LibrdKafkaError | null | undefined) => void) => void, ms: number, what: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`${what}: no answer in ${ms} ms`)), ms + 1000);
    fn((err) => {
      clearTimeout(t);
      const e = wrap(err);
      if (e) reject(e);
      else resolve();
    });
  });
}

/** librdkafka's size limit for one record: the batch limit less a batch header and the record framing. */
export const RECORD_OVERHEAD = 512;

export class TxnProducer {
  private readonly topics = new Map<string, TopicState>();
  /** Runs of the open transaction, in order of first use. */
  private runs: TopicPartitionRun[] = [];
  private delivered = 0;
  private failed: Error | undefined;
  private waiting: (() => void) | undefined;
  private expected = 0;
  private closed = false;

  private constructor(
    private readonly producer: Producer,
    private readonly consumer: KafkaConsumer,
    private readonly timeout: number,
    partitions: ReadonlyMap<string, number>,
  ) {
    for (const [topic, n] of partitions) this.topics.set(topic, new TopicState(topic, n));
    // One report per record (librdkafka has no per-batch report); kept cheap: no opaque handle (a
    // persistent V8 handle per record), the sequences are known per partition from produce order.
    producer.on('delivery-report', (err, report) => {
      if (err) this.failed ??= wrap(err);
      else {
        const run = this.topics.get(report.topic)?.runs[report.partition];
        if (run) {
          run.delivered++;
          if (report.offset < run.offset) run.offset = report.offset;
        }
        this.delivered++;
      }
      if (this.waiting && this.delivered + (this.failed ? 1 : 0) >= this.expected) this.waiting();
    });
  }

  /** Connects, then InitProducerId: fences any earlier session with the same transactional.id. */
  static async connect(o: ProducerOptions): Promise<TxnProducer> {
    const { Producer, KafkaConsumer } = rdkafka();
    const cfg = o.config;
    const base = rdkafkaConfig(cfg, o.clientId, o.env);
    const timeout = Math.max(1000, cfg.request_timeout);
    const batch = Math.max(16_384, Math.min(1_000_000, o.maxBatchBytes));
    const producer = new Producer({
      ...base,
      'transactional.id': o.transactionalId,
      'enable.idempotence': true,
      acks: -1,
      'transaction.timeout.ms': 60_000,
      'compression.codec': CODEC[cfg.compression],
      // Batches (compressed or not) stay below the topics' max.message.bytes.
      'message.max.bytes': batch,
      'batch.size': batch,
      'linger.ms': 5,
      'queue.buffering.max.messages': Math.max(100_000, 2 * o.maxTxnEvents),
      'queue.buffering.max.kbytes': 1_048_576,
      'message.timeout.ms': 60_000,
      partitioner: 'murmur2_random',
      dr_cb: true,
    } as never);
    const consumer = new KafkaConsumer({ ...base, 'group.id': o.cursorGroup, 'enable.auto.commit': false } as never, {});
    const p = new TxnProducer(producer, consumer, timeout, o.partitions);
    try {
      await call((cb) => producer.connect({ timeout }, (err) => cb(err as LibrdKafkaError)), timeout, 'connect');
      // librdkafka's background thread serves the delivery reports (copies, queueing); the main thread
      // only turns them into JavaScript objects. Cheaper than polling from a JavaScript timer (measured).
      producer.setPollInBackground(true);
      await call((cb) => consumer.connect({ timeout }, (err) => cb(err as LibrdKafkaError)), timeout, 'connect (cursor group)');
      // Completes or aborts the previous session's open transaction.
      await call((cb) => producer.initTransactions(timeout, cb), timeout, 'initTransactions');
    } catch (err) {
      await p.close();
      throw err;
    }
    return p;
  }

  begin(): Promise<void> {
    for (const r of this.runs) this.topics.get(r.topic)?.runs.fill(undefined);
    this.runs = [];
    this.delivered = 0;
    this.failed = undefined;
    this.expected = 0;
    return call((cb) => this.producer.beginTransaction(cb), this.timeout, 'beginTransaction');
  }

  /**
   * Queues one record (librdkafka copies key, value and headers before this returns, so the caller
   * may reuse them). Records must come in sequence order.
   */
  produce(topic: string, key: string, value: Buffer, timestamp: number, headers: MessageHeader[] | undefined, seq: number): void {
    let t = this.topics.get(topic);
    if (!t) {
      t = new TopicState(topic, 1);
      this.topics.set(topic, t);
    }
    const partition = t.partition(key);
    let run = t.runs[partition];
    if (!run) {
      run = { topic, partition, firstSeq: seq, lastSeq: seq, count: 0, delivered: 0, offset: Number.POSITIVE_INFINITY };
      t.runs[partition] = run;
      this.runs.push(run);
    }
    this.producer.produce(topic, partition, value, key, timestamp, undefined, headers);
    run.lastSeq = seq;
    run.count++;
    this.expected++;
  }

  /** Adds the cursor commit (group offset with metadata) to the open transaction. */
  sendCursor(topic: string, offset: number, metadata: string): Promise<void> {
    return call(
      (cb) =>
        this.producer.sendOffsetsToTransaction(
          [{ topic, partition: 0, offset, metadata } as never],
          this.consumer,
          this.timeout,
          cb,
        ),
      this.timeout,
      'sendOffsetsToTransaction',
    );
  }

  /** Commits (flushing every record first); resolves with where each topic-partition's records went. */
  async commit(): Promise<Delivered[]> {
    await call((cb) => this.producer.commitTransaction(this.timeout, cb), this.timeout, 'commitTransaction');
    if (this.delivered < this.expected && !this.failed) {
      // Reports are dispatched to JavaScript after librdkafka has them; the commit may come first.
      await new Promise<void>((resolve, reject) => {
        const t = setTimeout(() => reject(new Error('delivery reports missing after commit')), this.timeout);
        this.waiting = () => {
          clearTimeout(t);
          resolve();
        };
      }).finally(() => {
        this.waiting = undefined;
      });
    }
    if (this.failed) throw this.failed;
    return this.runs.map((r) => {
      if (r.delivered !== r.count)
        throw new Error(`${r.topic}[${r.partition}]: ${r.delivered} delivery reports for ${r.count} records`);
      return {
        topic: r.topic,
        partition: r.partition,
        offset: r.offset,
        firstSeq: r.firstSeq,
        lastSeq: r.lastSeq,
        count: r.count,
      };
    });
  }

  abort(): Promise<void> {
    return call((cb) => this.producer.abortTransaction(this.timeout, cb), this.timeout, 'abortTransaction');
  }

  /** Disconnects both clients; never throws, never hangs longer than the request timeout. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const done = (c: Producer | KafkaConsumer) =>
      new Promise<void>((resolve) => {
        const t = setTimeout(resolve, this.timeout);
        try {
          c.disconnect(() => {
            clearTimeout(t);
            resolve();
          });
        } catch {
          clearTimeout(t);
          resolve();
        }
      });
    await Promise.allSettled([done(this.producer), done(this.consumer)]);
  }
}
