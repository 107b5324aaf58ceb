import type { SourceModule } from '../../agent/driver.js';
import { simulatorAddressSchema, simulatorSchema } from './schema.js';

const simulator: SourceModule<typeof simulatorSchema> = {
  type: 'simulator',
  role: 'source',
  description: 'Realistic simulated sensors with scheduled faults; the embedded default source',
  schema: simulatorSchema,
  addressSchema: simulatorAddressSchema,
  async create(config, ctx) {
    const { SimulatorSource } = await import('./simulator.js');
    return new SimulatorSource(config, ctx);
  },
};

export default simulator;
