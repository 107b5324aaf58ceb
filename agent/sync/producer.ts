/**
 * The transactional producer of the syncer: librdkafka through our own thin Node-API addon
 * (native/kafka-txn, linked against the librdkafka.so.1 that `@confluentinc/kafka-javascript` builds
 * at npm ci; docs/sync.md has the measurements that chose it). A whole part of a page is produced in
 * one native call: keys, partitions (Kafka's murmur2), the identity headers and the records are built
 * in C; delivery reports are counted in C per topic-partition and come back as one summary per
 * transaction. No JavaScript object per record or per header.
 *
 * One page = beginTransaction, producePacked for each part, sendOffsetsToTransaction (the cursor in the
 * offset-commit metadata, sent exactly as given), commitTransaction → where each topic-partition's
 * records went (the store's sequence ↔ offset map).
 */
import { existsSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import type { KafkaSyncConfig } from './kafka.js';

const require = createRequire(import.meta.url);

type Handle = { readonly __kafkaTxn: unique symbol };
interface NativeDelivered extends Delivered {
  readonly delivered: number;
}
interface Addon {
  create(o: {
    config: Record<string, string | number | boolean>;
    topics: Array<[string, number]>;
    kinds: Array<[string, number]>;
    keyPrefix: string;
    valuePrefix: string;
    headers: Array<readonly [string, string]> | null;
    group: string;
  }): Handle;
  init(h: Handle, timeoutMs: number): Promise<void>;
  begin(h: Handle): void;
  producePacked(
    h: Handle,
    packed: Buffer,
    count: number,
    limit: number,
    maxBytes: number,
    refused: RefusedRow[],
  ): [rows: number, lastSeq: number, bytes: number];
  sendOffsets(h: Handle, topic: string, offset: number, metadata: string, timeoutMs: number): Promise<void>;
  commit(h: Handle, timeoutMs: number): Promise<NativeDelivered[]>;
  abort(h: Handle, timeoutMs: number): Promise<void>;
  close(h: Handle): Promise<void>;
  /** The records producePacked would send (same C code), for tests: [seq, key, value, timestamp]. */
  decodePacked(keyPrefix: string, valuePrefix: string, packed: Buffer | string): Array<[number, string, Buffer, number]>;
  librdkafkaVersion(): string;
}

/**
 * Where the addon is: native/ beside node_modules/, in the repository (agent/sync/producer.ts) and in
 * the compiled agent of the release bundle (agent/sync/producer.js) alike.
 */
export const ADDON_PATH = fileURLToPath(new URL('../../native/kafka-txn/build/Release/kafka_txn.node', import.meta.url));
let addon: Addon | undefined;
/** Loaded on first use: the addon is built at `npm ci` (scripts/build-kafka-client.mjs). */
export function kafkaTxn(): Addon {
  addon ??= require(ADDON_PATH) as Addon;
  return addon;
}

/** An event producePacked did not send (its record exceeds the limit): seq, kind, event key, event time, record bytes, payload characters. */
export type RefusedRow = [seq: number, kind: string, key: string, eventTime: number, bytes: number, payloadChars: number];

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
  /** The topic of every event kind. */
  readonly topicOf: ReadonlyMap<string, string>;
  /** Prepended to each row's event key: the record key (RecordEncoder.key). */
  readonly keyPrefix: string;
  /** The record value up to the sequence number (RecordEncoder.valuePrefix). */
  readonly valuePrefix: string;
  /** The constant identity headers, in order (RecordEncoder.headerTemplate); `seq` and `kind` follow per record. Undefined: no headers. */
  readonly headers: ReadonlyArray<readonly [string, string]> | undefined;
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

/** librdkafka's size limit for one record: the batch limit less a batch header and the record framing. */
export const RECORD_OVERHEAD = 512;

/** A librdkafka error as the addon reports it. */
export interface KafkaTxnError extends Error {
  readonly code?: number;
  readonly codeName?: string;
  readonly retriable?: boolean;
  /** The transaction must be aborted (librdkafka's txn_requires_abort). */
  readonly abortable?: boolean;
  /** The producer is unusable; a new one (InitProducerId) is needed. */
  readonly fatal?: boolean;
}

/**
 * How long a librdkafka call may run past the timeout it was given before the syncer stops waiting.
 * Some transactional calls can outlive their timeout (librdkafka issues 3779 and 5511: an abort or a
 * send-offsets that waits for a coordinator that never comes back). Such a call holds a thread of the
 * process's pool and the client's handle, so a new client in the same process is no way out: the sync
 * process exits and the agent starts a new one (SyncService, docs/sync.md "A stuck Kafka client").
 */
export const STUCK_GRACE_MS = 10_000;

/** A librdkafka call that did not return by its deadline: the client is stuck. */
export class KafkaStuckError extends Error {
  constructor(
    readonly call: string,
    readonly afterMs: number,
    timeouts: number,
  ) {
    const budget = timeouts === 1 ? 'its timeout' : `${timeouts} times its timeout`;
    super(`librdkafka's ${call} did not return within ${afterMs} ms (${budget} plus ${STUCK_GRACE_MS} ms)`);
    this.name = 'KafkaStuckError';
  }
}

/**
 * Test only: `EDGE_AGENT_TEST_KAFKA_HANG=<call>:<n>:<file>` (call: init, send_offsets, commit, abort)
 * makes the n-th such call of a sync process hang as a stuck librdkafka would: the call is made, its
 * result is never delivered. Only while `file` does not exist; the hang creates it, so the next process
 * runs normally (test/sync-kafka.test.ts "a stuck Kafka client …"). Unset in production.
 */
function hangPlan(env: NodeJS.ProcessEnv): { call: string; nth: number; file: string } | undefined {
  const m = /^(init|send_offsets|commit|abort):([1-9]\d*):(.+)$/.exec(env.EDGE_AGENT_TEST_KAFKA_HANG ?? '');
  return m ? { call: m[1] as string, nth: Number(m[2]), file: m[3] as string } : undefined;
}
const callCounts = new Map<string, number>();

export class TxnProducer {
  private closed: Promise<void> | undefined;
  private readonly hang: ReturnType<typeof hangPlan>;

  private constructor(
    private readonly native: Addon,
    private readonly handle: Handle,
    private readonly timeout: number,
    env: NodeJS.ProcessEnv,
  ) {
    this.hang = hangPlan(env);
  }

  /**
   * The native call's promise, rejected with KafkaStuckError if it has not settled `timeouts` × the
   * request timeout plus STUCK_GRACE_MS after the call (commit waits twice: the commit, then the
   * delivery reports).
   */
  private guard<T>(call: string, timeouts: number, start: () => Promise<T>): Promise<T> {
    const n = (callCounts.get(call) ?? 0) + 1;
    callCounts.set(call, n);
    let p = start();
    if (this.hang?.call === call && this.hang.nth === n && !existsSync(this.hang.file)) {
      writeFileSync(this.hang.file, `${call} ${n}\n`);
      p.catch(() => {});
      p = new Promise<T>(() => {});
    }
    const afterMs = timeouts * this.timeout + STUCK_GRACE_MS;
    return new Promise<T>((resolve, reject) => {
      const t = setTimeout(() => reject(new KafkaStuckError(call, afterMs, timeouts)), afterMs);
      p.then(
        (v) => {
          clearTimeout(t);
          resolve(v);
        },
        (err: unknown) => {
          clearTimeout(t);
          reject(err);
        },
      );
    });
  }

  /** Creates the librdkafka producer, then InitProducerId: fences any earlier session with the same transactional.id. */
  static async connect(o: ProducerOptions): Promise<TxnProducer> {
    const native = kafkaTxn();
    const cfg = o.config;
    const base = rdkafkaConfig(cfg, o.clientId, o.env);
    const timeout = Math.max(1000, cfg.request_timeout);
    const batch = Math.max(16_384, Math.min(1_000_000, o.maxBatchBytes));
    const topics = [...o.partitions];
    const index = new Map(topics.map(([t], i) => [t, i]));
    const kinds: Array<[string, number]> = [];
    for (const [kind, topic] of o.topicOf) {
      const i = index.get(topic);
      if (i === undefined) throw new Error(`no partition count for Kafka topic ${topic}`);
      kinds.push([kind, i]);
    }
    const handle = native.create({
      config: {
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
      },
      topics,
      kinds,
      keyPrefix: o.keyPrefix,
      valuePrefix: o.valuePrefix,
      headers: o.headers ? [...o.headers] : null,
      group: o.cursorGroup,
    });
    const p = new TxnProducer(native, handle, timeout, o.env ?? process.env);
    try {
      // Finds the coordinator, fences the previous session, completes or aborts its open transaction.
      await p.guard('init', 1, () => native.init(handle, timeout));
    } catch (err) {
      // A stuck init holds the handle: closing would wait for it.
      if (!(err instanceof KafkaStuckError)) await p.close();
      throw err;
    }
    return p;
  }

  /** Begins a transaction (local; librdkafka registers the partitions as records come). */
  async begin(): Promise<void> {
    this.native.begin(this.handle);
  }

  /**
   * Queues the events of one part of a page as RecordEncoder.PACKED_SQL packed them (`count` events),
   * building each record value, byte for byte as RecordEncoder.record() does, in C. Stops before the
   * event that would take the part past `maxBytes` payload characters (at least one event). A record
   * larger than `limit` is not produced and goes to `refused`. Returns the events consumed, the last
   * sequence consumed and the payload characters produced.
   */
  producePacked(
    packed: Buffer,
    count: number,
    limit: number,
    maxBytes: number,
    refused: RefusedRow[],
  ): [rows: number, lastSeq: number, bytes: number] {
    return this.native.producePacked(this.handle, packed, count, limit, maxBytes, refused);
  }

  /** Adds the cursor commit (group offset with metadata, sent byte for byte) to the open transaction. */
  sendCursor(topic: string, offset: number, metadata: string): Promise<void> {
    return this.guard('send_offsets', 1, () => this.native.sendOffsets(this.handle, topic, offset, metadata, this.timeout));
  }

  /** Commits (flushing every record first); resolves with where each topic-partition's records went. */
  async commit(): Promise<Delivered[]> {
    const runs = await this.guard('commit', 2, () => this.native.commit(this.handle, this.timeout));
    return runs.map((r) => {
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
    return this.guard('abort', 1, () => this.native.abort(this.handle, this.timeout));
  }

  /** Destroys the client (after any operation in flight); never throws, never waits longer than the request timeout. */
  close(): Promise<void> {
    this.closed ??= new Promise<void>((resolve) => {
      const t = setTimeout(resolve, this.timeout);
      t.unref();
      this.native.close(this.handle).then(
        () => {
          clearTimeout(t);
          resolve();
        },
        () => {
          clearTimeout(t);
          resolve();
        },
      );
    });
    return this.closed;
  }
}
