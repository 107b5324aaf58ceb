/**
 * One owner per serial port: a `modbus` source polling an RTU bus and a `modbus-write` actuator
 * stopping a machine on the same bus share one `ModbusSession` (one open port, one request on the
 * wire at a time, writes ahead of polls). The agent hands every driver of one generation the same
 * `shared` map; the first driver to ask opens the session, the others join it.
 *
 * Modbus TCP needs no sharing (each client has its own connection and transaction ids): `busKey`
 * is undefined there and every driver keeps its own connection.
 */
import type { Logger } from '../../agent/log.js';
import { type ModbusConfig, modbusSchema } from './schema.js';
import { ModbusSession, type SessionConfig } from './session.js';

interface SharedBus {
  readonly session: ModbusSession;
  readonly serial: string;
  readonly owner: string;
  users: number;
  /** A source already adopted the session (its settings and health). */
  adopted: boolean;
}

/** Where a bus is shared: the serial port, or the serial device server of RTU over TCP. */
export function busKey(c: Pick<ModbusConfig, 'transport' | 'serial_port' | 'host' | 'port'>): string | undefined {
  if (c.transport === 'rtu') return `modbus-bus:${c.serial_port}`;
  if (c.transport === 'rtu_over_tcp') return `modbus-bus:${c.host}:${c.port}`;
  return undefined;
}

const serialOf = (c: SessionConfig) =>
  c.transport === 'rtu' ? `baud_rate ${c.baud_rate}, parity ${c.parity}, data_bits ${c.data_bits}, stop_bits ${c.stop_bits}` : '';

/** Session settings for a driver that only names the bus (the actuator): the `modbus` source's defaults. */
export function sessionConfig(partial: Partial<ModbusConfig>): SessionConfig {
  return modbusSchema.parse(partial);
}

/** A driver's hold on a (possibly shared) session: `acquire()` at start, `release()` at stop (idempotent). */
export class BusHandle {
  private held = false;

  constructor(
    readonly session: ModbusSession,
    private readonly entry: SharedBus | undefined,
  ) {}

  acquire(): void {
    if (this.held) return;
    this.held = true;
    if (this.entry) this.entry.users++;
  }

  /** Closes the session when the last driver holding it lets go. */
  async release(): Promise<void> {
    const was = this.held;
    this.held = false;
    if (!this.entry) return this.session.close();
    if (was) this.entry.users--;
    if (this.entry.users <= 0) await this.session.close();
  }
}

/**
 * The session for `cfg`: shared through `shared` when the transport is a serial bus. `role: 'source'`
 * makes the caller's settings and link health the session's. Throws (a config error) when two drivers
 * give one serial port different line settings.
 */
export function openBus(
  shared: Map<string, unknown> | undefined,
  cfg: SessionConfig,
  who: string,
  role: 'source' | 'actuator',
  logger: Logger,
  now: () => number,
  adopt?: (session: ModbusSession) => void,
): BusHandle {
  const key = busKey(cfg);
  if (!key || !shared) {
    const session = new ModbusSession(cfg, logger, now);
    adopt?.(session);
    return new BusHandle(session, undefined);
  }
  let entry = shared.get(key) as SharedBus | undefined;
  if (entry) {
    if (entry.serial !== serialOf(cfg))
      throw new Error(
        `${who} shares ${key.slice('modbus-bus:'.length)} with ${entry.owner} but with other line settings (${serialOf(cfg)} vs ${entry.serial}): one bus has one speed and framing`,
      );
    if (role === 'source') {
      if (entry.adopted) throw new Error(`${who}: ${key.slice('modbus-bus:'.length)} is already polled by ${entry.owner}`);
      adopt?.(entry.session);
      entry.adopted = true;
    }
  } else {
    const session = new ModbusSession(cfg, logger, now);
    if (role === 'source') adopt?.(session);
    entry = { session, serial: serialOf(cfg), owner: who, users: 0, adopted: role === 'source' };
    shared.set(key, entry);
  }
  return new BusHandle(entry.session, entry);
}
