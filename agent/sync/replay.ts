/**
 * `edge-agent replay` and `edge-agent sync status`.
 *
 * Replay re-publishes retained events (a sequence range or an event-time range) with the header
 * `replay=1`, through an idempotent producer that does not touch the sync cursor or its
 * transactional id, so it can run beside the live agent. Consumers that dedupe on
 * (gateway_id, store_id, seq) see nothing twice; the others can tell replays by the header.
 */
import { randomUUID } from 'node:crypto';
import { Kafka, logLevel } from 'kafkajs';
import type { AgentConfig } from '../config/schema.js';
import { openDb } from '../store/db.js';
import { COMPRESSION, registerCodecs } from './codecs.js';
import { type KafkaSyncConfig, kafkaConfig, RecordEncoder, type SyncRow, topicFor } from './kafka.js';
import { Progress } from './progress.js';

/** Events per replay request (kafkajs): a partition's share stays far below max.message.bytes. */
const REPLAY_PAGE = 1000;

export interface ReplayRange {
  readonly fromSeq?: number;
  readonly since?: number;
  readonly until?: number;
  /** Up to this sequence (inclusive). */
  readonly toSeq?: number;
}

export interface ReplayResult {
  readonly events: number;
  readonly firstSeq: number | undefined;
  readonly lastSeq: number | undefined;
}

export async function replay(config: AgentConfig, range: ReplayRange, opts: { progress?: boolean } = {}): Promise<ReplayResult> {
  const cfg = config.sync.kafka as KafkaSyncConfig | undefined;
  if (!cfg) throw new Error('sync.kafka is not configured');
  registerCodecs();
  const db = openDb(config.store.path, 'NORMAL', true);
  const where: string[] = [];
  const args: number[] = [];
  if (range.fromSeq !== undefined) {
    where.push('seq >= ?');
    args.push(range.fromSeq);
  }
  if (range.toSeq !== undefined) {
    where.push('seq <= ?');
    args.push(range.toSeq);
  }
  if (range.since !== undefined) {
    where.push('event_time >= ?');
    args.push(range.since);
  }
  if (range.until !== undefined) {
    where.push('event_time < ?');
    args.push(range.until);
  }
  const cond = where.length ? `AND ${where.join(' AND ')}` : '';
  const total = (db.prepare(`SELECT COUNT(*) AS n FROM events WHERE 1=1 ${cond}`).get(...args) as { n: number }).n;
  const page = db.prepare(
    `SELECT seq, kind, key, event_time, ingest_time, payload FROM events WHERE seq > ? ${cond} ORDER BY seq LIMIT ?`,
  );
  const storeId =
    (db.prepare("SELECT value FROM meta WHERE key = 'store_id'").get() as { value: string } | undefined)?.value ?? 'unknown';
  const gatewayId = config.gateway.id;
  const kafka = new Kafka({ ...kafkaConfig(cfg, gatewayId, process.env, '-replay'), logLevel: logLevel.NOTHING });
  const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1, allowAutoTopicCreation: false });
  const encoder = new RecordEncoder({ gatewayId, storeId, bootId: randomUUID(), replay: true });
  const bar = opts.progress === false ? undefined : new Progress({ total, label: 'replay' });
  let sent = 0;
  let first: number | undefined;
  let last: number | undefined;
  await producer.connect();
  try {
    let after = 0;
    for (;;) {
      // kafkajs puts a partition's share of a request into one record batch: small pages keep it
      // below max.message.bytes (the syncer's librdkafka path cuts batches by size itself).
      const rows = page.all(after, ...args, Math.min(cfg.batch_max_events, REPLAY_PAGE)) as SyncRow[];
      if (rows.length === 0) break;
      const byTopic = new Map<string, ReturnType<RecordEncoder['encode']>[]>();
      for (const r of rows) {
        const t = topicFor(cfg, r.kind);
        let list = byTopic.get(t);
        if (!list) byTopic.set(t, (list = []));
        list.push(encoder.encode(r));
      }
      await producer.sendBatch({
        topicMessages: [...byTopic].map(([topic, messages]) => ({ topic, messages })),
        acks: -1,
        compression: COMPRESSION[cfg.compression],
      });
      first ??= (rows[0] as SyncRow).seq;
      last = (rows[rows.length - 1] as SyncRow).seq;
      after = last;
      sent += rows.length;
      bar?.update(sent);
    }
  } finally {
    bar?.done();
    await producer.disconnect();
    db.close();
  }
  return { events: sent, firstSeq: first, lastSeq: last };
}

export interface SyncStatusReport {
  readonly store: string;
  readonly store_id: string;
  readonly last_seq: number;
  readonly cursor: number;
  readonly backlog_events: number;
  readonly backlog_bytes: number;
  readonly oldest_unsent: number | null;
  readonly lag_seconds: number;
  readonly last_success: number | null;
  readonly retained_events: number;
  readonly evictions: Record<string, number>;
  readonly map: Array<{
    first_seq: number;
    last_seq: number;
    count: number;
    topic: string;
    partition: number;
    base_offset: number;
    sent_at: number;
  }>;
}

/** Reads the sync state from the store file (read-only; safe while the agent runs). */
export function syncStatus(path: string, mapRows = 20, now = Date.now()): SyncStatusReport {
  const db = openDb(path, 'NORMAL', true);
  try {
    const meta = (k: string) =>
      (db.prepare('SELECT value FROM meta WHERE key = ?').get(k) as { value: string } | undefined)?.value;
    const cursor = Number(meta('sync_cursor') ?? 0);
    const lastSeq =
      (db.prepare("SELECT seq FROM sqlite_sequence WHERE name = 'events'").get() as { seq: number } | undefined)?.seq ?? 0;
    const unsent = db
      .prepare('SELECT COUNT(*) AS n, COALESCE(SUM(length(payload)), 0) AS b, MIN(ingest_time) AS t FROM events WHERE seq > ?')
      .get(cursor) as { n: number; b: number; t: number | null };
    const retained = (db.prepare('SELECT COUNT(*) AS n FROM events WHERE seq <= ?').get(cursor) as { n: number }).n;
    const lastSuccess = Number(meta('sync_last_success') ?? 0);
    const evictions = Object.fromEntries(
      (db.prepare('SELECT kind, count FROM evictions').all() as Array<{ kind: string; count: number }>).map((r) => [
        r.kind,
        r.count,
      ]),
    );
    return {
      store: path,
      store_id: meta('store_id') ?? 'unknown',
      last_seq: lastSeq,
      cursor,
      backlog_events: unsent.n,
      backlog_bytes: unsent.b,
      oldest_unsent: unsent.t,
      lag_seconds: unsent.t ? Math.max(0, (now - unsent.t) / 1000) : 0,
      last_success: lastSuccess || null,
      retained_events: retained,
      evictions,
      map: db
        .prepare('SELECT * FROM sync_map ORDER BY last_seq DESC, topic, partition LIMIT ?')
        .all(mapRows) as SyncStatusReport['map'],
    };
  } finally {
    db.close();
  }
}

export function formatSyncStatus(s: SyncStatusReport): string {
  const iso = (t: number | null) => (t ? new Date(t).toISOString() : 'never');
  const out = [
    `store: ${s.store} (id ${s.store_id})`,
    `last sequence: ${s.last_seq}   sync cursor: ${s.cursor}`,
    `backlog: ${s.backlog_events} events, ${s.backlog_bytes} payload bytes; lag ${s.lag_seconds.toFixed(1)} s (oldest unsent ${iso(s.oldest_unsent)})`,
    `last successful send: ${iso(s.last_success)}`,
    `retained for replay: ${s.retained_events} events`,
    `evicted unsent events: ${
      Object.entries(s.evictions)
        .map(([k, n]) => `${k} ${n}`)
        .join(', ') || 'none'
    }`,
    'sequence -> partition/offset (latest first; offsets are base_offset + rank of the seq within the range):',
  ];
  for (const m of s.map)
    out.push(`  seq ${m.first_seq}..${m.last_seq} (${m.count})  ${m.topic}[${m.partition}] @${m.base_offset}  ${iso(m.sent_at)}`);
  return out.join('\n');
}
