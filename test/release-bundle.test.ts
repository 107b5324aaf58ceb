/**
 * The release bundle (`npm run package`) installs and runs on a gateway without network access:
 * scripts/install.sh --bundle in a network namespace with only loopback (no route to any registry),
 * then the installed `edge-agent` validates, prints its version, runs the compiled agent with plain
 * Node (the bundle has no tsx), trips pump-1 and stops cleanly on SIGTERM; its Kafka client and our
 * producer addon (both built at `npm ci`) load, and the sync process starts against an unreachable
 * broker without an error.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type PackageResult, packageBundle } from '../scripts/package.js';
import { tempDir } from './helpers/tmp.js';

const canUnshare = spawnSync('unshare', ['--mount', '--net', 'true']).status === 0;
const why = canUnshare ? undefined : 'unshare --mount --net is not permitted here (needs root)';
if (why && process.env.CI) throw new Error(`CI must run the offline install test: ${why}`);
if (why) console.warn(`\n!!! SKIPPING the offline bundle install: ${why}\n`);

const RUN_CONFIG = (dir: string) => `
gateway: { id: offline-test }
store: { path: ${dir}/agent.db }
api: { listen: "127.0.0.1:0" }
sources:
  - id: sim
    type: simulator
    rate: 50
    seed: 7
    faults:
      - { asset: pump-1, sensor: temperature, kind: overheat_ramp, start: 500ms, duration: 2s, magnitude: 60 }
assets:
  - id: pump-1
    sensors:
      - { id: temperature, metric: temperature, unit: degC, source: sim }
detectors:
  - { id: pump-1-overheat, type: threshold, asset: pump-1, sensor: temperature, setpoint: 90, severity: critical, trip: true }
actuators:
  - { id: log-stop, type: log }
sync:
  kafka:
    brokers: ["127.0.0.1:9"]
    request_timeout: 2s
interlocks:
  - asset: pump-1
    actions: [{ actuator: log-stop, command: stop }]
`;

describe.skipIf(!!why)('release bundle', () => {
  const dir = tempDir('edge-agent-release-');
  let bundle: PackageResult;
  beforeAll(() => {
    bundle = packageBundle(join(dir.path, 'release'));
  }, 300_000);
  afterAll(() => dir.remove());

  it('holds the compiled agent and this platform binaries only, with a matching .sha256', () => {
    expect(bundle.file).toMatch(new RegExp(`edge-agent-\\d+\\.\\d+\\.\\d+-linux-${process.arch}\\.tar\\.gz$`));
    const sum = readFileSync(`${bundle.file}.sha256`, 'utf8');
    expect(sum).toBe(`${bundle.sha256}  ${bundle.file.split('/').at(-1)}\n`);
    const list = spawnSync('tar', ['-tzf', bundle.file], { encoding: 'utf8', maxBuffer: 64 << 20 }).stdout.split('\n');
    expect(list.some((f) => f.endsWith('/agent/cli.js'))).toBe(true);
    expect(list.some((f) => f.endsWith('/agent/store/worker.js'))).toBe(true);
    expect(list.some((f) => f.endsWith('/agent/ops/dashboard.html'))).toBe(true);
    expect(list.filter((f) => /\.(ts|mts|cts)$/.test(f))).toEqual([]);
    expect(list.some((f) => f.includes('/node_modules/tsx/'))).toBe(false);
    expect(list.some((f) => f.includes('/node_modules/typescript/'))).toBe(false);
    const ortPlatforms = new Set(
      list.map((f) => /onnxruntime-node\/bin\/napi-v6\/([^/]+\/[^/]+)\//.exec(f)?.[1]).filter(Boolean),
    );
    expect([...ortPlatforms]).toEqual([`linux/${process.arch}`]);
    expect(list.some((f) => f.endsWith('better_sqlite3.node'))).toBe(true);
    expect(list.some((f) => f.endsWith('unix_dgram.node'))).toBe(true);
    // The Kafka client built at npm ci: its addon and the librdkafka it loads, no sources.
    expect(list.some((f) => f.endsWith('kafka-javascript/build/Release/confluent-kafka-javascript.node'))).toBe(true);
    expect(list.some((f) => f.endsWith('kafka-javascript/build/deps/librdkafka.so.1'))).toBe(true);
    expect(list.some((f) => f.includes('kafka-javascript/deps/librdkafka/src/'))).toBe(false);
    // Our producer addon (native/kafka-txn), which links that librdkafka.so.1.
    expect(list.some((f) => f.endsWith('/native/kafka-txn/build/Release/kafka_txn.node'))).toBe(true);
    expect(list.some((f) => /\/native\/kafka-txn\/build\/Release\/obj/.test(f))).toBe(false);
  });

  it('installs with no network and the installed edge-agent validates, runs the compiled agent, trips and stops', () => {
    const root = join(dir.path, 'root');
    const runDir = join(dir.path, 'run');
    spawnSync('mkdir', ['-p', runDir]);
    const runConfig = join(runDir, 'agent.yaml');
    writeFileSync(runConfig, RUN_CONFIG(runDir));
    const res = spawnSync(
      'unshare',
      ['--mount', '--net', 'bash', 'test/fixtures/offline-install.sh', bundle.file, root, runConfig],
      {
        encoding: 'utf8',
        timeout: 240_000,
      },
    );
    const out = Object.fromEntries(
      res.stdout
        .split('\n')
        .map((l) => /^([A-Z_]+)=(.*)$/.exec(l))
        .filter((m): m is RegExpExecArray => !!m)
        .map((m) => [m[1], m[2]]),
    );
    const detail = `${res.stdout}\n${res.stderr}\n${existsSync(join(runDir, 'run.log')) ? readFileSync(join(runDir, 'run.log'), 'utf8').slice(-3000) : ''}`;
    expect(out.DEFAULT_ROUTE, detail).toBe('0');
    expect(out.INSTALL_RC, detail).toBe('0');
    expect(out.VALIDATE_RC, detail).toBe('0');
    expect(out.VERSION, detail).toMatch(/^edge-agent \d+\.\d+\.\d+$/);
    expect(out.KAFKA_CLIENT, detail).toMatch(/^\d+\.\d+\.\d+/);
    expect(out.KAFKA_TXN, detail).toBe(out.KAFKA_CLIENT);
    expect(out.TRIPPED, detail).toBe('1');
    expect(out.CMDLINE, detail).toMatch(/^\S*node \/opt\/edge-agent\/bin\/edge-agent\.js run --config /);
    expect(out.RUN_RC, detail).toBe('0');
    expect(res.status, detail).toBe(0);
    // The installed tree: the compiled agent, the unit, the command on the PATH, the config and token.
    expect(existsSync(join(root, 'opt/edge-agent/node_modules/tsx'))).toBe(false);
    expect(readFileSync(join(root, 'etc/systemd/system/edge-agent.service'), 'utf8')).toMatch(
      /ExecStart=\S*node \/opt\/edge-agent\/bin\/edge-agent\.js run/,
    );
    expect(readFileSync(join(root, 'etc/edge-agent/agent.yaml'), 'utf8')).toContain('/var/lib/edge-agent/agent.db');
    expect(readdirSync(join(root, 'etc/edge-agent/credentials'))).toEqual(['api-token']);
    expect(readFileSync(join(runDir, 'run.log'), 'utf8')).not.toMatch(/"level":"(error|fatal)"/);
  });

  it('refuses a bundle whose checksum does not match', () => {
    const bad = join(dir.path, 'bad.tar.gz');
    writeFileSync(bad, readFileSync(bundle.file));
    writeFileSync(`${bad}.sha256`, `${'0'.repeat(64)}  bad.tar.gz\n`);
    const res = spawnSync('bash', ['scripts/install.sh', '--bundle', bad, '--root', join(dir.path, 'root2')], {
      encoding: 'utf8',
    });
    expect(res.status).toBe(65);
    expect(res.stderr).toContain('does not match');
  });
});
