import { z } from 'zod';
import { duration } from '../../agent/config/schema.js';

export const execCommandSchema = z.strictObject({
  file: z.string().min(1).meta({ description: 'Program to run: an absolute path, or a name looked up on PATH. No shell' }),
  args: z
    .array(z.string())
    .default([])
    .meta({ description: 'Arguments, passed as they are; {asset} and {command} are replaced' }),
  timeout: duration.optional().meta({ description: "Overrides the actuator's timeout for this command" }),
});

export const execSchema = z.strictObject({
  timeout: duration.prefault('5s').meta({ description: 'The program is killed (SIGKILL) and the command fails after this long' }),
  commands: z
    .record(z.string(), execCommandSchema)
    .refine((c) => Object.keys(c).length > 0, { message: 'define at least one command' })
    .meta({ description: 'Command name (as used by interlocks[].actions[].command) → program to run' }),
});

export type ExecConfig = z.output<typeof execSchema>;
