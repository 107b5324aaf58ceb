/**
 * Actuation figures.
 *
 * (a) In process: a reading handed to the pipeline → the actuator's `execute()` called, at 1k, 10k and
 *     50k readings/s, while the SQLite store is writing (synchronous=FULL, every reading also appended as
 *     a capture event) and a worker thread burns a core. The worker stands in for the ONNX model, whose
 *     branch is not merged yet. Readings arrive in batches of 1 ms worth (1, 10, 50); the tripping reading
 *     is the last of its batch, so the figure includes processing the whole batch before it.
 * (b) End to end over a real Mosquitto (set_tcp_nodelay true): a reading published → the stop command
 *     received by a subscriber, for the agent (pipeline, interlock, store, the real mqtt-publish actuator)
 *     and for a bare mqtt.js relay applying the same rule (value > setpoint → publish stop). The relay is
 *     the floor. TCP_NODELAY is set on every client. The MQTT source driver is on another branch, so the
 *     agent's input is an mqtt.js subscriber in this harness that calls `pipeline.ingest` directly.
 *     Publisher, subscribers, relay and agent share this process; runs alternate relay/agent in rounds.
 */
import type { Socket } from 'node:net';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import mqtt, { type MqttClient } from 'mqtt';
import { pino } from 'pino';
import { Agent } from '../../agent/agent.js';
import { parseConfig } from '../../agent/config/load.js';
import type { AgentConfig } from '../../agent/config/schema.js';
import { type BoundSensor, bindSensor } from '../../agent/driver.js';
import { Interlocks } from '../../agent/interlock.js';
import { Pipeline } from '../../agent/pipeline.js';
import { makeReading } from '../../agent/reading.js';
import { EventStore } from '../../agent/store/store.js';
import type { Reading } from '../../agent/types.js';
import { mosquittoUnavailable, startMosquitto } from '../../test/helpers/mosquitto.js';
import { tempDir } from '../../test/helpers/tmp.js';
import { timingActuator } from './trip.js';
import { type BenchRow, type BenchSection, latencyRows, round } from './types.js';

const silent = pino({ level: 'silent' });
const SECTION = 'actuation';
const SETPOINT = 150;

async function parse(yaml: string): Promise<AgentConfig> {
  const res = await parseConfig(yaml, 'bench.yaml');
  if (!res.ok) throw new Error(JSON.stringify(res.errors));
  return res.config;
}

function plant(assets: number, extra = ''): string {
  const lines = ['sources: [{ id: sim, type: simulator, rate: 1 }]', 'aggregation: { window: 1s }', 'assets:'];
  for (let a = 0; a < assets; a++) {
    lines.push(`  - id: pump-${a}`, '    sensors:');
    for (const m of ['temperature', 'pressure', 'vibration', 'current'])
      lines.push(`      - { id: ${m}, metric: ${m}, source: sim }`);
  }
  lines.push(
    'detectors:',
    `  - { id: hot, type: threshold, asset: pump-0, sensor: temperature, setpoint: ${SETPOINT}, delta_down: 10, trip: true, severity: critical }`,
  );
  for (let a = 1; a < assets; a++)
    lines.push(
      `  - { id: hot-${a}, type: threshold, asset: pump-${a}, sensor: temperature, setpoint: ${SETPOINT}, trip: false }`,
    );
  lines.push(extra);
  return lines.join('\n');
}

/** A worker thread spinning on floating-point work, standing in for ONNX inference. */
function busyModel(): Worker {
  return new Worker(`let x = 0; for (;;) { for (let i = 0; i < 1e6; i++) x = Math.sin(x + i) * 1.0001; }`, { eval: true });
}

const yieldLoop = () => new Promise<void>((r) => setImmediate(r));

export async function inProcess(rate: number, seconds: number): Promise<BenchRow[]> {
  const dir = tempDir();
  const model = busyModel();
  try {
    const config = await parse(
      `${plant(25)}\nactuators: [{ id: stop, type: log }]\ninterlocks: [{ asset: pump-0, reassert_every: 0, actions: [{ actuator: stop }] }]`,
    );
    const store = new EventStore({
      path: join(dir.path, 'bench.db'),
      synchronous: 'FULL',
      flushInterval: 100,
      batchSize: 5000,
      logger: silent,
    });
    await store.open();
    const { actuator, calledAt } = timingActuator();
    const emit = store.append.bind(store);
    const interlocks = new Interlocks(config.interlocks, new Map([['stop', actuator]]), emit, silent, Date.now, config.detectors);
    const pipeline = new Pipeline(config, interlocks, emit);
    const sensors: BoundSensor[] = config.assets.flatMap((a) => a.sensors.map((s) => bindSensor(s, a.id)));
    const hot = sensors[0] as BoundSensor; // pump-0/temperature
    const background = sensors.slice(1);

    const perBatch = Math.max(1, Math.round(rate / 1000));
    const batches = Math.round((rate * seconds) / perBatch);
    const periodNs = BigInt(Math.round(1e9 / (rate / perBatch)));
    const samples: number[] = [];
    const batch: Reading[] = [];
    let phase = 0; // 0: hot at the end of this batch; 1: cool reading first, then ack
    let bg = 0;
    const t0 = process.hrtime.bigint();
    let maxLagNs = 0n;
    for (let b = 0; b < batches; b++) {
      const due = t0 + periodNs * BigInt(b);
      while (process.hrtime.bigint() < due) await yieldLoop();
      const lag = process.hrtime.bigint() - due;
      if (lag > maxLagNs) maxLagNs = lag;
      const now = Date.now();
      batch.length = 0;
      if (phase === 1) batch.push(makeReading(hot, 20, now, now));
      while (batch.length < perBatch - (phase === 0 ? 1 : 0)) {
        batch.push(makeReading(background[bg++ % background.length] as BoundSensor, 50 + (bg % 7), now, now));
      }
      if (phase === 0) batch.push(makeReading(hot, 200, now, now));
      const start = process.hrtime.bigint();
      pipeline.ingest(batch);
      if (phase === 0) {
        samples.push(Number(calledAt() - start) / 1000);
        phase = 1;
      } else {
        interlocks.ack('pump-0', 'bench');
        phase = 0;
      }
      for (const r of batch) store.append({ kind: 'capture', key: r.asset, eventTime: r.eventTime, payload: r as never });
    }
    const elapsed = Number(process.hrtime.bigint() - t0) / 1e9;
    pipeline.flush();
    await store.close();
    const label = `reading → actuator call, in process, ${rate / 1000}k readings/s (store writing FULL, model worker busy)`;
    return [
      ...latencyRows(SECTION, label, samples, [50, 99, 99.9]),
      {
        section: SECTION,
        name: `achieved rate at ${rate / 1000}k readings/s target`,
        value: round((batches * perBatch) / elapsed, 0),
        unit: 'readings/s',
        note: `batch ${perBatch}, max pacing lag ${round(Number(maxLagNs) / 1e6, 1)} ms, ${store.stats.persisted} events committed`,
      },
    ];
  } finally {
    await model.terminate();
    dir.remove();
  }
}

function noDelay(client: MqttClient): void {
  const set = () => (client.stream as unknown as Partial<Socket>).setNoDelay?.(true);
  client.on('connect', set);
}

async function connect(url: string, clientId: string): Promise<MqttClient> {
  const client = mqtt.connect(url, { clientId, reconnectPeriod: 200 });
  noDelay(client);
  await new Promise<void>((resolve, reject) => {
    client.once('connect', () => resolve());
    client.once('error', reject);
  });
  return client;
}

interface Reading$ {
  asset: string;
  sensor: string;
  value: number;
  t: number;
}

async function endToEnd(rounds: number, tripsPerRound: number): Promise<BenchRow[]> {
  const broker = await startMosquitto({ persistence: false });
  const dir = tempDir();
  const clients: MqttClient[] = [];
  let agent: Agent | undefined;
  try {
    const url = `mqtt://127.0.0.1:${broker.port}`;
    const publisher = await connect(url, 'bench-sensor');
    const receiver = await connect(url, 'bench-plc');
    clients.push(publisher, receiver);

    // The floor: a bare relay with the same rule.
    const relay = await connect(url, 'bench-relay');
    clients.push(relay);
    await relay.subscribeAsync('floor/readings', { qos: 1 });
    relay.on('message', (_topic, payload) => {
      const r = JSON.parse(payload.toString()) as Reading$;
      if (r.value > SETPOINT)
        relay.publish(`floor/cmd/${r.asset}`, JSON.stringify({ asset: r.asset, command: 'stop', sent_at: Date.now() }), {
          qos: 1,
        });
    });

    // The agent, with its real mqtt-publish actuator; its input is this harness's subscriber.
    const config = await parse(
      `store: { path: ${join(dir.path, 'agent.db')}, synchronous: FULL }\n${plant(25)}
actuators:
  - { id: bus, type: mqtt-publish, url: "${url}", client_id: bench-agent-actuator, command_topic: "agent/cmd/{asset}" }
interlocks: [{ asset: pump-0, reassert_every: 0, fail_safe: { policy: none }, actions: [{ actuator: bus, command: stop }] }]`,
    );
    agent = await Agent.create(config, { logger: silent });
    await agent.start();
    const a = agent;
    const bound = new Map<string, BoundSensor>();
    for (const asset of config.assets) for (const s of asset.sensors) bound.set(`${asset.id}/${s.id}`, bindSensor(s, asset.id));
    const input = await connect(url, 'bench-agent-input');
    clients.push(input);
    await input.subscribeAsync('agent/readings', { qos: 1 });
    input.on('message', (_topic, payload) => {
      const r = JSON.parse(payload.toString()) as Reading$;
      const sensor = bound.get(`${r.asset}/${r.sensor}`);
      if (sensor) a.pipeline.ingest([makeReading(sensor, r.value, r.t, Date.now())]);
    });

    await receiver.subscribeAsync(['floor/cmd/+', 'agent/cmd/+'], { qos: 1 });
    let waiting: ((t: number) => void) | undefined;
    receiver.on('message', () => {
      const t = performance.now();
      waiting?.(t);
    });

    const run = async (prefix: 'floor' | 'agent', n: number, out: number[]) => {
      const topic = `${prefix}/readings`;
      const send = (sensor: string, value: number) =>
        publisher.publish(topic, JSON.stringify({ asset: 'pump-0', sensor, value, t: Date.now() }), { qos: 1 });
      for (let i = 0; i < n; i++) {
        for (let k = 0; k < 5; k++) send(k % 2 ? 'pressure' : 'vibration', 3 + k);
        const got = new Promise<number>((resolve) => {
          waiting = resolve;
        });
        const t0 = performance.now();
        send('temperature', 200);
        const t1 = await Promise.race([got, new Promise<number>((r) => setTimeout(() => r(Number.NaN), 2000))]);
        waiting = undefined;
        if (!Number.isNaN(t1)) out.push((t1 - t0) * 1000);
        send('temperature', 20);
        if (prefix === 'agent') {
          // The reset permissive refuses an ack while the overheat is raised: wait for the cool reading.
          while (a.interlocks.raisedConditions('pump-0').length > 0) await new Promise((r) => setTimeout(r, 1));
          a.interlocks.ack('pump-0', 'bench');
        }
        await new Promise((r) => setTimeout(r, 2));
      }
    };

    const floor: number[] = [];
    const ours: number[] = [];
    await run('floor', 50, []); // warm-up, both paths
    await run('agent', 50, []);
    for (let r = 0; r < rounds; r++) {
      await run('floor', tripsPerRound, floor);
      await run('agent', tripsPerRound, ours);
    }
    const sort = (xs: number[]) => Float64Array.from(xs).sort();
    const rows: BenchRow[] = [];
    const f = latencyRows(SECTION, 'e2e over Mosquitto: bare mqtt.js relay (floor)', sort(floor), [50, 99]);
    const o = latencyRows(SECTION, 'e2e over Mosquitto: agent (pipeline, interlock, store, mqtt-publish)', sort(ours), [50, 99]);
    rows.push(...f);
    o.forEach((row, i) => {
      const base = f[i] as BenchRow;
      rows.push({
        ...row,
        baseline: { name: base.name, value: base.value, ratio: round(row.value / base.value) },
        note: `${ours.length} trips; floor ${floor.length}; TCP_NODELAY on all clients, set_tcp_nodelay true in the broker`,
      });
    });
    return rows;
  } finally {
    for (const c of clients) c.end(true);
    await agent?.stop();
    await broker.stop();
    dir.remove();
  }
}

export const actuation: BenchSection = {
  name: 'actuation',
  requires: ['mosquitto'],
  async run() {
    const rows: BenchRow[] = [];
    for (const rate of [1000, 10_000, 50_000]) rows.push(...(await inProcess(rate, 5)));
    const missing = mosquittoUnavailable();
    if (missing) throw new Error(`end-to-end part needs Mosquitto: ${missing}`);
    rows.push(...(await endToEnd(4, 500)));
    return rows;
  },
};
