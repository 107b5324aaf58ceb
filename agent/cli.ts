/**
 * edge-agent CLI.
 *   run       [--config FILE]   run the agent until SIGTERM/SIGINT
 *   validate  [--config FILE]   check the config; exit 0, or 78 (EX_CONFIG) with every problem
 *   status    [--config FILE]   counts per kind, latest events and active trips from the store
 *   export    --normal --out FILE [--since ISO] [--until ISO] [--margin 10m] [--asset ID]...
 *             normal-operation windows from the store as training data (agent/model/export.ts)
 *   probe     modbus ...        read a Modbus register block and print every decoding
 *   ack ASSET --by NAME [--config FILE] [--token-file FILE]   acknowledge a trip through the running agent's HTTP API
 *   --version                   print the version
 *   replay    --from-seq N | --since ISO [--until ISO] [--to-seq N]   re-publish retained events to Kafka
 *   sync status [--json]        backlog, lag, last send and the sequence -> partition/offset map
 *   control show|reset|sign|keygen   run-time overrides and signed control messages (agent/control/cli.ts)
 *   backtest  FILE [--config FILE] ...   replay a historian export through the pipeline (agent/backtest/cli.ts)
 */
import './ops/young-gen.js';
import { existsSync, readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { ackTarget, sendAck } from './ack-client.js';
import { type ConfigResult, formatConfigError, loadConfigFile } from './config/load.js';
import type { AgentConfig } from './config/schema.js';
import { safetyWarnings } from './config/semantic.js';
import { openDb } from './store/db.js';
import { summarize } from './store/queries.js';

export const EX_CONFIG = 78;
const DEFAULT_CONFIG = process.env.EDGE_AGENT_CONFIG ?? 'agent.config.yaml';

const USAGE = `usage: edge-agent <command> [--config FILE]

commands:
  run        run the agent until SIGTERM or SIGINT; SIGHUP reloads the config
  validate   check the configuration; exit 0, or 78 with every problem found
  status     show what the event store holds: counts, latest events, active trips
  export     --normal --out FILE [--since ISO] [--until ISO] [--margin 10m] [--asset ID]...
             write normal-operation windows (no anomaly, trip or alarm within the margin) as
             training data for scripts/train-model.py
  probe      probe modbus --host H --unit U --address A --count N: print every decoding of a block
  ack ASSET --by NAME [--token-file FILE]
             acknowledge ASSET's trip through the running agent's API (api.listen); the token is
             found as the agent finds it: api.token, api.token_file, the credential api-token
  --version  print the version
  replay     --from-seq N | --since ISO [--until ISO] [--to-seq N]
             re-publish retained events to Kafka, marked with the header replay=1
  sync status [--json]
             backlog, lag, last successful send, sequence -> partition/offset map
  control    show [--json] | reset [DETECTOR] --by NAME | sign --key PEM --key-id ID [FILE] | keygen
             run-time overrides (file value, effective value, who, when, expiry, conflicts),
             back to the file, and signed control messages (docs/control.md)
  backtest   FILE [--config FILE] [--out DIR] [--labels FILE | --label-column COL] ...
             replay a CSV/JSONL historian export through the detectors and interlocks (dry run)
             and write detections and the alarm timeline; edge-agent backtest --help
`;

/** The version in package.json: beside agent/ in a checkout, and in the compiled build or bundle. */
function version(): string {
  return (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }).version;
}

async function loadOrExit(file: string): Promise<AgentConfig> {
  const res: ConfigResult = await loadConfigFile(file);
  if (res.ok) return res.config;
  for (const e of res.errors) process.stderr.write(`${formatConfigError(e)}\n`);
  process.stderr.write(`${res.errors.length} problem(s) in ${file}\n`);
  process.exit(EX_CONFIG);
}

async function run(file: string): Promise<void> {
  const { runService } = await import('./ops/service.js');
  return runService(file);
}

async function validate(file: string): Promise<void> {
  const config = await loadOrExit(file);
  const sensors = config.assets.reduce((n, a) => n + a.sensors.length, 0);
  for (const w of safetyWarnings(config))
    process.stderr.write(`${file}: warning: ${w.path.join('.')}: ${w.message}${w.hint ? ` (${w.hint})` : ''}\n`);
  process.stdout.write(
    `${file}: OK (${config.sources.length} sources, ${config.assets.length} assets, ${sensors} sensors, ${config.detectors.length} detectors, ${config.actuators.length} actuators)\n`,
  );
}

async function status(file: string): Promise<void> {
  const config = await loadOrExit(file);
  const path = config.store.path;
  if (!existsSync(path)) {
    process.stdout.write(`no event store at ${path} yet (has the agent run?)\n`);
    return;
  }
  const db = openDb(path, 'NORMAL', true);
  try {
    const s = summarize(db);
    const out: string[] = [`store: ${path}`, `last sequence: ${s.lastSeq}`, 'events by kind:'];
    for (const [kind, n] of Object.entries(s.countsByKind)) out.push(`  ${kind.padEnd(10)} ${n}`);
    out.push(s.activeTrips.length ? 'active trips:' : 'active trips: none');
    for (const t of s.activeTrips) {
      out.push(`  ${t.asset}  tripped by ${t.detector} at ${new Date(t.event_time).toISOString()} (seq ${t.seq})`);
    }
    out.push('latest events:');
    for (const e of s.latest) {
      out.push(`  #${e.seq} ${new Date(e.event_time).toISOString()} ${e.kind.padEnd(9)} ${e.key}  ${e.payload.slice(0, 140)}`);
    }
    process.stdout.write(`${out.join('\n')}\n`);
  } finally {
    db.close();
  }
}

async function exportCommand(
  file: string,
  v: { normal?: boolean; out?: string; since?: string; until?: string; margin?: string; asset?: string[] },
): Promise<void> {
  const { runExport } = await import('./model/export-cli.js');
  const config = await loadOrExit(file);
  process.exitCode = runExport(config.store.path, v);
}

async function ack(
  file: string,
  asset: string | undefined,
  by: string | undefined,
  tokenFile: string | undefined,
): Promise<void> {
  if (!asset || !by) {
    process.stderr.write('usage: edge-agent ack ASSET --by NAME [--config FILE] [--token-file FILE]\n');
    process.exit(64);
  }
  const outcome = await sendAck(await ackTarget(file, process.env, tokenFile), asset, by);
  (outcome.exitCode === 0 ? process.stdout : process.stderr).write(`${outcome.message}\n`);
  if (outcome.exitCode !== 0) process.exit(outcome.exitCode);
}

function parseTime(v: string | undefined, what: string): number | undefined {
  if (v === undefined) return undefined;
  const t = Date.parse(v);
  if (Number.isNaN(t)) throw new Error(`${what}: not a time: ${v}`);
  return t;
}

async function replayCommand(
  file: string,
  v: { 'from-seq'?: string; 'to-seq'?: string; since?: string; until?: string },
): Promise<void> {
  const config = await loadOrExit(file);
  if (v['from-seq'] === undefined && v.since === undefined) {
    process.stderr.write(`replay needs --from-seq N or --since TIME\n${USAGE}`);
    process.exit(64);
  }
  const { replay } = await import('./sync/replay.js');
  const res = await replay(config, {
    ...(v['from-seq'] !== undefined ? { fromSeq: Number(v['from-seq']) } : {}),
    ...(v['to-seq'] !== undefined ? { toSeq: Number(v['to-seq']) } : {}),
    ...(v.since !== undefined ? { since: parseTime(v.since, '--since') } : {}),
    ...(v.until !== undefined ? { until: parseTime(v.until, '--until') } : {}),
  });
  process.stdout.write(`replayed ${res.events} events${res.events ? ` (seq ${res.firstSeq}..${res.lastSeq})` : ''}\n`);
}

async function syncStatusCommand(file: string, json: boolean): Promise<void> {
  const config = await loadOrExit(file);
  if (!existsSync(config.store.path)) {
    process.stdout.write(`no event store at ${config.store.path} yet (has the agent run?)\n`);
    return;
  }
  const { formatSyncStatus, syncStatus } = await import('./sync/replay.js');
  const s = syncStatus(config.store.path);
  process.stdout.write(json ? `${JSON.stringify(s, null, 2)}\n` : `${formatSyncStatus(s)}\n`);
}

export async function main(argv: string[]): Promise<void> {
  if (argv[0] === 'probe') {
    if (argv[1] !== 'modbus') {
      process.stderr.write('usage: edge-agent probe modbus --help\n');
      process.exit(64);
    }
    const { probeModbus } = await import('../drivers/modbus/probe.js');
    process.exitCode = await probeModbus(argv.slice(2));
    return;
  }
  if (argv[0] === 'backtest') {
    const { backtestCommand } = await import('./backtest/cli.js');
    process.exitCode = await backtestCommand(argv.slice(1));
    return;
  }
  if (argv[0] === 'control') {
    const { controlCommand } = await import('./control/cli.js');
    process.exitCode = await controlCommand(argv.slice(1), DEFAULT_CONFIG);
    return;
  }
  const { positionals, values } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      config: { type: 'string', short: 'c' },
      help: { type: 'boolean', short: 'h' },
      normal: { type: 'boolean' },
      out: { type: 'string' },
      since: { type: 'string' },
      until: { type: 'string' },
      margin: { type: 'string' },
      asset: { type: 'string', multiple: true },
      by: { type: 'string' },
      'from-seq': { type: 'string' },
      'to-seq': { type: 'string' },
      json: { type: 'boolean' },
      'token-file': { type: 'string' },
      version: { type: 'boolean', short: 'V' },
    },
  });
  if (values.version) {
    process.stdout.write(`edge-agent ${version()}\n`);
    return;
  }
  const [command] = positionals;
  const file = values.config ?? DEFAULT_CONFIG;
  if (values.help || !command) {
    process.stdout.write(USAGE);
    return;
  }
  switch (command) {
    case 'run':
      return run(file);
    case 'validate':
      return validate(file);
    case 'status':
      return status(file);
    case 'export':
      return exportCommand(file, values);
    case 'ack':
      return ack(file, positionals[1], values.by, values['token-file']);
    case 'replay':
      return replayCommand(file, values);
    case 'sync':
      if (positionals[1] === 'status') return syncStatusCommand(file, values.json === true);
      process.stderr.write(`unknown sync command "${positionals[1] ?? ''}"\n${USAGE}`);
      process.exit(64);
      return;
    default:
      process.stderr.write(`unknown command "${command}"\n${USAGE}`);
      process.exit(64);
  }
}

main(process.argv.slice(2)).catch((err: Error) => {
  process.stderr.write(`edge-agent: ${err.message}\n`);
  process.exit(1);
});
