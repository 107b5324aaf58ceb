/**
 * `edge-agent control …` (docs/control.md):
 *   show  [--json]                    every run-time override: parameter, file value, effective value,
 *                                     who, when, message id, expiry; and conflicts with the config file
 *   reset [DETECTOR] --by NAME        back to the config file, through the running agent's API
 *                                     (api.token); when the agent is not running, in the store
 *   sign  --key PRIVATE.pem --key-id ID [--by NAME] [--lifetime 5m] [--gateway ID] [FILE]
 *                                     a signed control message from a JSON command (FILE or stdin)
 *   keygen --key-id ID --out PRIVATE.pem
 *                                     a new Ed25519 key pair; prints the keys-file entry of its public key
 */
import { generateKeyPairSync } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { ackTarget } from '../ack-client.js';
import { formatConfigError, loadConfigFile } from '../config/load.js';
import type { AgentConfig } from '../config/schema.js';
import { type OverrideView, viewOf } from './control.js';
import { signCommand, validForMs } from './envelope.js';
import { SetpointStore } from './setpoints.js';

const EX_USAGE = 64;
const EX_CONFIG = 78;

const USAGE = `usage: edge-agent control <show|reset|sign|keygen> [--config FILE]
  show  [--json]                 run-time overrides in force, and conflicts with the config file
  reset [DETECTOR] --by NAME     back to the config file (all detectors when none is named)
  sign  --key PRIVATE.pem --key-id ID [--by NAME] [--lifetime 5m] [--gateway ID] [FILE]
                                 sign a JSON command ({"op","detector","params"}) read from FILE or stdin
  keygen --key-id ID --out PRIVATE.pem
                                 make a key pair; prints the public key's entry for control.keys_file
`;

async function loadOrExit(file: string): Promise<AgentConfig> {
  const res = await loadConfigFile(file);
  if (res.ok) return res.config;
  for (const e of res.errors) process.stderr.write(`${formatConfigError(e)}\n`);
  process.stderr.write(`${res.errors.length} problem(s) in ${file}\n`);
  process.exit(EX_CONFIG);
}

const iso = (t: number | null | undefined) => (t === null || t === undefined ? '-' : new Date(t).toISOString());

/** The stored overrides of the store at `path`, as `control show` lists them. */
export function storedOverrides(config: AgentConfig, path: string): OverrideView[] {
  const store = SetpointStore.open(path);
  try {
    const files = new Map(config.detectors.map((d) => [d.id, d]));
    return store.all().flatMap((s) => viewOf(s, files.get(s.detector), config.control.limits));
  } finally {
    store.close();
  }
}

export function formatOverrides(views: readonly OverrideView[], now = Date.now()): string {
  if (views.length === 0) return 'no run-time overrides: every parameter has its config file value';
  const out = ['run-time overrides:'];
  for (const v of views) {
    const expired = v.expires_at !== null && v.expires_at <= now;
    const effective = v.conflict || expired || v.not_allowed ? v.file_value : v.value;
    out.push(
      `  ${v.detector}.${v.param}  file ${JSON.stringify(v.file_value)}  effective ${JSON.stringify(effective)}  override ${JSON.stringify(v.value)}  by ${v.by ?? '-'}  at ${iso(v.applied_at)}  message ${v.message_id ?? '-'}  expires ${iso(v.expires_at)}${expired ? ' (expired: the file value returns)' : ''}`,
    );
    if (v.not_allowed)
      out.push(
        `  NOT ALLOWED ${v.detector}.${v.param}: ${v.not_allowed}; the file value applies and the override is dropped at the next start`,
      );
    if (v.conflict)
      out.push(
        `  CONFLICT ${v.detector}.${v.param}: the config file changed ${JSON.stringify(v.conflict.file_value_then)} -> ${JSON.stringify(v.conflict.file_value_now)} since the override ${JSON.stringify(v.value)} was made; the file value applies and the override is suspended (edge-agent control reset ${v.detector}, or send it again)`,
      );
  }
  return out.join('\n');
}

async function show(file: string, json: boolean): Promise<void> {
  const config = await loadOrExit(file);
  const path = config.store.path;
  if (path === ':memory:' || !existsSync(path)) {
    process.stdout.write(json ? '[]\n' : `no event store at ${path} yet: no run-time overrides\n`);
    return;
  }
  const views = storedOverrides(config, path);
  process.stdout.write(json ? `${JSON.stringify(views, null, 2)}\n` : `${formatOverrides(views)}\n`);
}

async function reset(file: string, detector: string | undefined, by: string | undefined): Promise<number> {
  if (!by) {
    process.stderr.write('usage: edge-agent control reset [DETECTOR] --by NAME\n');
    return EX_USAGE;
  }
  const target = await ackTarget(file);
  let res: Response | undefined;
  try {
    res = await fetch(`${target.url}/api/control/reset`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...(target.token ? { authorization: `Bearer ${target.token}` } : {}) },
      body: JSON.stringify({ by, ...(detector ? { detector } : {}) }),
      signal: AbortSignal.timeout(5000),
    });
  } catch {
    res = undefined;
  }
  if (res) {
    const body = (await res.json().catch(() => ({}))) as { ok?: boolean; error?: string; reset?: string[] };
    if (res.ok && body.ok) {
      process.stdout.write(
        body.reset?.length ? `reset to the config file: ${body.reset.join(', ')}\n` : 'no run-time overrides to reset\n',
      );
      return 0;
    }
    process.stderr.write(`the agent refused the reset (HTTP ${res.status}): ${body.error ?? 'no reason given'}\n`);
    return res.status === 401 ? 77 : 1;
  }
  // Not running (or not reachable): the store is the only place the overrides live.
  const config = await loadOrExit(file);
  const path = config.store.path;
  if (path === ':memory:' || !existsSync(path)) {
    process.stdout.write('no event store: no run-time overrides to reset\n');
    return 0;
  }
  if (detector && !config.detectors.some((d) => d.id === detector)) {
    process.stderr.write(`unknown detector "${detector}"\n`);
    return 1;
  }
  const store = SetpointStore.open(path);
  try {
    const removed = store.remove(detector);
    process.stdout.write(
      `the agent is not reachable at ${target.url}; in the store: ${removed.length ? `reset ${removed.join(', ')} to the config file (if the agent runs with its API disabled, restart it for this to take effect)` : 'no run-time overrides to reset'}\n`,
    );
    return 0;
  } finally {
    store.close();
  }
}

async function sign(
  file: string,
  v: { key?: string; 'key-id'?: string; by?: string; lifetime?: string; gateway?: string },
  input: string | undefined,
): Promise<number> {
  if (!v.key || !v['key-id']) {
    process.stderr.write(`control sign needs --key PRIVATE.pem and --key-id ID\n${USAGE}`);
    return EX_USAGE;
  }
  const text = input && input !== '-' ? readFileSync(input, 'utf8') : readFileSync(0, 'utf8');
  let cmd: Record<string, unknown>;
  try {
    cmd = JSON.parse(text) as Record<string, unknown>;
  } catch (err) {
    process.stderr.write(`the command is not JSON: ${(err as Error).message}\n`);
    return EX_USAGE;
  }
  const gatewayId = v.gateway ?? (typeof cmd.gateway_id === 'string' ? cmd.gateway_id : (await loadOrExit(file)).gateway.id);
  const { envelope } = signCommand(cmd, readFileSync(v.key, 'utf8'), v['key-id'], {
    gatewayId,
    ...(v.by ? { by: v.by } : {}),
    lifetimeMs: v.lifetime ? validForMs(v.lifetime) : 300_000,
  });
  process.stdout.write(`${JSON.stringify(envelope)}\n`);
  return 0;
}

function keygen(v: { 'key-id'?: string; out?: string }): number {
  if (!v['key-id'] || !v.out) {
    process.stderr.write(`control keygen needs --key-id ID and --out PRIVATE.pem\n${USAGE}`);
    return EX_USAGE;
  }
  if (existsSync(v.out)) {
    process.stderr.write(`${v.out} exists; not overwritten\n`);
    return 1;
  }
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  writeFileSync(v.out, privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
  const entry = { key_id: v['key-id'], public_key_pem: publicKey.export({ type: 'spki', format: 'pem' }).toString() };
  process.stdout.write(`${JSON.stringify({ keys: [entry] }, null, 2)}\n`);
  return 0;
}

export async function controlCommand(argv: string[], defaultConfig: string): Promise<number> {
  const { positionals, values } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      config: { type: 'string', short: 'c' },
      json: { type: 'boolean' },
      by: { type: 'string' },
      key: { type: 'string' },
      'key-id': { type: 'string' },
      lifetime: { type: 'string' },
      gateway: { type: 'string' },
      out: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  const file = values.config ?? defaultConfig;
  switch (positionals[0]) {
    case 'show':
      await show(file, values.json === true);
      return 0;
    case 'reset':
      return reset(file, positionals[1], values.by);
    case 'sign':
      return sign(file, values, positionals[1]);
    case 'keygen':
      return keygen(values);
    default:
      (values.help ? process.stdout : process.stderr).write(USAGE);
      return values.help ? 0 : EX_USAGE;
  }
}
