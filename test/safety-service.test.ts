/**
 * Hazards at the service boundary, with the real Service, HTTP API, notify socket and CLI:
 *  - a full or corrupt store: the store path cannot be opened (it lies under a regular file); the agent
 *    still trips the machine, /readyz answers 503 "degraded" naming the store, and STATUS= says so;
 *  - an acknowledgement while the cause holds, through `edge-agent ack`: refused, non-zero exit, the
 *    agent's sentence naming the raised detector (contract C).
 */
import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { EX_REFUSED } from '../agent/ack-client.js';
import { openDb } from '../agent/store/db.js';
import { notifySocket } from './helpers/notify-socket.js';
import { apiConfigYaml, startService, TOKEN } from './helpers/service.js';
import { tempDir } from './helpers/tmp.js';
import { waitFor } from './helpers/wait.js';

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

describe('hazard: a full or corrupt store', () => {
  it('an unopenable store: the machine still trips, /readyz is 503 "degraded" and STATUS= says so', async () => {
    const dir = tempDir();
    cleanups.push(dir.remove);
    const blocker = join(dir.path, 'not-a-dir');
    writeFileSync(blocker, 'x');
    const sock = await notifySocket(join(dir.path, 'notify.sock'));
    cleanups.push(() => sock.close());
    const { service, base } = await startService(apiConfigYaml(join(blocker, 'agent.db')), 'test.yaml', {
      NOTIFY_SOCKET: sock.address,
    });
    cleanups.push(() => service.stop());
    await waitFor(() => service.agent?.interlocks.state('pump-1') === 'tripped', { what: 'the trip', timeoutMs: 30_000 });
    const res = await fetch(`${base}/readyz`);
    expect(res.status).toBe(503);
    const body = (await res.json()) as { status: string; reasons: string[] };
    expect(body.status).toBe('degraded');
    expect(body.reasons.join('\n')).toMatch(/event store cannot be opened .*interlocks keep protecting the machines/);
    expect(body.reasons.join('\n')).toMatch(/latch journal unusable/);
    expect((await fetch(`${base}/healthz`)).status).toBe(200);
    const ready = await waitFor(() => sock.messages.find((m) => m.msg.includes('READY=1')), { what: 'READY=1' });
    expect(ready.msg).toMatch(/STATUS=running; .*DEGRADED: event store cannot be opened/);
  });
});

describe('hazard: an acknowledgement releases a machine whose fault is still present (CLI)', () => {
  it('edge-agent ack exits non-zero with the sentence naming the raised detector; the asset stays tripped', async () => {
    const dir = tempDir();
    cleanups.push(dir.remove);
    const { service, base } = await startService(apiConfigYaml(join(dir.path, 'agent.db')));
    cleanups.push(() => service.stop());
    await waitFor(() => service.agent?.interlocks.state('pump-1') === 'tripped', { what: 'the trip', timeoutMs: 30_000 });
    const cfg = join(dir.path, 'cli.yaml');
    writeFileSync(cfg, `api:\n  listen: ${new URL(base).host}\n  token: ${TOKEN}\nsources: []\n`);
    const res = await new Promise<{ status: number; stderr: string }>((resolve) =>
      execFile(
        process.execPath,
        ['bin/edge-agent.js', 'ack', 'pump-1', '--by', 'Jana Novak', '--config', cfg],
        { encoding: 'utf8', env: { PATH: process.env.PATH } },
        (err, _stdout, stderr) => resolve({ status: err ? ((err as { code?: number }).code ?? 1) : 0, stderr }),
      ),
    );
    expect(res.status).toBe(EX_REFUSED);
    expect(res.stderr).toContain('stays tripped: its tripping condition still holds (overheat on temperature)');
    expect(service.agent?.interlocks.state('pump-1')).toBe('tripped');
    const audit = service.agent?.interlocks.raisedConditions('pump-1');
    expect(audit).toEqual([{ detector: 'overheat', sensor: 'temperature' }]);
  });
});

describe('hazard: a config reload that weakens protection', () => {
  it('the latch survives the reload, and the change is audited with its safety warnings', async () => {
    const dir = tempDir();
    cleanups.push(dir.remove);
    const db = join(dir.path, 'agent.db');
    const file = join(dir.path, 'agent.yaml');
    const yaml = apiConfigYaml(db);
    writeFileSync(file, yaml);
    const { service } = await startService(yaml, file);
    cleanups.push(() => service.stop());
    await waitFor(() => service.agent?.interlocks.state('pump-1') === 'tripped', { what: 'the trip', timeoutMs: 30_000 });
    // Weaker: the overheat limit far above the process, and a silent sensor only alarms.
    writeFileSync(
      file,
      yaml
        .replace('setpoint: 90, delta_up: 5', 'setpoint: 5000, delta_up: 5')
        .replace(
          'actions: [{ actuator: log-stop, command: stop }]',
          'fail_safe: { policy: alarm }\n    actions: [{ actuator: log-stop, command: stop }]',
        ),
    );
    const before = service.agent;
    await service.reload();
    const agent = service.agent;
    expect(agent).not.toBe(before);
    expect(agent?.interlocks.state('pump-1')).toBe('tripped');
    await agent?.store.flush();
    const d = openDb(db, 'NORMAL', true);
    try {
      const audits = (
        d
          .prepare(
            "SELECT payload FROM events WHERE kind = 'audit' AND json_extract(payload, '$.type') LIKE 'config_%' ORDER BY seq",
          )
          .all() as Array<{
          payload: string;
        }>
      ).map((r) => JSON.parse(r.payload) as { type: string; warnings: string[] });
      expect(audits.map((a) => a.type)).toEqual(['config_loaded', 'config_reloaded']);
      expect(audits[1]?.warnings.join('\n')).toContain('fail_safe.policy "alarm" only raises an alarm');
      // The reassert after the restart of the agent's components is in the store too.
      const reasserts = d
        .prepare("SELECT COUNT(*) AS n FROM events WHERE json_extract(payload, '$.type') = 'reassert'")
        .get() as {
        n: number;
      };
      expect(reasserts.n).toBeGreaterThan(0);
    } finally {
      d.close();
    }
  });
});

describe('hazard: a reading past the sensor range never trips (validate)', () => {
  it('edge-agent validate warns about every tripping detector that would only alarm, and still exits 0', async () => {
    const dir = tempDir();
    cleanups.push(dir.remove);
    const file = join(dir.path, 'weak.yaml');
    writeFileSync(
      file,
      apiConfigYaml(join(dir.path, 'agent.db'))
        .replace(
          '{ id: temperature, metric: temperature, unit: degC, source: sim }',
          '{ id: temperature, metric: temperature, unit: degC, source: sim, max: 200, range_trip: false }',
        )
        .replace(
          'actions: [{ actuator: log-stop, command: stop }]',
          'fail_safe: { policy: alarm }\n    actions: [{ actuator: log-stop, command: stop }]',
        ),
    );
    const res = await new Promise<{ status: number; stdout: string; stderr: string }>((resolve) =>
      execFile(
        process.execPath,
        ['bin/edge-agent.js', 'validate', '--config', file],
        { encoding: 'utf8', env: { PATH: process.env.PATH } },
        (err, stdout, stderr) => resolve({ status: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
      ),
    );
    expect(res.status).toBe(0);
    expect(res.stdout).toContain(': OK');
    expect(res.stderr).toContain('warning: interlocks.0.fail_safe.policy: tripping detector "overheat" reads temperature');
    expect(res.stderr).toContain(
      'warning: detectors.0.sensor: tripping detector "overheat": sensor "temperature" has range_trip: false',
    );
  });
});
