/**
 * The Kafka control topic: the same signed control messages as the MQTT path (agent/control/mqtt.ts),
 * consumed from a topic with the sync's connection settings. Every message goes to the control
 * plane's `handle` (one code path: signature, expiry, replay, bounds; model swaps are the `model`
 * op), which persists, applies atomically and audits. Answers go to `reply_topic` when set. Offsets are
 * committed after the message was applied (at least once; a redelivered message is refused as already applied).
 * Never blocks the agent on the broker: kafkajs reconnects in the background.
 */
import { type Consumer, Kafka, logLevel, type Producer } from 'kafkajs';
import { Backoff } from '../backoff.js';
import type { AgentConfig } from '../config/schema.js';
import type { ControlPlane, ControlResult } from '../control/control.js';
import type { Logger } from '../log.js';
import { type KafkaSyncConfig, kafkaConfig } from './kafka.js';

type KafkaControlConfig = NonNullable<AgentConfig['control']['kafka']>;

export class KafkaControl {
  private consumer: Consumer | undefined;
  private producer: Producer | undefined;
  private starting: Promise<void> | undefined;
  private subscribed: Promise<void>;
  private markReady: () => void = () => {};
  private stopped = false;

  constructor(
    private readonly cfg: KafkaControlConfig,
    private readonly kafkaCfg: KafkaSyncConfig,
    private readonly control: ControlPlane,
    private readonly logger: Logger,
    private readonly gatewayId: string,
  ) {
    this.subscribed = new Promise((resolve) => {
      this.markReady = resolve;
    });
  }

  /** Connects in the background, retrying until stopped. */
  start(): void {
    this.starting ??= this.connectLoop();
  }

  /** Resolves once the consumer has joined its group and runs. */
  ready(): Promise<void> {
    return this.subscribed;
  }

  private async connectLoop(): Promise<void> {
    const retry = new Backoff({ baseMs: 1000, maxMs: 30_000, jitter: false });
    while (!this.stopped) {
      try {
        await this.connect();
        return;
      } catch (err) {
        const delay = retry.fail();
        if (retry.failures === 1) this.logger.warn({ err: (err as Error).message }, 'Kafka control topic unavailable; retrying');
        await this.close();
        await new Promise((r) => setTimeout(r, delay));
      }
    }
  }

  private async connect(): Promise<void> {
    const kafka = new Kafka({
      ...kafkaConfig(this.kafkaCfg, this.gatewayId, process.env, '-control'),
      logLevel: logLevel.NOTHING,
    });
    const groupId = this.cfg.group_id ?? `edge-agent-control.${this.gatewayId}`;
    await this.pinStart(kafka, groupId);
    const consumer = kafka.consumer({
      groupId,
      maxWaitTimeInMs: 500,
      retry: { retries: Number.MAX_SAFE_INTEGER, maxRetryTime: 30_000 },
    });
    this.consumer = consumer;
    if (this.cfg.reply_topic) {
      this.producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
      await this.producer.connect();
    }
    consumer.on(consumer.events.GROUP_JOIN, () => this.markReady());
    await consumer.connect();
    await consumer.subscribe({ topic: this.cfg.topic, fromBeginning: false });
    await consumer.run({
      autoCommit: true,
      eachMessage: async ({ topic, message }) => {
        const res = await this.apply(message.value ?? Buffer.alloc(0), `kafka:${topic}`);
        if (this.cfg.reply_topic && this.producer)
          await this.producer.send({
            topic: this.cfg.reply_topic,
            acks: -1,
            messages: [{ key: this.gatewayId, value: JSON.stringify(res) }],
          });
      },
    });
    this.logger.info({ topic: this.cfg.topic }, 'Kafka control topic subscribed');
  }

  /**
   * A new group starts at the topic's end as of now: committing those offsets before joining makes
   * that exact. Left to `fromBeginning: false`, each partition's start is resolved at its first fetch,
   * after the group reported ready, and a message sent in between would be skipped. A group with
   * committed offsets resumes from them (messages sent while the agent was down are applied).
   */
  private async pinStart(kafka: Kafka, groupId: string): Promise<void> {
    const admin = kafka.admin();
    await admin.connect();
    try {
      const [committed] = await admin.fetchOffsets({ groupId, topics: [this.cfg.topic] });
      if (committed?.partitions.some((p) => p.offset !== '-1')) return;
      const ends = await admin.fetchTopicOffsets(this.cfg.topic);
      await admin.setOffsets({
        groupId,
        topic: this.cfg.topic,
        partitions: ends.map((e) => ({ partition: e.partition, offset: e.offset })),
      });
    } finally {
      await admin.disconnect();
    }
  }

  /** One message, through the same verification and checks as the MQTT control topic. */
  apply(raw: Uint8Array, origin: string): Promise<ControlResult> {
    return this.control.handle(raw, origin);
  }

  private async close(): Promise<void> {
    const c = this.consumer;
    const p = this.producer;
    this.consumer = undefined;
    this.producer = undefined;
    await Promise.allSettled([c?.disconnect(), p?.disconnect()]);
  }

  /** Idempotent. */
  async stop(): Promise<void> {
    this.stopped = true;
    await this.starting;
    await this.close();
  }
}
