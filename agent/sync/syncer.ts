/**
 * The Kafka syncer: drains the store's outbox in sequence order, one Kafka transaction per page.
 * It runs on its own thread (agent/sync/worker.ts) with its own read-only SQLite connection, so
 * neither the page reads nor JSON/compression work touch the main thread (field note 12).
 *
 * Exactly once, across crashes (docs/sync.md):
 * - Records go through librdkafka (agent/sync/producer.ts); kafkajs only administers: topics, their
 *   settings, and reading the committed cursor back.
 * - One transactional producer per gateway, with a stable transactional.id. Each page is one
 *   transaction holding the records AND a transactional offset commit of the page's last sequence
 *   (group `edge-agent-sync.<gateway>`, topic `<prefix>sync-cursor`, metadata {store, seq}).
 *   Records and cursor become visible together or not at all.
 * - At start and after every failed attempt the producer is recreated: InitProducerId with the same
 *   transactional.id fences the old session and completes or aborts its open transaction; then the
 *   committed cursor is read back from Kafka. Whatever Kafka committed is never sent again, even when
 *   the crash (or the cut connection) came between the broker's commit and the local cursor write.
 * - Only this loop reads the backlog and advances the cursor, and the local cursor moves in the
 *   writer thread in one SQLite transaction with the sequence ↔ partition/offset map (field note 5).
 */
import { randomUUID } from 'node:crypto';
import type Database from 'better-sqlite3';
import kafkajs, { type Admin, Kafka, logLevel } from 'kafkajs';
import { Backoff } from '../backoff.js';
import type { KeeperStats, MapEntry } from '../store/keeper.js';
import { EVENT_KINDS } from '../types.js';
import {
  cursorGroup,
  cursorTopic,
  type KafkaSyncConfig,
  kafkaConfig,
  RecordEncoder,
  topicConfig,
  topicFor,
  transactionalId,
} from './kafka.js';
import { type Delivered, KafkaStuckError, type RefusedRow, TxnProducer } from './producer.js';

// Not a named export kafkajs's CommonJS build exposes to ESM.
const { ConfigResourceTypes } = kafkajs;

export interface SyncStatus {
  state: 'starting' | 'idle' | 'sending' | 'retrying' | 'stopped';
  cursor: number;
  /** Epoch ms of the last committed transaction (0: none yet in this store). */
  lastSuccess: number;
  /** Age of the oldest unsent event (ms; 0 when caught up). */
  lagMs: number;
  sentEvents: number;
  sentBytes: number;
  batches: number;
  failures: number;
  lastError: string | undefined;
  /** Sequences Kafka had that the local cursor did not (crash between commit and local write). */
  recovered: number;
  /** Events never sent because one record exceeds what the topics accept (max.message.bytes); each raised an alarm. */
  refused: number;
  /** Largest record batch the topics accept, less a margin (bytes; 0 until connected). */
  batchLimit: number;
  /** Time the drain paused because detection was delayed (ms, `sync.kafka.yield_to_detection`). */
  yieldedMs: number;
}

/** An event the syncer will not send: its record alone exceeds the topics' max.message.bytes. */
export interface RefusedEvent {
  readonly seq: number;
  readonly kind: string;
  readonly key: string;
  readonly event_time: number;
  readonly bytes: number;
  readonly limit: number;
}

export interface SyncerDeps {
  readonly db: Database.Database;
  readonly gatewayId: string;
  readonly config: KafkaSyncConfig;
  /** Marks everything up to `cursor` sent in the store (writer thread); resolves with its stats. */
  commit(cursor: number, map: readonly MapEntry[], at: number): Promise<KeeperStats>;
  /** Resolves when new rows were appended, or after `ms`. */
  waitForRows(ms: number): Promise<void>;
  log(level: 'info' | 'warn' | 'error', obj: Record<string, unknown>, msg: string): void;
  report(status: SyncStatus): void;
  /** An event skipped because it can never fit a Kafka record batch (the service raises an alarm). */
  refused?(ev: RefusedEvent): void;
  /**
   * A librdkafka call did not return by its deadline (KafkaStuckError): the loop has stopped, and only
   * a new process gets a working client (the worker exits; the agent starts a new one).
   */
  stuck(err: KafkaStuckError): void;
  env?: NodeJS.ProcessEnv;
  now?: () => number;
}

/** Broker default of max.message.bytes, used when the topic settings cannot be read. */
const DEFAULT_MAX_MESSAGE_BYTES = 1_048_588;
/** Room left below max.message.bytes for the batch header and codec expansion of incompressible data. */
const BATCH_MARGIN = 2048;
/**
 * A page (one Kafka transaction, up to batch_max_events / batch_max_bytes) is read and handed to
 * librdkafka in this many parts: librdkafka sends part k while part k+1 is read.
 */
export const PAGE_PARTS = 4;

interface CursorMeta {
  store: string;
  seq: number;
}

export class Syncer {
  readonly status: SyncStatus = {
    state: 'starting',
    cursor: 0,
    lastSuccess: 0,
    lagMs: 0,
    sentEvents: 0,
    sentBytes: 0,
    batches: 0,
    failures: 0,
    lastError: undefined,
    recovered: 0,
    refused: 0,
    batchLimit: 0,
    yieldedMs: 0,
  };
  private readonly kafka: Kafka;
  private producer: TxnProducer | undefined;
  private admin: Admin | undefined;
  private running = false;
  private loop: Promise<void> | undefined;
  private readonly packed: Database.Statement;
  private readonly encoder: RecordEncoder;
  private readonly storeId: string;
  private readonly bootId = randomUUID();
  private readonly now: () => number;
  private topicsReady = false;
  private wake: (() => void) | undefined;
  private pauseMs = 0;

  constructor(private readonly deps: SyncerDeps) {
    this.now = deps.now ?? Date.now;
    const cfg = deps.config;
    this.kafka = new Kafka({ ...kafkaConfig(cfg, deps.gatewayId, deps.env), logLevel: logLevel.NOTHING });
    const meta = (k: string) =>
      (deps.db.prepare('SELECT value FROM meta WHERE key = ?').get(k) as { value: string } | undefined)?.value;
    this.storeId = meta('store_id') ?? 'unknown';
    this.encoder = new RecordEncoder({
      gatewayId: deps.gatewayId,
      storeId: this.storeId,
      bootId: this.bootId,
      headers: cfg.headers,
    });
    this.packed = deps.db.prepare(RecordEncoder.PACKED_SQL).raw(true);
    this.status.cursor = Number(meta('sync_cursor') ?? 0);
    this.status.lastSuccess = Number(meta('sync_last_success') ?? 0);
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.loop = this.run().catch((err: Error) => {
      this.deps.log('error', { err: err.message }, 'Kafka sync stopped unexpectedly; events stay buffered');
    });
  }

  /** Stops after the transaction in flight (committed or aborted). Idempotent. */
  async stop(): Promise<void> {
    this.running = false;
    this.wake?.();
    await this.loop;
    await this.disconnect();
    this.status.state = 'stopped';
    this.deps.report(this.status);
  }

  private async disconnect(): Promise<void> {
    const p = this.producer;
    const a = this.admin;
    this.producer = undefined;
    this.admin = undefined;
    await Promise.allSettled([p?.close(), a?.disconnect()]);
  }

  /**
   * Pause between the parts of a page from now on (ms; 0: none): the agent's pacer asks for it while
   * detection is delayed by the drain (`sync.kafka.yield_to_detection`, agent/sync/pacer.ts).
   */
  pace(pauseMs: number): void {
    this.pauseMs = Math.max(0, Math.min(5000, pauseMs));
  }

  private async yieldFor(ms: number): Promise<void> {
    const t0 = this.now();
    await this.sleep(ms);
    this.status.yieldedMs += this.now() - t0;
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(resolve, ms);
      this.wake = () => {
        clearTimeout(t);
        resolve();
      };
    });
  }

  /**
   * Connects a fresh producer (InitProducerId fences any previous session and completes or aborts
   * its open transaction) after reading what the topics accept, and reads the committed cursor back.
   */
  private async connect(): Promise<TxnProducer> {
    const cfg = this.deps.config;
    const admin = this.kafka.admin();
    this.admin = admin;
    await admin.connect();
    if (!this.topicsReady) {
      await this.ensureTopics(admin);
      this.topicsReady = true;
    }
    this.status.batchLimit = (await this.maxMessageBytes(admin)) - BATCH_MARGIN;
    const producer = await TxnProducer.connect({
      config: cfg,
      clientId: kafkaConfig(cfg, this.deps.gatewayId, this.deps.env).clientId as string,
      transactionalId: transactionalId(cfg, this.deps.gatewayId),
      cursorGroup: cursorGroup(this.deps.gatewayId),
      maxBatchBytes: this.status.batchLimit,
      partitions: await this.partitionCounts(admin),
      maxTxnEvents: cfg.batch_max_events,
      topicOf: new Map(EVENT_KINDS.map((k) => [k as string, topicFor(cfg, k)])),
      keyPrefix: this.encoder.keyPrefixString,
      headers: this.encoder.headerTemplate(),
      valuePrefix: this.encoder.valuePrefix,
      env: this.deps.env,
    });
    this.producer = producer;
    return producer;
  }

  /** Partition count of every event topic: the syncer partitions records itself (murmur2 of the key, as librdkafka and Java would). */
  private async partitionCounts(admin: Admin): Promise<Map<string, number>> {
    const names = [...new Set(EVENT_KINDS.map((k) => topicFor(this.deps.config, k)))];
    const res = await admin.fetchTopicMetadata({ topics: names });
    const out = new Map<string, number>();
    for (const t of res.topics) if (t.partitions.length > 0) out.set(t.name, t.partitions.length);
    const missing = names.filter((n) => !out.has(n));
    if (missing.length > 0) throw new Error(`no partitions known for Kafka topics ${missing.join(', ')}`);
    return out;
  }

  /** The smallest max.message.bytes of the event topics: no record batch may be larger. */
  private async maxMessageBytes(admin: Admin): Promise<number> {
    const cfg = this.deps.config;
    try {
      const res = await admin.describeConfigs({
        includeSynonyms: false,
        resources: EVENT_KINDS.map((k) => ({
          type: ConfigResourceTypes.TOPIC,
          name: topicFor(cfg, k),
          configNames: ['max.message.bytes'],
        })),
      });
      let min = Number.POSITIVE_INFINITY;
      for (const r of res.resources) {
        const v = Number(r.configEntries.find((e) => e.configName === 'max.message.bytes')?.configValue);
        if (Number.isFinite(v) && v > 0) min = Math.min(min, v);
      }
      if (Number.isFinite(min)) return min;
    } catch (err) {
      this.deps.log(
        'warn',
        { err: (err as Error).message },
        'could not read max.message.bytes of the Kafka topics; assuming the broker default',
      );
    }
    return DEFAULT_MAX_MESSAGE_BYTES;
  }

  /**
   * Creates missing topics with the settings a consumer needs (docs/events.md): event topics with
   * cleanup.policy=delete and an explicit retention, the twin topic compacted. Existing topics are
   * left as they are, with one WARN per topic whose settings differ, naming them.
   */
  private async ensureTopics(admin: Admin): Promise<void> {
    const cfg = this.deps.config;
    const wanted = new Map<string, Record<string, string>>(EVENT_KINDS.map((k) => [topicFor(cfg, k), topicConfig(cfg, k)]));
    wanted.set(cursorTopic(cfg), {});
    const existing = new Set(await admin.listTopics());
    const missing = [...wanted.keys()].filter((t) => !existing.has(t));
    const present = [...wanted.keys()].filter((t) => existing.has(t));
    if (present.length > 0) await this.checkTopics(admin, present, wanted);
    if (missing.length === 0) return;
    if (cfg.create_topics === 0) throw new Error(`missing Kafka topics: ${missing.join(', ')} (create_topics is 0)`);
    await admin.createTopics({
      waitForLeaders: true,
      topics: missing.map((topic) => ({
        topic,
        numPartitions: topic === cursorTopic(cfg) ? 1 : cfg.create_topics,
        replicationFactor: cfg.topic_settings.replication_factor,
        configEntries: Object.entries(wanted.get(topic) ?? {}).map(([name, value]) => ({ name, value })),
      })),
    });
    this.deps.log('info', { topics: missing }, 'Kafka topics created');
  }

  private async checkTopics(admin: Admin, topics: string[], wanted: Map<string, Record<string, string>>): Promise<void> {
    let res: Awaited<ReturnType<Admin['describeConfigs']>>;
    try {
      res = await admin.describeConfigs({
        includeSynonyms: false,
        resources: topics
          .filter((t) => Object.keys(wanted.get(t) ?? {}).length > 0)
          .map((name) => ({ type: ConfigResourceTypes.TOPIC, name, configNames: Object.keys(wanted.get(name) ?? {}) })),
      });
    } catch (err) {
      this.deps.log('warn', { err: (err as Error).message }, 'could not read the settings of existing Kafka topics');
      return;
    }
    for (const r of res.resources) {
      const want = wanted.get(r.resourceName) ?? {};
      const differs: Record<string, { is: string | null; expected: string }> = {};
      for (const [name, expected] of Object.entries(want)) {
        const is = r.configEntries.find((e) => e.configName === name)?.configValue ?? null;
        if (is !== expected) differs[name] = { is, expected };
      }
      if (Object.keys(differs).length > 0)
        this.deps.log(
          'warn',
          { topic: r.resourceName, differs },
          `existing Kafka topic ${r.resourceName} has other settings than the agent would create: ${Object.entries(differs)
            .map(([k, v]) => `${k}=${v.is} (expected ${v.expected})`)
            .join(', ')}; left unchanged`,
        );
    }
  }

  /** The cursor Kafka committed for this gateway and store, or undefined. */
  private async kafkaCursor(): Promise<number | undefined> {
    const admin = this.admin as Admin;
    const res = await admin.fetchOffsets({ groupId: cursorGroup(this.deps.gatewayId), topics: [cursorTopic(this.deps.config)] });
    const p = res[0]?.partitions[0];
    if (!p || Number(p.offset) < 0 || !p.metadata) return undefined;
    try {
      // librdkafka (the native client) sends the metadata with a trailing NUL.
      let text = p.metadata;
      while (text.endsWith('\0')) text = text.slice(0, -1);
      const m = JSON.parse(text) as CursorMeta;
      return m.store === this.storeId ? m.seq : undefined;
    } catch {
      return undefined;
    }
  }

  /** After (re)connecting: adopt what Kafka already committed. */
  private async reconcile(): Promise<void> {
    const remote = await this.kafkaCursor();
    if (remote === undefined || remote <= this.status.cursor) return;
    const gap = remote - this.status.cursor;
    const stats = await this.deps.commit(remote, [], this.now());
    this.status.recovered += gap;
    this.status.cursor = stats.cursor;
    this.deps.log(
      'info',
      { kafka_cursor: remote, local_cursor: remote - gap },
      'Kafka already had events the local cursor did not mark sent; not resending them',
    );
  }

  /**
   * Up to `events` events after `from`, packed by SQLite into one string (RecordEncoder.PACKED_SQL):
   * no JavaScript object per event. The native producer cuts the part at `partBytes` of payload.
   */
  private readPart(from: number, events: number): Part {
    const [n, bytes, , firstIngest, packed] = this.packed.get(from, events) as [number, number, number, number, Buffer | null];
    return { n, bytes: bytes ?? 0, firstIngest: firstIngest ?? 0, packed: packed ?? EMPTY };
  }

  private async run(): Promise<void> {
    const cfg = this.deps.config;
    let producer: TxnProducer | undefined;
    const retry = new Backoff({ baseMs: 400, maxMs: cfg.retry_max });
    let lingered = false;
    let rateStart = this.now();
    let rateBytes = 0;
    const refusedRows: RefusedRow[] = [];
    const partEvents = Math.max(1, Math.ceil(cfg.batch_max_events / PAGE_PARTS));
    const partBytes = Math.max(1, Math.ceil(cfg.batch_max_bytes / PAGE_PARTS));
    // Rows read per part: partEvents, less after parts cut by bytes (large events), so that a part is
    // not read many times over.
    let readLimit = partEvents;
    const readPart = (from: number) => this.readPart(from, readLimit);
    // Last sequence Kafka committed in this session; the local cursor (status.cursor) follows it.
    let sent = this.status.cursor;
    // The first part of the next page, read while the previous commit was in flight.
    let next: Part | undefined;
    // The local cursor write in flight (at most one; the writer applies them in order).
    let local: Promise<void> = Promise.resolve();
    let localError: Error | undefined;
    const settleLocal = async () => {
      await local;
      if (localError) {
        const e = localError;
        localError = undefined;
        throw e;
      }
    };
    while (this.running) {
      try {
        if (!producer) {
          next = undefined;
          await settleLocal();
          producer = await this.connect();
          await this.reconcile();
          sent = this.status.cursor;
        }
        let part = next ?? readPart(sent);
        next = undefined;
        if (part.n === 0) {
          await settleLocal();
          this.status.state = 'idle';
          this.status.lagMs = 0;
          this.deps.report(this.status);
          await this.deps.waitForRows(1000);
          lingered = false;
          continue;
        }
        if (part.n < partEvents && part.bytes <= partBytes && !lingered && this.now() - part.firstIngest < cfg.linger) {
          lingered = true;
          await this.deps.waitForRows(cfg.linger);
          continue;
        }
        lingered = false;
        if (this.pauseMs > 0 && this.running) await this.yieldFor(this.pauseMs);
        this.status.state = 'sending';
        this.status.lagMs = Math.max(0, this.now() - part.firstIngest);
        const limit = this.status.batchLimit;
        const refused: RefusedEvent[] = [];
        let bytes = 0;
        let events = 0;
        let last = sent;
        let delivered: Delivered[];
        await producer.begin();
        try {
          // librdkafka sends part k of the page while part k+1 is read and handed over.
          for (let k = 1; ; k++) {
            // One native call per part: values, keys, partitions, headers and records are built in C.
            refusedRows.length = 0;
            const [rows, lastSeq, produced] = producer.producePacked(part.packed, part.n, limit, partBytes, refusedRows);
            for (const [seq, kind, key, eventTime, size] of refusedRows)
              refused.push({ seq, kind, key, event_time: eventTime, bytes: size, limit });
            bytes += produced;
            events += rows;
            last = lastSeq;
            if (rows < part.n) readLimit = Math.max(1, Math.min(partEvents, rows * 2));
            else if (readLimit < partEvents) readLimit = Math.min(partEvents, readLimit * 2);
            if (k >= PAGE_PARTS || !this.running) break;
            // Delivery reports and IPC get their turn between parts; while the agent's pacer asks, a pause.
            if (this.pauseMs > 0) await this.yieldFor(this.pauseMs);
            else await new Promise((r) => setImmediate(r));
            part = readPart(last);
            if (part.n === 0) break;
          }
          await producer.sendCursor(
            cursorTopic(cfg),
            last,
            JSON.stringify({ store: this.storeId, seq: last } satisfies CursorMeta),
          );
          const committing = producer.commit();
          committing.catch(() => {});
          // The next page's first part is read while the commit is in flight.
          if (this.running) next = readPart(last);
          delivered = await committing;
        } catch (err) {
          next = undefined;
          if (err instanceof KafkaStuckError) throw err;
          const aborted = await producer.abort().then(
            () => undefined,
            (e: unknown) => e,
          );
          throw aborted instanceof KafkaStuckError ? aborted : err;
        }
        sent = last;
        const at = this.now();
        // The local write (cursor + sequence ↔ offset map) runs while the next transaction is sent. Kafka
        // already has the cursor: a crash before this write completes is recovered at the next start.
        await settleLocal();
        local = this.deps.commit(last, mapOf(delivered), at).then(
          (stats) => {
            this.status.cursor = stats.cursor;
          },
          (err: Error) => {
            localError = err;
          },
        );
        this.status.lastSuccess = at;
        this.status.sentEvents += events - refused.length;
        this.status.sentBytes += bytes;
        this.status.batches++;
        this.status.lastError = undefined;
        for (const ev of refused) {
          this.status.refused++;
          this.deps.log(
            'error',
            { ...ev },
            `event ${ev.seq} (${ev.kind} ${ev.key}) not sent to Kafka: its record is ${ev.bytes} bytes, the topics accept at most ${ev.limit} (max.message.bytes); it stays in the local store`,
          );
          this.deps.refused?.(ev);
        }
        retry.succeed();
        this.deps.report(this.status);
        if (cfg.max_rate > 0) {
          rateBytes += bytes;
          const due = rateStart + (rateBytes / cfg.max_rate) * 1000;
          const wait = due - this.now();
          if (wait > 0) await this.sleep(wait);
          if (this.now() - rateStart > 10_000) {
            rateStart = this.now();
            rateBytes = 0;
          }
        }
      } catch (err) {
        const stuck = err instanceof KafkaStuckError ? err : undefined;
        if (!this.running && !stuck) break;
        const delay = retry.fail();
        const attempt = retry.failures;
        this.status.failures++;
        this.status.state = 'retrying';
        const message = (err as Error).message;
        if (stuck) this.deps.log('error', { err: message, call: stuck.call }, 'Kafka client stuck; the sync process restarts');
        else if (this.status.lastError !== message || attempt === 1)
          this.deps.log('warn', { err: message, attempt }, 'Kafka send failed; events stay buffered and are retried');
        this.status.lastError = message;
        this.deps.report(this.status);
        if (stuck) {
          // The client holds a thread that may never come back: no new one in this process.
          this.running = false;
          this.deps.stuck(stuck);
          return;
        }
        // Whatever happened to the transaction, the next session finds out from Kafka.
        producer = undefined;
        await this.disconnect();
        await this.sleep(delay);
      }
    }
    await local;
  }
}

/** One part of a page as SQLite packed it (RecordEncoder.PACKED_SQL): events, payload characters, first ingest time, the events. */
interface Part {
  readonly n: number;
  readonly bytes: number;
  readonly firstIngest: number;
  readonly packed: Buffer;
}
const EMPTY = Buffer.alloc(0);

/** The store's sequence ↔ partition/offset map of one transaction. */
function mapOf(delivered: readonly Delivered[]): MapEntry[] {
  return delivered.map((d) => ({
    firstSeq: d.firstSeq,
    lastSeq: d.lastSeq,
    count: d.count,
    topic: d.topic,
    partition: d.partition,
    baseOffset: d.offset,
  }));
}
