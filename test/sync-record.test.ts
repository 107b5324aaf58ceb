/**
 * The record the syncer sends is built in two places: RecordEncoder.record() (the definition, also
 * used by `edge-agent replay` through encode()) and the page query RecordEncoder.PAGE_SQL, which has
 * SQLite build the value bytes while it reads the page, and the packed part the syncer sends
 * (RecordEncoder.PACKED_SQL, whose records the native producer builds in C). They must agree byte
 * for byte. And the
 * syncer partitions records itself: its murmur2 must be Kafka's (kafkajs' Java-compatible one here).
 */
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { openDb } from '../agent/store/db.js';
import { RecordEncoder, type SyncRow } from '../agent/sync/kafka.js';
import { kafkaTxn, murmur2, partitionOf } from '../agent/sync/producer.js';
import type { EventKind } from '../agent/types.js';
import { tempDir } from './helpers/tmp.js';

const require = createRequire(import.meta.url);
const kafkajsMurmur2 = require('kafkajs/src/producer/partitioners/default/murmur2.js') as (key: Buffer) => number;

const KEYS = ['pump-1', 'asset "quoted"', 'back\\slash', 'tab\there', 'line\nbreak', 'ctl\u0001\u001f', 'ünïcødé-✓', '😀', ''];
const PAYLOADS = ['{"a":1}', '{"s":"x\\"y","n":[1,2.5,-3e-7],"u":"ü"}', '{}', `{"big":"${'x'.repeat(5000)}"}`];

describe('sync record encoding', () => {
  it('PAGE_SQL builds the same value bytes as RecordEncoder.record()', () => {
    const dir = tempDir();
    try {
      const db = openDb(join(dir.path, 'x.db'), 'NORMAL');
      const insert = db.prepare(
        'INSERT INTO events (kind, key, event_time, ingest_time, priority, payload) VALUES (?, ?, ?, ?, 0, ?)',
      );
      const rows: SyncRow[] = [];
      let i = 0;
      for (const key of KEYS)
        for (const payload of PAYLOADS) {
          const kind = (['aggregate', 'alarm', 'anomaly', 'twin'] as const)[i % 4] as EventKind;
          const eventTime = 1_700_000_000_000 + i * 997;
          const ingestTime = eventTime + 5;
          const seq = Number(insert.run(kind, key, eventTime, ingestTime, payload).lastInsertRowid);
          rows.push({ seq, kind, key, event_time: eventTime, ingest_time: ingestTime, payload });
          i++;
        }
      for (const headers of [true, false]) {
        const enc = new RecordEncoder({ gatewayId: 'gw-"1"', storeId: 'st', bootId: 'b', headers });
        const page = db.prepare(RecordEncoder.PAGE_SQL).raw(true).all(enc.valuePrefix, 0, 1000) as Array<
          [number, string, string, number, number, number, string]
        >;
        expect(page).toHaveLength(rows.length);
        for (const [j, r] of rows.entries()) {
          const [seq, kind, key, eventTime, ingestTime, payloadLength, value] = page[j] as (typeof page)[number];
          const rec = enc.record(r);
          expect({ seq, kind, key, eventTime, ingestTime, payloadLength }).toEqual({
            seq: r.seq,
            kind: r.kind,
            key: r.key,
            eventTime: r.event_time,
            ingestTime: r.ingest_time,
            payloadLength: [...r.payload].length,
          });
          expect(Buffer.from(value, 'utf8').equals(rec.value)).toBe(true);
          expect(Buffer.compare(Buffer.from(value, 'utf8'), rec.value)).toBe(0);
          expect(JSON.parse(value)).toMatchObject({ seq: r.seq, key: r.key, kind: r.kind });
          expect(enc.key(key)).toBe(rec.key);
          // The headers the native client gets: the contract's six, in order, seq per record.
          const h = enc.nativeHeadersFor(kind, seq);
          if (!headers) expect(h).toBeUndefined();
          else
            expect(h?.map((o) => Object.entries(o).map(([k, v]) => `${k}=${String(v)}`)[0])).toEqual([
              'gateway_id=gw-"1"',
              'store_id=st',
              'boot_id=b',
              'schema_version=2',
              `seq=${r.seq}`,
              `kind=${r.kind}`,
            ]);
          let headerBytes = 0;
          for (const o of h ?? []) for (const [k, v] of Object.entries(o)) headerBytes += k.length + Buffer.byteLength(v);
          expect(enc.size(rec, r)).toBe(Buffer.byteLength(rec.key) + rec.value.length + headerBytes);
        }
        // The part the syncer sends: packed by SQLite, each record built in C by the native producer.
        for (const from of [0, 3]) {
          const [n, payloadChars, firstSeq, firstIngest, packed] = db
            .prepare(RecordEncoder.PACKED_SQL)
            .raw(true)
            .get(from, 1000) as [number, number, number, number, Buffer];
          const want = rows.slice(from);
          expect({ n, payloadChars, firstSeq, firstIngest }).toEqual({
            n: want.length,
            payloadChars: want.reduce((s, r) => s + [...r.payload].length, 0),
            firstSeq: want[0]?.seq,
            firstIngest: want[0]?.ingest_time,
          });
          const decoded = kafkaTxn().decodePacked(enc.key(''), enc.valuePrefix, packed);
          expect(decoded).toHaveLength(want.length);
          for (const [j, r] of want.entries()) {
            const rec = enc.record(r);
            const [seq, key, value, timestamp] = decoded[j] as (typeof decoded)[number];
            expect({ seq, key, timestamp }).toEqual({ seq: r.seq, key: rec.key, timestamp: rec.timestamp });
            expect(Buffer.compare(value, rec.value)).toBe(0);
          }
        }
      }
      db.close();
    } finally {
      dir.remove();
    }
  });

  it("murmur2 partitioning is Kafka's (the Java client's, librdkafka's murmur2_random, kafkajs' default)", () => {
    for (let i = 0; i < 5000; i++) {
      const key = `gw-${i % 7}/asset-${i}${'é'.repeat(i % 5)}${'😀'.repeat(i % 3)}`.slice(0, i % 60);
      expect(murmur2(Buffer.from(key))).toBe(kafkajsMurmur2(Buffer.from(key)));
    }
    // Java's Utils.toPositive(murmur2(key)) % partitions.
    expect(partitionOf('gw-test/asset-0', 3)).toBe((kafkajsMurmur2(Buffer.from('gw-test/asset-0')) & 0x7fffffff) % 3);
  });
});
