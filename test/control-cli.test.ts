/**
 * `edge-agent control keygen` and `control sign` as a technician uses them: the key pair they make
 * and the message they sign are accepted by the agent's verification; a wrong key is not.
 */
import { execFile } from 'node:child_process';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { parseKeys, verifyMessage } from '../agent/control/envelope.js';
import { tempDir } from './helpers/tmp.js';

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const cli = (args: string[], input?: string) =>
  new Promise<{ status: number; stdout: string; stderr: string }>((resolve) => {
    const child = execFile(
      process.execPath,
      ['bin/edge-agent.js', ...args],
      { encoding: 'utf8', env: { PATH: process.env.PATH } },
      (err, stdout, stderr) => resolve({ status: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
    child.stdin?.end(input ?? '');
  });

describe('edge-agent control keygen / sign', () => {
  it('makes a key pair and signs a command the agent verifies, with the gateway id from the config', async () => {
    const dir = tempDir();
    cleanups.push(dir.remove);
    const pem = join(dir.path, 'tech.pem');
    const gen = await cli(['control', 'keygen', '--key-id', 'tech-1', '--out', pem]);
    expect(gen.status, gen.stderr).toBe(0);
    expect(statSync(pem).mode & 0o777).toBe(0o600);
    const keys = parseKeys(gen.stdout, 'stdout');
    expect([...keys.keys()]).toEqual(['tech-1']);
    expect((await cli(['control', 'keygen', '--key-id', 'tech-1', '--out', pem])).status).not.toBe(0);

    const config = join(dir.path, 'agent.yaml');
    writeFileSync(
      config,
      `gateway: { id: gw-9 }
sources: [{ id: sim, type: simulator }]
assets: [{ id: p, sensors: [{ id: t, metric: temperature, unit: degC, source: sim }] }]
`,
    );
    const cmdFile = join(dir.path, 'cmd.json');
    writeFileSync(cmdFile, JSON.stringify({ op: 'set', detector: 'hot', params: { setpoint: 75 }, id: 'tech-msg-1' }));
    const signed = await cli([
      'control',
      'sign',
      '--key',
      pem,
      '--key-id',
      'tech-1',
      '--by',
      'Jana',
      '--lifetime',
      '2m',
      '--config',
      config,
      cmdFile,
    ]);
    expect(signed.status, signed.stderr).toBe(0);
    const now = Date.now();
    const res = verifyMessage(signed.stdout.trim(), { keys, gatewayId: 'gw-9', now, maxLifetimeMs: 3_600_000 });
    expect(res).toMatchObject({
      ok: true,
      keyId: 'tech-1',
      body: { id: 'tech-msg-1', by: 'Jana', gateway_id: 'gw-9', params: { setpoint: 75 } },
    });
    if (res.ok) expect(Date.parse(res.body.expires_at) - Date.parse(res.body.issued_at)).toBe(120_000);
    // From stdin, for another gateway: refused by this one.
    const other = await cli(
      ['control', 'sign', '--key', pem, '--key-id', 'tech-1', '--gateway', 'gw-1'],
      readFileSync(cmdFile, 'utf8'),
    );
    expect(verifyMessage(other.stdout.trim(), { keys, gatewayId: 'gw-9', now, maxLifetimeMs: 3_600_000 })).toMatchObject({
      ok: false,
      kind: 'wrong_gateway',
    });
    expect((await cli(['control', 'sign', '--key-id', 'tech-1'])).status).toBe(64);
  }, 60_000);
});
