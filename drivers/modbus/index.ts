import type { SourceModule } from '../../agent/driver.js';
import { modbusAddressSchema, modbusSchema } from './schema.js';

const modbus: SourceModule<typeof modbusSchema> = {
  type: 'modbus',
  role: 'source',
  description: 'Modbus TCP, RTU on a serial port, or RTU over TCP: polls coils, discrete inputs, input and holding registers',
  schema: modbusSchema,
  addressSchema: modbusAddressSchema,
  async create(config, ctx) {
    const { ModbusSource } = await import('./source.js');
    return new ModbusSource(config, ctx);
  },
};

export default modbus;
