/**
 * What the agent writes to Kafka and how it connects: client config (TLS, SASL with the secret
 * from the environment), topic names, and the record format.
 *
 * Record: key = the event's key (asset id, or the gateway id for gateway-wide events), timestamp =
 * event time, value = JSON {gateway, seq, kind, key, event_time, payload}, headers:
 *   gateway_id, seq, store_id, boot_id, kind, schema_version, and replay=1 on replays.
 * (gateway_id, store_id, seq) identifies an event for consumers that dedupe; store_id only changes
 * when a gateway starts a fresh store (new disk, or a corrupt one quarantined).
 */

import { readFileSync } from 'node:fs';
import type { KafkaConfig, Message, SASLOptions } from 'kafkajs';
import type { SyncConfig } from '../config/schema.js';
import type { StoredEventRow } from '../store/db.js';
import type { EventKind } from '../types.js';

export type KafkaSyncConfig = NonNullable<SyncConfig['kafka']>;
export const SCHEMA_VERSION = '1';

export function topicFor(cfg: KafkaSyncConfig, kind: EventKind): string {
  return `${cfg.topic_prefix}${cfg.topics[kind] ?? kind}`;
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

/** A stored event as the syncer reads it. */
export type SyncRow = StoredEventRow;

export interface RecordContext {
  readonly gatewayId: string;
  readonly storeId: string;
  readonly bootId: string;
  readonly replay?: boolean;
}

/** The Kafka record of a stored event. Builds the value by concatenation: the payload is already JSON. */
export function toMessage(r: SyncRow, ctx: RecordContext, gatewayJson: string): Message {
  const seq = String(r.seq);
  const headers: Record<string, string> = {
    gateway_id: ctx.gatewayId,
    seq,
    store_id: ctx.storeId,
    boot_id: ctx.bootId,
    kind: r.kind,
    schema_version: SCHEMA_VERSION,
  };
  if (ctx.replay) headers.replay = '1';
  return {
    key: r.key,
    value: `{"gateway":${gatewayJson},"seq":${seq},"kind":"${r.kind}","key":${JSON.stringify(r.key)},"event_time":${r.event_time},"payload":${r.payload}}`,
    timestamp: String(r.event_time),
    headers,
  };
}
