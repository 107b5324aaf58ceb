import type { SourceModule } from '../../agent/driver.js';
import { mqttAddressSchema, mqttSchema } from './schema.js';

const mqtt: SourceModule<typeof mqttSchema> = {
  type: 'mqtt',
  role: 'source',
  description: 'Subscribes to an MQTT broker (QoS 1, persistent session, TLS) and maps topics and payloads to readings',
  schema: mqttSchema,
  addressSchema: mqttAddressSchema,
  async create(config, ctx) {
    const { MqttSource } = await import('./source.js');
    return new MqttSource(config, ctx);
  },
};

export default mqtt;
