import { type ChildProcessWithoutNullStreams, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

const SERVER_SCRIPT = fileURLToPath(new URL('../fixtures/pymodbus_server.py', import.meta.url));

export type Table = 'holding' | 'input' | 'coils' | 'discrete';

/** Register image served by test/fixtures/pymodbus_server.py; see that file for the exact semantics. */
export interface UnitImage {
  holding?: Record<string, number[]>;
  input?: Record<string, number[]>;
  coils?: Record<string, (boolean | number)[]>;
  discrete?: Record<string, (boolean | number)[]>;
  /** Only the listed addresses exist; others answer exception 02 (illegal data address). */
  sparse?: boolean;
}

export interface RegisterImage {
  /** A unit id not in `units` stays silent (default) or answers exception 0x0B. */
  missing_unit?: 'silent' | 'exception';
  /** Keyed by unit id; addresses are 0-based protocol addresses. */
  units: Record<string, UnitImage>;
}

/** Control of a running slave, through the script's stdin command channel. */
export interface PymodbusControl {
  get(unit: number, table: Table, address: number, count?: number): Promise<(number | boolean)[]>;
  set(unit: number, table: Table, address: number, values: (number | boolean)[]): Promise<void>;
  /** A silenced unit drops every request unanswered, like a dead slave on the bus. */
  silence(unit: number, on?: boolean): Promise<void>;
  /** Answers for the unit arrive `ms` late (0 restores prompt answers). */
  delay(unit: number, ms: number): Promise<void>;
  stop(): Promise<void>;
}

export interface PymodbusTcpServer extends PymodbusControl {
  port: number;
}

export interface RtuPair extends PymodbusControl {
  /** The pseudo-terminal the code under test opens as its serial port. */
  clientPath: string;
  /** The pseudo-terminal pymodbus serves RTU on. */
  slavePath: string;
}

const READY_TIMEOUT_MS = 15_000;
let pythonCache: { python?: string; missing?: string } | undefined;

function findPython(): { python?: string; missing?: string } {
  pythonCache ??= probePython();
  return pythonCache;
}

function probePython(): { python?: string; missing?: string } {
  // A pyenv or venv python3 on PATH usually lacks Debian's python3-pymodbus, so the system one goes first.
  const candidates = [process.env.PYMODBUS_PYTHON, '/usr/bin/python3', 'python3'].filter((c): c is string => !!c);
  const python = candidates.find(
    (candidate) => spawnSync(candidate, ['-c', 'import pymodbus, serial_asyncio'], { stdio: 'ignore' }).status === 0,
  );
  if (python) return { python };
  return {
    missing: `no python with pymodbus and serial_asyncio among ${candidates.join(', ')} (apt-get install python3-pymodbus)`,
  };
}

/** Why pymodbus tests cannot run here, or undefined when they can. */
export function pymodbusUnavailable(): string | undefined {
  return findPython().missing;
}

/** Why RTU tests cannot run here, or undefined when they can. */
export function rtuUnavailable(): string | undefined {
  if (spawnSync('socat', ['-V'], { stdio: 'ignore' }).status !== 0) return 'socat not found (apt-get install socat)';
  return pymodbusUnavailable();
}

type Stream = 'stdout' | 'stderr';

interface Managed {
  child: ChildProcessWithoutNullStreams;
  stderrTail(): string;
  exited: Promise<void>;
  /**
   * Resolves with the next line on `stream` matching `pattern`, scanning lines not yet consumed by an earlier
   * call first, so lines printed in one burst are not missed. Rejects on exit or timeout.
   */
  line(pattern: RegExp, stream: Stream): Promise<RegExpMatchArray>;
  onLine(stream: Stream, listener: (line: string) => void): void;
  kill(): Promise<void>;
}

function manage(command: string, args: string[], name: string): Managed {
  const child = spawn(command, args, { stdio: ['pipe', 'pipe', 'pipe'] });
  const history: Record<Stream, string[]> = { stdout: [], stderr: [] };
  const cursor: Record<Stream, number> = { stdout: 0, stderr: 0 };
  const listeners: Record<Stream, ((line: string) => void)[]> = { stdout: [], stderr: [] };
  const failureWaiters = new Set<(error: Error) => void>();
  let failure: Error | undefined;
  const killOnExit = () => child.kill('SIGKILL');
  process.once('exit', killOnExit);

  const stderrTail = () => history.stderr.slice(-50).join('\n');
  const fail = (error: Error) => {
    failure ??= error;
    for (const waiter of failureWaiters) waiter(failure);
  };
  const exited = new Promise<void>((resolve) => {
    child.once('exit', (code, signal) => {
      process.removeListener('exit', killOnExit);
      fail(new Error(`${name} exited (code ${code}, signal ${signal}); stderr:\n${stderrTail()}`));
      resolve();
    });
  });
  // Writing to a child that already exited raises EPIPE here; the exit handler reports that failure.
  child.stdin.on('error', () => {});
  child.once('error', (error) => fail(new Error(`${name} failed to start: ${error.message}`, { cause: error })));
  for (const stream of ['stdout', 'stderr'] as const) {
    createInterface({ input: child[stream] }).on('line', (text) => {
      history[stream].push(text);
      for (const listener of [...listeners[stream]]) listener(text);
    });
  }

  return {
    child,
    stderrTail,
    exited,
    onLine(stream, listener) {
      listeners[stream].push(listener);
    },
    line(pattern, stream) {
      const seen = history[stream];
      for (let i = cursor[stream]; i < seen.length; i++) {
        const match = (seen[i] as string).match(pattern);
        if (match) {
          cursor[stream] = i + 1;
          return Promise.resolve(match);
        }
      }
      if (failure) return Promise.reject(failure);
      return new Promise((resolve, reject) => {
        const done = () => {
          clearTimeout(timer);
          failureWaiters.delete(onFailure);
          listeners[stream].splice(listeners[stream].indexOf(listener) >>> 0, 1);
        };
        const listener = (text: string) => {
          const match = text.match(pattern);
          if (!match) return;
          cursor[stream] = history[stream].length;
          done();
          resolve(match);
        };
        const timer = setTimeout(() => {
          done();
          reject(
            new Error(`${name} printed no line matching ${pattern} within ${READY_TIMEOUT_MS} ms; stderr:\n${stderrTail()}`),
          );
        }, READY_TIMEOUT_MS);
        const onFailure = (error: Error) => {
          done();
          reject(error);
        };
        failureWaiters.add(onFailure);
        listeners[stream].push(listener);
      });
    },
    async kill() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 3000);
      await exited;
      clearTimeout(timer);
    },
  };
}

async function launchServer(
  image: RegisterImage,
  serverArgs: string[],
): Promise<{ proc: Managed; control: PymodbusControl; ready: RegExpMatchArray }> {
  const { python, missing } = findPython();
  if (!python) throw new Error(missing);
  const dir = mkdtempSync(join(tmpdir(), 'pymodbus-'));
  const imagePath = join(dir, 'image.json');
  writeFileSync(imagePath, JSON.stringify(image));
  const proc = manage(python, [SERVER_SCRIPT, imagePath, ...serverArgs], 'pymodbus');

  let nextId = 1;
  const pending = new Map<number, { resolve(r: Record<string, unknown>): void; reject(e: Error): void }>();
  proc.onLine('stdout', (line) => {
    if (!line.startsWith('REPLY ')) return;
    const reply = JSON.parse(line.slice(6)) as { id: number; error?: string } & Record<string, unknown>;
    const waiter = pending.get(reply.id);
    pending.delete(reply.id);
    if (reply.error) waiter?.reject(new Error(`pymodbus: ${reply.error}`));
    else waiter?.resolve(reply);
  });
  void proc.exited.then(() => {
    for (const w of pending.values()) w.reject(new Error(`pymodbus exited; stderr:\n${proc.stderrTail()}`));
    pending.clear();
  });
  const command = (body: Record<string, unknown>) =>
    new Promise<Record<string, unknown>>((resolve, reject) => {
      const id = nextId++;
      pending.set(id, { resolve, reject });
      proc.child.stdin.write(`${JSON.stringify({ id, ...body })}\n`);
    });

  let stopped = false;
  const control: PymodbusControl = {
    async get(unit, table, address, count = 1) {
      return (await command({ cmd: 'get', unit, table, address, count })).values as (number | boolean)[];
    },
    async set(unit, table, address, values) {
      await command({ cmd: 'set', unit, table, address, values });
    },
    async silence(unit, on = true) {
      await command({ cmd: 'silence', unit, on });
    },
    async delay(unit, ms) {
      await command({ cmd: 'delay', unit, ms });
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      // Closing stdin is the script's clean shutdown; the signal only covers a hung interpreter.
      proc.child.stdin.end();
      const timer = setTimeout(() => proc.child.kill('SIGKILL'), 3000);
      await proc.exited;
      clearTimeout(timer);
      rmSync(dir, { recursive: true, force: true });
    },
  };

  try {
    const ready = await proc.line(/^READY (\S+) (\S+)(?: (\d+))?$/, 'stdout');
    return { proc, control, ready };
  } catch (error) {
    await control.stop();
    throw error;
  }
}

/** Starts a Modbus TCP slave on 127.0.0.1. Without `port` the server binds port 0, so no port race exists. */
export async function startPymodbus({ image, port = 0 }: { image: RegisterImage; port?: number }): Promise<PymodbusTcpServer> {
  const { control, ready } = await launchServer(image, ['--port', String(port)]);
  return { ...control, port: Number(ready[3]) };
}

/**
 * Links two pseudo-terminals with socat and serves RTU from pymodbus on one of them. The other is the
 * "serial port" for the code under test.
 */
export async function startRtuPair({ image, baud = 19200 }: { image: RegisterImage; baud?: number }): Promise<RtuPair> {
  const socat = manage('socat', ['-d', '-d', 'pty,raw,echo=0', 'pty,raw,echo=0'], 'socat');
  const paths: string[] = [];
  try {
    const first = await socat.line(/PTY is (\S+)/, 'stderr');
    const second = await socat.line(/PTY is (\S+)/, 'stderr');
    await socat.line(/starting data transfer loop/, 'stderr');
    paths.push(first[1] as string, second[1] as string);
  } catch (error) {
    await socat.kill();
    throw error;
  }
  const [slavePath, clientPath] = paths as [string, string];
  let server: Awaited<ReturnType<typeof launchServer>>;
  try {
    server = await launchServer(image, ['--rtu', slavePath, '--baud', String(baud)]);
  } catch (error) {
    await socat.kill();
    throw error;
  }
  return {
    ...server.control,
    clientPath,
    slavePath,
    async stop() {
      await server.control.stop();
      await socat.kill();
    },
  };
}
