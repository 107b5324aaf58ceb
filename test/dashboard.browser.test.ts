/// <reference lib="dom" />
/**
 * The dashboard in real headless Chromium (Debian's chromium, driven by playwright-core), served over
 * HTTPS by a real agent on the simulator, reached by a host name (dashboard.plant.test, mapped to
 * 127.0.0.1 inside Chromium), with reading behind a login (public_read: false) as on the plant network.
 *
 * Shows: the page at 1280x800 and 800x1280 (screenshots in test-results/, copied to docs/); a trip
 * appears with its cause and time within 2 s; the ack flow with a per-user login; a refused ack
 * shows the agent's reason; a foreign Host header is refused (also through a rebound name in the
 * browser); a cross-site POST without the CSRF token is refused; logins are rate limited; axe-core
 * finds no serious or critical accessibility violation.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { request } from 'node:https';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import parsePrometheus from 'parse-prometheus-text-format';
import { pino } from 'pino';
import { type Browser, type BrowserContext, chromium, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { apiSchema } from '../agent/config/schema.js';
import { type ApiBackend, ApiServer } from '../agent/ops/api.js';
import type { Service } from '../agent/ops/service.js';
import type { AssetTwin } from '../agent/ops/twin.js';
import { Telemetry } from '../agent/telemetry.js';
import { pymodbusUnavailable, startPymodbus } from './helpers/pymodbus.js';
import { startService } from './helpers/service.js';
import { tempDir } from './helpers/tmp.js';
import { waitFor } from './helpers/wait.js';

const CHROMIUM = process.env.CHROMIUM_PATH ?? ['/usr/bin/chromium', '/usr/bin/chromium-browser'].find((p) => existsSync(p));
const missing = !CHROMIUM || pymodbusUnavailable() !== undefined;
if (pymodbusUnavailable() && process.env.CI) throw new Error(pymodbusUnavailable());
if (missing && process.env.CI) throw new Error('chromium not found (apt-get install chromium); required in CI');
if (missing) console.warn('\n*** chromium not found: SKIPPING the dashboard browser test (apt-get install chromium) ***\n');

const HOST = 'dashboard.plant.test';
const SHARED_TOKEN = 'shared-token-0123456789abcdef';
const JANA_TOKEN = 'jana-token-0123456789abcdef';
const sha = (s: string) => createHash('sha256').update(s).digest('hex');

/** pump-1 and pump-2 overheat from 8 s (+12.5 degC/s over 65 degC): both trip at about 10.4 s; pump-1's cause clears at 12 s, pump-2's holds. */
const configYaml = (db: string, cert: string, key: string, plcPort: number) => `
gateway: { id: gw-floor }
store: { path: ${db}, flush_interval: 50ms }
log: { level: silent }
aggregation: { window: 1s }
api:
  listen: '127.0.0.1:0'
  token: '${SHARED_TOKEN}'
  users: [{ name: Jana Novak, token_sha256: ${sha(JANA_TOKEN)} }]
  allowed_hosts: [${HOST}]
  tls: { cert_file: ${cert}, key_file: ${key} }
  public_read: false
  login_max_failures: 3
  login_window: 3s
twin: { interval: 1s, history: 1m }
sources:
  - id: sim
    type: simulator
    seed: 5
    rate: 50
    tick: 20ms
    faults:
      - { asset: pump-1, sensor: temperature, kind: overheat_ramp, start: 8s, duration: 4s, magnitude: 50 }
      - { asset: pump-2, sensor: temperature, kind: overheat_ramp, start: 8s, duration: 10m, magnitude: 7500 }
  # Unit 2 gets a short timeout (it never answers); unit 1 a long one, so a loaded machine cannot make it fail.
  - { id: plc, type: modbus, host: 127.0.0.1, port: ${plcPort}, poll_interval: 200ms, timeout: 200ms, retries: 0, units: [{ unit_id: 1, timeout: 5s }] }
assets:
  - id: pump-1
    name: Cooling pump 1
    sensors:
      - { id: temperature, metric: temperature, unit: degC, source: sim }
      - { id: pressure, metric: pressure, unit: bar, source: sim }
  - id: pump-2
    name: Cooling pump 2
    sensors:
      - { id: temperature, metric: temperature, unit: degC, source: sim }
  - id: tank-3
    name: Tank 3 (Modbus PLC; its level transmitter, unit 2, is dead)
    sensors:
      - { id: flow, metric: flow, unit: m3/h, source: plc, address: { unit_id: 1, address: 0 } }
      - { id: level, metric: level, unit: cm, source: plc, address: { unit_id: 2, address: 0 } }
detectors:
  - { id: pump-1-overheat, type: threshold, asset: pump-1, sensor: temperature, setpoint: 90, delta_up: 5, delta_down: 10, severity: critical, trip: true }
  - { id: pump-1-hot-count, type: count_over, asset: pump-1, sensor: temperature, limit: 85, count: 20, window: 5s, severity: warning }
  - { id: pump-2-overheat, type: threshold, asset: pump-2, sensor: temperature, setpoint: 90, delta_up: 5, delta_down: 10, severity: critical, trip: true }
actuators:
  - { id: log-stop, type: log }
interlocks:
  - asset: pump-1
    actions: [{ actuator: log-stop, command: stop }]
  - asset: pump-2
    actions: [{ actuator: log-stop, command: stop }]
`;

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

describe.skipIf(missing)('dashboard in headless Chromium, over HTTPS on a host name', () => {
  const dir = tempDir();
  const shots = join(process.cwd(), 'test-results');
  let browser: Browser;
  let context: BrowserContext;
  let page: Page;
  let service: Service;
  let port = 0;
  let ca: Buffer;
  let evil: Server;
  let evilPort = 0;
  let plc: Awaited<ReturnType<typeof startPymodbus>> | undefined;
  const offsite: string[] = [];
  const errors: string[] = [];

  /** A request from outside the browser (curl, a tool), with any Host header. */
  const call = (method: string, path: string, headers: Record<string, string> = {}, body?: string) =>
    new Promise<Answer>((resolve, reject) => {
      const req = request(
        { host: '127.0.0.1', port, path, method, ca, servername: HOST, headers: { host: `${HOST}:${port}`, ...headers } },
        (res) => {
          let text = '';
          res.setEncoding('utf8');
          res.on('data', (c: string) => {
            text += c;
          });
          res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: text }));
        },
      );
      req.on('error', reject);
      req.end(body);
    });
  const bearer = { authorization: `Bearer ${SHARED_TOKEN}` };
  const twinOf = async (asset: string) =>
    (JSON.parse((await call('GET', '/api/twin', bearer)).body) as { assets: AssetTwin[] }).assets.find((a) => a.asset === asset);

  beforeAll(async () => {
    const cert = join(dir.path, 'cert.pem');
    const key = join(dir.path, 'key.pem');
    execFileSync('openssl', [
      'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '2',
      '-keyout', key, '-out', cert, '-subj', `/CN=${HOST}`, '-addext', `subjectAltName=DNS:${HOST}`,
    ], { stdio: 'ignore' }); // biome-ignore format: one command
    ca = readFileSync(cert);
    evil = createServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/html' });
      res.end(`<!doctype html><title>evil</title><form method="POST" enctype="text/plain"
        action="https://${HOST}:${port}/api/assets/pump-2/ack"><input name='{"by":"mallory","x":"' value='"}'></form>
        <script>
          fetch('https://${HOST}:${port}/api/assets/pump-2/ack', { method: 'POST', credentials: 'include',
            headers: { 'content-type': 'application/json' }, body: '{"by":"mallory"}' })
            .then((r) => { document.title = 'fetch ' + r.status; }, (e) => { document.title = 'fetch blocked'; });
        </script>`);
    });
    await new Promise<void>((resolve) => evil.listen(0, '127.0.0.1', resolve));
    evilPort = (evil.address() as AddressInfo).port;
    browser = await chromium.launch({
      executablePath: CHROMIUM as string,
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
        '--no-first-run',
        // The plant's DNS name, and two names an attacker controls, all resolving to this gateway.
        `--host-resolver-rules=MAP ${HOST} 127.0.0.1, MAP attacker.test 127.0.0.1, MAP evil.test 127.0.0.1`,
      ],
    });
    // A PLC whose unit 1 answers and whose unit 2 is silent (missing_unit: silent): one failing device.
    plc = await startPymodbus({ image: { units: { '1': { holding: { '0': [42] } } } } });
    const started = await startService(configYaml(join(dir.path, 'agent.db'), cert, key, plc.port));
    service = started.service;
    port = Number(new URL(started.base).port);
    context = await browser.newContext({ viewport: { width: 1280, height: 800 }, ignoreHTTPSErrors: true });
    page = await context.newPage();
    page.on('request', (r) => {
      if (!r.url().startsWith(`https://${HOST}:${port}/`)) offsite.push(r.url());
    });
    page.on('pageerror', (e) => errors.push(e.message));
    mkdirSync(shots, { recursive: true });
  });

  afterAll(async () => {
    await browser?.close();
    await service?.stop();
    await plc?.stop();
    await new Promise((resolve) => evil?.close(resolve));
    dir.remove();
  });

  it('refuses a foreign Host header on every route, also through a rebound name in the browser', async () => {
    for (const path of ['/', '/api/status', '/api/twin', '/metrics', '/healthz'])
      expect((await call('GET', path, { host: 'attacker.example' })).status, path).toBe(403);
    const refused = await call('GET', '/api/status', { ...bearer, host: `attacker.example:${port}` });
    expect(refused.status).toBe(403);
    expect(refused.body).not.toContain('gw-floor');
    // DNS rebinding: attacker.test now resolves to the gateway; the browser sends Host: attacker.test.
    const rebound = await context.newPage();
    const res = await rebound.goto(`https://attacker.test:${port}/api/status`);
    expect(res?.status()).toBe(403);
    expect(await rebound.content()).not.toContain('gw-floor');
    await rebound.close();
    // The allowed name answers, but reading needs a login here (public_read: false); probes do not.
    expect((await call('GET', '/api/status')).status).toBe(401);
    const health = await call('GET', '/healthz');
    expect(health.status).toBe(200);
    expect(health.headers['strict-transport-security']).toBe('max-age=31536000');
    expect((await call('GET', '/api/status', bearer)).status).toBe(200);
  });

  it('logs in with a per-user token, then shows a trip with its cause and time within 2 s', async () => {
    await page.goto(`https://${HOST}:${port}/`);
    await page.locator('#locked').waitFor();
    await page.click('#loginBtn');
    await page.fill('#token', JANA_TOKEN);
    await page.click('#login button[type=submit]');
    await page.locator('#user', { hasText: 'Logged in as Jana Novak' }).waitFor();
    const cookies = await context.cookies();
    const session = cookies.find((c) => c.name === '__Host-edge_session');
    expect(session).toMatchObject({ httpOnly: true, secure: true, sameSite: 'Strict', path: '/' });
    await page.locator('section[data-asset="pump-1"] .badge[data-state="running"]').waitFor();
    expect(await twinOf('pump-1')).toMatchObject({ state: 'running' });
    // Note the moment the page first says what tripped pump-1.
    await page.evaluate(() => {
      const w = window as unknown as { shownAt?: number };
      const check = () => {
        const t = document.querySelector('section[data-asset="pump-1"] .state')?.textContent ?? '';
        if (w.shownAt === undefined && t.startsWith('Tripped by pump-1-overheat at')) w.shownAt = Date.now();
      };
      new MutationObserver(check).observe(document.body, { subtree: true, childList: true, characterData: true });
    });
    // The twin says 'tripped' from the interlock's latch at once, and the trip's cause and time once the
    // trip event has reached it (a moment later; until then its trip is { detector: null, at: null }).
    const tripped = await waitFor(
      async () => {
        const t = await twinOf('pump-1');
        return t?.state === 'tripped' && typeof t.trip?.at === 'number' ? t : undefined;
      },
      {
        what: 'pump-1 to trip, with the time of the trip recorded',
        timeoutMs: 30_000,
        intervalMs: 50,
      },
    );
    const shownAt = await page.waitForFunction(() => (window as unknown as { shownAt?: number }).shownAt, null, {
      timeout: 10_000,
    });
    const tripAt = tripped.trip?.at as number;
    expect(tripped.trip?.detector).toBe('pump-1-overheat');
    const latency = ((await shownAt.jsonValue()) as number) - tripAt;
    console.log(`trip shown on the dashboard ${latency} ms after the tripping reading`);
    expect(latency).toBeLessThan(2000);
    const stateText = await page.locator('section[data-asset="pump-1"] .state').textContent();
    const hhmmss = await page.evaluate((t) => new Date(t).toTimeString().slice(0, 8), tripAt);
    expect(stateText).toContain(`Tripped by pump-1-overheat at ${hhmmss}`);
    expect(await page.locator('section[data-asset="pump-1"] .badge').textContent()).toBe('Tripped');
    // The event list says the same, from the agent's own records.
    await page.locator('section[data-asset="pump-1"] .events li.trip', { hasText: 'tripped by pump-1-overheat' }).waitFor();
    // The chart: the limits are inside the y-range, and the anomaly markers are drawn.
    const chart = page.locator('section[data-asset="pump-1"] .sensor[data-sensor="temperature"] canvas');
    await page.waitForFunction(
      () =>
        Number(
          document
            .querySelector('section[data-asset="pump-1"] .sensor[data-sensor="temperature"] canvas')
            ?.getAttribute('data-markers'),
        ) >= 1,
    );
    expect(Number(await chart.getAttribute('data-ymin'))).toBeLessThan(80);
    expect(Number(await chart.getAttribute('data-ymax'))).toBeGreaterThan(95);
    const label = (await chart.getAttribute('aria-label')) ?? '';
    expect(label).toContain('pump-1-overheat raises above 95.00 degC');
    expect(label).toContain('pump-1-hot-count raises above 85.00 degC');
    expect(label).toMatch(/anomaly markers: .*pump-1-overheat raised at \d\d:\d\d:\d\d \(critical\)/);
    // The pressure chart is not blown up by noise: at least a quarter of the level is shown.
    const p = page.locator('section[data-asset="pump-1"] .sensor[data-sensor="pressure"] canvas');
    expect(Number(await p.getAttribute('data-ymax')) - Number(await p.getAttribute('data-ymin'))).toBeGreaterThan(1.4);
    // Hovering the marker names the detector.
    const box = (await chart.boundingBox()) as { x: number; y: number; width: number; height: number };
    const markerX = await chart.evaluate(
      (cv) =>
        (cv as unknown as { _hits: Array<{ x: number; text: string }> })._hits.find((h) =>
          h.text.startsWith('pump-1-overheat raised'),
        )?.x ?? 0,
    );
    await page.mouse.move(box.x + markerX, box.y + box.height / 2);
    await expect
      .poll(() => page.locator('section[data-asset="pump-1"] .sensor[data-sensor="temperature"] .tip').textContent())
      .toContain('pump-1-overheat raised');
    await page.mouse.move(0, 0);
    await waitFor(async () => (await twinOf('pump-1'))?.active_anomalies.every((a) => a.detector !== 'pump-1-overheat'), {
      what: 'the overheat to clear (the trip stays latched)',
      timeoutMs: 20_000,
    });
    await page.locator('section[data-asset="pump-1"] .events li', { hasText: 'pump-1-overheat cleared' }).waitFor();
    await page.screenshot({ path: join(shots, 'dashboard-1280x800.png') });
  });

  it('shows which field device is failing, from the twin, with its errors', async () => {
    // Logged in by the previous test. Unit 2 never answers: FAILING (timeouts), listed first; unit 1 and the link are OK.
    const row = page.locator('#deviceRows tr[data-device="plc/unit-2"]');
    await row.locator('td.status', { hasText: 'FAILING' }).waitFor({ timeout: 15_000 });
    expect(await row.getAttribute('class')).toBe('failing');
    expect(await row.textContent()).toContain('timeout');
    expect(await row.textContent()).toContain('never');
    await page.locator('#deviceRows tr[data-device="plc/unit-1"] td.status', { hasText: 'OK' }).waitFor();
    await page.locator('#deviceRows tr[data-device="plc/link"] td.status', { hasText: 'OK' }).waitFor();
    expect(await page.locator('#deviceRows tr').first().getAttribute('data-device')).toBe('plc/unit-2');
    expect(await page.locator('#devsum').textContent()).toBe('field devices: 1 of 3 failing (plc/unit-2)');
    const twin = JSON.parse((await call('GET', '/api/twin', bearer)).body) as { devices: Array<Record<string, unknown>> };
    expect(twin.devices.find((d) => d.device === 'unit-2')).toMatchObject({ source: 'plc', status: 'failing', last_good: null });
    expect(twin.devices.find((d) => d.device === 'unit-1')).toMatchObject({ source: 'plc', status: 'ok' });
    // The same in /metrics, parsed by a Prometheus text parser; labels are the configured ids only.
    const metrics = await call('GET', '/metrics', bearer);
    expect(metrics.status).toBe(200);
    const by = new Map(parsePrometheus(metrics.body).map((f) => [f.name, f]));
    const series = (name: string) => by.get(name)?.metrics ?? [];
    const of = (name: string, device: string, labels: Record<string, string> = {}) =>
      series(name).find(
        (m) =>
          m.labels?.source === 'plc' &&
          m.labels?.device === device &&
          Object.entries(labels).every(([k, v]) => m.labels?.[k] === v),
      );
    expect(by.get('edge_agent_device_request_duration_seconds')?.type).toBe('HISTOGRAM');
    expect(Number(of('edge_agent_device_errors_total', 'unit-2', { kind: 'timeout' })?.value)).toBeGreaterThan(0);
    // Unit 1 answers every request: no timeouts, though it shares the TCP link with the dead unit. (It used to
    // count one or two: the test slave dropped a request that arrived in the same segment as unit 2's, fixed in
    // test/fixtures/pymodbus_server.py and checked in test/modbus-codec-pymodbus.test.ts.)
    expect(Number(of('edge_agent_device_errors_total', 'unit-1', { kind: 'timeout' })?.value)).toBe(0);
    expect(Number(of('edge_agent_device_status', 'unit-1', { status: 'ok' })?.value)).toBe(1);
    expect(Number(of('edge_agent_device_requests_total', 'unit-1')?.value)).toBeGreaterThan(0);
    expect(Number(of('edge_agent_device_status', 'unit-2', { status: 'failing' })?.value)).toBe(1);
    expect(Number(of('edge_agent_device_last_good_timestamp_seconds', 'unit-2')?.value)).toBe(0);
    expect(Number(of('edge_agent_device_last_good_timestamp_seconds', 'unit-1')?.value)).toBeGreaterThan(1.7e9);
    // (The parser folds labelled histograms into one sample: the count line is checked in the text.)
    const count = metrics.body.match(/^edge_agent_device_request_duration_seconds_count\{source="plc",device="unit-1"\} (\d+)$/m);
    expect(Number(count?.[1])).toBeGreaterThan(0);
    const devices = new Set(
      [...metrics.body.matchAll(/^edge_agent_device_\w+\{source="(\w+)",device="([\w-]+)"/gm)].map((m) => `${m[1]}/${m[2]}`),
    );
    expect([...devices].sort()).toEqual(['plc/link', 'plc/unit-1', 'plc/unit-2']);
    await page.locator('#devices').screenshot({ path: join(shots, 'dashboard-devices.png') });
  });

  it('has no serious or critical accessibility violations (axe-core)', async () => {
    const axeContext = await browser.newContext({
      viewport: { width: 800, height: 1280 },
      ignoreHTTPSErrors: true,
      bypassCSP: true,
    });
    await axeContext.addCookies(await context.cookies());
    const p = await axeContext.newPage();
    await p.goto(`https://${HOST}:${port}/`);
    await p.locator('section[data-asset="pump-2"] .events li').first().waitFor();
    await p.addScriptTag({ path: join(process.cwd(), 'node_modules/axe-core/axe.min.js') });
    const result = (await p.evaluate(() =>
      (window as unknown as { axe: { run(o: unknown): Promise<unknown> } }).axe.run({ resultTypes: ['violations'] }),
    )) as { violations: Array<{ id: string; impact: string; nodes: unknown[] }> };
    const serious = result.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
    expect(serious.map((v) => `${v.id} (${v.impact}, ${v.nodes.length} nodes)`)).toEqual([]);
    // Touch targets and text size, measured.
    const sizes = await p.evaluate(() => ({
      buttons: Array.from(document.querySelectorAll('button'))
        .filter((b) => (b as HTMLElement).offsetParent !== null)
        .map((b) => Math.min(b.getBoundingClientRect().height, b.getBoundingClientRect().width)),
      fonts: Array.from(document.querySelectorAll('p, li, span, b, label, button, h3'))
        .filter((e) => (e as HTMLElement).offsetParent !== null && e.textContent?.trim())
        .map((e) => Number.parseFloat(getComputedStyle(e).fontSize)),
    }));
    expect(Math.min(...sizes.buttons)).toBeGreaterThanOrEqual(44);
    expect(Math.min(...sizes.fonts)).toBeGreaterThanOrEqual(16);
    await p.screenshot({ path: join(shots, 'dashboard-800x1280.png') });
    await axeContext.close();
  });

  it('refuses a cross-site POST without the CSRF token', async () => {
    expect((await twinOf('pump-2'))?.state).toBe('tripped');
    const cookie = (await context.cookies()).find((c) => c.name === '__Host-edge_session') as { value: string };
    const jar = { cookie: `__Host-edge_session=${cookie.value}`, 'content-type': 'application/json' };
    const body = JSON.stringify({ by: 'mallory' });
    // The session cookie alone is not enough.
    const noToken = await call('POST', '/api/assets/pump-2/ack', jar, body);
    expect(noToken.status).toBe(403);
    expect(noToken.body).toContain('CSRF');
    expect((await call('POST', '/api/assets/pump-2/ack', { ...jar, 'x-csrf-token': 'guess' }, body)).status).toBe(403);
    const { csrf_token } = JSON.parse((await call('GET', '/api/session', jar)).body) as { csrf_token: string };
    const foreign = { ...jar, 'x-csrf-token': csrf_token, origin: 'http://evil.test' };
    expect((await call('POST', '/api/assets/pump-2/ack', foreign, body)).status).toBe(403);
    const form = { ...jar, 'x-csrf-token': csrf_token, 'content-type': 'text/plain' };
    expect((await call('POST', '/api/assets/pump-2/ack', form, body)).status).toBe(415);
    // A page on another site, in the browser where Jana is logged in: a form post and a fetch.
    const attacker = await context.newPage();
    await attacker.goto(`http://evil.test:${evilPort}/`);
    await attacker.waitForFunction(() => document.title.startsWith('fetch'));
    expect(await attacker.title()).toBe('fetch blocked');
    const [response] = await Promise.all([
      attacker.waitForResponse((r) => r.url().endsWith('/api/assets/pump-2/ack')),
      attacker.evaluate(() => document.forms[0]?.submit()),
    ]);
    expect(response.status()).toBeGreaterThanOrEqual(400);
    await attacker.close();
    expect((await twinOf('pump-2'))?.state).toBe('tripped');
  });

  it('shows why an acknowledgement is refused', async () => {
    // pump-2's overheat still holds: the agent refuses the acknowledgement (reset permissive, contract C)
    // and the page shows its sentence and the condition still raised.
    await page.locator('section[data-asset="pump-2"] .badge[data-state="tripped"]').waitFor();
    await page.click('section[data-asset="pump-2"] button.ack');
    const msg = page.locator('section[data-asset="pump-2"] .ackmsg');
    await msg.locator('p', { hasText: 'Acknowledge refused (409)' }).waitFor();
    expect(await msg.textContent()).toContain('tripping condition still holds (pump-2-overheat on temperature)');
    expect(await msg.locator('li').allTextContents()).toEqual(['pump-2-overheat is still raised on temperature']);
    expect((await twinOf('pump-2'))?.state).toBe('tripped');
  });

  it('acknowledges a trip after login; the audit names the person', async () => {
    const ack = page.locator('section[data-asset="pump-1"] button.ack');
    expect(await ack.textContent()).toBe('Acknowledge');
    await ack.click();
    await page.locator('section[data-asset="pump-1"] .badge[data-state="running"]').waitFor();
    expect(await page.locator('#msg').textContent()).toContain('pump-1 acknowledged by Jana Novak');
    await page
      .locator('section[data-asset="pump-1"] .events li.ack', { hasText: 'acknowledged by Jana Novak (dashboard)' })
      .waitFor();
    expect(await page.locator('section[data-asset="pump-1"] .state').textContent()).toContain(
      'Last trip acknowledged by Jana Novak at',
    );
    expect(await ack.isEnabled()).toBe(false);
    const events = JSON.parse((await call('GET', '/api/events?asset=pump-1', bearer)).body) as {
      events: Array<{ type: string; by?: string }>;
    };
    expect(events.events.find((e) => e.type === 'ack')?.by).toBe('Jana Novak');
    expect(offsite).toEqual([]);
    expect(errors).toEqual([]);
  });

  it('rate-limits failed logins per client address', async () => {
    const login = (token: string, name = 'x') =>
      call('POST', '/api/login', { 'content-type': 'application/json' }, JSON.stringify({ token, name }));
    for (let i = 0; i < 3; i++) expect((await login(`wrong-${i}`)).status).toBe(401);
    const limited = await login(SHARED_TOKEN);
    expect(limited.status).toBe(429);
    expect(Number(limited.headers['retry-after'])).toBeGreaterThan(0);
    // Wrong bearer tokens count too, and are refused while limited.
    expect((await call('GET', '/api/status', bearer)).status).toBe(429);
    await waitFor(async () => (await login(SHARED_TOKEN, 'Ana')).status === 200, {
      what: 'the login window to pass',
      timeoutMs: 10_000,
      intervalMs: 500,
    });
    const ok = await login(SHARED_TOKEN, 'Ana');
    expect(ok.headers['set-cookie']?.[0]).toMatch(
      /^__Host-edge_session=[\w-]+; Path=\/; Max-Age=\d+; HttpOnly; Secure; SameSite=Strict$/,
    );
    expect(JSON.parse(ok.body)).toMatchObject({ ok: true, user: 'Ana' });
    // The shared token needs a name.
    expect((await login(SHARED_TOKEN, '')).status).toBe(400);
  });
});

/**
 * The page against the answers other parts of the agent will give (the cross-issue contracts), through
 * the real ApiServer and Chromium, with a fixed backend in place of the running agent: a limit changed
 * at run time (contract B: {value, file_value, origin, by, applied_at}) and an acknowledgement refused
 * while the tripping condition still holds (contract C: 409 {ok: false, error, raised}).
 */
describe.skipIf(missing)('dashboard renders the limit-origin and refused-ack contracts', () => {
  it('labels an overridden limit with who set it, and shows why an ack is refused with what is still raised', async () => {
    const now = Date.now();
    const limit = {
      detector: 'pump-1-overheat',
      type: 'threshold',
      direction: 'above',
      raise: { value: 92, file_value: 95, origin: 'override', by: 'cloud-ops', applied_at: new Date(now - 60_000).toISOString() },
      clear: { value: 80, file_value: 80, origin: 'file' },
      severity: 'critical',
      trip: true,
    };
    const twin = {
      asset: 'pump-1',
      name: 'Cooling pump 1',
      state: 'tripped',
      trip: { detector: 'pump-1-overheat', at: now - 5000 },
      ack: null,
      health: 20,
      model_version: null,
      active_anomalies: [
        { detector: 'pump-1-overheat', sensor: 'temperature', severity: 'critical', trip: true, since: now - 5000, value: 97 },
      ],
      sensors: [
        {
          id: 'temperature',
          metric: 'temperature',
          unit: 'degC',
          value: 97,
          quality: 'good',
          event_time: now,
          window: null,
          limits: [limit],
        },
      ],
      updated_at: now,
    };
    const refusal = 'pump-1-overheat still holds on temperature (97 degC): the trip cannot be released until it clears';
    const backend: ApiBackend = {
      liveness: () => ({ ok: true, reasons: [] }),
      readiness: () => ({ ready: true, reasons: [] }),
      metrics: async () => '',
      twin: () => ({ gateway: 'gw-c', generated_at: now, assets: [twin] }),
      series: () => ({
        generated_at: now,
        assets: [
          {
            asset: 'pump-1',
            sensors: {
              temperature: [
                [now - 10_000, 70],
                [now - 5000, 96],
                [now, 97],
              ],
            },
            markers: [],
          },
        ],
      }),
      events: (asset) => (asset === undefined ? { 'pump-1': [] } : asset === 'pump-1' ? [] : undefined),
      status: () => ({
        gateway: 'gw-c',
        ready: { ready: true, reasons: [] },
        health: { ok: true, reasons: [] },
        store: null,
        sync: { configured: false },
      }),
      token: () => SHARED_TOKEN,
      hasAsset: (a) => a === 'pump-1',
      ack: () => ({
        ok: false,
        reason: 'raised',
        error: refusal,
        raised: [{ detector: 'pump-1-overheat', sensor: 'temperature' }],
      }),
    };
    const api = apiSchema.parse({ listen: '127.0.0.1:0' });
    const server = new ApiServer({
      config: api,
      backend,
      logger: pino({ level: 'silent' }),
      telemetry: new Telemetry(),
    });
    const addr = await server.start();
    const browser = await chromium.launch({ executablePath: CHROMIUM as string, args: ['--no-sandbox', '--disable-gpu'] });
    try {
      const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
      await page.goto(`http://127.0.0.1:${addr.port}/`);
      const chart = page.locator('section[data-asset="pump-1"] canvas');
      await page.waitForFunction(() =>
        document.querySelector('section[data-asset="pump-1"] canvas')?.getAttribute('aria-label')?.includes('raises'),
      );
      expect(await chart.getAttribute('aria-label')).toContain(
        'pump-1-overheat raises above 92.00 degC (override by cloud-ops at',
      );
      await page.click('#loginBtn');
      await page.fill('#name', 'Jana Novak');
      await page.fill('#token', SHARED_TOKEN);
      await page.click('#login button[type=submit]');
      await page.locator('#user', { hasText: 'Logged in as Jana Novak' }).waitFor();
      await page.click('section[data-asset="pump-1"] button.ack');
      const msg = page.locator('section[data-asset="pump-1"] .ackmsg');
      await msg.locator('li').waitFor();
      expect(await msg.locator('p').textContent()).toBe(`Acknowledge refused (409): ${refusal}`);
      expect(await msg.locator('li').textContent()).toBe('pump-1-overheat is still raised on temperature');
    } finally {
      await browser.close();
      await server.stop();
    }
  });
});
