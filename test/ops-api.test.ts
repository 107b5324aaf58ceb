/**
 * The local API through a real HTTP server, a real agent on the simulator and a real SQLite file:
 * auth on acknowledge, /metrics in a form a Prometheus parser accepts, the twin against the store,
 * and SIGHUP-style reloads that never lose stored events.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import parsePrometheus from 'parse-prometheus-text-format';
import { afterEach, describe, expect, it } from 'vitest';
import type { AssetTwin } from '../agent/ops/twin.js';
import { openDb } from '../agent/store/db.js';
import { activeTrips } from '../agent/store/queries.js';
import { apiConfigYaml, startService as start, TOKEN } from './helpers/service.js';
import { tempDir } from './helpers/tmp.js';
import { waitFor } from './helpers/wait.js';

const cleanups: Array<() => void | Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function startService(yaml: string, file?: string): ReturnType<typeof start> {
  const started = await start(yaml, file);
  cleanups.push(() => started.service.stop());
  return started;
}

const ack = (base: string, asset: string, headers: Record<string, string>, body: unknown = { by: 'tester' }) =>
  fetch(`${base}/api/assets/${asset}/ack`, { method: 'POST', headers, body: JSON.stringify(body) });

describe('local API', () => {
  it('enforces the bearer token on acknowledge and answers 404 / 409 / 200 as documented', async () => {
    const dir = tempDir();
    cleanups.push(dir.remove);
    const { base } = await startService(apiConfigYaml(join(dir.path, 'agent.db')));
    expect((await fetch(`${base}/healthz`)).status).toBe(200);
    expect((await fetch(`${base}/readyz`)).status).toBe(200);

    const none = await ack(base, 'pump-1', {});
    expect(none.status).toBe(401);
    expect(none.headers.get('www-authenticate')).toContain('Bearer');
    expect((await ack(base, 'pump-1', { authorization: 'Bearer wrong' })).status).toBe(401);
    expect((await ack(base, 'pump-1', { authorization: `Basic ${TOKEN}` })).status).toBe(401);
    const auth = { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' };
    expect((await ack(base, 'nope', auth)).status).toBe(404);
    expect((await ack(base, 'pump-2', auth)).status).toBe(409);
    expect((await ack(base, 'pump-1', auth, { by: '' })).status).toBe(400);
    expect((await fetch(`${base}/api/assets/pump-1/ack`, { method: 'POST', headers: auth, body: '{oops' })).status).toBe(400);
    expect((await fetch(`${base}/api/assets/pump-1/ack`)).status).toBe(405);

    await waitFor(
      async () => ((await (await fetch(`${base}/api/twin`)).json()) as { assets: AssetTwin[] }).assets[0]?.state === 'tripped',
      {
        what: 'pump-1 tripped',
        timeoutMs: 30_000,
      },
    );
    // The overheat is still raised: the ack is refused (contract C) and the asset stays tripped.
    const refused = await ack(base, 'pump-1', auth, { by: 'Jana Novak' });
    expect(refused.status).toBe(409);
    expect(await refused.json()).toEqual({
      ok: false,
      asset: 'pump-1',
      error: expect.stringContaining('tripping condition still holds (overheat on temperature)'),
      raised: [{ detector: 'overheat', sensor: 'temperature' }],
    });
    const twin = (await (await fetch(`${base}/api/twin`)).json()) as { assets: AssetTwin[] };
    expect(twin.assets[0]?.state).toBe('tripped');
  });

  it('disables acknowledge with a clear message when no token is configured', async () => {
    const dir = tempDir();
    cleanups.push(dir.remove);
    const { base } = await startService(apiConfigYaml(join(dir.path, 'agent.db'), ''));
    const res = await ack(base, 'pump-1', { authorization: 'Bearer anything' });
    expect(res.status).toBe(401);
    expect(((await res.json()) as { error: string }).error).toContain('disabled');
    const status = (await (await fetch(`${base}/api/status`)).json()) as { ack_enabled: boolean };
    expect(status.ack_enabled).toBe(false);
  });

  it('serves /metrics that a Prometheus text parser accepts, with the catalog and live values', async () => {
    const dir = tempDir();
    cleanups.push(dir.remove);
    const { base } = await startService(apiConfigYaml(join(dir.path, 'agent.db')));
    // The trip's journal line is written a moment after the stop (agent/aftermath.ts) and made durable on libuv's
    // pool after that: wait for its sync too, or a scrape right after the trip can come before it.
    await waitFor(
      async () => {
        const text = await (await fetch(`${base}/metrics`)).text();
        const sync = parsePrometheus(text).find((f) => f.name === 'edge_agent_latch_journal_sync_seconds')?.metrics[0];
        return text.includes('edge_agent_trips_total 1') && sync !== undefined && 'count' in sync && Number(sync.count) >= 1;
      },
      { what: 'a trip and its journal sync in the metrics', timeoutMs: 30_000 },
    );
    const res = await fetch(`${base}/metrics`);
    expect(res.headers.get('content-type')).toContain('text/plain');
    const families = parsePrometheus(await res.text());
    const by = new Map(families.map((f) => [f.name, f]));
    const expected: Record<string, string> = {
      edge_agent_readings_total: 'COUNTER',
      edge_agent_ingest_readings_per_second: 'GAUGE',
      edge_agent_anomalies_total: 'COUNTER',
      edge_agent_trips_total: 'COUNTER',
      edge_agent_actions_total: 'COUNTER',
      edge_agent_action_latency_seconds: 'HISTOGRAM',
      edge_agent_store_backlog_events: 'GAUGE',
      edge_agent_store_bytes: 'GAUGE',
      edge_agent_store_evictions_total: 'COUNTER',
      edge_agent_sync_lag_events: 'GAUGE',
      edge_agent_sync_lag_seconds: 'GAUGE',
      edge_agent_sync_last_success_timestamp_seconds: 'GAUGE',
      edge_agent_inference_latency_seconds: 'HISTOGRAM',
      edge_agent_gateway_cpu_load_ratio: 'GAUGE',
      edge_agent_gateway_memory_used_bytes: 'GAUGE',
      edge_agent_gateway_disk_free_bytes: 'GAUGE',
      edge_agent_gateway_temperature_celsius: 'GAUGE',
      edge_agent_watchdog_pings_total: 'COUNTER',
      edge_agent_control_messages_total: 'COUNTER',
      edge_agent_readings_rejected_total: 'COUNTER',
      edge_agent_detector_inputs_skipped_total: 'COUNTER',
      edge_agent_latch_journal_records_total: 'COUNTER',
      edge_agent_latch_journal_sync_seconds: 'HISTOGRAM',
      // Per-device series (labelled by configured source and device ids) are checked with a Modbus PLC
      // in test/dashboard.browser.test.ts; the simulator has none, the families are still declared.
      edge_agent_device_requests_total: 'COUNTER',
      edge_agent_device_errors_total: 'COUNTER',
      edge_agent_device_request_duration_seconds: 'HISTOGRAM',
      edge_agent_device_last_good_timestamp_seconds: 'GAUGE',
    };
    for (const [name, type] of Object.entries(expected)) expect(by.get(name)?.type, name).toBe(type);
    const good = by.get('edge_agent_readings_total')?.metrics.find((m) => m.labels?.quality === 'good');
    expect(Number(good?.value)).toBeGreaterThan(0);
    expect(Number(by.get('edge_agent_gateway_memory_total_bytes')?.metrics[0]?.value)).toBeGreaterThan(0);
    expect(Number(by.get('edge_agent_store_bytes')?.metrics[0]?.value)).toBeGreaterThan(0);
    expect(
      Number(by.get('edge_agent_latch_journal_records_total')?.metrics.find((m) => m.labels?.op === 'record')?.value),
    ).toBeGreaterThan(0);
    // The trip's journal line was made durable, and how long that took is measured.
    expect(Number(by.get('edge_agent_latch_journal_sync_seconds')?.metrics[0]?.count)).toBeGreaterThan(0);
    const latency = by.get('edge_agent_action_latency_seconds')?.metrics[0];
    expect(Number(latency?.count)).toBe(1);
    // Bounded labels only: no asset, sensor or detector ids anywhere.
    for (const f of families)
      for (const m of f.metrics)
        for (const k of Object.keys(m.labels ?? {})) expect(['asset', 'sensor', 'detector', 'source']).not.toContain(k);
  });

  it('serves a twin that matches the store', async () => {
    const dir = tempDir();
    cleanups.push(dir.remove);
    const db = join(dir.path, 'agent.db');
    const { service, base } = await startService(apiConfigYaml(db));
    const getTwin = async () =>
      ((await (await fetch(`${base}/api/twin`)).json()) as { gateway: string; assets: AssetTwin[] }).assets;
    await waitFor(async () => (await getTwin()).find((a) => a.asset === 'pump-1')?.state === 'tripped', {
      what: 'trip',
      timeoutMs: 30_000,
    });
    await waitFor(async () => (await getTwin()).every((a) => a.sensors.every((s) => s.window !== null)), { what: 'windows' });
    const twin = await getTwin();
    // Let the twin events and aggregates that were queued reach SQLite.
    await (service as unknown as { gen: { agent: { store: { flush(): Promise<void> } } } }).gen.agent.store.flush();

    const sqlite = openDb(db, 'NORMAL', true);
    cleanups.push(() => {
      sqlite.close();
    });
    const p1 = twin.find((a) => a.asset === 'pump-1') as AssetTwin;
    expect(activeTrips(sqlite).map((t) => t.asset)).toEqual(['pump-1']);
    expect(p1).toMatchObject({ state: 'tripped', name: 'Pump one', model_version: null, trip: { detector: 'overheat' } });
    expect(p1.health).toBeLessThanOrEqual(20);
    expect(twin.find((a) => a.asset === 'pump-2')?.state).toBe('running');

    // Active anomalies: the raised anomalies without a later clear, per detector, in the store.
    const anomalies = sqlite.prepare("SELECT payload FROM events WHERE kind = 'anomaly' ORDER BY seq").all() as Array<{
      payload: string;
    }>;
    const active = new Map<string, { asset: string; sensor: string }>();
    for (const { payload } of anomalies) {
      const a = JSON.parse(payload);
      if (a.state === 'raised') active.set(a.detector, a);
      else active.delete(a.detector);
    }
    expect(p1.active_anomalies.map((a) => a.detector).sort()).toEqual([...active.keys()].sort());

    // Window stats: the same as the stored aggregate of that window.
    for (const asset of twin) {
      for (const s of asset.sensors) {
        const row = sqlite
          .prepare(
            "SELECT payload FROM events WHERE kind = 'aggregate' AND key = ? AND json_extract(payload, '$.sensor') = ? AND json_extract(payload, '$.window_start') = ?",
          )
          .get(asset.asset, s.id, s.window?.start) as { payload: string } | undefined;
        expect(row, `${asset.asset}/${s.id}`).toBeDefined();
        const agg = JSON.parse(row!.payload);
        expect(s.window).toEqual({
          start: agg.window_start,
          end: agg.window_end,
          count: agg.count,
          good: agg.good,
          min: agg.min,
          max: agg.max,
          mean: agg.mean,
          last: agg.last,
        });
        expect(s.limits.length).toBe(asset.asset === 'pump-1' && s.id === 'temperature' ? 1 : asset.asset === 'pump-2' ? 1 : 0);
      }
    }

    // Twin events: the latest stored twin of each asset has the same state and anomalies.
    for (const asset of twin) {
      const row = sqlite
        .prepare("SELECT payload FROM events WHERE kind = 'twin' AND key = ? ORDER BY seq DESC LIMIT 1")
        .get(asset.asset) as {
        payload: string;
      };
      const stored = JSON.parse(row.payload) as AssetTwin;
      expect(stored.state).toBe(asset.state);
      expect(stored.active_anomalies.map((a) => a.detector)).toEqual(asset.active_anomalies.map((a) => a.detector));
    }
  });

  it('reloads: a changed config is applied without losing stored events, a bad one is rejected', async () => {
    const dir = tempDir();
    cleanups.push(dir.remove);
    const db = join(dir.path, 'agent.db');
    const file = join(dir.path, 'agent.yaml');
    writeFileSync(file, apiConfigYaml(db));
    const { service, base } = await startService(apiConfigYaml(db), file);
    await waitFor(async () => (await (await fetch(`${base}/metrics`)).text()).includes('edge_agent_trips_total 1'), {
      what: 'trip',
      timeoutMs: 30_000,
    });
    const seqBefore = ((await (await fetch(`${base}/api/status`)).json()) as { store: { last_seq: number } }).store.last_seq;

    writeFileSync(file, apiConfigYaml(db).replace('rate: 50', 'rate: 5O'));
    await service.reload();
    writeFileSync(file, apiConfigYaml(db).replace('seed: 5', 'seed: 6'));
    await service.reload();
    const base2 = `http://127.0.0.1:${service.apiAddress?.port}`;
    const metrics = await (await fetch(`${base2}/metrics`)).text();
    expect(metrics).toContain('edge_agent_config_reloads_total{result="rejected"} 1');
    expect(metrics).toContain('edge_agent_config_reloads_total{result="applied"} 1');
    const twin = (await (await fetch(`${base2}/api/twin`)).json()) as { assets: AssetTwin[] };
    // The latch survived the restart of the agent's components.
    expect(twin.assets.find((a) => a.asset === 'pump-1')?.state).toBe('tripped');
    await waitFor(
      async () =>
        ((await (await fetch(`${base2}/api/status`)).json()) as { store: { last_seq: number } }).store.last_seq > seqBefore,
      { what: 'the store to keep growing after the reload' },
    );
    await service.stop();
    const sqlite = openDb(db, 'NORMAL', true);
    const n = sqlite.prepare('SELECT COUNT(*) AS n, MIN(seq) AS lo FROM events').get() as { n: number; lo: number };
    sqlite.close();
    expect(n.lo).toBe(1);
    expect(n.n).toBeGreaterThan(seqBefore);
  });
});
