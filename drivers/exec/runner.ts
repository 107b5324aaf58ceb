/**
 * Local command actuator: runs a program with `execFile` (no shell, so no quoting or injection
 * surprises), with a timeout. Exit code 0 is the acknowledgement.
 */
import { execFile } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { delimiter, isAbsolute, join } from 'node:path';
import type { ActuatorCommand, ActuatorContext, ActuatorDriver, ActuatorResult } from '../../agent/driver.js';
import type { ExecConfig } from './schema.js';

const fill = (arg: string, cmd: ActuatorCommand): string =>
  arg.includes('{') ? arg.split('{asset}').join(cmd.asset).split('{command}').join(cmd.command) : arg;

function executable(file: string): boolean {
  const candidates = isAbsolute(file) ? [file] : (process.env.PATH ?? '').split(delimiter).map((d) => join(d, file));
  return candidates.some((c) => {
    try {
      accessSync(c, constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
}

export class ExecRunner implements ActuatorDriver {
  constructor(
    private readonly config: ExecConfig & { id: string },
    private readonly ctx: ActuatorContext,
  ) {}

  init(): void {}

  /** Checks that every program exists and is executable, so a typo fails at start, not at the first trip. */
  async start(): Promise<void> {
    const missing = Object.entries(this.config.commands)
      .filter(([, c]) => !executable(c.file))
      .map(([name, c]) => `${name}: ${c.file}`);
    if (missing.length > 0) throw new Error(`exec actuator ${this.ctx.id}: not found or not executable: ${missing.join('; ')}`);
  }

  async stop(): Promise<void> {}

  /** Spawns the program before returning; the promise settles when it exits. */
  execute(cmd: ActuatorCommand): Promise<ActuatorResult> {
    const spec = this.config.commands[cmd.command];
    if (!spec)
      return Promise.resolve({
        ok: false,
        error: `unknown command "${cmd.command}"; this actuator has ${Object.keys(this.config.commands).join(', ')}`,
      });
    const timeout = spec.timeout ?? this.config.timeout;
    const started = this.ctx.now();
    return new Promise((resolve) => {
      execFile(
        spec.file,
        spec.args.map((a) => fill(a, cmd)),
        { timeout, killSignal: 'SIGKILL', shell: false, maxBuffer: 64 * 1024, windowsHide: true },
        (err, stdout, stderr) => {
          const ms = this.ctx.now() - started;
          const out = stdout.trim().slice(0, 200);
          if (!err) {
            resolve({ ok: true, ack: { exit_code: 0, duration_ms: ms, ...(out ? { stdout: out } : {}) } });
            return;
          }
          const e = err as NodeJS.ErrnoException & { killed?: boolean; code?: number | string };
          const error = e.killed
            ? `killed after ${timeout} ms timeout`
            : typeof e.code === 'number'
              ? `exited with code ${e.code}${stderr.trim() ? `: ${stderr.trim().slice(0, 200)}` : ''}`
              : e.message;
          resolve({ ok: false, ack: { duration_ms: ms, ...(typeof e.code === 'number' ? { exit_code: e.code } : {}) }, error });
        },
      );
    });
  }
}
