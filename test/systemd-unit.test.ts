/**
 * The service unit passes `systemd-analyze verify` (Debian's systemd package), carries the settings
 * the operations contract relies on, and the install/uninstall scripts parse and plan the right steps.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { unitNodeOptions } from '../scripts/bench/scale.js';

const UNIT = 'systemd/edge-agent.service';
const hasAnalyze = !spawnSync('systemd-analyze', ['--version'], { stdio: 'ignore' }).error;
if (!hasAnalyze && process.env.CI) throw new Error('systemd-analyze not found (apt-get install systemd); required in CI');
if (!hasAnalyze) console.warn('\n*** systemd-analyze not found: SKIPPING unit verification (apt-get install systemd) ***\n');

describe('systemd unit', () => {
  it.skipIf(!hasAnalyze)('passes systemd-analyze verify with no warnings', () => {
    const res = spawnSync('systemd-analyze', ['verify', UNIT], { encoding: 'utf8' });
    expect(res.stderr).toBe('');
    expect(res.status).toBe(0);
  });

  it('declares notify, watchdog, validation, no restart on bad config, a dedicated user and hardening', () => {
    const unit = readFileSync(UNIT, 'utf8');
    const settings = new Set(unit.split('\n').filter((l) => /^[A-Z]\w*=/.test(l)));
    for (const s of [
      'Type=notify',
      'NotifyAccess=main',
      'Restart=on-failure',
      'RestartPreventExitStatus=78',
      'User=edge-agent',
      'StateDirectory=edge-agent',
      'ConfigurationDirectory=edge-agent',
      'ProtectSystem=strict',
      'NoNewPrivileges=yes',
      'PrivateTmp=yes',
      'CapabilityBoundingSet=',
      'DevicePolicy=closed',
      'DeviceAllow=char-ttyUSB rw',
      // drivers/exec/README.md's GPIO stop relay (gpioset on /dev/gpiochip*).
      'DeviceAllow=char-gpiochip rw',
      'ReadWritePaths=/var/lib/edge-agent',
      'LoadCredential=api-token:/etc/edge-agent/credentials/api-token',
      'ExecReload=/bin/kill -HUP $MAINPID',
    ])
      expect(settings, s).toContain(s);
    expect(unit).toMatch(/^WatchdogSec=\d+s$/m);
    expect(unit).toMatch(/^ExecStartPre=.* validate --config \/etc\/edge-agent\/agent\.yaml$/m);
  });
});

describe('the node runtime the unit sets', () => {
  /** The number a script prints when a real node process runs it with these NODE_OPTIONS. */
  const printed = (nodeOptions: string, script: string) =>
    Number(
      execFileSync(process.execPath, ['-e', script], {
        encoding: 'utf8',
        env: { ...process.env, NODE_OPTIONS: nodeOptions },
      }).trim(),
    );

  it('NODE_OPTIONS leaves one V8 helper thread (issue 20): three threads fewer than Node by default', () => {
    const options = unitNodeOptions();
    expect(options.split(' ')).toContain('--v8-pool-size=1');
    // Node starts its V8 helper threads at launch: count this process's threads once it runs.
    const threads = (nodeOptions: string) =>
      printed(nodeOptions, "setTimeout(() => console.log(require('fs').readdirSync('/proc/self/task').length), 100)");
    expect(threads('') - threads(options)).toBe(3);
  });

  it("NODE_OPTIONS lets the young generation grow to 2 × 32 MB under allocation, twice Node's default", () => {
    const options = unitNodeOptions();
    expect(options.split(' ')).toContain('--max-semi-space-size=32');
    // Short-lived garbage with some survivors, as readings make: V8 grows the young generation to its ceiling.
    const grown = (nodeOptions: string) =>
      printed(
        nodeOptions,
        `let keep = [];
         for (let i = 0; i < 3e6; i++) { keep.push({ i, s: 'x' + i }); if (keep.length > 200000) keep = []; }
         const s = require('v8').getHeapSpaceStatistics().find((x) => x.space_name === 'new_space');
         console.log(s.space_size / 1048576);`,
      );
    expect(grown('')).toBeLessThan(64); // 2 × 16 MB on a 64-bit machine with memory to spare
    expect(grown(options)).toBe(64);
  });
});

describe('install and uninstall scripts', () => {
  it('parse with bash -n', () => {
    for (const s of ['scripts/install.sh', 'scripts/uninstall.sh']) execFileSync('bash', ['-n', s]);
  });

  it('install --dry-run verifies the rendered unit, validates the rendered config and plans every step', () => {
    const out = execFileSync('bash', ['scripts/install.sh', '--dry-run'], {
      encoding: 'utf8',
      env: { ...process.env, EDGE_API_TOKEN: '' },
    });
    expect(out).toMatch(/\/agent\.yaml: OK/);
    const plan = out.split('\n').filter((l) => l.startsWith('[dry-run] '));
    const find = (re: RegExp) => plan.findIndex((l) => re.test(l));
    expect(find(/useradd --system .* edge-agent$/)).toBeGreaterThanOrEqual(0);
    expect(find(/npm run --silent package/)).toBeGreaterThanOrEqual(0);
    expect(find(/cp -a .* \/opt\/edge-agent\/$/)).toBeGreaterThan(find(/useradd/));
    expect(find(/install -m 0755 .* \/usr\/local\/bin\/edge-agent$/)).toBeGreaterThan(0);
    expect(find(/usermod -a -G gpio edge-agent$/)).toBeGreaterThan(find(/useradd/));
    expect(find(/60-edge-agent-gpio\.rules \/etc\/udev\/rules\.d\//)).toBeGreaterThan(0);
    expect(find(/install -m 0640 .* \/etc\/edge-agent\/agent\.yaml$/)).toBeGreaterThan(0);
    expect(find(/credentials\/api-token/)).toBeGreaterThan(0);
    expect(find(/\/etc\/systemd\/system\/edge-agent\.service$/)).toBeGreaterThan(0);
    expect(find(/systemctl enable --now edge-agent\.service/)).toBe(plan.length - 1);
  });

  it('uninstall --dry-run keeps the config and the store unless --purge', () => {
    const keep = execFileSync('bash', ['scripts/uninstall.sh', '--dry-run'], { encoding: 'utf8' });
    expect(keep).toContain('systemctl disable --now edge-agent.service');
    expect(keep).not.toContain('rm -rf /etc/edge-agent');
    const purge = execFileSync('bash', ['scripts/uninstall.sh', '--dry-run', '--purge'], { encoding: 'utf8' });
    expect(purge).toContain('rm -rf /etc/edge-agent /var/lib/edge-agent');
  });
});
