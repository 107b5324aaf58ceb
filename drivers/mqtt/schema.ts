import { z } from 'zod';
import { duration, id, mqttPasswordEnv, mqttTlsSchema } from '../../agent/config/schema.js';

export const TIME_FORMATS = ['epoch_ms', 'epoch_s', 'iso'] as const;
export type TimeFormat = (typeof TIME_FORMATS)[number];

const path = z
  .string()
  .regex(/^[^.[\]]+(?:\.[^.[\]]+|\[\d+\])*$/, { message: 'a field path such as data.temp, readings[0].value or values.0' });

export const subscriptionSchema = z
  .strictObject({
    topic: z.string().min(1).meta({ description: 'Topic filter; + matches one level, # the rest (e.g. plant/+/+/telemetry)' }),
    qos: z.union([z.literal(0), z.literal(1), z.literal(2)]).default(1),
    format: z.enum(['json', 'number']).default('json').meta({
      description: 'json: a JSON document mapped by the paths below; number: the payload is one number as text',
    }),
    asset: id.optional().meta({ description: 'Fixed asset id of every reading' }),
    asset_segment: z.int().min(0).optional().meta({ description: 'Asset id from this topic level (0 = first)' }),
    asset_path: path.optional().meta({ description: 'json: asset id from this field of each item' }),
    sensor: id.optional().meta({ description: 'Fixed sensor id' }),
    sensor_segment: z.int().min(0).optional().meta({ description: 'Sensor id from this topic level (0 = first)' }),
    sensor_path: path.optional().meta({ description: 'json: sensor id from this field of each item' }),
    fields: z
      .record(id, path)
      .optional()
      .meta({ description: 'json: several sensors in one object, sensor id → field path (instead of a sensor and value_path)' }),
    items_path: path.optional().meta({
      description:
        'json: the field holding an array of readings; each element is mapped by the paths below. A payload that is itself an array is always read as items',
    }),
    value_path: path.default('value').meta({ description: 'json: the field holding the value (a number or a boolean)' }),
    time_path: path.optional().meta({ description: 'json: the field holding the event time; without it, the arrival time' }),
    time_format: z.enum(TIME_FORMATS).default('epoch_ms'),
  })
  .superRefine((s, ctx) => {
    const assetWays = [s.asset, s.asset_segment, s.asset_path].filter((v) => v !== undefined).length;
    if (assetWays !== 1) {
      ctx.addIssue({ code: 'custom', path: ['asset'], message: 'give exactly one of asset, asset_segment, asset_path' });
    }
    const sensorWays = [s.sensor, s.sensor_segment, s.sensor_path, s.fields].filter((v) => v !== undefined).length;
    if (sensorWays !== 1) {
      ctx.addIssue({
        code: 'custom',
        path: ['sensor'],
        message: 'give exactly one of sensor, sensor_segment, sensor_path, fields',
      });
    }
    if (s.format === 'number' && (s.asset_path || s.sensor_path || s.fields || s.items_path || s.time_path)) {
      ctx.addIssue({
        code: 'custom',
        path: ['format'],
        message: 'format number takes ids from asset/sensor or topic segments only',
      });
    }
  });

export const tlsSchema = mqttTlsSchema;

export const mqttSchema = z.strictObject({
  url: z
    .string()
    .regex(/^mqtts?:\/\/[^/\s]+$/, { message: 'expected mqtt://host:port or mqtts://host:port' })
    .meta({ description: 'Broker: mqtt://host:1883, or mqtts://host:8883 for TLS' }),
  client_id: z.string().min(1).max(128).optional().meta({
    description:
      'Fixed client id: the broker keeps this session (and queues QoS 1 messages) while the agent is away. Default: edge-agent-<gateway>-<source id>',
  }),
  clean_session: z
    .boolean()
    .default(false)
    .meta({ description: 'false keeps a persistent session; true loses messages sent while away' }),
  protocol_version: z
    .union([z.literal(4), z.literal(5)])
    .default(4)
    .meta({ description: '4: MQTT 3.1.1, 5: MQTT 5' }),
  session_expiry: duration
    .prefault('168h')
    .meta({ description: 'MQTT 5: how long the broker keeps the session while the agent is away' }),
  username: z.string().optional(),
  password_env: mqttPasswordEnv.optional(),
  tls: tlsSchema.optional(),
  keepalive: duration.prefault('30s'),
  connect_timeout: duration.prefault('10s'),
  reconnect_min: duration.prefault('500ms').meta({ description: 'First reconnect delay; doubles per failure, with jitter' }),
  reconnect_max: duration.prefault('30s'),
  max_payload_bytes: z.int().min(16).max(268_435_455).default(65_536).meta({
    description: 'Larger payloads are counted as malformed and skipped',
  }),
  subscriptions: z.array(subscriptionSchema).min(1),
});

/** MQTT sensors are found by (asset, sensor id) from the subscriptions: they take no address keys. */
export const mqttAddressSchema = z.strictObject({});

export type MqttConfig = z.output<typeof mqttSchema>;
export type SubscriptionConfig = z.output<typeof subscriptionSchema>;
