/**
 * `edge-agent ack` end to end: the CLI process acknowledges a real trip through the running agent's
 * real HTTP API, and the interlock unlatches with the operator's name in the audit trail.
 */
import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { openDb } from '../agent/store/db.js';
import { apiConfigYaml, startService, TOKEN } from './helpers/service.js';
import { tempDir } from './helpers/tmp.js';
import { waitFor } from './helpers/wait.js';

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const cli = (args: string[]) =>
  new Promise<{ status: number; stdout: string; stderr: string }>((resolve) => {
    execFile(
      process.execPath,
      ['bin/edge-agent.js', ...args],
      { encoding: 'utf8', env: { PATH: process.env.PATH } },
      (err, stdout, stderr) => resolve({ status: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
  });

describe('edge-agent ack against the running agent', () => {
  it('acknowledges a real trip through the API; a wrong token is refused and the trip stays latched', async () => {
    const dir = tempDir();
    cleanups.push(dir.remove);
    const dbPath = join(dir.path, 'agent.db');
    // The overheat lasts 3 s, then the temperature falls back: the reset permissive lets the ack through.
    const { service, base } = await startService(
      apiConfigYaml(dbPath).replace('duration: 10m, magnitude: 6000', 'duration: 3s, magnitude: 60'),
    );
    cleanups.push(() => service.stop());
    const agent = service.agent;
    if (!agent) throw new Error('service did not start an agent');
    await waitFor(() => agent.interlocks.state('pump-1') === 'tripped', { what: 'pump-1 trip', timeoutMs: 30_000 });

    const port = new URL(base).port;
    const wrong = join(dir.path, 'wrong.yaml');
    writeFileSync(wrong, `api: { listen: '127.0.0.1:${port}', token: not-the-token }\n`);
    const refused = await cli(['ack', 'pump-1', '--by', 'Mallory', '--config', wrong]);
    expect(refused.status).toBe(77);
    expect(agent.interlocks.state('pump-1')).toBe('tripped');

    await waitFor(() => agent.interlocks.raisedConditions('pump-1').length === 0, {
      what: 'the overheat to clear',
      timeoutMs: 30_000,
    });
    const right = join(dir.path, 'right.yaml');
    writeFileSync(right, `api: { listen: '127.0.0.1:${port}', token: ${TOKEN} }\n`);
    const ok = await cli(['ack', 'pump-1', '--by', 'Jana Novak', '--config', right]);
    expect(ok.stderr).toBe('');
    expect(ok.status).toBe(0);
    expect(agent.interlocks.state('pump-1')).not.toBe('tripped');

    await agent.store.flush();
    const db = openDb(dbPath, 'NORMAL', true);
    const acks = db
      .prepare("SELECT payload FROM events WHERE kind = 'audit' AND json_extract(payload, '$.type') = 'ack'")
      .all() as Array<{
      payload: string;
    }>;
    db.close();
    expect(acks.map((a) => JSON.parse(a.payload).by)).toEqual(['Jana Novak']);
  });
});
