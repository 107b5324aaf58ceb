/**
 * The modbus-write actuator on a serial bus (RTU, or RTU over TCP through a serial device server). One
 * serial port has one owner: when a `modbus` source polls the same bus, both use one `ModbusSession`
 * (drivers/modbus/bus.ts), and a write goes ahead of every waiting poll, so a stop waits at most for the
 * one request already on the wire (a half-duplex bus cannot abort it). The write and its read-back run
 * in one turn on the bus. Timing on the wire: drivers/modbus-write/README.md.
 */
import type { ActuatorCommand, ActuatorContext, ActuatorDriver, ActuatorResult } from '../../agent/driver.js';
import { type BusHandle, openBus, sessionConfig } from '../modbus/bus.js';
import type { WriteOp } from '../modbus/session.js';
import { compileOp } from './command.js';
import type { ModbusWriteConfig } from './schema.js';

export class ModbusBusWriter implements ActuatorDriver {
  private readonly ops = new Map<string, WriteOp>();
  private bus: BusHandle | undefined;
  private stopped = true;

  constructor(
    private readonly config: ModbusWriteConfig & { id: string },
    private readonly ctx: ActuatorContext,
  ) {}

  /** Compiles the commands and joins (or opens, without I/O) the bus session of its port. */
  init(): void {
    const c = this.config;
    if (c.transport === 'rtu' && !c.serial_port) throw new Error(`modbus-write "${c.id}": transport rtu needs serial_port`);
    for (const [name, cmd] of Object.entries(c.commands)) this.ops.set(name, compileOp(name, cmd));
    const cfg = sessionConfig({
      transport: c.transport,
      host: c.host,
      port: c.port,
      ...(c.serial_port !== undefined ? { serial_port: c.serial_port } : {}),
      baud_rate: c.baud_rate,
      parity: c.parity,
      data_bits: c.data_bits,
      stop_bits: c.stop_bits,
      inter_request_gap: c.inter_request_gap,
      connect_timeout: c.timeout,
    });
    this.bus = openBus(this.ctx.shared, cfg, `modbus-write actuator "${c.id}"`, 'actuator', this.ctx.logger, this.ctx.now);
  }

  /** Opens the bus (or joins the source's). A port that is absent at start does not fail it: the write connects. */
  async start(): Promise<void> {
    this.stopped = false;
    const bus = this.bus as BusHandle;
    bus.acquire();
    await bus.session.open().catch((err: Error) => {
      this.ctx.logger.warn({ bus: bus.session.describe, err: err.message }, 'serial bus not available yet; a stop will retry');
    });
  }

  /** Queues the write ahead of every poll; on an idle, open bus the frame is written before this returns. */
  execute(cmd: ActuatorCommand): Promise<ActuatorResult> {
    const op = this.ops.get(cmd.command);
    if (!op)
      return Promise.resolve({
        ok: false,
        error: `unknown command "${cmd.command}"; this actuator has ${[...this.ops.keys()].join(', ')}`,
      });
    if (this.stopped || !this.bus) return Promise.resolve({ ok: false, error: 'actuator not started' });
    const session = this.bus.session;
    const waiting = session.queued;
    const base = { function: op.fn, unit: this.config.unit_id, address: op.address, written: op.values, bus: session.describe };
    return session.write(this.config.unit_id, op, this.config.timeout, this.config.verify).then(
      (out): ActuatorResult => {
        const ack = { ...base, write_ms: Math.round(out.writeMs * 100) / 100, queued_before: waiting };
        if (!out.readBack) return { ok: true, ack };
        const verified = out.readBack.every((v, i) => v === op.values[i]);
        const full = { ...ack, read_back: out.readBack, verified };
        return verified ? { ok: true, ack: full } : { ok: false, ack: full, error: 'read-back differs from the value written' };
      },
      (err: Error): ActuatorResult => ({ ok: false, ack: base, error: `${session.describe}: ${err.message}` }),
    );
  }

  /** Lets go of the bus (closed when no source holds it either). Idempotent. */
  async stop(): Promise<void> {
    this.stopped = true;
    await this.bus?.release();
  }
}
