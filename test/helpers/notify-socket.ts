import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { waitFor } from './wait.js';

export interface NotifyMessage {
  readonly pid: number | null;
  readonly msg: string;
  /** Receive time, epoch seconds. */
  readonly at: number;
}

export interface NotifySocket {
  /** The value for $NOTIFY_SOCKET. */
  readonly address: string;
  readonly messages: NotifyMessage[];
  /** Messages that contain the assignment, e.g. "WATCHDOG=1". */
  having(assignment: string): NotifyMessage[];
  close(): Promise<void>;
}

const PY = ['/usr/bin/python3', 'python3'].find((p) => p === 'python3' || existsSync(p)) as string;

/** A datagram socket the test owns, standing in for systemd's notify socket. `address` is a path or "@abstract". */
export async function notifySocket(address: string): Promise<NotifySocket> {
  const child: ChildProcess = spawn(PY, [new URL('../fixtures/notify_receiver.py', import.meta.url).pathname, address], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  const messages: NotifyMessage[] = [];
  let ready = false;
  createInterface({ input: child.stdout! }).on('line', (line) => {
    const m = JSON.parse(line) as NotifyMessage & { ready?: boolean };
    if (m.ready) ready = true;
    else messages.push(m);
  });
  await waitFor(() => ready, { what: `notify socket ${address} bound` });
  return {
    address,
    messages,
    having: (a) => messages.filter((m) => m.msg.split('\n').includes(a)),
    close: async () => {
      if (child.exitCode !== null) return;
      const exited = new Promise((r) => child.once('exit', r));
      child.stdin?.end();
      await exited;
    },
  };
}
