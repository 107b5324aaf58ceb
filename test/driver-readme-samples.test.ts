import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { formatConfigError, parseConfig } from '../agent/config/load.js';

const DRIVERS = join(import.meta.dirname, '..', 'drivers');

describe('driver README samples are valid configuration', () => {
  for (const driver of ['modbus', 'mqtt']) {
    it(`${driver}: the first yaml block validates`, async () => {
      const md = readFileSync(join(DRIVERS, driver, 'README.md'), 'utf8');
      const yaml = /```yaml\n([\s\S]*?)```/.exec(md)?.[1] ?? '';
      const res = await parseConfig(yaml, `drivers/${driver}/README.md`);
      expect(res.ok ? [] : res.errors.map(formatConfigError)).toEqual([]);
    });
  }

  it('names a misspelt Modbus address key with its position', async () => {
    const yaml = `sources: [{ id: plc, type: modbus, host: 127.0.0.1 }]
assets:
  - id: a
    sensors:
      - { id: t, metric: temperature, source: plc, address: { adress: 3, type: float32 } }
`;
    const res = await parseConfig(yaml, 'x.yaml');
    expect(res.ok).toBe(false);
    const text = res.ok ? '' : res.errors.map(formatConfigError).join('\n');
    expect(text).toContain('x.yaml:5');
    expect(text).toMatch(/adress/);
  });

  it('rejects two sources on one serial port', async () => {
    const yaml = `sources:
  - { id: bus-a, type: modbus, transport: rtu, serial_port: /dev/ttyUSB0 }
  - { id: bus-b, type: modbus, transport: rtu, serial_port: /dev/ttyUSB0 }
assets:
  - id: a
    sensors:
      - { id: t, metric: temperature, source: bus-a, address: { address: 3 } }
`;
    const res = await parseConfig(yaml, 'x.yaml');
    const text = res.ok ? '' : res.errors.map(formatConfigError).join('\n');
    expect(text).toContain('x.yaml:3');
    expect(text).toContain('serial port /dev/ttyUSB0 is already used by source "bus-a"');
  });
});
