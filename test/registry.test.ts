import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { buildJsonSchema, buildMarkdown } from '../agent/config/json-schema.js';
import { DETECTOR_TYPES } from '../agent/detectors/registry.js';
import { DRIVER_TYPES, loadDriver } from '../drivers/index.js';

const DRIVERS = join(import.meta.dirname, '..', 'drivers');

describe('driver registry', () => {
  const folders = readdirSync(DRIVERS, { withFileTypes: true })
    .filter((d) => d.isDirectory())
    .map((d) => d.name)
    .sort();

  it('registers every driver folder, and nothing else', () => {
    expect([...DRIVER_TYPES].sort()).toEqual(folders);
  });

  for (const name of folders) {
    it(`${name}: has index.ts and a README with a sample config, and names itself ${name}`, async () => {
      expect(existsSync(join(DRIVERS, name, 'index.ts'))).toBe(true);
      const readme = readFileSync(join(DRIVERS, name, 'README.md'), 'utf8');
      expect(readme).toContain('```yaml');
      expect(readme).toContain(`type: ${name}`);
      const mod = await loadDriver(name);
      expect(mod.type).toBe(name);
      expect(mod.description.length).toBeGreaterThan(10);
    });
  }

  it('rejects an unknown type with the list of valid names', async () => {
    await expect(loadDriver('modbuss')).rejects.toThrow(`valid types: ${DRIVER_TYPES.join(', ')}`);
  });
});

describe('detector registry', () => {
  const DETECTORS = join(import.meta.dirname, '..', 'agent', 'detectors');
  const folders = readdirSync(DETECTORS, { withFileTypes: true })
    .filter((d) => d.isDirectory())
    .map((d) => d.name)
    .sort();

  it('registers every detector folder, and nothing else', () => {
    expect([...DETECTOR_TYPES].sort()).toEqual(folders);
  });

  for (const name of folders) {
    it(`${name}: has schema.ts, detector.ts and a README with a sample, and is documented`, () => {
      expect(existsSync(join(DETECTORS, name, 'schema.ts'))).toBe(true);
      expect(existsSync(join(DETECTORS, name, 'detector.ts'))).toBe(true);
      const readme = readFileSync(join(DETECTORS, name, 'README.md'), 'utf8');
      expect(readme).toContain('```yaml');
      expect(readme).toContain(`type: ${name}`);
      expect(readFileSync('docs/configuration.md', 'utf8')).toContain(`### type: ${name}`);
    });
  }
});

describe('generated configuration docs', () => {
  it('schema/agent.config.schema.json and docs/configuration.md match the schema (run npm run schema)', async () => {
    expect(JSON.parse(readFileSync('schema/agent.config.schema.json', 'utf8'))).toEqual(await buildJsonSchema());
    expect(readFileSync('docs/configuration.md', 'utf8')).toBe(await buildMarkdown());
  });
});
