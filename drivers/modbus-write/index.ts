import type { ActuatorModule } from '../../agent/driver.js';
import { ModbusBusWriter } from './bus-writer.js';
import { modbusWriteSchema } from './schema.js';
import { ModbusWriter } from './writer.js';

const modbusWrite: ActuatorModule<typeof modbusWriteSchema> = {
  type: 'modbus-write',
  role: 'actuator',
  description:
    'Writes a coil (FC5/FC15) or holding registers (FC6/FC16) on a PLC over Modbus TCP, RTU or RTU over TCP, and reads them back',
  schema: modbusWriteSchema,
  async create(config, ctx) {
    return config.transport === 'tcp' ? new ModbusWriter(config, ctx) : new ModbusBusWriter(config, ctx);
  },
};

export default modbusWrite;
