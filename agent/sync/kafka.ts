/**
 * What the agent writes to Kafka and how it connects: client config (TLS, SASL with the secret
 * from the environment), topic names, and the record format (docs/events.md, schema/events/).
 *
 * Record: key = `<gateway_id>/<event key>` (the event key is the asset id, or the gateway id for
 * gateway-wide events), so two gateways with a `pump-1` never share a key (the twin topic is
 * compacted on it); timestamp = event time; value = JSON
 *   {schema_version, gateway_id, store_id, seq, kind, key, event_time, ingest_time, replay, boot_id, payload}
 * with the same identity in the headers: gateway_id, store_id, seq, boot_id, kind, schema_version,
 * and replay=1 on replays. (gateway_id, store_id, seq) identifies an event for consumers that
 * dedupe; store_id only changes when a gateway starts a fresh store (new disk, or a corrupt one
 * quarantined).
 */

import { readFileSync } from 'node:fs';
import type { MessageHeader } from '@confluentinc/kafka-javascript';
import type { KafkaConfig, Message, SASLOptions } from 'kafkajs';
import type { SyncConfig } from '../config/schema.js';
import type { StoredEventRow } from '../store/db.js';
import type { EventKind } from '../types.js';

export type KafkaSyncConfig = NonNullable<SyncConfig['kafka']>;
/** Version of the record contract (schema/events/<kind>.v<N>.json); also the `schema_version` header. */
export const SCHEMA_VERSION = 2;

export function topicFor(cfg: KafkaSyncConfig, kind: EventKind): string {
  return `${cfg.topic_prefix}${cfg.topics[kind] ?? kind}`;
}

/**
 * Topic-level configs the agent creates a topic with: the twin topic is compacted (latest state per
 * `<gateway_id>/<asset>` key); event topics keep records for `topic_settings.retention`, counted
 * from the record timestamp, which is the event time.
 */
export function topicConfig(cfg: KafkaSyncConfig, kind: EventKind): Record<string, string> {
  if (kind === 'twin') return { 'cleanup.policy': 'compact' };
  return { 'cleanup.policy': 'delete', 'retention.ms': String(cfg.topic_settings.retention) };
}

/** The (record-less) topic whose committed offset for `cursorGroup` is the sync cursor. */
export function cursorTopic(cfg: KafkaSyncConfig): string {
  return `${cfg.topic_prefix}sync-cursor`;
}

export function cursorGroup(gatewayId: string): string {
  return `edge-agent-sync.${gatewayId}`;
}

export function transactionalId(cfg: KafkaSyncConfig, gatewayId: string): string {
  return cfg.transactional_id ?? `edge-agent-${gatewayId}`;
}

/** kafkajs client options. Secrets: `sasl.password`, else $EDGE_KAFKA_PASSWORD. */
export function kafkaConfig(
  cfg: KafkaSyncConfig,
  gatewayId: string,
  env: NodeJS.ProcessEnv = process.env,
  suffix = '',
): KafkaConfig {
  const out: KafkaConfig = {
    clientId: `${cfg.client_id ?? `edge-agent-${gatewayId}`}${suffix}`,
    brokers: cfg.brokers,
    connectionTimeout: 5000,
    requestTimeout: cfg.request_timeout,
    retry: { retries: 3, initialRetryTime: 200, maxRetryTime: Math.min(cfg.retry_max, 5000) },
  };
  if (cfg.tls) {
    const t = cfg.tls;
    out.ssl = {
      rejectUnauthorized: t.reject_unauthorized,
      ...(t.ca_file ? { ca: [readFileSync(t.ca_file, 'utf8')] } : {}),
      ...(t.cert_file ? { cert: readFileSync(t.cert_file, 'utf8') } : {}),
      ...(t.key_file ? { key: readFileSync(t.key_file, 'utf8') } : {}),
    };
  }
  if (cfg.sasl) {
    const password = cfg.sasl.password || env.EDGE_KAFKA_PASSWORD;
    if (!password) throw new Error('sync.kafka.sasl: no password (set the environment variable EDGE_KAFKA_PASSWORD)');
    out.sasl = { mechanism: cfg.sasl.mechanism, username: cfg.sasl.username, password } as SASLOptions;
  }
  return out;
}

export interface EncodedRecord {
  readonly key: string;
  readonly value: Buffer;
  readonly timestamp: number;
  readonly headers: MessageHeader[] | undefined;
}

/** A stored event as the syncer reads it. */
export type SyncRow = StoredEventRow;

export interface RecordContext {
  readonly gatewayId: string;
  readonly storeId: string;
  readonly bootId: string;
  readonly replay?: boolean;
  /** Identity headers on each record (default true); the value carries the same fields. */
  readonly headers?: boolean;
}

/** The Kafka record key of an event: gateway-qualified, so equal asset ids of two gateways never collide. */
export function recordKey(gatewayId: string, key: string): string {
  return `${gatewayId}/${key}`;
}

/**
 * Builds Kafka records for one gateway, store and session. The value is concatenated, not
 * stringified: the stored payload is already JSON, and the identity prefix is built once.
 */
export class RecordEncoder {
  private readonly prefix: string;
  private readonly headers: Readonly<Record<string, string>>;
  private readonly keyPrefix: string;
  private readonly withHeaders: boolean;
  /**
   * Per kind, the header array handed to the native client, reused for every record: the session's
   * constant headers (values as Buffers, no string conversion per record), `kind`, and one `seq`
   * object whose value is replaced per record. librdkafka copies headers inside produce().
   */
  private readonly nativeHeaders = new Map<string, { list: MessageHeader[]; seq: { seq: string } }>();
  /** Header name and value bytes of the constant headers plus the names `seq` and `kind`. */
  private readonly fixedHeaderBytes: number;

  constructor(ctx: RecordContext) {
    const replay = ctx.replay === true;
    this.prefix =
      `{"schema_version":${SCHEMA_VERSION},"gateway_id":${JSON.stringify(ctx.gatewayId)},` +
      `"store_id":${JSON.stringify(ctx.storeId)},"boot_id":${JSON.stringify(ctx.bootId)},"replay":${replay},`;
    this.headers = {
      gateway_id: ctx.gatewayId,
      store_id: ctx.storeId,
      boot_id: ctx.bootId,
      schema_version: String(SCHEMA_VERSION),
      ...(replay ? { replay: '1' } : {}),
    };
    this.keyPrefix = `${ctx.gatewayId}/`;
    this.withHeaders = ctx.headers !== false;
    let fixed = 'seq'.length + 'kind'.length;
    for (const [k, v] of Object.entries(this.headers)) fixed += k.length + Buffer.byteLength(v);
    this.fixedHeaderBytes = fixed;
  }

  /**
   * The record for the native client: key, value bytes, timestamp and headers in the same order as
   * encode(). The headers array is shared per kind and only valid until the next call.
   */
  record(r: SyncRow): EncodedRecord {
    const seq = String(r.seq);
    const value = Buffer.from(
      `${this.prefix}"seq":${seq},"kind":"${r.kind}","key":${JSON.stringify(r.key)},"event_time":${r.event_time},"ingest_time":${r.ingest_time},"payload":${r.payload}}`,
    );
    const headers = this.nativeHeadersFor(r.kind, r.seq);
    return { key: this.keyPrefix + r.key, value, timestamp: r.event_time, headers };
  }

  /**
   * The syncer's page query: the same value bytes as record() (a test compares them), built by
   * SQLite while it reads the page and returned as a Buffer, so JavaScript neither builds nor
   * UTF-8-encodes a string per event. Bind `valuePrefix`, then the cursor and the page size.
   */
  static readonly PAGE_SQL =
    'SELECT seq, kind, key, event_time, ingest_time, length(payload), CAST(? || seq || \',"kind":"\' || kind || ' +
    '\'","key":\' || json_quote(key) || \',"event_time":\' || event_time || \',"ingest_time":\' || ingest_time || ' +
    "',\"payload\":' || payload || '}' AS TEXT) FROM events WHERE seq > ? ORDER BY seq LIMIT ?";

  /**
   * The syncer's part query: up to N events after a cursor (bind the cursor, then N) as one row:
   * count, payload characters, first sequence, the first event's ingest time, and the events packed
   * in one string, per event "<seq> <kind> <event_time> <ingest_time> <payload chars> <key bytes>
   * <json_quote(key) bytes> <payload bytes> " then the key, json_quote(key) and the payload, as a
   * Buffer (UTF-8, handed to C without a copy or a JavaScript string). The
   * native producer (agent/sync/producer.ts) builds each record value from it, byte for byte as
   * record() and PAGE_SQL do (test/sync-record.test.ts): one Buffer per part instead of a JavaScript
   * array, two strings and a value per event.
   */
  static readonly PACKED_SQL =
    "SELECT count(*), sum(length(payload)), min(seq), ingest_time, CAST(group_concat(seq || ' ' || kind || ' ' || " +
    "event_time || ' ' || ingest_time || ' ' || length(payload) || ' ' || octet_length(key) || ' ' || " +
    "octet_length(json_quote(key)) || ' ' || octet_length(payload) || ' ' || key || json_quote(key) || payload, '' ORDER BY seq) AS BLOB) " +
    'FROM (SELECT seq, kind, key, event_time, ingest_time, payload FROM events WHERE seq > ? ORDER BY seq LIMIT ?)';

  /** What PAGE_SQL binds first: the value up to the sequence number. */
  get valuePrefix(): string {
    return `${this.prefix}"seq":`;
  }

  /** The record key of an event key. */
  key(eventKey: string): string {
    return this.keyPrefix + eventKey;
  }

  /** The header array for the native client (shared per kind, valid until the next call), or undefined without headers. */
  nativeHeadersFor(kind: string, seq: number): MessageHeader[] | undefined {
    if (!this.withHeaders) return undefined;
    let h = this.nativeHeaders.get(kind);
    if (!h) {
      const seqHeader = { seq: '' };
      const list: MessageHeader[] = Object.entries(this.headers).map(([k, v]) => ({ [k]: Buffer.from(v) }));
      list.push(seqHeader, { kind: Buffer.from(kind) });
      h = { list, seq: seqHeader };
      this.nativeHeaders.set(kind, h);
    }
    h.seq.seq = String(seq);
    return h.list;
  }

  /**
   * The constant identity headers in record order (the native producer appends `seq` and `kind` per
   * record, as nativeHeadersFor does), or undefined without headers.
   */
  headerTemplate(): Array<readonly [string, string]> | undefined {
    return this.withHeaders ? Object.entries(this.headers) : undefined;
  }

  /** The record key prefix: `<gateway_id>/`. */
  get keyPrefixString(): string {
    return this.keyPrefix;
  }

  /** Header bytes (names and values) of one record, 0 without headers. */
  headerBytes(kind: string, seq: number): number {
    return this.withHeaders ? this.fixedHeaderBytes + String(seq).length + kind.length : 0;
  }

  /** Bytes of a record from record() on the wire before compression, framing excluded (key, value, header names and values). */
  size(rec: EncodedRecord, r: SyncRow): number {
    return Buffer.byteLength(rec.key) + rec.value.length + (rec.headers ? this.headerBytes(r.kind, r.seq) : 0);
  }

  encode(r: SyncRow): Message {
    const seq = String(r.seq);
    return {
      key: this.keyPrefix + r.key,
      value: `${this.prefix}"seq":${seq},"kind":"${r.kind}","key":${JSON.stringify(r.key)},"event_time":${r.event_time},"ingest_time":${r.ingest_time},"payload":${r.payload}}`,
      timestamp: String(r.event_time),
      headers: { ...this.headers, seq, kind: r.kind },
    };
  }
}
