/**
 * The local API's guards without a browser, through a real HTTP server and a real agent on the
 * simulator: the Host allow-list on loopback (DNS rebinding), reading behind a login with bearer
 * tokens still working for tools, and the per-asset event list (live, and read back from the store
 * after a restart). The browser side is test/dashboard.browser.test.ts.
 */
import { request } from 'node:http';
import { join } from 'node:path';
import parsePrometheus from 'parse-prometheus-text-format';
import { afterEach, describe, expect, it } from 'vitest';
import { AssetEventLog } from '../agent/ops/events.js';
import { apiConfigYaml, startService as start, TOKEN } from './helpers/service.js';
import { tempDir } from './helpers/tmp.js';
import { waitFor } from './helpers/wait.js';

const cleanups: Array<() => void | Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function startService(yaml: string): ReturnType<typeof start> {
  const started = await start(yaml);
  cleanups.push(() => started.service.stop());
  return started;
}

/** fetch() cannot set Host; this can. */
const raw = (base: string, method: string, path: string, headers: Record<string, string>, body?: string) =>
  new Promise<{ status: number; body: string }>((resolve, reject) => {
    const u = new URL(base);
    const req = request({ host: u.hostname, port: u.port, path, method, headers }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => {
        text += c;
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
    });
    req.on('error', reject);
    req.end(body);
  });

const bearer = { authorization: `Bearer ${TOKEN}` };
const privateYaml = (db: string) =>
  apiConfigYaml(db).replace(
    `api: { listen: '127.0.0.1:0', token: '${TOKEN}' }`,
    `api: { listen: '127.0.0.1:0', token: '${TOKEN}', public_read: false }`,
  );

describe('local API guards', () => {
  it('answers only its own host names, also on loopback (DNS rebinding)', async () => {
    const dir = tempDir();
    cleanups.push(dir.remove);
    const { base } = await startService(apiConfigYaml(join(dir.path, 'agent.db')));
    const port = new URL(base).port;
    for (const path of ['/', '/api/status', '/api/twin', '/api/series', '/api/events', '/metrics', '/healthz']) {
      const res = await raw(base, 'GET', path, { host: 'attacker.example' });
      expect(res.status, path).toBe(403);
      expect(res.body).not.toContain('gw-test');
    }
    const post = await raw(
      base,
      'POST',
      '/api/assets/pump-1/ack',
      { host: `attacker.example:${port}`, ...bearer, 'content-type': 'application/json' },
      '{"by":"x"}',
    );
    expect(post.status).toBe(403);
    for (const host of [`127.0.0.1:${port}`, `localhost:${port}`, 'LOCALHOST'])
      expect((await raw(base, 'GET', '/api/status', { host })).status, host).toBe(200);
    // On loopback the read-only view needs no login unless the config says otherwise.
    expect(JSON.parse((await raw(base, 'GET', '/api/session', { host: 'localhost' })).body)).toMatchObject({
      user: null,
      public_read: true,
      login_enabled: true,
    });
  });

  it('with public_read: false, tools read with a bearer token; nothing else without login', async () => {
    const dir = tempDir();
    cleanups.push(dir.remove);
    const { base } = await startService(privateYaml(join(dir.path, 'agent.db')));
    for (const path of ['/api/status', '/api/twin', '/api/series', '/api/events', '/metrics'])
      expect((await fetch(`${base}${path}`)).status, path).toBe(401);
    expect((await fetch(`${base}/healthz`)).status).toBe(200);
    expect((await fetch(`${base}/readyz`)).status).toBe(200);
    expect((await fetch(`${base}/`)).status).toBe(200);
    const metrics = await fetch(`${base}/metrics`, { headers: bearer });
    expect(metrics.status).toBe(200);
    const families = parsePrometheus(await metrics.text());
    expect(families.some((f) => f.name === 'edge_agent_readings_total')).toBe(true);
    const status = (await (await fetch(`${base}/api/status`, { headers: bearer })).json()) as { sync: { configured: boolean } };
    expect(status.sync.configured).toBe(false);
    expect((await fetch(`${base}/api/status`, { headers: { authorization: 'Bearer wrong' } })).status).toBe(401);
    // A browser-style login: cookie plus CSRF token; the shared token needs a name.
    const login = await fetch(`${base}/api/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ token: TOKEN, name: 'Jana Novak' }),
    });
    expect(login.status).toBe(200);
    const cookie = (login.headers.get('set-cookie') ?? '').split(';')[0] as string;
    expect((await fetch(`${base}/api/twin`, { headers: { cookie } })).status).toBe(200);
    const { csrf_token } = (await login.json()) as { csrf_token: string };
    const logout = (headers: Record<string, string>) =>
      fetch(`${base}/api/logout`, {
        method: 'POST',
        headers: { cookie, 'content-type': 'application/json', ...headers },
        body: '{}',
      });
    expect((await logout({})).status).toBe(403);
    expect((await logout({ 'x-csrf-token': csrf_token })).status).toBe(200);
    expect((await fetch(`${base}/api/twin`, { headers: { cookie } })).status).toBe(401);
  });

  it('lists what happened to an asset, and still after a restart (read back from the store)', async () => {
    const dir = tempDir();
    cleanups.push(dir.remove);
    const db = join(dir.path, 'agent.db');
    // A short overheat: the acknowledgement is accepted only once its cause has cleared (reset permissive).
    const yaml = apiConfigYaml(db).replace('duration: 10m, magnitude: 6000', 'duration: 3s, magnitude: 60');
    const first = await start(yaml);
    const events = async (base: string) =>
      (
        (await (await fetch(`${base}/api/events?asset=pump-1`)).json()) as {
          events: Array<{ type: string; summary: string; t: number }>;
        }
      ).events;
    try {
      await waitFor(async () => (await events(first.base)).some((e) => e.type === 'trip'), {
        what: 'the trip in the list',
        timeoutMs: 30_000,
      });
      await waitFor(
        async () =>
          (
            await fetch(`${first.base}/api/assets/pump-1/ack`, {
              method: 'POST',
              headers: { ...bearer, 'content-type': 'application/json' },
              body: '{"by":"Jana Novak"}',
            })
          ).status === 200,
        { what: 'the ack accepted once the overheat cleared', timeoutMs: 30_000 },
      );
      const list = await waitFor(
        async () => {
          const l = await events(first.base);
          return l.some((e) => e.type === 'ack') ? l : undefined;
        },
        { what: 'the ack in the list' },
      );
      expect(list[0]?.summary).toBe('acknowledged by Jana Novak (api)');
      expect(list.find((e) => e.type === 'trip')?.summary).toMatch(
        /^tripped by overheat at 9\d\.\d+ degC; sent stop to log-stop$/,
      );
      expect(list.find((e) => e.type === 'anomaly')?.summary).toMatch(
        /^critical: overheat raised on temperature at \d+\.?\d* degC \(trips\)$/,
      );
      expect((await fetch(`${first.base}/api/events?asset=nope`)).status).toBe(404);
      const all = (await (await fetch(`${first.base}/api/events?limit=2`)).json()) as { assets: Record<string, unknown[]> };
      expect(Object.keys(all.assets)).toEqual(['pump-1', 'pump-2']);
      expect(all.assets['pump-1']?.length).toBe(2);
    } finally {
      await first.service.stop();
    }
    const second = await startService(yaml);
    const after = await events(second.base);
    expect(after.find((e) => e.type === 'ack')?.summary).toBe('acknowledged by Jana Novak (api)');
    expect(after.some((e) => e.type === 'trip')).toBe(true);
  });
});

describe('AssetEventLog', () => {
  const log = () =>
    new AssetEventLog({
      assets: [{ id: 'p', sensors: [{ id: 't', metric: 'temperature', unit: 'degC', source: 's' }] }],
      detectors: [
        {
          id: 'hot',
          type: 'threshold',
          asset: 'p',
          sensor: 't',
          setpoint: 90,
          delta_up: 0,
          delta_down: 0,
          direction: 'above',
          severity: 'critical',
          trip: true,
        },
        {
          id: 'range',
          type: 'out_of_range',
          asset: 'p',
          sensor: 't',
          faults: ['bad'],
          persistence: 1,
          severity: 'warning',
          trip: false,
        },
      ] as never,
    });

  it('puts control changes of a detector under its asset, and names sensor faults', () => {
    const l = log();
    l.onEvent({
      kind: 'audit',
      key: 'gw-1',
      eventTime: 1,
      payload: {
        type: 'control',
        op: 'set',
        detector: 'hot',
        previous: { setpoint: 90 },
        applied: { setpoint: 85 },
        by: 'cloud-ops',
      },
    });
    l.onEvent({
      kind: 'anomaly',
      key: 'p',
      eventTime: 2,
      payload: { detector: 'range', sensor: 't', state: 'raised', severity: 'warning', value: 500 },
    });
    l.onEvent({
      kind: 'alarm',
      key: 'p',
      eventTime: 3,
      payload: { type: 'fail_safe', state: 'raised', sensor: 't', cause: 'silent', policy: 'stop' },
    });
    l.onEvent({ kind: 'action', key: 'p', eventTime: 4, payload: { type: 'command_result', ok: true } });
    l.onEvent({ kind: 'aggregate', key: 'p', eventTime: 5, payload: {} });
    expect(l.list('p')?.map((e) => [e.type, e.summary])).toEqual([
      ['sensor_fault', 'sensor t went silent (fail-safe: stop)'],
      ['sensor_fault', 'sensor fault: range raised on t at 500 degC'],
      ['control', 'hot: set setpoint 90 → 85 by cloud-ops'],
    ]);
    expect(l.list('nope')).toBeUndefined();
  });
  it('shares one budget over the assets: 100 events each for a small plant, fewer (at least 10) for thousands', () => {
    const plant = (n: number) =>
      new AssetEventLog({
        assets: Array.from({ length: n }, (_, i) => ({
          id: `a${i}`,
          sensors: [{ id: 't', metric: 'temperature' as const, unit: 'degC', source: 's' }],
        })),
        detectors: [],
      });
    const fill = (l: AssetEventLog, asset: string, count: number) => {
      for (let i = 0; i < count; i++)
        l.onEvent({
          kind: 'anomaly',
          key: asset,
          eventTime: i,
          payload: { detector: 'hot', sensor: 't', state: 'raised', severity: 'critical', value: i },
        });
    };
    const small = plant(3);
    fill(small, 'a1', 150);
    expect(small.list('a1', 1000)).toHaveLength(100);
    expect(small.list('a1', 1)?.[0]?.t).toBe(149);
    const large = plant(2000);
    fill(large, 'a7', 150);
    expect(large.list('a7', 1000)?.map((e) => e.t)).toEqual(Array.from({ length: 10 }, (_, k) => 149 - k));
    const medium = plant(400);
    fill(medium, 'a0', 150);
    expect(medium.list('a0', 1000)).toHaveLength(50);
  });
});
