/**
 * Hazard "a crash right after a trip forgets it", end to end with the real agent process: pump-1 overheats
 * on the simulator and trips; at a random moment 0-200 ms after the "asset tripped" log line the process
 * is killed with SIGKILL; the agent is started again on a config whose simulator no longer overheats (so a
 * latch after the restart can only come from what was made durable). Every time: the latch is restored
 * (the start line lists pump-1), the stop is re-asserted through the actuator, and after a clean stop the
 * trip is in the store as an open trip.
 *
 * Kills: SAFETY_KILLS (default 8; `npm run test:chaos` runs 50). SIGKILL keeps the kernel's page cache, so
 * this proves crash durability, not power-loss durability (docs/safety.md, docs/sync.md).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { openDb } from '../agent/store/db.js';
import { activeTrips } from '../agent/store/queries.js';
import { tempDir } from './helpers/tmp.js';
import { waitFor } from './helpers/wait.js';

const KILLS = Number(process.env.SAFETY_KILLS ?? 8);

const yaml = (db: string, overheat: boolean) => `
gateway: { id: gw-kill }
store: { path: ${db}, flush_interval: 200ms }
log: { level: info }
api: { enabled: false }
aggregation: { window: 1s }
sources:
  - id: sim
    type: simulator
    seed: 7
    rate: 50
    tick: 20ms
${overheat ? '    faults: [{ asset: pump-1, sensor: temperature, kind: overheat_ramp, start: 200ms, duration: 10m, magnitude: 6000 }]' : ''}
assets:
  - id: pump-1
    sensors:
      - { id: temperature, metric: temperature, unit: degC, source: sim }
detectors:
  - { id: overheat, type: threshold, asset: pump-1, sensor: temperature, setpoint: 90, delta_up: 5, delta_down: 10, severity: critical, trip: true }
actuators:
  - { id: log-stop, type: log, level: warn }
interlocks:
  - asset: pump-1
    reassert_every: 0
    actions: [{ actuator: log-stop, command: stop }]
`;

interface Run {
  child: ChildProcess;
  lines: () => Array<Record<string, unknown>>;
  exited: Promise<number | null>;
}

const children: ChildProcess[] = [];
afterEach(() => {
  for (const c of children.splice(0)) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
});

function startAgent(cfg: string): Run {
  const child = spawn(process.execPath, ['bin/edge-agent.js', 'run', '--config', cfg], { stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  let out = '';
  child.stdout?.on('data', (d) => (out += d));
  child.stderr?.on('data', (d) => (out += d));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const lines = () =>
    out
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => {
        try {
          return JSON.parse(l) as Record<string, unknown>;
        } catch {
          return {};
        }
      });
  return { child, lines, exited };
}

describe('hazard: a crash right after a trip forgets it (kill -9, real agent process)', () => {
  it(`restores the latch, re-asserts the stop and has the trip in the store after each of ${KILLS} kills 0-200 ms after a trip`, async () => {
    const delays: number[] = [];
    for (let i = 0; i < KILLS; i++) {
      const dir = tempDir('edge-agent-kill-');
      try {
        const db = join(dir.path, 'agent.db');
        const hot = join(dir.path, 'hot.yaml');
        const calm = join(dir.path, 'calm.yaml');
        writeFileSync(hot, yaml(db, true));
        writeFileSync(calm, yaml(db, false));

        const first = startAgent(hot);
        await waitFor(() => first.lines().some((l) => l.msg === 'asset tripped'), { what: 'the trip', timeoutMs: 30_000 });
        const delay = Math.floor(Math.random() * 201);
        delays.push(delay);
        await new Promise((r) => setTimeout(r, delay));
        first.child.kill('SIGKILL');
        await first.exited;

        const second = startAgent(calm);
        const started = await waitFor(() => second.lines().find((l) => l.msg === 'agent started'), {
          what: 'the restart',
          timeoutMs: 30_000,
        });
        expect(started.tripped, `kill ${i} after ${delay} ms`).toEqual(['pump-1']);
        await waitFor(
          () =>
            second
              .lines()
              .some((l) => l.msg === 'actuator command' && (l.reason as { phase?: string } | undefined)?.phase === 'reassert'),
          { what: `the re-asserted stop (kill ${i} after ${delay} ms)`, timeoutMs: 10_000 },
        );
        second.child.kill('SIGTERM');
        expect(await second.exited).toBe(0);
        const d = openDb(db, 'NORMAL', true);
        try {
          expect(
            activeTrips(d).map((t) => [t.asset, t.detector]),
            `kill ${i} after ${delay} ms`,
          ).toEqual([['pump-1', 'overheat']]);
        } finally {
          d.close();
        }
      } finally {
        dir.remove();
      }
    }
    expect(delays).toHaveLength(KILLS);
  }, 600_000);
});
