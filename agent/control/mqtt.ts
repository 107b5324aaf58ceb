/**
 * The MQTT control topic: subscribes with QoS 1 on a persistent session, hands each message to the
 * control plane (`handle`: the same verification as the Kafka control topic) and, when configured,
 * answers on `reply_topic` with {ok, id, error?}. An unsigned, forged or malformed message is refused
 * (counted, rate-limited in the log) by the control plane; it never breaks the connection.
 */
import type { MqttClient } from 'mqtt';
import type { AgentConfig } from '../config/schema.js';
import type { Logger } from '../log.js';
import { connectMqtt, mqttClientOptions } from '../mqtt-client.js';
import type { ControlPlane } from './control.js';

type MqttControlConfig = NonNullable<AgentConfig['control']['mqtt']>;

export class MqttControl {
  private client: MqttClient | undefined;

  constructor(
    private readonly cfg: MqttControlConfig,
    private readonly control: ControlPlane,
    private readonly logger: Logger,
    private readonly gatewayId: string,
  ) {}

  private subscribed: Promise<void> | undefined;

  /**
   * Connects in the background (the agent's MQTT client: TLS, credentials, TCP_NODELAY, reconnect with
   * jittered backoff) and subscribes on every connection without a stored session. Never blocks the agent's start on the broker; `ready()` resolves
   * once the topic is subscribed.
   */
  async start(): Promise<void> {
    if (this.client) return;
    const c = this.cfg;
    let markReady: () => void = () => {};
    this.subscribed = new Promise((resolve) => {
      markReady = resolve;
    });
    const client = connectMqtt({
      options: mqttClientOptions(c, {
        clientId: c.client_id ?? `edge-agent-control-${this.gatewayId}`,
        clean: false,
        connectTimeout: 10_000,
      }),
      reconnectMinMs: 500,
      reconnectMaxMs: 30_000,
      broker: c.url,
      logger: this.logger,
      onConnect: (connack) => {
        if (connack.sessionPresent) {
          markReady();
          return;
        }
        client.subscribe(c.topic, { qos: 1 }, (err) => {
          if (err) this.logger.warn({ topic: c.topic, err: err.message }, 'control topic subscribe failed');
          else {
            this.logger.info({ topic: c.topic }, 'control topic subscribed');
            markReady();
          }
        });
      },
    });
    client.on('message', (topic, payload) => {
      if (topic !== c.topic) return;
      void this.control.handle(payload, `mqtt:${topic}`).then((res) => {
        if (c.reply_topic) client.publish(c.reply_topic, JSON.stringify(res), { qos: 1 });
      });
    });
    this.client = client;
  }

  /** Resolves once the control topic is subscribed. */
  ready(): Promise<void> {
    return this.subscribed ?? Promise.reject(new Error('control topic not started'));
  }

  /** Idempotent. */
  async stop(): Promise<void> {
    const client = this.client;
    this.client = undefined;
    if (client) await client.endAsync();
  }
}
