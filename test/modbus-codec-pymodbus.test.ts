import { once } from 'node:events';
import { connect as connectSocket } from 'node:net';
import ModbusSerial from 'modbus-serial';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { type DataType, decode, registerCount, type WordOrder } from '../drivers/modbus/codec.js';
import vectorFile from './fixtures/modbus-byte-order-vectors.json' with { type: 'json' };
import {
  type PymodbusTcpServer,
  pymodbusUnavailable,
  type RegisterImage,
  rtuUnavailable,
  startPymodbus,
  startRtuPair,
} from './helpers/pymodbus.js';

// Under NodeNext the typings' `export default` is the CJS `.default`; at run time both are the client class.
const ModbusRTU = ModbusSerial.default;
type ModbusRTU = InstanceType<typeof ModbusRTU>;

interface Vector {
  type: DataType;
  order: WordOrder;
  registers: string[];
  value: number;
}

const missing = pymodbusUnavailable();
if (missing && process.env.CI) throw new Error(`CI must run the pymodbus tests: ${missing}`);
if (missing) console.warn(`\n!!! SKIPPING Modbus protocol tests against pymodbus: ${missing}\n`);
const rtuMissing = rtuUnavailable();
if (rtuMissing && process.env.CI) throw new Error(`CI must run the RTU tests: ${rtuMissing}`);
if (rtuMissing && !missing) console.warn(`\n!!! SKIPPING Modbus RTU tests: ${rtuMissing}\n`);

const vectors = vectorFile.vectors as Vector[];
const HOLDING_BASE = 100;
// Laid out back to back so decoding also runs at offsets inside one polled block, as in the driver.
const layout = vectors.reduce<{ offset: number; vector: Vector }[]>((acc, vector) => {
  const last = acc.at(-1);
  acc.push({ offset: last ? last.offset + registerCount(last.vector.type) : 0, vector });
  return acc;
}, []);
const allRegisters = vectors.flatMap((v) => v.registers.map((r) => Number.parseInt(r, 16)));
const expected = (v: Vector) => (v.type === 'float32' ? Math.fround(v.value) : v.value);
const COILS = [true, false, true, true, false, false, true, false, true];
const DISCRETE = [false, true, true, false, true];

const image: RegisterImage = {
  units: {
    '1': {
      holding: { [HOLDING_BASE]: allRegisters },
      coils: { '0': COILS },
      discrete: { '20': DISCRETE },
    },
    '2': { input: { '0': allRegisters }, holding: { '0': [0xbeef] } },
    '4': { sparse: true, holding: { '0': [1, 2] } },
  },
};

async function readBlock(read: (address: number, length: number) => Promise<{ data: number[] }>, base: number, length: number) {
  const out = new Uint16Array(length);
  for (let done = 0; done < length; done += 120) {
    const { data } = await read(base + done, Math.min(120, length - done));
    out.set(data, done);
  }
  return out;
}

function expectDecodes(block: Uint16Array) {
  for (const { offset, vector } of layout) {
    expect(decode(block, offset, vector.type, vector.order), `${vector.type} ${vector.order} [${vector.registers}]`).toBe(
      expected(vector),
    );
  }
}

const close = (client: ModbusRTU) => new Promise<void>((resolve) => (client.isOpen ? client.close(() => resolve()) : resolve()));

describe.skipIf(!!missing)('codec against a pymodbus TCP slave (modbus-serial client)', () => {
  let server: PymodbusTcpServer;
  let client: ModbusRTU;

  beforeAll(async () => {
    server = await startPymodbus({ image });
  });
  afterAll(async () => {
    await server?.stop();
  });

  const connect = async (unit: number, timeoutMs = 2000) => {
    client = new ModbusRTU();
    await client.connectTCP('127.0.0.1', { port: server.port });
    client.setID(unit);
    client.setTimeout(timeoutMs);
    return client;
  };
  afterEach(async () => {
    if (client) await close(client);
  });

  it('decodes every golden vector from holding registers', async () => {
    const c = await connect(1);
    const block = await readBlock((a, n) => c.readHoldingRegisters(a, n), HOLDING_BASE, allRegisters.length);
    expect(Array.from(block)).toEqual(allRegisters);
    expectDecodes(block);
  });

  it('decodes every golden vector from input registers of a second unit', async () => {
    const c = await connect(2);
    expectDecodes(await readBlock((a, n) => c.readInputRegisters(a, n), 0, allRegisters.length));
    expect((await c.readHoldingRegisters(0, 1)).data).toEqual([0xbeef]);
  });

  it('reads coils and discrete inputs', async () => {
    const c = await connect(1);
    expect((await c.readCoils(0, COILS.length)).data.slice(0, COILS.length)).toEqual(COILS);
    expect((await c.readDiscreteInputs(20, DISCRETE.length)).data.slice(0, DISCRETE.length)).toEqual(DISCRETE);
  });

  it('lets the test read back a coil a client wrote', async () => {
    const c = await connect(1);
    await c.writeCoil(1, true);
    expect(await server.get(1, 'coils', 0, 3)).toEqual([true, true, true]);
    expect((await c.readCoils(1, 1)).data[0]).toBe(true);
    await server.set(1, 'coils', 1, [false]);
    expect((await c.readCoils(1, 1)).data[0]).toBe(false);
  });

  it('sees registers the test changes while serving', async () => {
    const c = await connect(2);
    await server.set(2, 'holding', 0, [0x1234]);
    expect((await c.readHoldingRegisters(0, 1)).data).toEqual([0x1234]);
    await server.set(2, 'holding', 0, [0xbeef]);
  });

  it('stays silent for a unit that is not in the image', async () => {
    const c = await connect(3, 300);
    await expect(c.readHoldingRegisters(0, 1)).rejects.toMatchObject({ errno: 'ETIMEDOUT' });
  });

  it('answers a live unit whose request shares a TCP segment with a silent unit’s', async () => {
    // Two MBAP frames in one write: unit 3 (not in the image) first, then unit 2. pymodbus 3.0's framer
    // used to clear its whole buffer on the first, so unit 2 went unanswered (a healthy unit timing out
    // beside a dead one, as in the dashboard test). A real slave answers each frame on its own.
    const frame = (tid: number, unit: number) => {
      const b = Buffer.alloc(12);
      b.writeUInt16BE(tid, 0);
      b.writeUInt16BE(6, 4);
      b[6] = unit;
      b[7] = 3;
      b.writeUInt16BE(1, 10);
      return b;
    };
    const socket = connectSocket(server.port, '127.0.0.1');
    try {
      await once(socket, 'connect');
      // Only the deadline becomes "no answer": a socket error is reported as itself.
      const deadline = AbortSignal.timeout(3000);
      const answered = once(socket, 'data', { signal: deadline }).catch((err: unknown) => {
        throw deadline.aborted ? new Error('unit 2 got no answer within 3 s') : err;
      }) as Promise<[Buffer]>;
      socket.write(Buffer.concat([frame(1, 3), frame(2, 2)]));
      const [answer] = await answered;
      expect({ tid: answer.readUInt16BE(0), unit: answer[6], fn: answer[7], value: answer.readUInt16BE(9) }).toEqual({
        tid: 2,
        unit: 2,
        fn: 3,
        value: 0xbeef,
      });
    } finally {
      socket.destroy();
    }
  });

  it('answers exception 02 outside a sparse unit’s addresses', async () => {
    const c = await connect(4);
    expect((await c.readHoldingRegisters(0, 2)).data).toEqual([1, 2]);
    await expect(c.readHoldingRegisters(5, 1)).rejects.toMatchObject({ modbusCode: 2 });
  });

  it('can silence and delay a unit at run time', async () => {
    const c = await connect(2, 300);
    await server.silence(2);
    await expect(c.readHoldingRegisters(0, 1)).rejects.toMatchObject({ errno: 'ETIMEDOUT' });
    await server.silence(2, false);
    await close(c);
    // A fresh connection: the silenced request's late transaction must not confuse this check.
    const fresh = await connect(2, 300);
    expect((await fresh.readHoldingRegisters(0, 1)).data).toEqual([0xbeef]);
    await server.delay(2, 600);
    await expect(fresh.readHoldingRegisters(0, 1)).rejects.toMatchObject({ errno: 'ETIMEDOUT' });
    await server.delay(2, 0);
  });
});

describe.skipIf(!!missing)('pymodbus slave with missing_unit: exception', () => {
  it('answers exception 0x0B for an unknown unit', async () => {
    const server = await startPymodbus({ image: { missing_unit: 'exception', units: { '1': { holding: { '0': [7] } } } } });
    const client = new ModbusRTU();
    try {
      await client.connectTCP('127.0.0.1', { port: server.port });
      client.setTimeout(2000);
      client.setID(1);
      expect((await client.readHoldingRegisters(0, 1)).data).toEqual([7]);
      client.setID(9);
      await expect(client.readHoldingRegisters(0, 1)).rejects.toMatchObject({ modbusCode: 11 });
    } finally {
      await close(client);
      await server.stop();
    }
  });
});

describe.skipIf(!!(missing || rtuMissing))('codec against a pymodbus RTU slave over a socat pseudo-terminal pair', () => {
  it('decodes the golden vectors and writes a coil over RTU', async () => {
    const pair = await startRtuPair({ image, baud: 38400 });
    const client = new ModbusRTU();
    try {
      await client.connectRTUBuffered(pair.clientPath, { baudRate: 38400 });
      client.setID(1);
      client.setTimeout(2000);
      expectDecodes(await readBlock((a, n) => client.readHoldingRegisters(a, n), HOLDING_BASE, allRegisters.length));
      await client.writeCoil(8, false);
      expect(await pair.get(1, 'coils', 8)).toEqual([false]);
      client.setID(2);
      expect((await client.readHoldingRegisters(0, 1)).data).toEqual([0xbeef]);
    } finally {
      await close(client);
      await pair.stop();
    }
  });
});
