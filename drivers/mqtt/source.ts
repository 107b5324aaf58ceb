/**
 * The MQTT source on MQTT.js: QoS 1 on a persistent session (fixed client id, clean=false), so what
 * the broker accepted while the agent was away arrives when it is back. TLS, credentials, reconnect
 * backoff with jitter and TCP_NODELAY come from the agent's MQTT client (agent/mqtt-client.ts).
 *
 * A message is acknowledged (PUBACK) only after its readings went through the pipeline: with MQTT 3.1.1
 * the source frames PUBLISH packets at QoS 0 and 1 itself and acknowledges a socket read's messages
 * after judging them (`frameReads`); otherwise MQTT.js emits 'message' synchronously before it acks.
 * `ctx.emit` is synchronous either way.
 *
 * Malformed input is counted per reason and logged at most once a minute per reason. Nothing a
 * publisher sends can throw out of the message handler, so no payload can cause a reconnect loop.
 */
import type { Socket } from 'node:net';
import type { IClientOptions, MqttClient } from 'mqtt';
import type { BoundSensor, SourceContext, SourceDriver } from '../../agent/driver.js';
import { DeviceHealth } from '../../agent/health.js';
import { RateLimitedLog } from '../../agent/log.js';
import { connectMqtt, mqttClientOptions } from '../../agent/mqtt-client.js';
import { makeReading } from '../../agent/reading.js';
import type { Reading } from '../../agent/types.js';
import { type FramingSink, PublishFraming, pubacks } from './framing.js';
import {
  type CompiledSubscription,
  compileSubscription,
  MALFORMED_REASONS,
  type MalformedReason,
  type MapResult,
  type SingleValue,
} from './mapping.js';
import type { MqttConfig } from './schema.js';

/** Counters besides the broker link's `DeviceHealth` (published per source by the agent). */
export interface MqttStats {
  /** Messages on a topic no subscription maps (a broad filter, a stale session subscription). */
  unmatched: number;
  malformed: Record<MalformedReason, number>;
}

export interface MqttSourceOptions {
  /** Environment for `password_env`; injected so tests need not touch process.env. */
  readonly env?: NodeJS.ProcessEnv;
}

/** MQTT.js options from the config: session, credentials, TLS material read from files. */
export function clientOptions(config: MqttConfig & { id: string }, env: NodeJS.ProcessEnv): IClientOptions {
  const opts = mqttClientOptions(
    config,
    {
      clientId: config.client_id ?? `edge-agent-${config.id}`,
      clean: config.clean_session,
      protocolVersion: config.protocol_version,
      keepalive: Math.max(1, Math.round(config.keepalive / 1000)),
      connectTimeout: config.connect_timeout,
      // Subscriptions are made on every CONNACK without a session (see start()).
      resubscribe: false,
      queueQoSZero: false,
    },
    env,
  );
  if (config.protocol_version === 5) opts.properties = { sessionExpiryInterval: Math.round(config.session_expiry / 1000) };
  return opts;
}

/** What a PUBLISH carries besides its payload, at most: topic length, topic, packet id (bytes). */
const PUBLISH_OVERHEAD = 2 + 65_535 + 2;

/** A topic's mapping: its subscription (none: unmatched) and, when the topic alone names a known sensor, that sensor. */
interface Route {
  readonly levels: readonly string[];
  readonly sub: CompiledSubscription | undefined;
  readonly sensor: BoundSensor | undefined;
}

export class MqttSource implements SourceDriver {
  /**
   * The broker link: messages received (`requests`), PINGREQ → PINGRESP round trips (latency),
   * connects, disconnects, keepalive timeouts (dead links: a broker that stops answering without
   * closing the socket), malformed messages, last message mapped to a reading (`last_good`).
   */
  readonly broker: DeviceHealth;
  readonly stats: MqttStats = {
    unmatched: 0,
    malformed: Object.fromEntries(MALFORMED_REASONS.map((r) => [r, 0])) as Record<MalformedReason, number>,
  };
  private subs: CompiledSubscription[] = [];
  /** asset → sensor id → sensor: two lookups per value, no key string built. */
  private sensors = new Map<string, Map<string, BoundSensor>>();
  private client: MqttClient | undefined;
  private readonly warnings = new RateLimitedLog(60_000);
  private readonly batch: Reading[] = [];
  private readonly result: MapResult = { values: [], errors: [] };
  private readonly one: SingleValue = { value: 0, eventTime: 0 };
  /** topic → how its messages are mapped, so the topic is split, matched and its ids checked once. */
  private readonly routes = new Map<string, Route>();
  private maxRoutes = 1024;
  /** `max_payload_bytes`, read per message: a number field here rather than a load from the parsed config. */
  private maxPayload = 0;
  private keepaliveTimedOut = false;
  private pingSentAt: number | undefined;

  constructor(
    private readonly config: MqttConfig & { id: string },
    private readonly ctx: SourceContext,
    private readonly options: MqttSourceOptions = {},
  ) {
    this.broker = new DeviceHealth(config.id, 'broker', 'mqtt_broker', config.url);
  }

  /** The broker link's health (published by the agent: /metrics, twin, dashboard). */
  health(): DeviceHealth[] {
    this.broker.dropped = { ...this.stats.malformed, unmatched: this.stats.unmatched };
    return [this.broker];
  }

  /** Compiles the subscriptions and the sensor lookup; checks TLS files and the password variable. No I/O to the broker. */
  init(): void {
    this.subs = this.config.subscriptions.map(compileSubscription);
    this.routes.clear();
    this.maxPayload = this.config.max_payload_bytes;
    // Bounded: a publisher cycling through topics no sensor has must not grow it without end.
    this.maxRoutes = Math.max(1024, 2 * this.ctx.sensors.length);
    this.sensors = new Map();
    for (const s of this.ctx.sensors) {
      let byId = this.sensors.get(s.asset);
      if (!byId) this.sensors.set(s.asset, (byId = new Map()));
      byId.set(s.id, s);
    }
    // Fails here, as a config error, when a file or the password variable is missing.
    clientOptions(this.config, this.options.env ?? process.env);
  }

  get connected(): boolean {
    return this.client?.connected === true;
  }

  /**
   * Connects and subscribes. Resolves on the first CONNACK, or after `connect_timeout` with the client
   * still retrying in the background (a broker that is down at boot is not a reason to stop the agent).
   */
  async start(): Promise<void> {
    if (this.client) return;
    const logger = this.ctx.logger;
    const client = connectMqtt({
      options: clientOptions(this.config, this.options.env ?? process.env),
      reconnectMinMs: this.config.reconnect_min,
      reconnectMaxMs: this.config.reconnect_max,
      broker: this.config.url,
      logger,
      onConnect: (connack) => {
        this.broker.up();
        if (!connack.sessionPresent || this.config.clean_session) {
          const filters = Object.fromEntries(this.config.subscriptions.map((s) => [s.topic, { qos: s.qos }]));
          client.subscribe(filters, (err, granted) => {
            if (err) logger.error({ err: err.message }, 'mqtt subscribe failed; no readings until reconnect');
            const refused = (granted ?? []).filter((g) => g.qos === 128);
            if (refused.length) logger.error({ topics: refused.map((g) => g.topic) }, 'mqtt broker refused subscriptions');
          });
        }
      },
      onReconnect: () => {
        this.broker.down(this.ctx.now(), this.keepaliveTimedOut ? 'timeout' : 'disconnected', this.keepaliveTimedOut);
        this.keepaliveTimedOut = false;
        this.ctx.count('reconnects');
      },
      // MQTT 5 PUBLISHes carry properties (topic aliases among them): MQTT.js reads those.
      ...(this.config.protocol_version === 4 ? { onSocket: (socket: Socket) => this.frameReads(socket) } : {}),
    });
    this.client = client;
    // MQTT.js closes the connection when no packet arrived within 1.5 × keepalive: a silent broker.
    client.on('error', (err) => {
      if (/keepalive timeout/i.test(err.message)) this.keepaliveTimedOut = true;
    });
    // The PINGRESP is looked for only while a PINGREQ is out: a 'packetreceive' listener would run for
    // every message (an EventEmitter call per reading at thousands of readings a second).
    const onPacket = (p: { cmd: string }) => {
      if (p.cmd !== 'pingresp') return;
      client.removeListener('packetreceive', onPacket);
      if (this.pingSentAt !== undefined) this.broker.observe(performance.now() - this.pingSentAt);
      this.pingSentAt = undefined;
    };
    client.on('packetsend', (p) => {
      if (p.cmd !== 'pingreq') return;
      this.pingSentAt = performance.now();
      client.removeListener('packetreceive', onPacket);
      client.on('packetreceive', onPacket);
    });
    // Attached in the tick the client is made, before any CONNACK: a persistent session's queued messages follow it at once.
    client.on('message', (topic, payload) => this.onMessage(topic, payload));
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        logger.warn({ broker: this.config.url }, 'mqtt broker not reachable yet; retrying in the background');
        resolve();
      }, this.config.connect_timeout);
      client.once('connect', () => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  /**
   * MQTT 3.1.1: the connection's PUBLISH packets at QoS 0 and 1 are read here (drivers/mqtt/framing.ts)
   * before MQTT.js sees the bytes. A socket read is framed where it arrives, its readings go through
   * the pipeline in this tick, and then its QoS 1 messages are acknowledged in one write (a PUBACK
   * still follows its reading's judgement). Every other packet goes on to MQTT.js as it came.
   */
  private frameReads(socket: Socket): void {
    const framing = new PublishFraming(this.maxPayload + PUBLISH_OVERHEAD);
    const push = socket.push;
    const acks: number[] = [];
    let more = true;
    const sink: FramingSink = {
      publish: (topic, payload, id) => {
        this.onMessage(topic, payload);
        if (id >= 0) acks.push(id);
      },
      forward: (bytes) => {
        more = push.call(socket, bytes);
      },
    };
    // Node hands each read of a TCP or TLS socket to its `push` (the Readable implementer's call).
    socket.push = (chunk: unknown, encoding?: BufferEncoding): boolean => {
      if (!Buffer.isBuffer(chunk)) {
        framing.reset();
        return push.call(socket, chunk, encoding);
      }
      more = true;
      try {
        framing.feed(chunk, sink);
      } catch (err) {
        // A bug in the framing (each message's own errors are caught in onMessage): the stream's place is
        // lost, so the connection is dropped and MQTT.js reconnects with a new framing; unacknowledged
        // QoS 1 messages come again.
        this.ctx.logger.error({ err: (err as Error).message }, 'mqtt stream could not be read; reconnecting');
        acks.length = 0;
        socket.destroy(err as Error);
        return false;
      }
      if (acks.length > 0) {
        socket.write(pubacks(acks));
        acks.length = 0;
      }
      return more;
    };
  }

  private onMessage(topic: string, payload: Buffer): void {
    try {
      this.handle(topic, payload);
    } catch (err) {
      // A bug here must not take the session down; count it like a bad message.
      this.malformed('bad_value', topic, (err as Error).message);
    }
  }

  private handle(topic: string, payload: Buffer): void {
    this.broker.requests++;
    const now = this.ctx.now();
    if (payload.length > this.maxPayload) {
      this.malformed('oversize', topic, `${payload.length} bytes`);
      return;
    }
    const route = this.routes.get(topic) ?? this.route(topic);
    const sub = route.sub;
    if (!sub) {
      this.stats.unmatched++;
      return;
    }
    const batch = this.batch;
    if (route.sensor) {
      // One value per message, ids from the topic: no split, no match, no id checks, no intermediate objects.
      const one = this.one;
      const res = sub.single(payload, now, one);
      if (res === undefined) {
        const r = makeReading(route.sensor, one.value, one.eventTime, now);
        this.broker.ok(now);
        if (this.ctx.emitOne) this.ctx.emitOne(route.sensor, r);
        else this.ctx.emit([r]);
        return;
      }
      if (res !== null) {
        this.malformed(res, topic);
        return;
      }
    }
    const res = this.result;
    res.values.length = 0;
    res.errors.length = 0;
    sub.map(route.levels, payload, now, res);
    for (const reason of res.errors) this.malformed(reason, topic);
    batch.length = 0;
    for (const v of res.values) {
      const sensor = this.sensors.get(v.asset)?.get(v.sensor);
      if (!sensor) {
        this.malformed('unknown_sensor', topic, `${v.asset}/${v.sensor}`);
        continue;
      }
      batch.push(makeReading(sensor, v.value, v.eventTime, now));
    }
    if (batch.length > 0) {
      this.broker.ok(now);
      this.ctx.emit(batch);
      batch.length = 0;
    }
  }

  /** Splits and matches a topic seen for the first time, and resolves its sensor when the topic names it. */
  private route(topic: string): Route {
    const levels = topic.split('/');
    const sub = this.subs.find((s) => s.matches(levels));
    const ids = sub?.topicIds(levels);
    const sensor = typeof ids === 'object' ? this.sensors.get(ids.asset)?.get(ids.sensor) : undefined;
    const route: Route = { levels, sub, sensor };
    if (this.routes.size >= this.maxRoutes) this.routes.clear();
    this.routes.set(topic, route);
    return route;
  }

  private malformed(reason: MalformedReason, topic: string, detail?: string): void {
    this.stats.malformed[reason]++;
    this.broker.fail('malformed', this.ctx.now());
    this.ctx.count('malformed');
    // The key is the bounded reason; the topic and detail of the first one show what to look at.
    this.warnings.log(
      this.ctx.logger,
      'warn',
      `malformed/${reason}`,
      { reason, topic: topic.slice(0, 200), detail: detail?.slice(0, 200) },
      'mqtt payload skipped',
    );
  }

  /** Disconnects cleanly (in-flight acks are sent first); the broker keeps the session. Idempotent. */
  async stop(): Promise<void> {
    const client = this.client;
    this.client = undefined;
    if (!client) return;
    await client.endAsync(false).catch(() => client.endAsync(true));
  }
}
