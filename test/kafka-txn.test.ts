/**
 * The syncer's native producer (native/kafka-txn through agent/sync/producer.ts) against a real
 * broker, on the error paths the syncer tests reach only indirectly: a second session with the same
 * transactional.id fences the first (its commit fails with librdkafka's flags, none of its records
 * become visible to a read_committed consumer), a malformed part or an unknown kind is refused
 * without counting anything, a record over the limit comes back instead of being produced, and the
 * delivery summary of a commit matches what a consumer (kcat) finds, headers and metadata included.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cursorTopic, RecordEncoder } from '../agent/sync/kafka.js';
import { type KafkaTxnError, partitionOf, type RefusedRow, TxnProducer } from '../agent/sync/producer.js';
import {
  consumeWithKcat,
  createTopic,
  type KafkaBroker,
  kafkaAvailable,
  kafkaClient,
  kcatAvailable,
  requireOrSkip,
  startKafka,
} from './helpers/kafka.js';
import { syncConfig } from './helpers/sync.js';

const haveKafka = requireOrSkip(kafkaAvailable(), 'Kafka broker (java + Kafka jars or mvn)');
const haveKcat = haveKafka && requireOrSkip(kcatAvailable(), 'kcat');

const GATEWAY = 'gw-txn';
const enc = new RecordEncoder({ gatewayId: GATEWAY, storeId: 'store-1', bootId: 'boot-1', headers: true });

/** A part as RecordEncoder.PACKED_SQL packs it. */
function pack(events: Array<{ seq: number; kind: string; key: string; time: number; payload: string }>): Buffer {
  return Buffer.from(
    events
      .map((e) => {
        const q = JSON.stringify(e.key);
        return `${e.seq} ${e.kind} ${e.time} ${e.time + 1} ${[...e.payload].length} ${Buffer.byteLength(e.key)} ${Buffer.byteLength(q)} ${Buffer.byteLength(e.payload)} ${e.key}${q}${e.payload}`;
      })
      .join(''),
  );
}

function events(from: number, n: number, payload = '{"v":1}') {
  return Array.from({ length: n }, (_, i) => ({
    seq: from + i,
    kind: 'aggregate',
    key: `asset-${(from + i) % 5}`,
    time: 1_790_000_000_000 + from + i,
    payload,
  }));
}

describe.skipIf(!haveKcat)('kafka-txn native producer with a real broker', () => {
  let broker: KafkaBroker;
  let n = 0;
  beforeAll(async () => {
    broker = await startKafka({ partitions: 3, logLevel: 'WARN' });
  }, 180_000);
  afterAll(async () => {
    await broker?.destroy();
  });

  async function open(prefix: string, transactionalId: string, limit = 1_000_000): Promise<TxnProducer> {
    const cfg = syncConfig(broker.brokers, prefix, { request_timeout: '10s' });
    return TxnProducer.connect({
      config: cfg,
      clientId: `test-${n++}`,
      transactionalId,
      cursorGroup: `edge-agent-sync.${GATEWAY}.${prefix}`,
      maxBatchBytes: limit,
      partitions: new Map([[`${prefix}aggregate`, 3]]),
      maxTxnEvents: 10_000,
      topicOf: new Map([['aggregate', `${prefix}aggregate`]]),
      keyPrefix: enc.key(''),
      valuePrefix: enc.valuePrefix,
      headers: enc.headerTemplate(),
    });
  }

  async function topics(prefix: string): Promise<void> {
    await createTopic(broker.brokers, `${prefix}aggregate`, 3);
    await createTopic(broker.brokers, cursorTopic(syncConfig(broker.brokers, prefix)), 1);
  }

  it('commits a part: the summary matches what kcat reads, records and cursor metadata exactly as built', async () => {
    const prefix = 'ok.';
    await topics(prefix);
    const p = await open(prefix, 'txn-ok');
    try {
      await p.begin();
      const evs = events(1, 200);
      const refused: RefusedRow[] = [];
      const [rows, last, bytes] = p.producePacked(pack(evs), evs.length, 1_000_000, 1e9, refused);
      expect({ rows, last, bytes, refused }).toEqual({ rows: 200, last: 200, bytes: 200 * 7, refused: [] });
      const meta = JSON.stringify({ store: 'store-1', seq: 200 });
      await p.sendCursor(cursorTopic(syncConfig(broker.brokers, prefix)), 200, meta);
      const delivered = await p.commit();
      expect(delivered.reduce((s, d) => s + d.count, 0)).toBe(200);
      const got = await consumeWithKcat(broker.brokers, `${prefix}aggregate`, { atLeast: 200 });
      expect(got).toHaveLength(200);
      for (const d of delivered) {
        const mine = got.filter((r) => r.partition === d.partition).sort((a, b) => Number(a.offset) - Number(b.offset));
        expect(mine).toHaveLength(d.count);
        expect(Number(mine[0]?.offset)).toBe(d.offset);
        expect(Number(mine[0]?.headers.seq)).toBe(d.firstSeq);
        expect(Number(mine.at(-1)?.headers.seq)).toBe(d.lastSeq);
      }
      for (const r of got) {
        const seq = Number(r.headers.seq);
        const e = evs[seq - 1] as (typeof evs)[number];
        const rec = enc.record({
          seq,
          kind: 'aggregate',
          key: e.key,
          event_time: e.time,
          ingest_time: e.time + 1,
          payload: e.payload,
        });
        expect(r.key).toBe(rec.key);
        expect(r.value).toBe(rec.value.toString('utf8'));
        expect(r.timestamp).toBe(e.time);
        expect(r.partition).toBe(partitionOf(rec.key, 3));
        expect(Object.keys(r.headers)).toEqual(['gateway_id', 'store_id', 'boot_id', 'schema_version', 'seq', 'kind']);
      }
      // The cursor's metadata exactly as given (no trailing NUL).
      const admin = kafkaClient(broker.brokers).admin();
      await admin.connect();
      const off = await admin.fetchOffsets({
        groupId: `edge-agent-sync.${GATEWAY}.${prefix}`,
        topics: [cursorTopic(syncConfig(broker.brokers, prefix))],
      });
      await admin.disconnect();
      expect(off[0]?.partitions[0]).toMatchObject({ offset: '200', metadata: meta });
    } finally {
      await p.close();
    }
  }, 120_000);

  it('a second session with the same transactional.id fences the first: its commit fails, none of its records are visible', async () => {
    const prefix = 'fence.';
    await topics(prefix);
    const a = await open(prefix, 'txn-fence');
    const b = await open(prefix, 'txn-fence').catch(async (err) => {
      await a.close();
      throw err;
    });
    try {
      await a.begin();
      // b's InitProducerId (in open) fenced a's producer id: a's transaction cannot commit.
      const err = await (async () => {
        a.producePacked(pack(events(1, 50)), 50, 1_000_000, 1e9, []);
        await a.sendCursor(cursorTopic(syncConfig(broker.brokers, prefix)), 50, '{}');
        await a.commit();
      })().then(
        () => undefined,
        (e: KafkaTxnError) => e,
      );
      expect(err).toBeInstanceOf(Error);
      expect(typeof err?.code).toBe('number');
      expect(err?.fatal === true || err?.abortable === true).toBe(true);
      await b.begin();
      b.producePacked(pack(events(51, 30)), 30, 1_000_000, 1e9, []);
      await b.sendCursor(cursorTopic(syncConfig(broker.brokers, prefix)), 80, '{}');
      const delivered = await b.commit();
      expect(delivered.reduce((s, d) => s + d.count, 0)).toBe(30);
      const got = await consumeWithKcat(broker.brokers, `${prefix}aggregate`, { atLeast: 30 });
      expect(got.map((r) => Number(r.headers.seq)).sort((x, y) => x - y)).toEqual(events(51, 30).map((e) => e.seq));
    } finally {
      await Promise.all([a.close(), b.close()]);
    }
  }, 120_000);

  it('refuses a malformed part and an unknown kind without counting anything, and returns a record over the limit', async () => {
    const prefix = 'bad.';
    await topics(prefix);
    const p = await open(prefix, 'txn-bad', 4096);
    try {
      await p.begin();
      expect(() => p.producePacked(Buffer.from('1 aggregate 5 6 7 8 9'), 1, 4096, 1e9, [])).toThrow(/malformed/);
      const unknown = events(1, 1).map((e) => ({ ...e, kind: 'nope' }));
      expect(() => p.producePacked(pack(unknown), 1, 4096, 1e9, [])).toThrow(/no topic for event kind "nope"/);
      const big = {
        seq: 2,
        kind: 'aggregate',
        key: 'asset-big',
        time: 1_790_000_000_002,
        payload: `{"x":"${'y'.repeat(5000)}"}`,
      };
      const refused: RefusedRow[] = [];
      const [rows, last, bytes] = p.producePacked(pack([big, ...events(3, 10)]), 11, 4096, 1e9, refused);
      expect({ rows, last, bytes }).toEqual({ rows: 11, last: 12, bytes: 10 * 7 });
      expect(refused).toHaveLength(1);
      expect(refused[0]?.slice(0, 4)).toEqual([2, 'aggregate', 'asset-big', big.time]);
      expect(refused[0]?.[4]).toBeGreaterThan(4096);
      // Parts are cut by payload characters: at least one event, then up to maxBytes.
      expect(p.producePacked(pack(events(13, 10)), 10, 4096, 20, [])).toEqual([2, 14, 14]);
      await p.sendCursor(cursorTopic(syncConfig(broker.brokers, prefix)), 14, '{}');
      const delivered = await p.commit();
      expect(delivered.reduce((s, d) => s + d.count, 0)).toBe(12);
    } finally {
      await p.close();
    }
  }, 120_000);
});
