/**
 * The systemd notify protocol (sd_notify(3)): newline-separated `VAR=value` assignments sent as one
 * datagram to the AF_UNIX socket named by $NOTIFY_SOCKET, a filesystem path or, with a leading "@",
 * a Linux abstract socket.
 *
 * Node has no AF_UNIX datagram sockets, so two transports:
 * - native: `unix-dgram`, a small addon compiled at install on every platform (x64, arm64, armv7;
 *   glibc and musl: it needs only a C++ compiler, like better-sqlite3). It sends from the main PID,
 *   which is what the unit's `NotifyAccess=main` accepts. systemd passes a filesystem path
 *   (/run/systemd/notify) to services, so this is the path taken under systemd.
 * - helper: one long-lived `python3` child that forwards each message. Used only for abstract sockets,
 *   which `unix-dgram` cannot address (it copies the path as a C string, so a leading NUL truncates
 *   it), or when the addon failed to load. Its datagrams come from the helper's PID, which
 *   `NotifyAccess=main` discards, so the agent says so at ERROR when it starts the helper: the unit
 *   then needs `NotifyAccess=all`.
 * Without $NOTIFY_SOCKET (not started by systemd) every call is a no-op.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import type { Logger } from '../log.js';
import { RateLimitedLog } from '../log.js';

export type NotifyAddress =
  | { readonly kind: 'path'; readonly path: string }
  | { readonly kind: 'abstract'; readonly name: string };

/** Parses $NOTIFY_SOCKET. Undefined when unset, empty, or neither absolute nor abstract (sd_notify ignores those too). */
export function parseNotifySocket(value: string | undefined): NotifyAddress | undefined {
  if (!value) return undefined;
  if (value.startsWith('@') && value.length > 1) return { kind: 'abstract', name: value.slice(1) };
  if (value.startsWith('/')) return { kind: 'path', path: value };
  return undefined;
}

/** Watchdog period from $WATCHDOG_USEC in ms, when it is meant for this process ($WATCHDOG_PID), else undefined. */
export function watchdogTimeoutMs(env: NodeJS.ProcessEnv, pid = process.pid): number | undefined {
  const usec = Number(env.WATCHDOG_USEC);
  if (!Number.isFinite(usec) || usec <= 0) return undefined;
  if (env.WATCHDOG_PID && Number(env.WATCHDOG_PID) !== pid) return undefined;
  return usec / 1000;
}

export interface Notifier {
  /** 'none' when not run under a notify-aware supervisor. */
  readonly transport: 'native' | 'helper' | 'none';
  /** Sends one message, e.g. "READY=1\nSTATUS=running". Never throws; failures are logged, rate-limited. */
  notify(message: string): void;
  close(): void;
}

const HELPER = `
import json, socket, sys
addr = sys.argv[1]
if addr.startswith('@'):
    addr = '\\0' + addr[1:]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
for line in sys.stdin:
    try:
        s.sendto(json.loads(line).encode(), addr)
    except OSError as e:
        print(e, file=sys.stderr, flush=True)
`;

interface NativeSocket {
  send(buf: Buffer, offset: number, length: number, dest: string, cb?: (err?: Error) => void): void;
  on(event: 'error', listener: (err: Error) => void): void;
  close(): void;
}

/** The addon's socket factory, or the reason it cannot be loaded. */
function loadNative(): { create: () => NativeSocket } | { error: string } {
  try {
    const mod = createRequire(import.meta.url)('unix-dgram') as { createSocket(type: 'unix_dgram'): NativeSocket };
    return { create: () => mod.createSocket('unix_dgram') };
  } catch (err) {
    return { error: (err as Error).message };
  }
}

/**
 * A notifier for $NOTIFY_SOCKET. Removes NOTIFY_SOCKET from the environment so that child processes
 * do not talk to systemd on our behalf (like sd_notify's unset_environment).
 */
export function createNotifier(logger: Logger, env: NodeJS.ProcessEnv = process.env): Notifier {
  const raw = env.NOTIFY_SOCKET;
  const addr = parseNotifySocket(raw);
  delete env.NOTIFY_SOCKET;
  if (!addr) return { transport: 'none', notify() {}, close() {} };
  const limited = new RateLimitedLog(60_000);
  const fail = (err: string) => limited.log(logger, 'warn', 'sd_notify', { socket: raw, err }, 'cannot notify systemd');

  const native = addr.kind === 'path' ? loadNative() : undefined;
  if (native && 'create' in native && addr.kind === 'path') {
    const sock = native.create();
    sock.on('error', (err) => fail(err.message));
    return {
      transport: 'native',
      notify(message) {
        const buf = Buffer.from(message);
        try {
          sock.send(buf, 0, buf.length, addr.path, (err) => err && fail(err.message));
        } catch (err) {
          fail((err as Error).message);
        }
      },
      close() {
        try {
          sock.close();
        } catch {}
      },
    };
  }

  logger.error(
    {
      socket: raw,
      reason:
        addr.kind === 'abstract'
          ? 'abstract socket'
          : `unix-dgram did not load: ${native && 'error' in native ? native.error : '?'}`,
    },
    'sd_notify goes through a python3 helper, so its messages come from another PID: the unit needs NotifyAccess=all (README, "Install as a service")',
  );
  let child: ChildProcess | undefined = spawn('python3', ['-c', HELPER, raw as string], {
    stdio: ['pipe', 'ignore', 'pipe'],
  });
  child.on('error', (err) => {
    fail(`notify helper (python3) failed: ${err.message}`);
    child = undefined;
  });
  child.on('exit', () => {
    child = undefined;
  });
  child.stderr?.on('data', (d: Buffer) => fail(d.toString().trim()));
  child.stdin?.on('error', () => {});
  child.unref();
  // The helper must never keep the agent alive.
  for (const s of [child.stdin, child.stderr]) (s as unknown as { unref?: () => void } | null)?.unref?.();
  return {
    transport: 'helper',
    notify(message) {
      child?.stdin?.write(`${JSON.stringify(message)}\n`);
    },
    close() {
      child?.stdin?.end();
      child = undefined;
    },
  };
}
