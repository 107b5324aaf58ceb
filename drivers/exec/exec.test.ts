/** The exec actuator running real programs: success, arguments without a shell, failure, timeout, missing file. */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { tempDir } from '../../test/helpers/tmp.js';
import exec from './index.js';

const silent = pino({ level: 'silent' });
const dirs: Array<{ remove(): void }> = [];
afterEach(() => {
  for (const d of dirs.splice(0)) d.remove();
});

async function actuator(commands: Record<string, unknown>, timeout = '5s') {
  const config = exec.schema.parse({ timeout, commands });
  const d = await exec.create({ ...config, id: 'x' }, { id: 'x', logger: silent, now: Date.now });
  await d.init();
  return d;
}

describe('exec actuator', () => {
  it('runs the program with {asset}/{command} substituted, and acknowledges on exit code 0', async () => {
    const dir = tempDir();
    dirs.push(dir);
    const d = await actuator({ stop: { file: 'touch', args: [join(dir.path, '{asset}.{command}')] } });
    await d.start();
    const res = await d.execute({ asset: 'pump-1', command: 'stop', reason: {} });
    expect(res).toMatchObject({ ok: true, ack: { exit_code: 0 } });
    expect(existsSync(join(dir.path, 'pump-1.stop'))).toBe(true);
  });

  it('passes arguments literally: no shell expands them', async () => {
    const dir = tempDir();
    dirs.push(dir);
    const out = join(dir.path, 'out');
    const d = await actuator({
      stop: {
        file: process.execPath,
        args: ['-e', `require('fs').writeFileSync(${JSON.stringify(out)}, process.argv[1])`, '$(touch pwned); `id` *'],
      },
    });
    await d.start();
    expect((await d.execute({ asset: 'a', command: 'stop', reason: {} })).ok).toBe(true);
    expect(readFileSync(out, 'utf8')).toBe('$(touch pwned); `id` *');
    expect(existsSync('pwned')).toBe(false);
  });

  it('reports a non-zero exit and a timeout as failures', async () => {
    const d = await actuator({ fail: { file: 'false' }, hang: { file: 'sleep', args: ['10'], timeout: '200ms' } });
    await d.start();
    expect(await d.execute({ asset: 'a', command: 'fail', reason: {} })).toMatchObject({
      ok: false,
      error: 'exited with code 1',
    });
    const t0 = Date.now();
    expect(await d.execute({ asset: 'a', command: 'hang', reason: {} })).toMatchObject({
      ok: false,
      error: 'killed after 200 ms timeout',
    });
    expect(Date.now() - t0).toBeLessThan(5000);
  });

  it('fails at start when a program does not exist', async () => {
    const d = await actuator({ stop: { file: '/nonexistent/gpioset', args: [] } });
    await expect(d.start()).rejects.toThrow('not found or not executable: stop: /nonexistent/gpioset');
  });
});
