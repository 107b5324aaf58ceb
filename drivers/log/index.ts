import { z } from 'zod';
import type { ActuatorModule } from '../../agent/driver.js';

export const logActuatorSchema = z.strictObject({
  level: z.enum(['info', 'warn', 'error']).default('warn').meta({ description: 'Log level of the command line' }),
});

const log: ActuatorModule<typeof logActuatorSchema> = {
  type: 'log',
  role: 'actuator',
  description: 'Writes the stop command to the log; for commissioning and for the embedded default',
  schema: logActuatorSchema,
  async create(config, ctx) {
    return {
      init() {},
      async start() {},
      async stop() {},
      execute(cmd) {
        ctx.logger[config.level]({ asset: cmd.asset, command: cmd.command, reason: cmd.reason }, 'actuator command');
        return Promise.resolve({ ok: true, ack: { logged_at: ctx.now() } });
      },
    };
  },
};

export default log;
