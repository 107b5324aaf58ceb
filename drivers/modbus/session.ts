/**
 * One Modbus connection (a TCP device or gateway, or one serial bus) on modbus-serial: connect with
 * TCP_NODELAY, reconnect with backoff and jitter, serialise what must be serialised, and classify
 * every failure where it enters.
 *
 * Modbus TCP matches answers by transaction id, so requests to different units run concurrently
 * (one queue per unit): a dead unit never delays the others. An RTU bus is half-duplex, so all
 * requests share one queue with an optional inter-request gap; there the driver isolates units by
 * their timeout budget and by skipping a failing unit (see source.ts).
 */
import { Socket } from 'node:net';
import ModbusSerial from 'modbus-serial';
import { Backoff } from '../../agent/backoff.js';
import { DeviceHealth } from '../../agent/health.js';
import type { Logger } from '../../agent/log.js';
import type { ModbusConfig, Table } from './schema.js';

// Under NodeNext the typings' `export default` is the CJS `.default`; at run time both are the client class.
const ModbusRTU = ModbusSerial.default;
type ModbusRTU = InstanceType<typeof ModbusRTU>;

export type ModbusErrorKind = 'timeout' | 'exception' | 'disconnected' | 'protocol';

/** A classified Modbus failure. `exception` is permanent for that request (e.g. illegal address). */
export class ModbusError extends Error {
  constructor(
    readonly kind: ModbusErrorKind,
    message: string,
    readonly modbusCode?: number,
    options?: ErrorOptions,
  ) {
    super(message, options);
    this.name = 'ModbusError';
  }
}

export function classify(err: unknown): ModbusError {
  if (err instanceof ModbusError) return err;
  const e = err as { errno?: string; code?: string; modbusCode?: number; message?: string; name?: string };
  const msg = e?.message ?? String(err);
  if (typeof e?.modbusCode === 'number') return new ModbusError('exception', msg, e.modbusCode, { cause: err });
  if (e?.errno === 'ETIMEDOUT' || e?.name === 'TransactionTimedOutError')
    return new ModbusError('timeout', msg, undefined, { cause: err });
  if (
    e?.name === 'PortNotOpenError' ||
    /port not open|ECONN|EPIPE|EHOSTUNREACH|ENETUNREACH|socket|closed/i.test(`${e?.code} ${msg}`)
  ) {
    return new ModbusError('disconnected', msg, undefined, { cause: err });
  }
  return new ModbusError('protocol', msg, undefined, { cause: err });
}

export type SessionConfig = Pick<
  ModbusConfig,
  | 'transport'
  | 'host'
  | 'port'
  | 'serial_port'
  | 'baud_rate'
  | 'parity'
  | 'data_bits'
  | 'stop_bits'
  | 'connect_timeout'
  | 'reconnect_min'
  | 'reconnect_max'
  | 'stale_session_timeouts'
  | 'dead_link_after'
  | 'keepalive'
  | 'inter_request_gap'
>;

/** A write: FC5 (one coil), FC15 (coils), FC6 (one register), FC16 (registers), from `address` on. */
export interface WriteOp {
  readonly fn: 5 | 15 | 6 | 16;
  readonly address: number;
  readonly values: readonly (boolean | number)[];
}

export interface WriteOutcome {
  /** Write request → acknowledgement, ms. */
  readonly writeMs: number;
  /** What the read-back returned (with `verify`). */
  readonly readBack?: readonly (boolean | number)[];
}

interface Job {
  readonly run: () => Promise<unknown>;
  readonly resolve: (v: unknown) => void;
  readonly reject: (e: unknown) => void;
  readonly urgent: boolean;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export class ModbusSession {
  /**
   * The link's health: connects, disconnects, dead links (a TCP link where no unit answered
   * `stale_session_timeouts` requests in a row, i.e. half-open), connect failures as `disconnected` errors.
   */
  health: DeviceHealth;
  private client: ModbusRTU | undefined;
  private socket: Socket | undefined;
  private connecting: Promise<void> | undefined;
  private reconnect: Backoff;
  private readonly queues = new Map<number, Promise<unknown>>();
  /** The serial bus's waiting requests: writes (urgent) before polls. One request on the wire at a time. */
  private readonly jobs: Job[] = [];
  private busy = false;
  private lastAnswerAt = 0;
  /** When a unit last answered anything (or the link connected): the dead-link clock. */
  private lastHeardAt = 0;
  private timeoutsInARow = 0;
  private closed = false;
  /** Generation of the current client; a late event of an old client must not close the new one. */
  private generation = 0;
  /** Rejecters of requests in flight: modbus-serial leaves them pending when its port is destroyed. */
  private readonly inflight = new Set<(err: ModbusError) => void>();

  constructor(
    private cfg: SessionConfig,
    private readonly logger: Logger,
    private readonly now: () => number = Date.now,
    health?: DeviceHealth,
  ) {
    this.reconnect = new Backoff({ baseMs: cfg.reconnect_min, maxMs: cfg.reconnect_max });
    this.health = health ?? new DeviceHealth('', 'link', 'modbus_link', this.describe);
  }

  /**
   * A source joins a bus session an actuator opened first (before any I/O): its timing settings and its
   * link health take over, so the link is reported under the source that polls it.
   */
  adopt(cfg: SessionConfig, health: DeviceHealth): void {
    this.cfg = cfg;
    this.health = health;
    this.reconnect = new Backoff({ baseMs: cfg.reconnect_min, maxMs: cfg.reconnect_max });
  }

  get connected(): boolean {
    return this.client?.isOpen === true;
  }

  get describe(): string {
    return this.cfg.transport === 'rtu' ? `${this.cfg.serial_port}` : `${this.cfg.host}:${this.cfg.port}`;
  }

  private get serialBus(): boolean {
    return this.cfg.transport !== 'tcp';
  }

  /** Connects now (or joins a connect in progress). Rejects with a `disconnected` ModbusError. */
  async open(): Promise<void> {
    this.closed = false;
    if (this.connected) return;
    this.connecting ??= this.doConnect().finally(() => {
      this.connecting = undefined;
    });
    return this.connecting;
  }

  private async doConnect(): Promise<void> {
    this.dropClient();
    const gen = ++this.generation;
    const client = new ModbusRTU();
    // Without a listener an 'error' event from the port would crash the process.
    client.on('error', (err: unknown) => this.onLost(gen, (err as Error)?.message ?? String(err)));
    client.on('close', () => this.onLost(gen, 'connection closed'));
    try {
      if (this.cfg.transport === 'rtu') {
        await client.connectRTUBuffered(this.cfg.serial_port as string, {
          baudRate: this.cfg.baud_rate,
          parity: this.cfg.parity,
          dataBits: this.cfg.data_bits,
          stopBits: this.cfg.stop_bits,
        });
      } else {
        const socket = await this.connectSocket();
        this.socket = socket;
        if (this.cfg.transport === 'tcp') await client.linkTCP(socket, { port: this.cfg.port });
        // modbus-serial's "TcpRTUBuffered" port speaks MBAP framing; its "telnet" port is raw RTU over TCP.
        else await client.linkTelnet(socket, { port: this.cfg.port });
      }
    } catch (err) {
      this.health.fail('disconnected', this.now());
      this.health.down(this.now(), 'disconnected');
      this.reconnect.fail(this.now());
      this.generation++;
      this.socket?.destroy();
      this.socket = undefined;
      throw new ModbusError('disconnected', `cannot connect to ${this.describe}: ${(err as Error).message}`, undefined, {
        cause: err,
      });
    }
    if (this.closed) {
      this.generation++;
      client.close(() => {});
      this.socket?.destroy();
      throw new ModbusError('disconnected', 'session closed while connecting');
    }
    this.client = client;
    this.timeoutsInARow = 0;
    this.lastHeardAt = this.now();
    this.reconnect.succeed();
    this.health.up();
    this.logger.info({ device: this.describe, transport: this.cfg.transport }, 'modbus connected');
  }

  private connectSocket(): Promise<Socket> {
    return new Promise((resolve, reject) => {
      const socket = new Socket();
      // Field notes: Nagle adds tens of ms per request/response on loopback and LANs.
      socket.setNoDelay(true);
      // Kernel keepalive finds a dead peer on an idle link; a link with requests in flight is judged by
      // the application timeouts below (unacknowledged data would otherwise retransmit for ~15 min).
      socket.setKeepAlive(true, this.cfg.keepalive);
      const timer = setTimeout(() => {
        socket.destroy();
        reject(new Error(`connect timed out after ${this.cfg.connect_timeout} ms`));
      }, this.cfg.connect_timeout);
      socket.once('error', (err) => {
        clearTimeout(timer);
        socket.destroy();
        reject(err);
      });
      socket.once('connect', () => {
        clearTimeout(timer);
        socket.removeAllListeners('error');
        // modbus-serial adds its own listeners; this one keeps a late error from being unhandled.
        socket.on('error', () => {});
        resolve(socket);
      });
      socket.connect({ host: this.cfg.host as string, port: this.cfg.port });
    });
  }

  private onLost(gen: number, reason: string): void {
    if (gen !== this.generation || !this.client) return;
    this.health.down(this.now(), 'disconnected');
    this.logger.warn({ device: this.describe, reason }, 'modbus connection lost; reconnecting');
    this.dropClient();
    this.reconnect.fail(this.now());
  }

  private dropClient(): void {
    const client = this.client;
    const socket = this.socket;
    this.client = undefined;
    this.socket = undefined;
    this.generation++;
    if (client) {
      try {
        client.destroy(() => {});
      } catch {
        // already closed
      }
    }
    socket?.destroy();
    for (const abort of [...this.inflight]) abort(new ModbusError('disconnected', 'connection closed'));
  }

  /**
   * Reads one block. While disconnected and the reconnect backoff has not expired, fails at once
   * (kind `disconnected`) instead of waiting, so the caller can report comm_error and move on.
   */
  read(unitId: number, table: Table, start: number, count: number, timeoutMs: number): Promise<Uint16Array | boolean[]> {
    return this.schedule(unitId, false, () => this.readNow(unitId, table, start, count, timeoutMs));
  }

  /**
   * Writes coils or holding registers, then (with `verify`) reads them back in the same turn on the bus,
   * so no poll comes between the write and its read-back. On a serial bus (rtu, rtu_over_tcp) the write
   * jumps the poll queue: it waits only for the request on the wire now (a half-duplex bus cannot abort
   * it) and for writes queued before it. When the bus is idle and connected, the frame is written before
   * this returns. A write connects even while the reconnect backoff runs: a stop must not wait for it.
   */
  write(unitId: number, op: WriteOp, timeoutMs: number, verify: boolean): Promise<WriteOutcome> {
    return this.schedule(unitId, true, () => this.writeNow(unitId, op, timeoutMs, verify));
  }

  /** A serial bus runs one request at a time (writes first); over TCP, requests queue per unit. */
  private schedule<T>(unitId: number, urgent: boolean, run: () => Promise<T>): Promise<T> {
    if (this.serialBus) return this.enqueue(run, urgent);
    const prev = this.queues.get(unitId) ?? Promise.resolve();
    const p = prev.then(run, run);
    this.queues.set(
      unitId,
      p.catch(() => {}),
    );
    return p;
  }

  /** Requests waiting for the serial bus (not counting the one on the wire). */
  get queued(): number {
    return this.jobs.length;
  }

  private enqueue<T>(run: () => Promise<T>, urgent: boolean): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const job: Job = { run, resolve: resolve as (v: unknown) => void, reject, urgent };
      if (urgent) {
        // After the writes already waiting, before every poll.
        const i = this.jobs.findIndex((j) => !j.urgent);
        if (i < 0) this.jobs.push(job);
        else this.jobs.splice(i, 0, job);
      } else this.jobs.push(job);
      this.pump();
    });
  }

  private pump(): void {
    if (this.busy) return;
    const job = this.jobs.shift();
    if (!job) return;
    this.busy = true;
    // Called synchronously from enqueue() when the bus is idle: the request goes out in this tick.
    const next = () => {
      // The bus is free as soon as the answer is in: the next request starts before this one's caller resumes.
      this.busy = false;
      this.pump();
    };
    job.run().then(
      (v) => {
        next();
        job.resolve(v);
      },
      (e) => {
        next();
        job.reject(e);
      },
    );
  }

  private async readNow(unitId: number, table: Table, start: number, count: number, timeoutMs: number) {
    const res = await this.exchange<{ data: unknown }>(unitId, timeoutMs, false, (client) =>
      table === 'holding'
        ? client.readHoldingRegisters(start, count)
        : table === 'input'
          ? client.readInputRegisters(start, count)
          : table === 'coil'
            ? client.readCoils(start, count)
            : client.readDiscreteInputs(start, count),
    );
    const data = res.data as number[] | boolean[];
    if (table === 'coil' || table === 'discrete') return (data as boolean[]).slice(0, count);
    if (data.length < count) throw new ModbusError('protocol', `asked for ${count} registers, got ${data.length}`);
    return Uint16Array.from(data as number[]);
  }

  private async writeNow(unitId: number, op: WriteOp, timeoutMs: number, verify: boolean): Promise<WriteOutcome> {
    const sent = performance.now();
    await this.exchange<unknown>(unitId, timeoutMs, true, (client) =>
      op.fn === 5
        ? client.writeCoil(op.address, op.values[0] as boolean)
        : op.fn === 15
          ? client.writeCoils(op.address, op.values as boolean[])
          : op.fn === 6
            ? client.writeRegister(op.address, op.values[0] as number)
            : client.writeRegisters(op.address, op.values as number[]),
    );
    const writeMs = performance.now() - sent;
    if (!verify) return { writeMs };
    const n = op.values.length;
    const bits = op.fn === 5 || op.fn === 15;
    const res = await this.exchange<{ data: unknown }>(unitId, timeoutMs, true, (client) =>
      bits ? client.readCoils(op.address, n) : client.readHoldingRegisters(op.address, n),
    );
    const data = res.data as Array<number | boolean>;
    return { writeMs, readBack: data.slice(0, n) };
  }

  /** One request/answer on the link: connection, bus gap, timeouts, classification, dead-link detection. */
  private async exchange<T>(
    unitId: number,
    timeoutMs: number,
    urgent: boolean,
    send: (client: ModbusRTU) => Promise<T>,
  ): Promise<T> {
    if (this.closed) throw new ModbusError('disconnected', 'session closed');
    if (!this.connected) {
      if (!urgent && !this.reconnect.ready(this.now()))
        throw new ModbusError('disconnected', `not connected to ${this.describe}`);
      await this.open();
    }
    if (this.serialBus && this.cfg.inter_request_gap > 0) {
      const wait = this.lastAnswerAt + this.cfg.inter_request_gap - this.now();
      if (wait > 0) await sleep(wait);
    }
    const client = this.client as ModbusRTU;
    // setID and setTimeout are read synchronously by the request call below, so concurrent TCP
    // requests to different units cannot see each other's settings.
    client.setID(unitId);
    client.setTimeout(timeoutMs);
    let guard: NodeJS.Timeout | undefined;
    let abort: ((err: ModbusError) => void) | undefined;
    try {
      const request = send(client);
      // modbus-serial's own timer normally fires first; this guard covers a port that dies silently.
      const timedOut = new Promise<never>((_, reject) => {
        guard = setTimeout(() => reject(new ModbusError('timeout', `no answer within ${timeoutMs} ms`)), timeoutMs + 1000);
        abort = reject;
        this.inflight.add(reject);
      });
      const res = await Promise.race([request, timedOut]);
      this.timeoutsInARow = 0;
      this.lastHeardAt = this.now();
      this.health.ok(this.lastHeardAt);
      return res;
    } catch (err) {
      const e = classify(err);
      if (e.kind === 'exception') {
        this.lastHeardAt = this.now();
        this.health.ok(this.lastHeardAt);
      }
      if (
        e.kind === 'timeout' &&
        this.client === client &&
        (++this.timeoutsInARow >= this.cfg.stale_session_timeouts || this.now() - this.lastHeardAt >= this.cfg.dead_link_after)
      ) {
        // No unit has answered for a while: a half-open TCP link, a dead gateway, a serial adapter whose
        // file descriptor died without an error. Close and reconnect (the backoff paces the retries).
        this.logger.warn(
          { device: this.describe, timeouts: this.timeoutsInARow, silent_ms: this.now() - this.lastHeardAt },
          'modbus link dead (no answer from any unit); reconnecting',
        );
        this.health.down(this.now(), 'timeout', true);
        this.timeoutsInARow = 0;
        this.dropClient();
        this.reconnect.fail(this.now());
      } else if (e.kind === 'disconnected' && this.client === client) {
        this.onLost(this.generation, e.message);
      }
      throw e;
    } finally {
      clearTimeout(guard);
      if (abort) this.inflight.delete(abort);
      this.lastAnswerAt = this.now();
    }
  }

  /** Closes the connection; requests in flight fail. Idempotent. */
  async close(): Promise<void> {
    this.closed = true;
    await this.connecting?.catch(() => {});
    this.dropClient();
  }
}
