/**
 * The agent under a stand-in for systemd: NOTIFY_SOCKET points at a datagram socket this test owns.
 * It must send READY=1, keep sending WATCHDOG=1 while healthy, stop when the event loop (and with it
 * the pipeline) hangs, survive a bad config on SIGHUP, and send STOPPING=1 on SIGTERM.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { type NotifySocket, notifySocket } from './helpers/notify-socket.js';
import { tempDir } from './helpers/tmp.js';
import { waitFor } from './helpers/wait.js';

const yaml = (db: string, extra = '') => `
store: { path: ${db}, flush_interval: 50ms }
log: { level: info }
api: { listen: '127.0.0.1:0' }
sources:
  - { id: sim, type: simulator, seed: 3, rate: 50, tick: 20ms }
assets:
  - id: pump-1
    sensors:
      - { id: temperature, metric: temperature, unit: degC, source: sim }
${extra}`;

interface Running {
  child: ChildProcess;
  logs: Array<{ level: string; msg: string; [k: string]: unknown }>;
  exit: Promise<number | null>;
}

const cleanups: Array<() => void | Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function startAgent(cfg: string, env: Record<string, string>, preload?: string): Running {
  const args = [...(preload ? ['--import', preload] : []), 'bin/edge-agent.js', 'run', '--config', cfg];
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
  const logs: Running['logs'] = [];
  let buf = '';
  child.stdout?.on('data', (d: Buffer) => {
    buf += d.toString();
    const lines = buf.split('\n');
    buf = lines.pop() ?? '';
    for (const l of lines) if (l.trim()) logs.push(JSON.parse(l));
  });
  child.stderr?.on('data', (d: Buffer) => process.stderr.write(d));
  const exit = new Promise<number | null>((r) => child.once('exit', r));
  cleanups.push(() => {
    if (child.exitCode === null) child.kill('SIGKILL');
  });
  return { child, logs, exit };
}

async function setup(address: (dir: string) => string): Promise<{ dir: string; cfg: string; sock: NotifySocket }> {
  const dir = tempDir();
  cleanups.push(dir.remove);
  const cfg = join(dir.path, 'agent.yaml');
  writeFileSync(cfg, yaml(join(dir.path, 'agent.db')));
  const sock = await notifySocket(address(dir.path));
  cleanups.push(() => sock.close());
  return { dir: dir.path, cfg, sock };
}

describe('systemd notify protocol', () => {
  it('READY=1 from the main PID, periodic WATCHDOG=1, a bad SIGHUP config rejected, STOPPING=1 on SIGTERM', async () => {
    const { cfg, sock } = await setup((d) => join(d, 'notify.sock'));
    const agent = startAgent(cfg, { NOTIFY_SOCKET: sock.address, WATCHDOG_USEC: '900000' });
    await waitFor(() => sock.having('READY=1').length > 0, { what: 'READY=1', timeoutMs: 30_000 });
    const ready = sock.having('READY=1')[0];
    // Sent by the agent itself (native transport), so NotifyAccess=main accepts it.
    expect(ready?.pid).toBe(agent.child.pid);
    // READY=1 is sent just before the log line, which can still be on its way through the agent's stdout.
    const readyLog = await waitFor(() => agent.logs.find((l) => l.msg === 'service ready'), {
      what: "the 'service ready' log line",
    });
    expect(readyLog.notify).toBe('native');
    await waitFor(() => sock.having('WATCHDOG=1').length >= 3, { what: 'three WATCHDOG=1', timeoutMs: 30_000 });

    // A config with a mistake: rejected with the reason, the agent keeps running and pinging.
    writeFileSync(cfg, yaml('/nonexistent/x.db').replace('rate: 50', 'rate: fast'));
    agent.child.kill('SIGHUP');
    const rejected = await waitFor(() => agent.logs.find((l) => l.msg.startsWith('config reload rejected')), {
      what: 'reload rejected',
    });
    expect(rejected.level).toBe('error');
    expect(JSON.stringify(rejected.problems)).toContain('sources[0].rate');
    const pings = sock.having('WATCHDOG=1').length;
    await waitFor(() => sock.having('WATCHDOG=1').length >= pings + 2, { what: 'pings after the rejected reload' });

    agent.child.kill('SIGTERM');
    expect(await agent.exit).toBe(0);
    await waitFor(() => sock.having('STOPPING=1').length > 0, { what: 'STOPPING=1' });
    const order = sock.messages.map((m) => m.msg.split('\n')[0]);
    expect(order.indexOf('STOPPING=1')).toBeGreaterThan(order.indexOf('READY=1'));
    expect(agent.logs.find((l) => l.msg === 'agent stopped')).toBeDefined();
  });

  it('a hung event loop (and pipeline) stops the watchdog pings; the stall is reported when it ends', async () => {
    const { cfg, sock } = await setup((d) => join(d, 'notify.sock'));
    const hangMs = 5000;
    const preload = new URL('./fixtures/hang-on-sigusr2.mjs', import.meta.url).pathname;
    const agent = startAgent(
      cfg,
      { NOTIFY_SOCKET: sock.address, WATCHDOG_USEC: '2000000', EDGE_TEST_HANG_MS: String(hangMs) },
      preload,
    );
    await waitFor(() => sock.having('WATCHDOG=1').length >= 3, { what: 'pings before the hang', timeoutMs: 30_000 });
    const before = sock.having('WATCHDOG=1').length;
    const hungAt = Date.now() / 1000;
    agent.child.kill('SIGUSR2');
    const failed = await waitFor(() => agent.logs.find((l) => l.msg.startsWith('liveness check failed')), {
      what: 'the liveness failure',
      timeoutMs: 30_000,
    });
    expect(failed.level).toBe('error');
    expect(String(failed.reasons)).toContain('event loop stalled');
    await waitFor(() => sock.having('WATCHDOG=1').length > before + 1, { what: 'pings after the hang' });
    // No ping arrived while the loop was blocked: the first one after the hang came at least hangMs later
    // than the last one before it (systemd, with WatchdogSec below that, would have restarted the agent).
    const pings = sock.having('WATCHDOG=1');
    const lastBefore = pings.filter((p) => p.at <= hungAt).at(-1);
    const firstAfter = pings.find((p) => p.at > hungAt);
    expect(lastBefore && firstAfter).toBeTruthy();
    expect((firstAfter!.at - lastBefore!.at) * 1000).toBeGreaterThanOrEqual(hangMs);
    agent.child.kill('SIGTERM');
    expect(await agent.exit).toBe(0);
  });

  it('supports an abstract NOTIFY_SOCKET (@name) through the helper transport', async () => {
    const name = `@edge-agent-test-${process.pid}-${Date.now()}`;
    const { cfg, sock } = await setup(() => name);
    const agent = startAgent(cfg, { NOTIFY_SOCKET: sock.address });
    await waitFor(() => sock.having('READY=1').length > 0, { what: 'READY=1 on the abstract socket', timeoutMs: 30_000 });
    const ready = await waitFor(() => agent.logs.find((l) => l.msg === 'service ready'), {
      what: "the 'service ready' log line",
    });
    expect(ready.notify).toBe('helper');
    agent.child.kill('SIGTERM');
    expect(await agent.exit).toBe(0);
    await waitFor(() => sock.having('STOPPING=1').length > 0, { what: 'STOPPING=1 on the abstract socket' });
  });
});
