import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { buildJsonSchema, buildMarkdown } from '../agent/config/json-schema.js';
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

describe('generated configuration docs', () => {
  it('schema/agent.config.schema.json and docs/configuration.md match the schema (run npm run schema)', async () => {
    expect(JSON.parse(readFileSync('schema/agent.config.schema.json', 'utf8'))).toEqual(await buildJsonSchema());
    expect(readFileSync('docs/configuration.md', 'utf8')).toBe(await buildMarkdown());
  });
});
