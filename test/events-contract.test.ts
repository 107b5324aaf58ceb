/**
 * The event contract (docs/events.md, schema/events/): the agent runs on the simulator with every
 * event kind occurring, syncs to a real Kafka, and every record read back (kcat, read committed)
 * validates against the JSON Schema its `schema_version` header names. The value repeats the
 * identity the headers carry, every key is snake_case, the record key is `<gateway_id>/<key>`,
 * and topics are created with the settings a consumer needs (compacted twin, explicit retention);
 * an existing topic with other settings is reported, not altered.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { Ajv2020 } from 'ajv/dist/2020.js';
import Database from 'better-sqlite3';
import kafkajs from 'kafkajs';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../agent/config/load.js';
import { Service } from '../agent/ops/service.js';
import { SCHEMA_VERSION } from '../agent/sync/kafka.js';
import { replay } from '../agent/sync/replay.js';
import { EVENT_KINDS } from '../agent/types.js';
import {
  type ConsumedRecord,
  committedSyncCursor,
  consumeWithKcat,
  type KafkaBroker,
  kafkaAvailable,
  kafkaClient,
  kcatAvailable,
  requireOrSkip,
  startKafka,
} from './helpers/kafka.js';
import { TOKEN } from './helpers/service.js';
import { tempDir } from './helpers/tmp.js';
import { waitFor } from './helpers/wait.js';

const { ConfigResourceTypes } = kafkajs;
const SCHEMA_DIR = new URL('../schema/events/', import.meta.url);
const haveKafka = requireOrSkip(kafkaAvailable(), 'Kafka broker (java + Kafka jars or mvn)');
const haveKcat = haveKafka && requireOrSkip(kcatAvailable(), 'kcat');

/** Every key of every object in `v`, with its path. */
function keysOf(v: unknown, path = '', out: string[] = []): string[] {
  if (Array.isArray(v)) for (const [i, x] of v.entries()) keysOf(x, `${path}[${i}]`, out);
  else if (v && typeof v === 'object')
    for (const [k, x] of Object.entries(v)) {
      out.push(`${path}.${k}`);
      keysOf(x, `${path}.${k}`, out);
    }
  return out;
}

const config = (db: string, brokers: string, prefix: string) => `
gateway: { id: gw-contract }
store: { path: ${db}, flush_interval: 50ms }
log: { level: warn }
aggregation: { window: 1s }
capture: { before: 1s, after: 300ms }
api: { listen: '127.0.0.1:0', token: '${TOKEN}' }
twin: { interval: 1s, history: 1m }
sync:
  kafka:
    brokers: ['${brokers}']
    topic_prefix: '${prefix}'
    linger: 50ms
    retry_max: 2s
    topic_settings: { retention: 1000h }
sources:
  - id: sim
    type: simulator
    seed: 3
    rate: 50
    tick: 20ms
    faults:
      - { asset: pump-1, sensor: temperature, kind: overheat_ramp, start: 300ms, duration: 1500ms, magnitude: 60 }
      - { asset: pump-2, sensor: pressure, kind: dropout, start: 500ms, duration: 10m }
assets:
  - id: pump-1
    sensors:
      - { id: temperature, metric: temperature, unit: degC, source: sim }
  - id: pump-2
    sensors:
      - { id: temperature, metric: temperature, unit: degC, source: sim }
      - { id: pressure, metric: pressure, unit: bar, source: sim }
detectors:
  - { id: overheat, type: threshold, asset: pump-1, sensor: temperature, setpoint: 90, delta_up: 5, delta_down: 10, severity: critical, trip: true }
  - { id: p2-low, type: threshold, asset: pump-2, sensor: pressure, setpoint: 0, direction: below, severity: warning }
actuators:
  - { id: log-stop, type: log }
interlocks:
  - asset: pump-1
    actions: [{ actuator: log-stop, command: stop }]
  - asset: pump-2
    actions: [{ actuator: log-stop, command: stop }]
    fail_safe: { policy: alarm, silent_after: 1s, sensors: [pressure] }
`;

describe.skipIf(!haveKcat)('event contract: every kind from the agent validates against its schema', () => {
  let broker: KafkaBroker | undefined;
  const cleanups: Array<() => Promise<void> | void> = [];
  beforeAll(async () => {
    broker = await startKafka({ partitions: 3 });
  }, 600_000);
  afterAll(async () => {
    for (const c of cleanups.reverse()) await c();
    await broker?.destroy();
  });

  it('validates every record, value identity = headers, snake_case, gateway-qualified keys, topic settings', async () => {
    const brokers = (broker as KafkaBroker).brokers;
    const prefix = `contract-${Date.now()}.`;
    const dir = tempDir();
    cleanups.push(dir.remove);

    // A topic that exists with other settings than the agent would create: reported, left alone.
    const admin = kafkaClient(brokers).admin();
    await admin.connect();
    cleanups.push(() => admin.disconnect());
    await admin.createTopics({
      waitForLeaders: true,
      topics: [{ topic: `${prefix}alarm`, numPartitions: 1, configEntries: [{ name: 'retention.ms', value: '60000' }] }],
    });

    const lines: string[] = [];
    const sink = new Writable({
      write(chunk, _enc, done) {
        lines.push(String(chunk));
        done();
      },
    });
    const parsed = await parseConfig(config(join(dir.path, 'agent.db'), brokers, prefix), 'contract.yaml');
    if (!parsed.ok) throw new Error(JSON.stringify(parsed.errors));
    const service = new Service(parsed.config, 'contract.yaml', pino({ level: 'warn' }, sink), {});
    cleanups.push(() => service.stop());
    await service.start();
    const base = `http://127.0.0.1:${service.apiAddress?.port}`;

    // pump-1 overheats, trips, cools down again; then an operator acknowledges (an audit event).
    const read = async (kind: string) => consumeWithKcat(brokers, `${prefix}${kind}`);
    await waitFor(async () => (await read('action')).some((r) => JSON.parse(r.value ?? '{}').payload?.type === 'trip'), {
      what: 'a trip in Kafka',
      timeoutMs: 60_000,
      intervalMs: 500,
    });
    await waitFor(
      async () =>
        (
          await fetch(`${base}/api/assets/pump-1/ack`, {
            method: 'POST',
            headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
            body: JSON.stringify({ by: 'contract-test' }),
          })
        ).ok,
      { what: 'the trip acknowledged (after the fault ended)', timeoutMs: 30_000, intervalMs: 500 },
    );
    const byKind = new Map<string, ConsumedRecord[]>();
    await waitFor(
      async () => {
        for (const k of EVENT_KINDS) byKind.set(k, await read(k));
        return EVENT_KINDS.every((k) => (byKind.get(k)?.length ?? 0) > 0);
      },
      {
        what: `every kind in Kafka (have ${EVENT_KINDS.map((k) => `${k} ${byKind.get(k)?.length ?? 0}`).join(', ')})`,
        timeoutMs: 60_000,
        intervalMs: 1000,
      },
    );
    await service.stop();
    // A clean stop waits for the transaction in flight and writes its cursor to the store too.
    const db = new Database(join(dir.path, 'agent.db'), { readonly: true });
    const localCursor = Number((db.prepare("SELECT value FROM meta WHERE key = 'sync_cursor'").get() as { value: string }).value);
    db.close();
    expect(localCursor).toBeGreaterThan(0);
    expect(localCursor).toBe(await committedSyncCursor(brokers, parsed.config));

    // Re-published events carry replay=true in the value, and the same identity.
    const rep = await replay(parsed.config, { fromSeq: 1, toSeq: 20 }, { progress: false });
    expect(rep.events).toBe(20);
    for (const k of EVENT_KINDS) byKind.set(k, await read(k));

    const ajv = new Ajv2020({ allErrors: true, strict: true });
    const files = readdirSync(SCHEMA_DIR).filter((f) => f.endsWith('.json'));
    expect(files.sort()).toEqual(EVENT_KINDS.map((k) => `${k}.v${SCHEMA_VERSION}.json`).sort());
    const validators = new Map(
      EVENT_KINDS.map((k) => [
        k,
        ajv.compile(JSON.parse(readFileSync(new URL(`${k}.v${SCHEMA_VERSION}.json`, SCHEMA_DIR), 'utf8'))),
      ]),
    );
    const failures: string[] = [];
    const notSnake = new Set<string>();
    const identities = new Map<string, string>();
    let total = 0;
    let replayed = 0;
    const payloadTypes = new Set<string>();
    for (const k of EVENT_KINDS) {
      const validate = validators.get(k) as ReturnType<typeof ajv.compile>;
      for (const r of byKind.get(k) ?? []) {
        total++;
        const v = JSON.parse(r.value ?? 'null') as Record<string, unknown>;
        expect(r.headers.schema_version).toBe(String(SCHEMA_VERSION));
        if (!validate(v) && failures.length < 10) failures.push(`${k} seq ${v.seq}: ${ajv.errorsText(validate.errors)}`);
        expect(r.headers).toMatchObject({
          gateway_id: v.gateway_id,
          store_id: v.store_id,
          seq: String(v.seq),
          kind: k,
          boot_id: v.boot_id,
        });
        expect(r.headers.replay === '1').toBe(v.replay);
        expect(r.key).toBe(`${v.gateway_id}/${v.key}`);
        expect(r.timestamp).toBe(v.event_time);
        for (const p of keysOf(v)) if (!/^[a-z0-9_]+$/.test(p.slice(p.lastIndexOf('.') + 1))) notSnake.add(`${k}${p}`);
        const payload = v.payload as { type?: string };
        payloadTypes.add(`${k}:${payload.type ?? '-'}`);
        const id = `${v.gateway_id}/${v.store_id}/${v.seq}`;
        if (v.replay) {
          replayed++;
          // A replay has the original's identity and bytes, except replay and boot_id.
          const { replay: _r, boot_id: _b, ...rest } = v;
          expect(identities.get(id) ?? JSON.stringify(rest)).toBe(JSON.stringify(rest));
        } else {
          const { replay: _r, boot_id: _b, ...rest } = v;
          identities.set(id, JSON.stringify(rest));
        }
      }
    }
    console.info(
      `events contract: ${total} records validated (${replayed} replayed); payload types ${[...payloadTypes].sort().join(', ')}`,
    );
    expect(failures).toEqual([]);
    expect([...notSnake]).toEqual([]);
    expect(replayed).toBe(20);
    for (const t of ['action:trip', 'audit:ack', 'alarm:fail_safe', 'anomaly:-', 'aggregate:-', 'capture:-', 'twin:-'])
      expect(payloadTypes).toContain(t);

    // Topics: created compacted (twin) or with the configured retention; the pre-existing one reported.
    const described = await admin.describeConfigs({
      includeSynonyms: false,
      resources: EVENT_KINDS.map((k) => ({ type: ConfigResourceTypes.TOPIC, name: `${prefix}${k}` })),
    });
    const setting = (topic: string, name: string) =>
      described.resources.find((r) => r.resourceName === topic)?.configEntries.find((e) => e.configName === name)?.configValue;
    expect(setting(`${prefix}twin`, 'cleanup.policy')).toBe('compact');
    for (const k of EVENT_KINDS.filter((x) => x !== 'twin' && x !== 'alarm')) {
      expect(setting(`${prefix}${k}`, 'cleanup.policy')).toBe('delete');
      expect(setting(`${prefix}${k}`, 'retention.ms')).toBe(String(1000 * 3_600_000));
    }
    expect(setting(`${prefix}alarm`, 'retention.ms')).toBe('60000');
    const warned = lines.map((l) => JSON.parse(l) as { msg: string; topic?: string }).filter((l) => l.topic === `${prefix}alarm`);
    expect(warned.map((l) => l.msg).join('\n')).toMatch(/retention\.ms=60000 \(expected 3600000000\)/);
  }, 300_000);
});
