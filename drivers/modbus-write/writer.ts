/**
 * Modbus TCP actuator: each configured command is compiled in `init()` into a ready request PDU (and
 * its read-back request), so `execute()` only writes bytes to an already open socket.
 */

import { Backoff, type BackoffOptions, backoffDelay } from '../../agent/backoff.js';
import type { ActuatorCommand, ActuatorContext, ActuatorDriver, ActuatorResult } from '../../agent/driver.js';
import { fc1, fc3, fc5, fc6, fc15, fc16, ModbusTcpMaster, parseBits, parseRegisters } from './client.js';
import { compileOp } from './command.js';
import type { ModbusWriteConfig } from './schema.js';

const RECONNECT: BackoffOptions = { baseMs: 200, maxMs: 5000 };

interface Plan {
  readonly fn: 5 | 15 | 6 | 16;
  readonly address: number;
  readonly pdu: Buffer;
  readonly readBack: Buffer;
  /** Coil states or register values expected on read-back. */
  readonly expected: readonly (boolean | number)[];
}

export function compile(name: string, cmd: ModbusWriteConfig['commands'][string]): Plan {
  const { fn, address, values } = compileOp(name, cmd);
  switch (fn) {
    case 5:
      return { fn, address, pdu: fc5(address, values[0] as boolean), readBack: fc1(address, 1), expected: values };
    case 15:
      return { fn, address, pdu: fc15(address, values as boolean[]), readBack: fc1(address, values.length), expected: values };
    case 6:
      return { fn, address, pdu: fc6(address, values[0] as number), readBack: fc3(address, 1), expected: values };
    case 16:
      return { fn, address, pdu: fc16(address, values as number[]), readBack: fc3(address, values.length), expected: values };
  }
}

export class ModbusWriter implements ActuatorDriver {
  private readonly plans = new Map<string, Plan>();
  private master: ModbusTcpMaster | undefined;
  private connecting: Promise<void> | undefined;
  private reconnectTimer: NodeJS.Timeout | undefined;
  private readonly reconnect = new Backoff(RECONNECT);
  private stopped = true;

  constructor(
    private readonly config: ModbusWriteConfig & { id: string },
    private readonly ctx: ActuatorContext,
  ) {}

  /** Compiles every command into its request frames; a value the data type cannot hold is a config error. */
  init(): void {
    for (const [name, cmd] of Object.entries(this.config.commands)) this.plans.set(name, compile(name, cmd));
  }

  /**
   * Opens the connection. A device that is down does not fail the start (the agent must run, and other
   * actuators must work): the driver keeps reconnecting with backoff and holds the connection open.
   */
  async start(): Promise<void> {
    this.stopped = false;
    this.master ??= new ModbusTcpMaster(this.config.host, this.config.port, this.config.timeout);
    this.master.onClose = (err) => {
      if (this.stopped) return;
      this.ctx.logger.warn({ err: err?.message }, 'PLC connection lost; reconnecting');
      // A connection that was up: the first retry comes soon, and a restore is not logged as a recovery.
      this.scheduleReconnect(backoffDelay(0, RECONNECT));
    };
    await this.connect().catch(() => {});
  }

  private connect(): Promise<void> {
    const master = this.master as ModbusTcpMaster;
    this.connecting ??= master
      .connect()
      .then(
        () => {
          if (this.reconnect.failing) this.ctx.logger.info({ attempts: this.reconnect.failures }, 'PLC connection restored');
          this.reconnect.succeed();
        },
        (err: Error) => {
          if (!this.reconnect.failing)
            this.ctx.logger.warn(
              { host: this.config.host, port: this.config.port, err: err.message },
              'cannot connect to PLC; retrying',
            );
          this.scheduleReconnect(this.reconnect.fail());
          throw err;
        },
      )
      .finally(() => {
        this.connecting = undefined;
      });
    return this.connecting;
  }

  private scheduleReconnect(delay: number): void {
    if (this.stopped || this.reconnectTimer) return;
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = undefined;
      if (!this.stopped && !this.master?.connected) this.connect().catch(() => {});
    }, delay);
    this.reconnectTimer.unref?.();
  }

  /** Writes synchronously when connected; otherwise connects first (the result says how long it took). */
  execute(cmd: ActuatorCommand): Promise<ActuatorResult> {
    const plan = this.plans.get(cmd.command);
    if (!plan)
      return Promise.resolve({
        ok: false,
        error: `unknown command "${cmd.command}"; this actuator has ${[...this.plans.keys()].join(', ')}`,
      });
    const master = this.master;
    if (!master || this.stopped) return Promise.resolve({ ok: false, error: 'actuator not started' });
    if (master.connected) return this.finish(plan, master.request(this.config.unit_id, plan.pdu));
    return this.connect().then(
      () => this.finish(plan, master.request(this.config.unit_id, plan.pdu)),
      (err: Error) => ({ ok: false, error: `PLC ${this.config.host}:${this.config.port} unreachable: ${err.message}` }),
    );
  }

  private async finish(plan: Plan, written: Promise<Buffer>): Promise<ActuatorResult> {
    const sentAt = this.ctx.now();
    const base = { function: plan.fn, unit: this.config.unit_id, address: plan.address, written: plan.expected };
    try {
      await written;
    } catch (err) {
      return { ok: false, ack: base, error: (err as Error).message };
    }
    const writtenAt = this.ctx.now();
    if (!this.config.verify) return { ok: true, ack: { ...base, write_ms: writtenAt - sentAt } };
    const master = this.master as ModbusTcpMaster;
    try {
      const pdu = await master.request(this.config.unit_id, plan.readBack);
      const n = plan.expected.length;
      const readBack = plan.fn === 5 || plan.fn === 15 ? parseBits(pdu, n) : parseRegisters(pdu, n);
      const verified = readBack.every((v, i) => v === plan.expected[i]);
      const ack = { ...base, read_back: readBack, verified, write_ms: writtenAt - sentAt };
      return verified ? { ok: true, ack } : { ok: false, ack, error: 'read-back differs from the value written' };
    } catch (err) {
      return {
        ok: false,
        ack: { ...base, verified: false },
        error: `write acknowledged, read-back failed: ${(err as Error).message}`,
      };
    }
  }

  /** Closes the connection and stops reconnecting. Idempotent; in-flight requests fail. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    this.reconnectTimer = undefined;
    this.master?.close();
  }
}
