import { z } from 'zod';
import { duration, mqttPasswordEnv, mqttTlsSchema } from '../../agent/config/schema.js';

export const mqttPublishSchema = z.strictObject({
  url: z
    .string()
    .regex(/^mqtts?:\/\//, { message: 'expected mqtt://host:port or mqtts://host:port' })
    .meta({ description: 'Broker: mqtt://host:1883, or mqtts://host:8883 for TLS' }),
  client_id: z.string().optional().meta({ description: 'Default: edge-agent-<actuator id>. Must be unique on the broker' }),
  username: z.string().optional(),
  password: z.string().optional().meta({ description: 'Take it from the environment (see the config header); never commit it' }),
  password_env: mqttPasswordEnv.optional(),
  tls: mqttTlsSchema.optional(),
  command_topic: z
    .string()
    .min(1)
    .meta({ description: 'Where commands are published (QoS 1, not retained); {asset} is replaced by the asset id' }),
  state_topic: z
    .string()
    .optional()
    .meta({ description: 'Optional retained topic carrying the last command per asset, for HMIs; {asset} as above' }),
  format: z
    .enum(['json', 'text'])
    .default('json')
    .meta({ description: 'json: {"asset","command","reason","sent_at"}; text: the command name only' }),
  ack_topic: z.string().optional().meta({
    description:
      'Optional topic (filter) on which operators acknowledge trips with {"asset": "...", "by": "..."}; protect it with broker ACLs',
  }),
  ack_reply_topic: z.string().optional().meta({
    description:
      'Where each ack is answered with {"ok", "asset", "by", "state"?, "error"?, "raised"?} (QoS 1). Default: the ack message\'s MQTT 5 response topic, else the topic it arrived on plus "/reply"',
  }),
  yield_to_broker_us: z.number().int().min(0).max(1000).default(200).meta({
    description:
      'Broker on this machine (127.0.0.1, ::1, localhost) only: after the stop commands of one decision (a trip, a re-assert; not a release) are written, the agent sleeps this many microseconds, at most once per event-loop turn, so the broker gets a CPU to forward them at once. 0 turns it off',
  }),
  ack_timeout: duration.prefault('5s').meta({
    description: 'A command without PUBACK this long is reported as failed (mqtt.js still delivers it after a reconnect)',
  }),
});

export type MqttPublishConfig = z.output<typeof mqttPublishSchema>;
