/**
 * YAML → schema → typed config. Every problem is collected (never just the first) with
 * file:line:column, the key path and a hint, so a technician fixes the file in one pass.
 */
import { readFile } from 'node:fs/promises';
import { type Document, isMap, isScalar, isSeq, LineCounter, type Node, parseDocument, visit } from 'yaml';
import type { z } from 'zod';
import { DRIVER_TYPES, loadDriver } from '../../drivers/index.js';
import { type AgentConfig, configSchema, detectionProblems } from '../schema.js';
import { semanticChecks } from './semantic.js';

export interface ConfigError {
  readonly file: string;
  readonly line: number;
  readonly col: number;
  /** Key path such as `sources[0].poll_interval`. */
  readonly path: string;
  readonly message: string;
  readonly hint?: string;
}

export type ConfigResult =
  | { readonly ok: true; readonly config: AgentConfig; readonly file: string }
  | { readonly ok: false; readonly errors: readonly ConfigError[]; readonly file: string };

export function formatConfigError(e: ConfigError): string {
  const where = e.path ? `${e.path}: ` : '';
  return `${e.file}:${e.line}:${e.col}: ${where}${e.message}${e.hint ? ` (${e.hint})` : ''}`;
}

/** For configs built in memory (tests, benches, replays): the config, or one Error listing every problem. */
export async function parseConfigOrThrow(text: string, file = 'inline.yaml', env: NodeJS.ProcessEnv = {}): Promise<AgentConfig> {
  const res = await parseConfig(text, file, env);
  if (!res.ok) throw new Error(res.errors.map(formatConfigError).join('\n'));
  return res.config;
}

export async function loadConfigFile(file: string, env: NodeJS.ProcessEnv = process.env): Promise<ConfigResult> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    const reason = (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'file not found' : String(err);
    return { ok: false, file, errors: [{ file, line: 1, col: 1, path: '', message: reason }] };
  }
  return parseConfig(text, file, env);
}

type PathSeg = string | number;

export async function parseConfig(text: string, file: string, env: NodeJS.ProcessEnv = {}): Promise<ConfigResult> {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, keepSourceTokens: true, uniqueKeys: true });
  const errors: ConfigError[] = [];
  const at = (offset: number, path: PathSeg[], message: string, hint?: string): void => {
    const pos = lineCounter.linePos(offset);
    errors.push({ file, line: pos.line, col: pos.col, path: formatPath(path), message, ...(hint ? { hint } : {}) });
  };

  for (const e of [...doc.errors, ...doc.warnings])
    at(e.pos[0], [], (e.message.split('\n')[0] ?? e.message).replace(/ at line \d+, column \d+:?$/, ''));
  if (doc.errors.length > 0) return { ok: false, file, errors };

  const envErrorPaths = substituteEnv(doc, env, at);
  const raw = doc.toJS() ?? {};

  const locate = (path: PathSeg[]): number => nodeOffset(doc, path);
  const report = (issues: readonly z.core.$ZodIssue[], base: PathSeg[], schema: z.ZodType, data: unknown): void => {
    for (const issue of issues) {
      const path = [...base, ...(issue.path as PathSeg[])];
      if (envErrorPaths.has(formatPath(path))) continue;
      if (issue.code === 'unrecognized_keys') {
        const valid = keysAt(schema, issue.path as PathSeg[], data);
        for (const key of issue.keys) {
          const near = closest(key, valid);
          at(
            keyOffset(doc, path, key),
            [...path, key],
            'unknown key',
            near ? `did you mean "${near}"?` : `valid keys: ${valid.join(', ')}`,
          );
        }
        continue;
      }
      at(locate(path), path, issue.message);
    }
  };

  const parsed = configSchema.safeParse(raw);
  if (!parsed.success) report(parsed.error.issues, [], configSchema, raw);

  // Second pass, even when the first failed, so every problem is reported at once: each source and
  // actuator against its own driver's schema, and each sensor address against its source's.
  const rawObj = (raw && typeof raw === 'object' ? raw : {}) as Record<string, unknown>;
  const entries = (section: string): Array<Record<string, unknown>> => {
    const v = rawObj[section];
    return Array.isArray(v) ? v.map((e) => (e && typeof e === 'object' ? (e as Record<string, unknown>) : {})) : [];
  };
  const validated = new Map<string, unknown[]>();
  const addressSchemas = new Map<string, z.ZodType | undefined>();
  for (const section of ['sources', 'actuators'] as const) {
    const role = section === 'sources' ? 'source' : 'actuator';
    const out: unknown[] = [];
    for (const [i, entry] of entries(section).entries()) {
      const { id, type, ...options } = entry;
      if (typeof type !== 'string') continue;
      const mod = DRIVER_TYPES.includes(type) ? await loadDriver(type) : undefined;
      if (!mod || mod.role !== role) {
        const valid: string[] = [];
        for (const t of DRIVER_TYPES) if ((await loadDriver(t)).role === role) valid.push(t);
        const near = closest(type, valid);
        at(
          locate([section, i, 'type']),
          [section, i, 'type'],
          `unknown ${role} type "${type}"`,
          `${near ? `did you mean "${near}"? ` : ''}valid types: ${valid.join(', ')}`,
        );
        continue;
      }
      const res = mod.schema.safeParse(options);
      if (!res.success) report(res.error.issues, [section, i], mod.schema, options);
      else out[i] = { ...(res.data as object), id, type };
      if (mod.role === 'source' && typeof id === 'string') addressSchemas.set(id, mod.addressSchema);
    }
    validated.set(section, out);
  }
  for (const [ai, asset] of entries('assets').entries()) {
    const sensors = Array.isArray(asset.sensors) ? (asset.sensors as Array<Record<string, unknown>>) : [];
    for (const [si, sensor] of sensors.entries()) {
      const schema = typeof sensor?.source === 'string' ? addressSchemas.get(sensor.source) : undefined;
      if (!schema) continue;
      const address = sensor.address ?? {};
      const res = schema.safeParse(address);
      if (!res.success) report(res.error.issues, ['assets', ai, 'sensors', si, 'address'], schema, address);
    }
  }
  if (!parsed.success || errors.length > 0) return { ok: false, file, errors: sortErrors(errors) };

  const config = parsed.data;
  for (const section of ['sources', 'actuators'] as const) {
    const out = validated.get(section) ?? [];
    config[section] = config[section].map((e, i) => (out[i] ?? e) as typeof e);
  }
  for (const asset of config.assets) {
    for (const sensor of asset.sensors) {
      const schema = addressSchemas.get(sensor.source);
      if (schema) sensor.address = schema.parse(sensor.address ?? {}) as Record<string, unknown>;
    }
  }

  for (const problem of [...semanticChecks(config), ...detectionProblems(config)])
    at(locate(problem.path), problem.path, problem.message, problem.hint);

  if (errors.length > 0) return { ok: false, file, errors: sortErrors(errors) };
  return { ok: true, file, config };
}

const ENV_RE = /\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}/g;

/** `${NAME}` and `${NAME:-default}` in string values. An unset variable without a default is an error. */
function substituteEnv(
  doc: Document,
  env: NodeJS.ProcessEnv,
  at: (offset: number, path: PathSeg[], message: string, hint?: string) => void,
): Set<string> {
  const failed = new Set<string>();
  visit(doc, {
    Scalar(_key, node, ancestors) {
      if (typeof node.value !== 'string' || !node.value.includes('${')) return;
      node.value = node.value.replace(ENV_RE, (whole, name: string, fallback: string | undefined) => {
        const v = env[name];
        if (v !== undefined) return v;
        if (fallback !== undefined) return fallback;
        const path = pathOf(ancestors, node);
        failed.add(formatPath(path));
        at(
          node.range?.[0] ?? 0,
          path,
          `environment variable ${name} is not set`,
          `export ${name}=... or write \${${name}:-default}`,
        );
        return whole;
      });
    },
  });
  return failed;
}

function pathOf(ancestors: readonly unknown[], leaf: unknown): PathSeg[] {
  const path: PathSeg[] = [];
  const chain = [...ancestors, leaf];
  for (let i = 0; i < chain.length - 1; i++) {
    const parent = chain[i];
    const child = chain[i + 1];
    if (isSeq(parent)) path.push(parent.items.indexOf(child as never));
    else if (parent && typeof parent === 'object' && 'key' in parent && 'value' in parent) {
      const k = (parent as { key: unknown }).key;
      if (isScalar(k)) path.push(String(k.value));
    }
  }
  return path;
}

/** Offset of the deepest existing node on `path` (a missing key points at its parent). */
function nodeOffset(doc: Document, path: PathSeg[]): number {
  for (let n = path.length; n >= 0; n--) {
    const node = (n === 0 ? doc.contents : doc.getIn(path.slice(0, n), true)) as Node | null | undefined;
    if (node && typeof node === 'object' && 'range' in node && node.range) return node.range[0];
  }
  return 0;
}

function keyOffset(doc: Document, path: PathSeg[], key: string): number {
  const map = path.length === 0 ? doc.contents : doc.getIn(path, true);
  if (isMap(map)) {
    for (const pair of map.items) {
      if (isScalar(pair.key) && pair.key.value === key && pair.key.range) return pair.key.range[0];
    }
  }
  return nodeOffset(doc, path);
}

function formatPath(path: readonly PathSeg[]): string {
  let s = '';
  for (const seg of path) s += typeof seg === 'number' ? `[${seg}]` : s ? `.${seg}` : seg;
  return s;
}

function sortErrors(errors: ConfigError[]): ConfigError[] {
  return errors.sort((a, b) => a.line - b.line || a.col - b.col);
}

interface ZodDefLike {
  type: string;
  shape?: Record<string, z.ZodType>;
  element?: z.ZodType;
  innerType?: z.ZodType;
  in?: z.ZodType;
  options?: z.ZodType[];
}
const defOf = (s: z.ZodType): ZodDefLike => (s as unknown as { _zod: { def: ZodDefLike } })._zod.def;

/** The keys an object schema accepts at `path`, for "did you mean" hints. */
export function keysAt(schema: z.ZodType, path: readonly PathSeg[], data: unknown): string[] {
  let nodes: z.ZodType[] = [schema];
  let value: unknown = data;
  const unwrap = (s: z.ZodType): z.ZodType[] => {
    const d = defOf(s);
    if (d.innerType) return unwrap(d.innerType);
    if (d.type === 'pipe' && d.in) return unwrap(d.in);
    if (d.type === 'union' && d.options) return d.options.flatMap(unwrap);
    return [s];
  };
  for (const seg of [...path, null]) {
    nodes = nodes.flatMap(unwrap);
    // For discriminated unions, keep only the options whose `type` literal matches the data.
    if (nodes.length > 1 && value && typeof value === 'object' && 'type' in value) {
      const t = (value as { type: unknown }).type;
      const match = nodes.filter((n) => {
        const lit = defOf(n).shape?.type;
        return lit && (lit as unknown as { _zod: { def: { values?: unknown[] } } })._zod.def.values?.includes(t);
      });
      if (match.length > 0) nodes = match;
    }
    if (seg === null) break;
    nodes = nodes.flatMap((n) => {
      const d = defOf(n);
      if (typeof seg === 'number' && d.element) return [d.element];
      if (typeof seg === 'string' && d.shape?.[seg]) return [d.shape[seg] as z.ZodType];
      return [];
    });
    value = value && typeof value === 'object' ? (value as Record<PathSeg, unknown>)[seg] : undefined;
  }
  return [...new Set(nodes.flatMap((n) => Object.keys(defOf(n).shape ?? {})))];
}

export function closest(word: string, candidates: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestD = Number.POSITIVE_INFINITY;
  for (const c of candidates) {
    const d = levenshtein(word.toLowerCase(), c.toLowerCase());
    if (d < bestD) {
      bestD = d;
      best = c;
    }
  }
  return best !== undefined && bestD <= Math.max(2, Math.floor(word.length / 3)) ? best : undefined;
}

function levenshtein(a: string, b: string): number {
  const prev = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let diag = prev[0] as number;
    prev[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const tmp = prev[j] as number;
      prev[j] = Math.min((prev[j] as number) + 1, (prev[j - 1] as number) + 1, diag + (a[i - 1] === b[j - 1] ? 0 : 1));
      diag = tmp;
    }
  }
  return prev[b.length] as number;
}
