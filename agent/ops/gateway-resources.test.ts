import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { GatewaySampler, parseMeminfo, parseProcStat } from './gateway-resources.js';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function fakeRoot(stat: string, zones: Array<[string, string]>): { proc: string; sys: string } {
  const root = mkdtempSync(join(tmpdir(), 'gw-res-'));
  dirs.push(root);
  mkdirSync(join(root, 'proc'));
  writeFileSync(join(root, 'proc', 'stat'), stat);
  writeFileSync(join(root, 'proc', 'meminfo'), 'MemTotal:        8000000 kB\nMemFree:  1000 kB\nMemAvailable:    6000000 kB\n');
  zones.forEach(([type, temp], i) => {
    const z = join(root, 'sys', 'class', 'thermal', `thermal_zone${i}`);
    mkdirSync(z, { recursive: true });
    writeFileSync(join(z, 'type'), `${type}\n`);
    writeFileSync(join(z, 'temp'), `${temp}\n`);
  });
  return { proc: join(root, 'proc'), sys: join(root, 'sys') };
}

describe('gateway resources', () => {
  it('parses /proc/stat and /proc/meminfo', () => {
    expect(parseProcStat('cpu  100 0 50 800 50 0 0 0 0 0\ncpu0 1 2 3\n')).toEqual({ busy: 150, total: 1000 });
    expect(parseProcStat('garbage\n')).toBeUndefined();
    expect(parseMeminfo('MemTotal: 4 kB\nMemAvailable: 1 kB\n')).toEqual({ total: 4096, available: 1024 });
    expect(parseMeminfo('MemTotal: 4 kB\n')).toBeUndefined();
  });

  it('reports load since the previous sample, memory without caches and the CPU zone temperature', async () => {
    const p = fakeRoot('cpu  100 0 50 800 50 0 0 0 0 0\n', [
      ['acpitz', '30000'],
      ['x86_pkg_temp', '47500'],
    ]);
    const s = new GatewaySampler(p.proc, p.sys);
    const first = await s.sample();
    expect(first.cpuLoad).toBeCloseTo(0.15);
    expect(first.memTotal).toBe(8000000 * 1024);
    expect(first.memUsed).toBe(2000000 * 1024);
    expect(first.temperature).toBe(47.5);
    writeFileSync(join(p.proc, 'stat'), 'cpu  400 0 150 900 50 0 0 0 0 0\n');
    expect((await s.sample()).cpuLoad).toBeCloseTo(0.8);
  });

  it('has no temperature when no thermal zone reports one', async () => {
    const p = fakeRoot('cpu  1 0 1 8 0 0 0 0 0 0\n', []);
    expect((await new GatewaySampler(p.proc, p.sys).sample()).temperature).toBeUndefined();
  });
});
