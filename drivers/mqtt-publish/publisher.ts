/**
 * MQTT command actuator: publishes each command at QoS 1 on its own long-lived connection (the agent's
 * MQTT client: TLS, credentials, TCP_NODELAY, reconnect with jittered backoff), optionally mirrors it
 * to a retained state topic, and optionally listens on an ack topic.
 */
import type { Socket } from 'node:net';
import type { IClientOptions, MqttClient } from 'mqtt';
import type { ActuatorCommand, ActuatorContext, ActuatorDriver, ActuatorResult } from '../../agent/driver.js';
import { RateLimitedLog } from '../../agent/log.js';
import { connectMqtt, mqttClientOptions } from '../../agent/mqtt-client.js';
import { isLoopbackHost } from '../../agent/ops/api.js';
import type { MqttPublishConfig } from './schema.js';

const fill = (template: string, asset: string): string => template.split('{asset}').join(asset);

/** True when the broker URL names this machine: 127.0.0.0/8, ::1 or localhost. */
export function brokerIsLoopback(url: string): boolean {
  try {
    return isLoopbackHost(new URL(url).hostname);
  } catch {
    return false;
  }
}

const sleepCell = new Int32Array(new SharedArrayBuffer(4));
/** Blocks this thread for `us` microseconds without spinning: the kernel may run another process here. */
const sleepMicros = (us: number): void => void Atomics.wait(sleepCell, 0, 0, us / 1000);

export class MqttPublisher implements ActuatorDriver {
  private client: MqttClient | undefined;
  private readonly topics = new Map<string, { command: string; state: string | undefined }>();
  private readonly rateLog: RateLimitedLog;
  /** Malformed ack messages, counted not logged one by one. */
  malformedAcks = 0;
  /** How afterCommands() gives up the CPU (replaced in tests to observe it). */
  sleep: (us: number) => void = sleepMicros;
  private readonly yieldUs: number;
  /** A stop (a trip's or a re-assert's command) was handed to the socket since the last afterCommands(). */
  private wrote = false;
  /** afterCommands() already slept in this event-loop turn. */
  private sleptThisTurn = false;

  constructor(
    private readonly config: MqttPublishConfig & { id: string },
    private readonly ctx: ActuatorContext,
  ) {
    this.rateLog = new RateLimitedLog(60_000, ctx.now);
    this.yieldUs = brokerIsLoopback(config.url) ? config.yield_to_broker_us : 0;
  }

  /** Checks the ack wiring, the TLS files and the password variable. No I/O to the broker. */
  init(): void {
    if (this.config.ack_topic && !this.ctx.ack)
      throw new Error('ack_topic is set, but nothing in this agent accepts acknowledgements');
    this.clientOptions();
  }

  private clientOptions(): IClientOptions {
    return mqttClientOptions(this.config, {
      clientId: this.config.client_id ?? `edge-agent-${this.ctx.id}`,
      clean: false,
      connectTimeout: 5000,
    });
  }

  /**
   * Connects (persistent session, so an ack subscription survives broker restarts). A broker that is
   * down does not fail the start: mqtt.js keeps reconnecting, and QoS 1 commands published meanwhile
   * are sent once it is back.
   */
  async start(): Promise<void> {
    if (this.client) return;
    const c = this.config;
    const client = connectMqtt({
      options: this.clientOptions(),
      // Commands wait for the connection: retry soon, and never more than 5 s apart.
      reconnectMinMs: 500,
      reconnectMaxMs: 5000,
      broker: c.url,
      logger: this.ctx.logger,
      now: this.ctx.now,
      onConnect: () => {
        if (c.ack_topic) client.subscribe(c.ack_topic, { qos: 1 });
      },
    });
    this.client = client;
    client.on('message', (topic, payload, packet) => this.onAck(topic, payload, packet.properties?.responseTopic));
    await new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(t);
        client.off('connect', done);
        resolve();
      };
      const t = setTimeout(() => {
        this.ctx.logger.warn({ url: c.url }, 'MQTT broker not reachable yet; commands are queued until it is');
        done();
      }, 5000);
      client.on('connect', done);
    });
  }

  private topicsFor(asset: string): { command: string; state: string | undefined } {
    let t = this.topics.get(asset);
    if (!t) {
      t = {
        command: fill(this.config.command_topic, asset),
        state: this.config.state_topic ? fill(this.config.state_topic, asset) : undefined,
      };
      this.topics.set(asset, t);
    }
    return t;
  }

  /** Publishes the command; when connected its bytes are handed to the socket before this returns. */
  execute(cmd: ActuatorCommand): Promise<ActuatorResult> {
    const client = this.client;
    if (!client) return Promise.resolve({ ok: false, error: 'actuator not started' });
    const sentAt = this.ctx.now();
    const topics = this.topicsFor(cmd.asset);
    const payload =
      this.config.format === 'text'
        ? cmd.command
        : JSON.stringify({ asset: cmd.asset, command: cmd.command, reason: cmd.reason, sent_at: sentAt });
    const connected = client.connected;
    const result = new Promise<ActuatorResult>((resolve) => {
      const timer = setTimeout(
        () => resolve({ ok: false, error: `no PUBACK within ${this.config.ack_timeout} ms (still queued for delivery)` }),
        this.config.ack_timeout,
      );
      client.publish(topics.command, payload, { qos: 1 }, (err) => {
        clearTimeout(timer);
        if (err) resolve({ ok: false, error: err.message });
        else resolve({ ok: true, ack: { topic: topics.command, puback_at: this.ctx.now(), queued: !connected } });
      });
    });
    // mqtt-packet corks the socket and uncorks on the next tick; flush now so the stop leaves before
    // the rest of this tick's work (the remaining readings of the batch, audit events).
    const stream = client.stream as unknown as Partial<Socket> | undefined;
    if (stream?.writableCorked) stream.uncork?.();
    // Only a stop earns the sleep: a release restarts a machine, nothing waits for it to be fast, and a
    // sleep after it would only hold up the readings (and stops) behind it.
    if (connected && cmd.reason.phase !== 'release') this.wrote = true;
    if (topics.state)
      client.publish(
        topics.state,
        JSON.stringify({ asset: cmd.asset, command: cmd.command, phase: cmd.reason.phase, at: sentAt }),
        { qos: 1, retain: true },
      );
    return result;
  }

  /**
   * After the commands of one decision have been written, if they were stops (a trip, a re-assert; not
   * a release): with the broker on this machine, sleep
   * `yield_to_broker_us` so the kernel can run the broker here at once. On a two-core gateway the broker
   * otherwise waits, after the stop has woken it, for the CPU this thread keeps for the rest of its turn
   * (docs/plant-scale.md). At most once per event-loop turn, and never before a command: in a storm,
   * the first decision's commands are followed by the one sleep, and the others' by none.
   */
  afterCommands(): void {
    if (!this.wrote || this.yieldUs === 0) return;
    this.wrote = false;
    if (this.sleptThisTurn) return;
    this.sleptThisTurn = true;
    setImmediate(() => {
      this.sleptThisTurn = false;
    });
    this.sleep(this.yieldUs);
  }

  private onAck(topic: string, payload: Buffer, responseTopic: string | undefined): void {
    let msg: unknown;
    try {
      msg = JSON.parse(payload.toString('utf8'));
    } catch {
      msg = undefined;
    }
    const m = msg as { asset?: unknown; by?: unknown } | undefined;
    if (!m || typeof m.asset !== 'string' || typeof m.by !== 'string' || m.by.length === 0) {
      this.malformedAcks++;
      this.rateLog.log(
        this.ctx.logger,
        'warn',
        'malformed-ack',
        { topic, malformed: this.malformedAcks },
        'ignored an ack message; expected {"asset": "...", "by": "..."}',
      );
      return;
    }
    const res = this.ctx.ack?.(m.asset, m.by, 'mqtt');
    if (!res) return;
    if (!res.ok && res.reason === 'not_tripped')
      this.ctx.logger.info({ asset: m.asset, by: m.by }, 'ack for an asset that is not tripped');
    // Every ack is answered (contract C): released, deferred, or refused with the conditions still raised.
    const answer = res.ok
      ? {
          ok: true,
          asset: m.asset,
          by: m.by,
          state: res.state,
          ...('raised' in res ? { deferred: true, raised: res.raised } : {}),
        }
      : { ok: false, asset: m.asset, by: m.by, error: res.error, ...('raised' in res ? { raised: res.raised } : {}) };
    this.client?.publish(this.config.ack_reply_topic ?? responseTopic ?? `${topic}/reply`, JSON.stringify(answer), { qos: 1 });
  }

  /** Waits for in-flight publishes (up to 2 s), then disconnects. Idempotent. */
  async stop(): Promise<void> {
    const client = this.client;
    this.client = undefined;
    if (!client) return;
    await new Promise<void>((resolve) => {
      const t = setTimeout(() => client.end(true, {}, () => resolve()), 2000);
      client.end(false, {}, () => {
        clearTimeout(t);
        resolve();
      });
    });
  }
}
