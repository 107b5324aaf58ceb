/**
 * Real single-node Kafka brokers for tests, started through scripts/kafka-dev.sh.
 *
 *   const ok = requireOrSkip(kafkaAvailable(), 'Kafka broker');
 *   describe.skipIf(!ok)('...', () => {
 *     let broker: KafkaBroker | undefined;
 *     beforeAll(async () => { broker = await startKafka({ partitions: 3 }); }, 300_000);
 *     afterAll(async () => { await broker?.destroy(); });   // runs even when tests fail
 *   });
 *
 * Every broker gets free loopback ports and its own temp dir. Callers must stop
 * brokers in afterAll; as a safety net, brokers still running when the test
 * process exits are SIGKILLed.
 *
 * Proxying (chaos tests): Kafka clients connect to the address the broker
 * advertises in metadata, not the bootstrap address. To route traffic through
 * a proxy, choose the broker port first, point the proxy at it, and make the
 * broker advertise the proxy port:
 *
 *   const port = await freePort();                    // ./free-port.js
 *   const proxy = await startProxy({ targetPort: port });
 *   const broker = await startKafka({ port, advertisedPort: proxy.port });
 *   // broker.brokers === `127.0.0.1:${proxy.port}`
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, statSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { homedir, tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Kafka, type KafkaConfig, logLevel } from 'kafkajs';
import type { AgentConfig } from '../../agent/config/schema.js';
import { cursorGroup, cursorTopic } from '../../agent/sync/kafka.js';
import { freePort } from './free-port.js';
import { startProxy, type TcpProxy } from './tcp-proxy.js';

export const DEFAULT_KAFKA_VERSION = process.env.KAFKA_VERSION ?? '3.9.2';
export const KAFKA_SCRIPT = fileURLToPath(new URL('../../scripts/kafka-dev.sh', import.meta.url));

const CACHE_ROOT = process.env.EDGE_AGENT_CACHE ?? join(homedir(), '.cache', 'edge-agent');

export interface ToolCheck {
  ok: boolean;
  reason?: string;
}

export interface StartKafkaOptions {
  version?: string;
  /** Default partition count for auto-created topics (num.partitions). */
  partitions?: number;
  /** Port the broker listens on; a free one is picked when omitted. */
  port?: number;
  /** Port advertised to clients (e.g. a TCP proxy in front of `port`). */
  advertisedPort?: number;
  /** Startup deadline; defaults to 60 s, or 10 min when jars must be fetched first. */
  startTimeoutMs?: number;
  /** Broker log4j root level, written to `<dir>/logs/broker.out`. */
  logLevel?: 'ERROR' | 'WARN' | 'INFO' | 'DEBUG';
}

export interface KafkaBroker {
  /** Bootstrap string for clients: '127.0.0.1:<advertisedPort>'. */
  readonly brokers: string;
  readonly port: number;
  readonly advertisedPort: number;
  readonly controllerPort: number;
  readonly dir: string;
  readonly version: string;
  readonly logFile: string;
  /** SIGTERM (controlled shutdown), SIGKILL after 30 s. Keeps the data dir. */
  stop(): Promise<void>;
  /** SIGKILL: simulates a crash. Keeps the data dir. */
  kill(): Promise<void>;
  /** Stop (if running), then start again on the same ports and data dir. */
  restart(): Promise<void>;
  /** Stop and delete the data dir (kept when KAFKA_KEEP_DIRS=1). */
  destroy(): Promise<void>;
}

export interface ConsumedRecord {
  topic: string;
  partition: number;
  offset: number;
  key: string | null;
  value: string | null;
  headers: Record<string, string>;
  timestamp: number;
}

// ---------------------------------------------------------------------------
// Availability and skip policy

function onPath(cmd: string): boolean {
  return (process.env.PATH ?? '').split(delimiter).some((dir) => {
    try {
      return dir !== '' && statSync(join(dir, cmd)).isFile();
    } catch {
      return false;
    }
  });
}

function javaMajor(): number | undefined {
  const res = spawnSync('java', ['-version'], { encoding: 'utf8' });
  if (res.status !== 0) return undefined;
  const m = /version "(\d+)(?:\.(\d+))?/.exec(`${res.stderr}${res.stdout}`);
  if (!m) return undefined;
  const major = Number(m[1]);
  return major === 1 ? Number(m[2]) : major;
}

export function kafkaLibDir(version = DEFAULT_KAFKA_VERSION): string {
  return join(CACHE_ROOT, `kafka-${version}`, 'lib');
}

export function kafkaJarsCached(version = DEFAULT_KAFKA_VERSION): boolean {
  return existsSync(join(kafkaLibDir(version), '.complete'));
}

/** Whether a broker of `version` can run here: Java, and cached jars or Maven to fetch them. */
export function kafkaAvailable(version = DEFAULT_KAFKA_VERSION): ToolCheck {
  if (!onPath('bash')) return { ok: false, reason: 'bash not found' };
  const java = javaMajor();
  const minJava = Number(version.split('.')[0]) >= 4 ? 17 : 11;
  if (java === undefined) return { ok: false, reason: 'java not found on PATH' };
  if (java < minJava) return { ok: false, reason: `Kafka ${version} needs Java ${minJava}+, found ${java}` };
  if (!kafkaJarsCached(version) && !onPath('mvn')) {
    return { ok: false, reason: `Kafka ${version} jars not cached in ${kafkaLibDir(version)} and mvn not found` };
  }
  return { ok: true };
}

export function kcatAvailable(): ToolCheck {
  return onPath('kcat') ? { ok: true } : { ok: false, reason: 'kcat not found (apt-get install kcat)' };
}

/**
 * Skip policy for tests that need external tools. Returns true when the tool
 * is usable. When it is not: with CI set, throws (the test file fails); locally,
 * prints a loud warning and returns false so the caller can skip.
 */
export function requireOrSkip(check: ToolCheck, what: string): boolean {
  if (check.ok) return true;
  const msg = `${what} unavailable: ${check.reason ?? 'unknown reason'}`;
  if (process.env.CI) throw new Error(`${msg} (CI is set, so missing tools fail the run)`);
  const bar = '!'.repeat(Math.min(100, msg.length + 20));
  console.warn(`\n${bar}\n  SKIPPING: ${msg}\n${bar}\n`);
  return false;
}

// ---------------------------------------------------------------------------
// Broker lifecycle

const live = new Set<ChildProcess>();
let exitHookInstalled = false;

function killGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.pid === undefined) return;
  try {
    // Detached children lead their own process group; the group also covers
    // a Maven fetch still running inside the script.
    process.kill(-child.pid, signal);
  } catch {
    // already gone
  }
}

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.once('exit', () => {
    for (const child of live) killGroup(child, 'SIGKILL');
  });
}

function exited(child: ChildProcess): boolean {
  return child.exitCode !== null || child.signalCode !== null;
}

function waitExit(child: ChildProcess, timeoutMs: number): Promise<boolean> {
  if (exited(child)) return Promise.resolve(true);
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), timeoutMs);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve(true);
    });
  });
}

function tail(file: string, lines = 40): string {
  try {
    return readFileSync(file, 'utf8').split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Bounded-time metadata probe: true once the broker answers and lists itself. */
async function brokerReady(brokers: string): Promise<boolean> {
  const admin = new Kafka({
    clientId: 'kafka-ready-probe',
    brokers: [brokers],
    logLevel: logLevel.NOTHING,
    connectionTimeout: 1000,
    requestTimeout: 2000,
    retry: { retries: 0 },
  }).admin();
  try {
    await admin.connect();
    const cluster = await admin.describeCluster();
    return cluster.brokers.length > 0 && cluster.controller !== null;
  } catch {
    return false;
  } finally {
    await admin.disconnect().catch(() => {});
  }
}

/**
 * A broker that advertises a chaos proxy in front of it, so every client connection can be cut.
 * The broker's port is chosen before it binds, and test files start brokers in parallel, so a
 * start that fails is retried on fresh ports.
 */
export async function startKafkaBehindProxy(
  opts: Omit<StartKafkaOptions, 'port' | 'advertisedPort'> = {},
  attempts = 3,
): Promise<{ broker: KafkaBroker; proxy: TcpProxy }> {
  let last: unknown;
  for (let i = 0; i < attempts; i++) {
    const port = await freePort();
    const proxy = await startProxy({ targetPort: port });
    try {
      return { proxy, broker: await startKafka({ ...opts, port, advertisedPort: proxy.port }) };
    } catch (err) {
      last = err;
      await proxy.close();
      console.warn(`Kafka behind a proxy did not start (attempt ${i + 1}/${attempts}): ${(err as Error).message.split('\n')[0]}`);
    }
  }
  throw last;
}

export async function startKafka(opts: StartKafkaOptions = {}): Promise<KafkaBroker> {
  const version = opts.version ?? DEFAULT_KAFKA_VERSION;
  const port = opts.port ?? (await freePort());
  let controllerPort = await freePort();
  while (controllerPort === port) controllerPort = await freePort();
  const advertisedPort = opts.advertisedPort ?? port;
  const dir = mkdtempSync(join(tmpdir(), `edge-agent-kafka-${version}-`));
  const logFile = join(dir, 'broker.out');
  const brokers = `127.0.0.1:${advertisedPort}`;
  const args = [
    KAFKA_SCRIPT,
    'start',
    '--version',
    version,
    '--port',
    String(port),
    '--controller-port',
    String(controllerPort),
    '--advertised-port',
    String(advertisedPort),
    '--partitions',
    String(opts.partitions ?? 1),
    '--dir',
    dir,
  ];
  installExitHook();

  let child: ChildProcess | undefined;

  const launch = async () => {
    const timeoutMs = opts.startTimeoutMs ?? (kafkaJarsCached(version) ? 60_000 : 600_000);
    const started = Date.now();
    const fd = openSync(logFile, 'a');
    const proc = spawn('bash', args, {
      detached: true,
      stdio: ['ignore', fd, fd],
      env: { ...process.env, KAFKA_LOG_LEVEL: opts.logLevel ?? 'INFO' },
    });
    closeSync(fd);
    child = proc;
    live.add(proc);
    proc.once('exit', () => live.delete(proc));

    while (!(await brokerReady(brokers))) {
      if (exited(proc)) {
        throw new Error(`Kafka ${version} exited during startup (code ${proc.exitCode}). ${logFile}:\n${tail(logFile)}`);
      }
      if (Date.now() - started > timeoutMs) {
        killGroup(proc, 'SIGKILL');
        throw new Error(`Kafka ${version} not ready on ${brokers} after ${timeoutMs} ms. ${logFile}:\n${tail(logFile)}`);
      }
      await sleep(200);
    }
  };

  const terminate = async (signal: NodeJS.Signals) => {
    const proc = child;
    if (!proc || exited(proc)) return;
    killGroup(proc, signal);
    if (!(await waitExit(proc, 30_000))) {
      killGroup(proc, 'SIGKILL');
      await waitExit(proc, 10_000);
    }
  };

  await launch();

  return {
    brokers,
    port,
    advertisedPort,
    controllerPort,
    dir,
    version,
    logFile,
    stop: () => terminate('SIGTERM'),
    kill: () => terminate('SIGKILL'),
    restart: async () => {
      await terminate('SIGTERM');
      await launch();
    },
    destroy: async () => {
      await terminate('SIGTERM');
      if (!process.env.KAFKA_KEEP_DIRS) await rm(dir, { recursive: true, force: true });
    },
  };
}

// ---------------------------------------------------------------------------
// Client helpers

const KAFKAJS_LOG_LEVELS: Record<string, logLevel> = {
  error: logLevel.ERROR,
  warn: logLevel.WARN,
  info: logLevel.INFO,
  debug: logLevel.DEBUG,
};

/**
 * A kafkajs client with test-friendly defaults. kafkajs logs every retriable
 * broker error (coordinator loading, cut connections) at ERROR, so it is silent
 * unless KAFKAJS_LOG=error|warn|info|debug is set; real failures still throw.
 */
export function kafkaClient(brokers: string, overrides: Partial<KafkaConfig> = {}): Kafka {
  return new Kafka({
    clientId: 'edge-agent-test',
    brokers: [brokers],
    logLevel: KAFKAJS_LOG_LEVELS[process.env.KAFKAJS_LOG?.toLowerCase() ?? ''] ?? logLevel.NOTHING,
    connectionTimeout: 3000,
    ...overrides,
  });
}

export async function createTopic(
  brokers: string,
  topic: string,
  partitions: number,
  configs: Record<string, string> = {},
): Promise<void> {
  const admin = kafkaClient(brokers).admin();
  await admin.connect();
  try {
    await admin.createTopics({
      waitForLeaders: true,
      topics: [
        {
          topic,
          numPartitions: partitions,
          replicationFactor: 1,
          configEntries: Object.entries(configs).map(([name, value]) => ({ name, value })),
        },
      ],
    });
  } finally {
    await admin.disconnect();
  }
}

export interface ConsumeOptions {
  /** Stop once this many records arrived (then wait `settleMs` for extras such as duplicates). */
  expected: number;
  timeoutMs?: number;
  settleMs?: number;
  /** Default false: read_committed, so aborted transactional records are hidden. */
  readUncommitted?: boolean;
}

/**
 * Reads `topic` from the beginning with a fresh consumer group until `expected`
 * records arrived (plus `settleMs`). Throws on timeout, reporting how many arrived.
 */
export async function consumeAll(brokers: string, topic: string, opts: ConsumeOptions): Promise<ConsumedRecord[]> {
  const { expected, timeoutMs = 60_000, settleMs = 0, readUncommitted = false } = opts;
  const consumer = kafkaClient(brokers).consumer({
    groupId: `test-${topic}-${process.pid}-${Date.now()}-${Math.random().toString(36).slice(2)}`,
    readUncommitted,
    maxWaitTimeInMs: 250,
  });
  const records: ConsumedRecord[] = [];
  let reached!: () => void;
  const enough = new Promise<void>((resolve) => (reached = resolve));

  await consumer.connect();
  try {
    await consumer.subscribe({ topic, fromBeginning: true });
    await consumer.run({
      autoCommit: false,
      eachMessage: async ({ topic: t, partition, message }) => {
        const headers: Record<string, string> = {};
        for (const [k, v] of Object.entries(message.headers ?? {})) {
          if (v !== undefined) headers[k] = Array.isArray(v) ? v.map(String).join(',') : String(v);
        }
        records.push({
          topic: t,
          partition,
          offset: Number(message.offset),
          key: message.key?.toString('utf8') ?? null,
          value: message.value?.toString('utf8') ?? null,
          headers,
          timestamp: Number(message.timestamp),
        });
        if (records.length >= expected) reached();
      },
    });
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<'timeout'>((resolve) => {
      timer = setTimeout(() => resolve('timeout'), timeoutMs);
    });
    const outcome = await Promise.race([enough, timedOut]);
    clearTimeout(timer);
    if (outcome === 'timeout') {
      throw new Error(`consumeAll(${topic}): got ${records.length}/${expected} records within ${timeoutMs} ms`);
    }
    if (settleMs > 0) await sleep(settleMs);
    return [...records];
  } finally {
    await consumer.disconnect();
  }
}

interface KcatJsonRecord {
  topic: string;
  partition: number;
  offset: number;
  ts?: number;
  key: string | null;
  payload: string | null;
  headers?: string[];
}

/**
 * Reads a topic with kcat (`kcat -C -e -J`): from the beginning to the current end, or only `count`
 * records from `partition` at `offset`. Exact "everything up to now" semantics, independent of
 * kafkajs. Output is parsed line by line, so a topic of millions of records never becomes one string.
 */
/**
 * Reads `topic` with kcat (read_committed) up to each partition's end.
 *
 * `atLeast`: a transaction's commit returns before the coordinator has written its markers to every
 * partition, so a read right after a commit can end at a partition's last stable offset, before that
 * transaction's records. With `atLeast` the read is repeated (up to 20 times, 250 ms apart) until it
 * returns at least that many records; the last read is returned whole, so a caller asserting an exact
 * count still sees any extra record.
 */
export async function consumeWithKcat(
  brokers: string,
  topic: string,
  opts: { timeoutMs?: number; partition?: number; offset?: string | number; count?: number; atLeast?: number } = {},
): Promise<ConsumedRecord[]> {
  const { atLeast, ...once } = opts;
  let got = await consumeWithKcatOnce(brokers, topic, once);
  for (let i = 1; atLeast !== undefined && got.length < atLeast && i < 20; i++) {
    await new Promise((r) => setTimeout(r, 250));
    got = await consumeWithKcatOnce(brokers, topic, once);
  }
  return got;
}

async function consumeWithKcatOnce(
  brokers: string,
  topic: string,
  opts: { timeoutMs?: number; partition?: number; offset?: string | number; count?: number },
): Promise<ConsumedRecord[]> {
  const timeoutMs = opts.timeoutMs ?? 30_000;
  const args = ['-C', '-b', brokers, '-t', topic, '-o', String(opts.offset ?? 'beginning'), '-e', '-J', '-q'];
  if (opts.partition !== undefined) args.push('-p', String(opts.partition));
  if (opts.count !== undefined) args.push('-c', String(opts.count));
  const proc = spawn('kcat', args, { stdio: ['ignore', 'pipe', 'pipe'] });
  const records: ConsumedRecord[] = [];
  let rest = '';
  let err = '';
  const take = (line: string) => {
    if (line.trim() === '') return;
    const r = JSON.parse(line) as KcatJsonRecord;
    const headers: Record<string, string> = {};
    const h = r.headers ?? [];
    for (let i = 0; i + 1 < h.length; i += 2) headers[h[i] as string] = h[i + 1] as string;
    records.push({
      topic: r.topic,
      partition: r.partition,
      offset: r.offset,
      key: r.key,
      value: r.payload,
      headers,
      timestamp: r.ts ?? 0,
    });
  };
  proc.stdout.setEncoding('utf8').on('data', (d: string) => {
    const lines = (rest + d).split('\n');
    rest = lines.pop() ?? '';
    for (const line of lines) take(line);
  });
  proc.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
  const timer = setTimeout(() => proc.kill('SIGKILL'), timeoutMs);
  const code = await new Promise<number | null>((resolve, reject) => {
    proc.once('error', reject);
    proc.once('close', resolve);
  }).finally(() => clearTimeout(timer));
  if (code !== 0) throw new Error(`kcat exited with ${code}: ${err.trim()}`);
  take(rest);
  return records;
}

/** The sync cursor Kafka committed for `config`'s gateway (the last store sequence in Kafka), or undefined. */
export async function committedSyncCursor(brokers: string, config: AgentConfig): Promise<number | undefined> {
  const kafka = config.sync.kafka;
  if (!kafka) throw new Error('no sync.kafka in the config');
  const admin = kafkaClient(brokers).admin();
  await admin.connect();
  try {
    const res = await admin.fetchOffsets({ groupId: cursorGroup(config.gateway.id), topics: [cursorTopic(kafka)] });
    const meta = res[0]?.partitions[0]?.metadata;
    if (!meta) return undefined;
    return (JSON.parse(meta.replace(/\0+$/, '')) as { seq: number }).seq;
  } finally {
    await admin.disconnect();
  }
}
