import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { formatConfigError, loadConfigFile, parseConfig } from '../agent/config/load.js';

const CASES = join(import.meta.dirname, 'config-cases');

describe('golden bad configurations', () => {
  const cases = readdirSync(CASES, { withFileTypes: true }).filter((d) => d.isDirectory());
  it('has cases', () => expect(cases.length).toBeGreaterThanOrEqual(5));
  for (const c of cases) {
    it(c.name, async () => {
      const dir = join(CASES, c.name);
      const envFile = join(dir, 'env.json');
      const env = existsSync(envFile) ? JSON.parse(readFileSync(envFile, 'utf8')) : {};
      const res = await parseConfig(readFileSync(join(dir, 'config.yaml'), 'utf8'), 'config.yaml', env);
      expect(res.ok).toBe(false);
      const got = res.ok ? '' : res.errors.map(formatConfigError).join('\n');
      expect(got).toBe(readFileSync(join(dir, 'expected.txt'), 'utf8').trimEnd());
    });
  }
});

describe('the shipped configuration', () => {
  it('agent.config.yaml validates', async () => {
    const res = await loadConfigFile('agent.config.yaml', {});
    expect(res.ok ? [] : res.errors.map(formatConfigError)).toEqual([]);
  });

  it('substitutes environment variables, with defaults', async () => {
    const text = readFileSync('agent.config.yaml', 'utf8');
    const withEnv = await parseConfig(text, 'x.yaml', { EDGE_GATEWAY_ID: 'gw-7' });
    const without = await parseConfig(text, 'x.yaml', {});
    expect(withEnv.ok && withEnv.config.gateway.id).toBe('gw-7');
    expect(without.ok && without.config.gateway.id).toBe('gateway-1');
  });

  it('applies defaults and parses durations', async () => {
    const res = await parseConfig(
      'sources: [{id: s, type: simulator}]\nassets: [{id: a, sensors: [{id: t, metric: temperature, source: s}]}]\n',
      'x.yaml',
    );
    expect(res.ok).toBe(true);
    if (!res.ok) return;
    expect(res.config.store).toEqual({
      path: './data/agent.db',
      synchronous: 'FULL',
      flush_interval: 200,
      batch_size: 2000,
      max_bytes: 1_000_000_000,
      min_free_bytes: 100_000_000,
      retention_age: 86_400_000,
      retention_bytes: 256_000_000,
      memory_buffer: 200_000,
      startup_check: 'quick',
    });
    expect(res.config.aggregation.window).toBe(10_000);
    expect(res.config.sources[0]).toMatchObject({ id: 's', type: 'simulator', rate: 10, tick: 50, seed: 1, faults: [] });
  });
});

describe('edge-agent validate', () => {
  const cli = (args: string[], env: NodeJS.ProcessEnv = {}) =>
    spawnSync(process.execPath, ['bin/edge-agent.js', ...args], { encoding: 'utf8', env: { PATH: process.env.PATH, ...env } });

  it('exits 0 on agent.config.yaml', () => {
    const r = cli(['validate', '--config', 'agent.config.yaml']);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/OK \(1 sources, 3 assets, 9 sensors/);
  });

  it('exits 78 and prints every problem with its line', () => {
    const file = join(CASES, 'three-mistakes', 'config.yaml');
    const r = cli(['validate', '--config', file]);
    expect(r.status).toBe(78);
    expect(r.stderr).toContain(`${file}:2:7: gateway.id: environment variable GATEWAY_ID is not set`);
    expect(r.stderr).toContain(`${file}:4:3: store.flush_intervall: unknown key (did you mean "flush_interval"?)`);
    expect(r.stderr).toContain(`${file}:8:11: sources[0].rate: Invalid input: expected number, received string`);
    expect(r.stderr).toContain('3 problem(s)');
  });

  it('exits 78 on a missing file', () => {
    const r = cli(['validate', '--config', 'no/such/file.yaml']);
    expect(r.status).toBe(78);
    expect(r.stderr).toContain('file not found');
  });
});
