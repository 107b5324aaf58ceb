/**
 * Derives the editor JSON Schema and the Markdown option reference from the zod schemas, so the
 * configuration is described exactly once. `npm run schema` writes both; a test checks they are current.
 */
import { z } from 'zod';
import { DRIVER_TYPES, loadDriver } from '../../drivers/index.js';
import { configSchema } from '../schema.js';
import { id } from './primitives.js';

type Json = Record<string, unknown>;

const toJson = (s: z.ZodType): Json =>
  z.toJSONSchema(s, { io: 'input', unrepresentable: 'any', target: 'draft-2020-12' }) as Json;

export async function buildJsonSchema(): Promise<Json> {
  const root = toJson(configSchema);
  const props = root.properties as Record<string, Json>;
  const variants: Record<'source' | 'actuator', Json[]> = { source: [], actuator: [] };
  for (const type of DRIVER_TYPES) {
    const mod = await loadDriver(type);
    const entry = (mod.schema as unknown as z.ZodObject).extend({ id, type: z.literal(type) });
    const js = toJson(entry);
    delete js.$schema;
    js.title = `${type} ${mod.role}`;
    js.description = mod.description;
    variants[mod.role].push(js);
  }
  (props.sources as Json).items = { anyOf: variants.source };
  (props.actuators as Json).items = { anyOf: variants.actuator };
  root.title = 'edge-agent configuration';
  return root;
}

function typeOf(p: Json): string {
  if (p.enum) return (p.enum as unknown[]).map((v) => JSON.stringify(v)).join(' \\| ');
  if (p.const !== undefined) return JSON.stringify(p.const);
  const variants = (p.anyOf ?? p.oneOf) as Json[] | undefined;
  if (variants) return [...new Set(variants.map(typeOf))].join(' or ');
  if (p.type === 'array') return `list of ${typeOf((p.items as Json) ?? {})}`;
  return String(p.type ?? 'any');
}

function table(obj: Json): string[] {
  const props = (obj.properties ?? {}) as Record<string, Json>;
  const required = new Set((obj.required as string[]) ?? []);
  const rows = ['| key | type | default | description |', '| --- | --- | --- | --- |'];
  for (const [key, p] of Object.entries(props)) {
    const def = p.default === undefined ? (required.has(key) ? '(required)' : '') : `\`${JSON.stringify(p.default)}\``;
    const desc = String(p.description ?? '').replace(/\|/g, '\\|');
    rows.push(`| \`${key}\` | ${typeOf(p)} | ${def} | ${desc} |`);
  }
  return rows;
}

/** Sub-tables of keys whose value is one of several object shapes (a detector's `window`). */
function variantTables(props: Record<string, Json>): string[] {
  const out: string[] = [];
  for (const [key, p] of Object.entries(props)) {
    const shapes = ((p.oneOf ?? p.anyOf) as Json[] | undefined)?.filter((v) => v.properties);
    for (const v of shapes ?? []) {
      const kind = (v.properties as Record<string, Json>).type?.const;
      out.push(`#### \`${key}\`${kind !== undefined ? ` (type: ${String(kind)})` : ''}`, '', ...table(v), '');
    }
  }
  return out;
}

/** The option reference: one table per section and per driver. */
export async function buildMarkdown(): Promise<string> {
  const schema = await buildJsonSchema();
  const props = schema.properties as Record<string, Json>;
  const out = [
    '# Configuration reference',
    '',
    'Generated from the schema by `npm run schema`; do not edit by hand. Durations are `500ms`, `10s`, `5m`, `1h` or milliseconds.',
    '',
  ];
  for (const [section, p] of Object.entries(props)) {
    out.push(`## \`${section}\``, '');
    const body = p.type === 'array' ? (p.items as Json) : p;
    const variants = (body.anyOf ?? body.oneOf) as Json[] | undefined;
    if (variants) {
      for (const v of variants) {
        const props = (v.properties ?? {}) as Record<string, Json>;
        const title = v.title ?? (props.type?.const !== undefined ? `type: ${String(props.type.const)}` : typeOf(v));
        out.push(`### ${String(title)}`, '', String(v.description ?? ''), '', ...table(v), '');
        out.push(...variantTables(props));
      }
    } else if (body.properties) {
      out.push(...table(body), '');
      for (const [key, child] of Object.entries(body.properties as Record<string, Json>)) {
        const inner = child.type === 'array' ? (child.items as Json) : child;
        if (inner?.properties) out.push(`### \`${section}.${key}\``, '', ...table(inner), '');
      }
    }
  }
  return `${out.join('\n').trimEnd()}\n`;
}
