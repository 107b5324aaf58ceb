/** Writes schema/agent.config.schema.json and docs/configuration.md from the zod schemas. */
import { mkdirSync, writeFileSync } from 'node:fs';
import { buildJsonSchema, buildMarkdown } from '../agent/config/json-schema.js';
import { buildControlSchema } from '../agent/control/json-schema.js';

mkdirSync('schema', { recursive: true });
mkdirSync('docs', { recursive: true });
writeFileSync('schema/agent.config.schema.json', `${JSON.stringify(await buildJsonSchema(), null, 2)}\n`);
writeFileSync('docs/configuration.md', await buildMarkdown());
writeFileSync('schema/control-message.schema.json', `${JSON.stringify(buildControlSchema(), null, 2)}\n`);
console.log('wrote schema/agent.config.schema.json, schema/control-message.schema.json and docs/configuration.md');
