import type { ActuatorModule } from '../../agent/driver.js';
import { ExecRunner } from './runner.js';
import { execSchema } from './schema.js';

const exec: ActuatorModule<typeof execSchema> = {
  type: 'exec',
  role: 'actuator',
  description: 'Runs a local program (no shell) with arguments and a timeout, e.g. gpioset from libgpiod for a relay',
  schema: execSchema,
  async create(config, ctx) {
    return new ExecRunner(config, ctx);
  },
};

export default exec;
