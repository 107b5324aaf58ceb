/**
 * A small Modbus TCP master for the write path, on a plain `net.Socket` with TCP_NODELAY.
 *
 * Why not modbus-serial here: its TCP port defers every socket write to a promise callback (it chains
 * writes on `_writeCompleted`), so the request would leave only after the caller's synchronous work.
 * A stop command must be on the wire before `execute()` returns, so `request()` writes synchronously.
 * Responses are matched by transaction id; late answers to timed-out requests are dropped, which keeps
 * the session in step after a slow device (field note 14).
 */
import { Socket } from 'node:net';

export class ModbusException extends Error {
  constructor(
    readonly functionCode: number,
    readonly code: number,
  ) {
    super(`Modbus exception ${code} (${EXCEPTION_NAMES[code] ?? 'unknown'}) on function ${functionCode}`);
    this.name = 'ModbusException';
  }
}

const EXCEPTION_NAMES: Record<number, string> = {
  1: 'illegal function',
  2: 'illegal data address',
  3: 'illegal data value',
  4: 'server device failure',
  6: 'server device busy',
  10: 'gateway path unavailable',
  11: 'gateway target failed to respond',
};

interface Waiter {
  resolve(pdu: Buffer): void;
  reject(err: Error): void;
  timer: NodeJS.Timeout;
}

export class ModbusTcpMaster {
  private socket: Socket | undefined;
  private rx: Buffer = Buffer.alloc(0);
  private tid = 0;
  private readonly waiters = new Map<number, Waiter>();
  /** Called once per lost connection (after it was open). */
  onClose: ((err: Error | undefined) => void) | undefined;

  constructor(
    private readonly host: string,
    private readonly port: number,
    private readonly timeoutMs: number,
  ) {}

  get connected(): boolean {
    return this.socket !== undefined && !this.socket.destroyed && !this.socket.connecting;
  }

  connect(): Promise<void> {
    this.close();
    return new Promise((resolve, reject) => {
      const socket = new Socket();
      socket.setNoDelay(true);
      socket.setKeepAlive(true, 10_000);
      const timer = setTimeout(() => {
        socket.destroy();
        reject(new Error(`connect to ${this.host}:${this.port} timed out after ${this.timeoutMs} ms`));
      }, this.timeoutMs);
      socket.once('connect', () => {
        clearTimeout(timer);
        this.socket = socket;
        this.rx = Buffer.alloc(0);
        resolve();
      });
      socket.on('data', (chunk: Buffer) => this.onData(chunk));
      let lastError: Error | undefined;
      socket.on('error', (err) => {
        lastError = err;
        clearTimeout(timer);
        if (this.socket !== socket) reject(err);
      });
      socket.once('close', () => {
        clearTimeout(timer);
        if (this.socket !== socket) return;
        this.socket = undefined;
        this.failAll(lastError ?? new Error('connection closed'));
        this.onClose?.(lastError);
      });
      socket.connect({ host: this.host, port: this.port });
    });
  }

  /**
   * Sends one request PDU to `unit`. The frame is written to the socket before this returns; the promise
   * settles with the response PDU, a ModbusException, or a timeout.
   */
  request(unit: number, pdu: Buffer): Promise<Buffer> {
    const socket = this.socket;
    if (!socket || socket.destroyed) return Promise.reject(new Error('not connected'));
    this.tid = (this.tid + 1) & 0xffff;
    const tid = this.tid;
    const frame = Buffer.allocUnsafe(7 + pdu.length);
    frame.writeUInt16BE(tid, 0);
    frame.writeUInt16BE(0, 2);
    frame.writeUInt16BE(pdu.length + 1, 4);
    frame.writeUInt8(unit, 6);
    pdu.copy(frame, 7);
    socket.write(frame);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters.delete(tid);
        reject(new Error(`no answer from unit ${unit} within ${this.timeoutMs} ms`));
      }, this.timeoutMs);
      this.waiters.set(tid, { resolve, reject, timer });
    });
  }

  private onData(chunk: Buffer): void {
    this.rx = this.rx.length === 0 ? chunk : Buffer.concat([this.rx, chunk]);
    while (this.rx.length >= 7) {
      const length = this.rx.readUInt16BE(4);
      if (length < 2 || length > 254) {
        // Not a Modbus TCP stream any more: drop the connection and let the owner reconnect.
        this.socket?.destroy(new Error(`garbled Modbus TCP frame (length ${length})`));
        return;
      }
      if (this.rx.length < 6 + length) return;
      const tid = this.rx.readUInt16BE(0);
      const pdu = this.rx.subarray(7, 6 + length);
      this.rx = this.rx.subarray(6 + length);
      const w = this.waiters.get(tid);
      if (!w) continue; // late answer to a request that already timed out
      this.waiters.delete(tid);
      clearTimeout(w.timer);
      const fc = pdu.readUInt8(0);
      if (fc & 0x80) w.reject(new ModbusException(fc & 0x7f, pdu.length > 1 ? pdu.readUInt8(1) : 0));
      else w.resolve(Buffer.from(pdu));
    }
  }

  private failAll(err: Error): void {
    for (const w of this.waiters.values()) {
      clearTimeout(w.timer);
      w.reject(err);
    }
    this.waiters.clear();
  }

  close(): void {
    const s = this.socket;
    this.socket = undefined;
    if (s) {
      s.removeAllListeners('close');
      s.destroy();
    }
    this.failAll(new Error('connection closed'));
  }
}

// PDU builders and parsers for the functions the write path uses.

export function fc5(address: number, on: boolean): Buffer {
  const b = Buffer.allocUnsafe(5);
  b.writeUInt8(5, 0);
  b.writeUInt16BE(address, 1);
  b.writeUInt16BE(on ? 0xff00 : 0x0000, 3);
  return b;
}

export function fc15(address: number, values: readonly boolean[]): Buffer {
  const bytes = Math.ceil(values.length / 8);
  const b = Buffer.alloc(6 + bytes);
  b.writeUInt8(15, 0);
  b.writeUInt16BE(address, 1);
  b.writeUInt16BE(values.length, 3);
  b.writeUInt8(bytes, 5);
  values.forEach((v, i) => {
    if (v) b[6 + (i >> 3)] = (b[6 + (i >> 3)] as number) | (1 << (i & 7));
  });
  return b;
}

export function fc6(address: number, value: number): Buffer {
  const b = Buffer.allocUnsafe(5);
  b.writeUInt8(6, 0);
  b.writeUInt16BE(address, 1);
  b.writeUInt16BE(value & 0xffff, 3);
  return b;
}

export function fc16(address: number, values: readonly number[]): Buffer {
  const b = Buffer.allocUnsafe(6 + values.length * 2);
  b.writeUInt8(16, 0);
  b.writeUInt16BE(address, 1);
  b.writeUInt16BE(values.length, 3);
  b.writeUInt8(values.length * 2, 5);
  values.forEach((v, i) => {
    b.writeUInt16BE(v & 0xffff, 6 + i * 2);
  });
  return b;
}

export function fc1(address: number, count: number): Buffer {
  const b = Buffer.allocUnsafe(5);
  b.writeUInt8(1, 0);
  b.writeUInt16BE(address, 1);
  b.writeUInt16BE(count, 3);
  return b;
}

export function fc3(address: number, count: number): Buffer {
  const b = Buffer.allocUnsafe(5);
  b.writeUInt8(3, 0);
  b.writeUInt16BE(address, 1);
  b.writeUInt16BE(count, 3);
  return b;
}

export function parseBits(pdu: Buffer, count: number): boolean[] {
  const out: boolean[] = [];
  for (let i = 0; i < count; i++) out.push((((pdu[2 + (i >> 3)] as number) >> (i & 7)) & 1) === 1);
  return out;
}

export function parseRegisters(pdu: Buffer, count: number): number[] {
  const out: number[] = [];
  for (let i = 0; i < count; i++) out.push(pdu.readUInt16BE(2 + i * 2));
  return out;
}
