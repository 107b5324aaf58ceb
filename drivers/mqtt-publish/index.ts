import type { ActuatorModule } from '../../agent/driver.js';
import { MqttPublisher } from './publisher.js';
import { mqttPublishSchema } from './schema.js';

const mqttPublish: ActuatorModule<typeof mqttPublishSchema> = {
  type: 'mqtt-publish',
  role: 'actuator',
  description: 'Publishes commands at QoS 1 to an MQTT broker, with an optional retained state topic and ack topic',
  schema: mqttPublishSchema,
  async create(config, ctx) {
    return new MqttPublisher(config, ctx);
  },
};

export default mqttPublish;
