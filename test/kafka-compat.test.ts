/**
 * kafkajs feature check against other broker versions (see docs/kafka-compat.md). The suite checks
 * Kafka 4.1.2 (the sync tests use 3.9); the full matrix starts one broker per version:
 *   KAFKA_COMPAT_VERSIONS=3.9.2,4.0.2,4.1.2,4.3.1 npx vitest run test/kafka-compat.test.ts
 */
import { CompressionTypes, Partitioners } from 'kafkajs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  consumeAll,
  createTopic,
  type KafkaBroker,
  kafkaAvailable,
  kafkaClient,
  requireOrSkip,
  startKafka,
} from './helpers/kafka.js';

const versions = (process.env.KAFKA_COMPAT_VERSIONS ?? '4.1.2')
  .split(',')
  .map((v) => v.trim())
  .filter(Boolean);

function ready<T>(value: T | undefined): T {
  if (value === undefined) throw new Error('beforeAll did not finish');
  return value;
}

describe('kafkajs against other Kafka versions', () => {
  for (const version of versions) {
    const ok = requireOrSkip(kafkaAvailable(version), `Kafka ${version}`);

    describe.skipIf(!ok)(`Kafka ${version}`, () => {
      let broker: KafkaBroker | undefined;
      const brokers = () => ready(broker).brokers;

      beforeAll(async () => {
        broker = await startKafka({ version });
      }, 600_000);

      afterAll(async () => {
        await broker?.destroy();
      });

      it('admin: create/list/describe/metadata/offsets/partitions/configs/delete', async () => {
        const admin = kafkaClient(brokers()).admin();
        await admin.connect();
        try {
          await createTopic(brokers(), 'compat-admin', 2);
          expect(await admin.listTopics()).toContain('compat-admin');
          expect((await admin.describeCluster()).brokers).toHaveLength(1);
          const meta = await admin.fetchTopicMetadata({ topics: ['compat-admin'] });
          expect(meta.topics[0]?.partitions).toHaveLength(2);
          expect(await admin.fetchTopicOffsets('compat-admin')).toHaveLength(2);
          await admin.createPartitions({ topicPartitions: [{ topic: 'compat-admin', count: 3 }] });
          const configs = await admin.describeConfigs({
            includeSynonyms: false,
            resources: [{ type: 2 /* TOPIC */, name: 'compat-admin' }],
          });
          expect(configs.resources[0]?.configEntries.length).toBeGreaterThan(0);
          await admin.alterConfigs({
            validateOnly: false,
            resources: [{ type: 2, name: 'compat-admin', configEntries: [{ name: 'retention.ms', value: '3600000' }] }],
          });
          expect(await admin.fetchTopicOffsetsByTimestamp('compat-admin', Date.now())).toHaveLength(3);
          await admin.deleteTopics({ topics: ['compat-admin'] });
        } finally {
          await admin.disconnect();
        }
      });

      it('idempotent producer (acks=-1, gzip) and group consumer', async () => {
        await createTopic(brokers(), 'compat-idem', 1);
        const producer = kafkaClient(brokers()).producer({
          idempotent: true,
          maxInFlightRequests: 1,
          createPartitioner: Partitioners.DefaultPartitioner,
        });
        await producer.connect();
        await producer.send({
          topic: 'compat-idem',
          acks: -1,
          compression: CompressionTypes.GZIP,
          messages: Array.from({ length: 50 }, (_, i) => ({ key: 'k', value: String(i) })),
        });
        await producer.disconnect();
        const records = await consumeAll(brokers(), 'compat-idem', { expected: 50 });
        expect(records.map((r) => r.value)).toEqual(Array.from({ length: 50 }, (_, i) => String(i)));

        const admin = kafkaClient(brokers()).admin();
        await admin.connect();
        try {
          const { groups } = await admin.listGroups();
          expect(groups.length).toBeGreaterThan(0);
          const groupIds = groups.map((g) => g.groupId);
          const described = await admin.describeGroups(groupIds);
          expect(described.groups.map((g) => g.groupId).sort()).toEqual([...groupIds].sort());
          await admin.deleteGroups(groupIds);
        } finally {
          await admin.disconnect();
        }
      });

      it('transactions: commit is visible, abort is hidden (read_committed)', async () => {
        await createTopic(brokers(), 'compat-txn', 1);
        const producer = kafkaClient(brokers()).producer({
          transactionalId: `compat-${version}`,
          idempotent: true,
          maxInFlightRequests: 1,
          createPartitioner: Partitioners.DefaultPartitioner,
        });
        await producer.connect();
        try {
          const committed = await producer.transaction();
          await committed.send({ topic: 'compat-txn', messages: [{ value: 'committed-1' }, { value: 'committed-2' }] });
          await committed.commit();

          const aborted = await producer.transaction();
          await aborted.send({ topic: 'compat-txn', messages: [{ value: 'aborted' }] });
          await aborted.abort();

          const last = await producer.transaction();
          await last.send({ topic: 'compat-txn', messages: [{ value: 'committed-3' }] });
          await last.commit();
        } finally {
          await producer.disconnect();
        }
        const records = await consumeAll(brokers(), 'compat-txn', { expected: 3, settleMs: 500 });
        expect(records.map((r) => r.value)).toEqual(['committed-1', 'committed-2', 'committed-3']);
      });

      it('transactions: sendOffsets (consume-transform-produce)', async () => {
        await createTopic(brokers(), 'compat-txn-offsets', 1);
        const producer = kafkaClient(brokers()).producer({
          transactionalId: `compat-offsets-${version}`,
          idempotent: true,
          maxInFlightRequests: 1,
          createPartitioner: Partitioners.DefaultPartitioner,
        });
        await producer.connect();
        try {
          const txn = await producer.transaction();
          await txn.send({ topic: 'compat-txn-offsets', messages: [{ value: 'x' }] });
          await txn.sendOffsets({
            consumerGroupId: `compat-group-${version}`,
            topics: [{ topic: 'compat-txn-offsets', partitions: [{ partition: 0, offset: '1' }] }],
          });
          await txn.commit();
        } finally {
          await producer.disconnect();
        }
        const admin = kafkaClient(brokers()).admin();
        await admin.connect();
        try {
          const offsets = await admin.fetchOffsets({ groupId: `compat-group-${version}`, topics: ['compat-txn-offsets'] });
          expect(offsets[0]?.partitions[0]?.offset).toBe('1');
        } finally {
          await admin.disconnect();
        }
      });
    });
  }
});
