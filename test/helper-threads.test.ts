/**
 * The real agent process lowers its helper threads (store writer, libuv pool) to `gateway.helper_nice`
 * and leaves its main thread (readings → stops) and V8's platform threads at the process's priority; a reload
 * that raises the value applies without restarting the agent; 0 leaves every thread as it started.
 * Thread priorities are read from /proc/<pid>/task/<tid>/stat, as `top -H` shows them (Linux only, as
 * the feature is).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { getPriority } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { tempDir } from './helpers/tmp.js';
import { waitFor } from './helpers/wait.js';

const yaml = (db: string, nice: number) => `
gateway: { id: gw-threads, helper_nice: ${nice} }
store: { path: ${db}, flush_interval: 50ms }
log: { level: info }
api: { enabled: false }
aggregation: { window: 1s }
sources:
  - { id: sim, type: simulator, seed: 3, rate: 50, tick: 20ms }
assets:
  - id: pump-1
    sensors:
      - { id: temperature, metric: temperature, unit: degC, source: sim }
`;

const children: ChildProcess[] = [];
const dirs: Array<{ remove(): void }> = [];
afterEach(() => {
  for (const c of children.splice(0)) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  for (const d of dirs.splice(0)) d.remove();
});

function newDir(prefix: string): string {
  const d = tempDir(prefix);
  dirs.push(d);
  return d.path;
}

/** Nice value of every thread of `pid`, by thread id (field 19 of stat, after the command in parentheses). */
function threadNices(pid: number): Map<number, number> {
  const out = new Map<number, number>();
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
      out.set(Number(tid), Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[16]));
    } catch {
      // The thread ended between the listing and the read.
    }
  }
  return out;
}

/** The first JSON log line whose msg is `msg`. */
function logLine(out: string, msg: string): Record<string, unknown> | undefined {
  for (const l of out.split('\n')) {
    if (!l.startsWith('{')) continue;
    try {
      const o = JSON.parse(l) as Record<string, unknown>;
      if (typeof o.msg === 'string' && o.msg.startsWith(msg)) return o;
    } catch {
      // a partial line
    }
  }
  return undefined;
}

/** The agent on its own config with `helper_nice: nice`; `configure` rewrites that file for a reload. */
function start(nice: number) {
  const dir = newDir('threads-');
  const cfg = join(dir, 'agent.yaml');
  const configure = (n: number) => writeFileSync(cfg, yaml(join(dir, 'agent.db'), n));
  configure(nice);
  const child = spawn(process.execPath, ['bin/edge-agent.js', 'run', '--config', cfg], { stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  let out = '';
  child.stdout?.on('data', (d) => (out += d));
  child.stderr?.on('data', (d) => (out += d));
  return { child, pid: child.pid as number, log: () => out, configure };
}

/** SIGTERM, and the exit code. */
function stop(child: ChildProcess): Promise<unknown> {
  child.kill('SIGTERM');
  return new Promise((r) => child.once('exit', r));
}

describe.runIf(process.platform === 'linux')('helper threads', () => {
  const parentNice = getPriority();

  it('are lowered to helper_nice while the main thread and the V8 platform threads keep their priority, and a reload raises the value in place', async () => {
    const { child, pid, log, configure } = start(15);
    const report = await waitFor(() => logLine(log(), 'helper threads lowered'), {
      what: 'the agent to lower its helper threads',
      timeoutMs: 30_000,
    });
    const kept = new Set(report.kept as number[]);
    // The main thread and V8's platform threads (Node starts at least one).
    expect(kept.has(pid)).toBe(true);
    expect(kept.size).toBeGreaterThanOrEqual(2);
    // libuv's pool (4 threads) and the store's writer at least.
    expect(report.lowered).toBeGreaterThanOrEqual(5);
    const want = Math.max(15, parentNice);
    const nices = threadNices(pid);
    for (const [tid, v] of nices) expect(v, `thread ${tid}`).toBe(kept.has(tid) ? parentNice : want);
    expect([...nices.values()].filter((v) => v === want).length).toBeGreaterThanOrEqual(5);

    configure(19);
    child.kill('SIGHUP');
    await waitFor(() => log().includes('config reloaded'), { what: 'the reload' });
    for (const [tid, v] of threadNices(pid))
      expect(v, `thread ${tid}`).toBe(kept.has(tid) ? parentNice : Math.max(19, parentNice));
    // In place: the agent was not restarted for it.
    expect(log()).not.toContain('agent stopped');
    expect(await stop(child)).toBe(0);
  });

  it('0 leaves every thread at the priority it started with', async () => {
    const { child, pid, log } = start(0);
    await waitFor(() => log().includes('service ready'), { what: 'the agent to start', timeoutMs: 30_000 });
    const nices = threadNices(pid);
    expect(nices.size).toBeGreaterThanOrEqual(6);
    for (const [tid, v] of nices) expect(v, `thread ${tid}`).toBe(parentNice);
    expect(await stop(child)).toBe(0);
  });
});
