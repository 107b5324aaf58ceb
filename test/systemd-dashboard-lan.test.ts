/**
 * The drop-in that opens the dashboard to the plant network (systemd/dashboard-lan.conf) passes
 * `systemd-analyze verify` together with the unit, with no warnings, and keeps what the README promises.
 */

import { spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { tempDir } from './helpers/tmp.js';

const hasAnalyze = !spawnSync('systemd-analyze', ['--version'], { stdio: 'ignore' }).error;
if (!hasAnalyze && process.env.CI) throw new Error('systemd-analyze not found (apt-get install systemd); required in CI');
if (!hasAnalyze) console.warn('\n*** systemd-analyze not found: SKIPPING drop-in verification (apt-get install systemd) ***\n');

describe('dashboard-on-the-plant-network drop-in', () => {
  it.skipIf(!hasAnalyze)('verifies with the unit, with no warnings', () => {
    const dir = tempDir();
    try {
      cpSync('systemd/edge-agent.service', join(dir.path, 'edge-agent.service'));
      mkdirSync(join(dir.path, 'edge-agent.service.d'));
      cpSync('systemd/dashboard-lan.conf', join(dir.path, 'edge-agent.service.d', 'dashboard-lan.conf'));
      const res = spawnSync('systemd-analyze', ['verify', join(dir.path, 'edge-agent.service')], { encoding: 'utf8' });
      expect(res.stderr).toBe('');
      expect(res.status).toBe(0);
    } finally {
      dir.remove();
    }
  });

  it('binds only the dashboard port, drops every address not listed, and passes the TLS files as credentials', () => {
    const lines = new Set(readFileSync('systemd/dashboard-lan.conf', 'utf8').split('\n'));
    for (const s of [
      'SocketBindAllow=tcp:8443',
      'SocketBindDeny=any',
      'IPAddressAllow=localhost',
      'IPAddressDeny=any',
      'LoadCredential=api-cert:/etc/edge-agent/credentials/api-cert.pem',
      'LoadCredential=api-key:/etc/edge-agent/credentials/api-key.pem',
    ])
      expect(lines, s).toContain(s);
  });
});
