/**
 * Driver figures through real components: MQTT ingest through a private Mosquitto into the pipeline
 * (messages/s), and Modbus TCP poll throughput against a pymodbus slave (registers/s).
 * Fails loudly when Mosquitto or pymodbus is missing: a bench that silently skips measures nothing.
 *
 * TCP_NODELAY is on for every socket involved: the agent's MQTT and Modbus sockets (always), the
 * benchmark's MQTT publisher (set here), and the broker (`set_tcp_nodelay true` in the test broker config).
 */
import { connect as netConnect } from 'node:net';
import { MqttClient } from 'mqtt';
import { pino } from 'pino';
import { parseConfig } from '../../agent/config/load.js';
import type { AgentConfig } from '../../agent/config/schema.js';
import { type BoundSensor, bindSensor, type SourceContext } from '../../agent/driver.js';
import { Interlocks } from '../../agent/interlock.js';
import { Pipeline } from '../../agent/pipeline.js';
import type { AgentEvent, Reading } from '../../agent/types.js';
import { type ModbusConfig, modbusAddressSchema, modbusSchema } from '../../drivers/modbus/schema.js';
import { ModbusSource } from '../../drivers/modbus/source.js';
import { type MqttConfig, mqttSchema } from '../../drivers/mqtt/schema.js';
import { MqttSource } from '../../drivers/mqtt/source.js';
import { mosquittoUnavailable, startMosquitto } from '../../test/helpers/mosquitto.js';
import { pymodbusUnavailable, startPymodbus } from '../../test/helpers/pymodbus.js';
import { type BenchRow, type BenchSection, round } from './types.js';

const silent = pino({ level: 'silent' });
const SECTION = 'drivers';

async function pipelineFor(yaml: string): Promise<{ config: AgentConfig; pipeline: Pipeline; events: () => number }> {
  const res = await parseConfig(yaml, 'bench.yaml');
  if (!res.ok) throw new Error(JSON.stringify(res.errors));
  let events = 0;
  const emit = (_: AgentEvent) => {
    events++;
  };
  const pipeline = new Pipeline(res.config, new Interlocks(res.config.interlocks, new Map(), emit, silent), emit);
  return { config: res.config, pipeline, events: () => events };
}

function context(config: AgentConfig, sourceId: string, pipeline: Pipeline): SourceContext & { readings: number } {
  const sensors: BoundSensor[] = config.assets.flatMap((a) =>
    a.sensors.filter((s) => s.source === sourceId).map((s) => bindSensor(s, a.id)),
  );
  const ctx = {
    id: sourceId,
    sensors,
    logger: silent,
    readings: 0,
    emit(batch: readonly Reading[]) {
      ctx.readings += batch.length;
      pipeline.ingest(batch);
    },
    count() {},
    now: Date.now,
  };
  return ctx;
}

async function mqttIngest(): Promise<BenchRow[]> {
  const missing = mosquittoUnavailable();
  if (missing) throw new Error(`drivers bench needs Mosquitto: ${missing}`);
  const broker = await startMosquitto({ persistence: false });
  const rows: BenchRow[] = [];
  try {
    const { config, pipeline } = await pipelineFor(`
sources:
  - id: mq
    type: mqtt
    url: mqtt://127.0.0.1:${broker.port}
    subscriptions: [{ topic: "bench/+/+", asset_segment: 1, sensor_segment: 2, value_path: v, time_path: ts }]
assets:
${Array.from({ length: 10 }, (_, a) => `  - { id: pump-${a}, sensors: [{ id: temperature, metric: temperature, source: mq }] }`).join('\n')}
detectors:
${Array.from({ length: 10 }, (_, a) => `  - { id: hot-${a}, type: threshold, asset: pump-${a}, sensor: temperature, setpoint: 1000 }`).join('\n')}
`);
    for (const qos of [1, 0] as const) {
      const ctx = context(config, 'mq', pipeline);
      const { id: _id, type: _type, ...options } = config.sources[0] as Record<string, unknown>;
      const src = new MqttSource({ ...(mqttSchema.parse(options) as MqttConfig), id: `mq-bench-${qos}` }, ctx);
      src.init();
      await src.start();
      const pub = new MqttClient(
        () => {
          const s = netConnect({ host: '127.0.0.1', port: broker.port });
          s.setNoDelay(true);
          return s;
        },
        { clientId: `bench-pub-${qos}`, reconnectPeriod: 0 },
      );
      await new Promise<void>((resolve, reject) => {
        pub.once('connect', () => resolve());
        pub.once('error', reject);
      });
      const total = qos === 1 ? 50_000 : 100_000;
      const payloads = Array.from({ length: 10 }, (_, a) => `bench/pump-${a}/temperature`);
      const t0 = performance.now();
      const window = 500;
      for (let i = 0; i < total; i += window) {
        const sends: Promise<unknown>[] = [];
        for (let j = i; j < Math.min(total, i + window); j++) {
          sends.push(
            pub.publishAsync(payloads[j % 10] as string, `{"v":${(j % 1000) / 10},"ts":${Date.UTC(2026, 0, 1) + j}}`, { qos }),
          );
        }
        await Promise.all(sends);
      }
      const deadline = Date.now() + 60_000;
      while (ctx.readings < total && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
      const t1 = performance.now();
      if (ctx.readings < total) throw new Error(`mqtt bench: only ${ctx.readings} of ${total} QoS ${qos} messages arrived`);
      rows.push({
        section: SECTION,
        name: `MQTT ingest via Mosquitto → pipeline, QoS ${qos} JSON {v, ts}, 10 topics, one publisher (nodelay: agent, publisher, broker)`,
        value: round(total / ((t1 - t0) / 1000), 0),
        unit: 'messages/s',
        note: `${total} messages`,
      });
      await pub.endAsync(true);
      await src.stop();
    }
  } finally {
    await broker.stop();
  }
  return rows;
}

async function modbusPoll(): Promise<BenchRow[]> {
  const missing = pymodbusUnavailable();
  if (missing) throw new Error(`drivers bench needs pymodbus: ${missing}`);
  const REGS = 1000;
  const units = [1, 2, 3, 4];
  const server = await startPymodbus({
    image: {
      units: Object.fromEntries(units.map((u) => [String(u), { holding: { '0': Array.from({ length: REGS }, (_, i) => i) } }])),
    },
  });
  const rows: BenchRow[] = [];
  try {
    for (const unitCount of [1, 4]) {
      const active = units.slice(0, unitCount);
      const sensors: BoundSensor[] = active.flatMap((u) =>
        Array.from({ length: REGS }, (_, i) => ({
          asset: `unit-${u}`,
          id: `r${i}`,
          metric: 'other' as const,
          unit: '',
          source: 'plc',
          address: modbusAddressSchema.parse({ unit_id: u, address: i }),
        })),
      );
      let readings = 0;
      const source = new ModbusSource(
        {
          ...(modbusSchema.parse({ host: '127.0.0.1', port: server.port, poll_interval: 0, timeout: '2s' }) as ModbusConfig),
          id: 'plc',
        },
        {
          id: 'plc',
          sensors,
          logger: silent,
          emit: (b) => {
            readings += b.length;
          },
          count() {},
          now: Date.now,
        },
      );
      source.init();
      const requests = source.plan.length;
      await source.start();
      await new Promise((r) => setTimeout(r, 1000)); // warm-up
      const r0 = readings;
      const t0 = performance.now();
      await new Promise((r) => setTimeout(r, 5000));
      const r1 = readings;
      const t1 = performance.now();
      await source.stop();
      const stats = source.stats();
      const errors = Object.values(stats.units).reduce((n, u) => n + u.timeouts + u.exceptions + u.disconnected + u.protocol, 0);
      rows.push({
        section: SECTION,
        name: `Modbus TCP poll against pymodbus: ${unitCount} unit(s) × ${REGS} uint16 holding registers, back-to-back polls`,
        value: round((r1 - r0) / ((t1 - t0) / 1000), 0),
        unit: 'registers/s',
        note: `${requests} requests of ≤125 registers per cycle, ${errors} errors; the slave is pymodbus (Python) on the same 2 cores`,
      });
    }
  } finally {
    await server.stop();
  }
  return rows;
}

export const drivers: BenchSection = {
  name: 'drivers',
  requires: ['mosquitto', 'pymodbus'],
  async run() {
    return [...(await mqttIngest()), ...(await modbusPoll())];
  },
};
