/**
 * The scale bench's per-reading path in one process, without sockets (not part of `npm run bench`): the
 * MQTT source's message handler → pipeline → interlocks for N one-sensor assets (the scale bench's config),
 * readings round robin at 10 Hz event time, a trip now and then. Prints CPU µs per message; compare
 * builds or changes A/B in the same run. `tsx scripts/bench/scale-inproc.ts [sensors] [messages]`;
 * INPROC_EXTRA: YAML appended to the config (e.g. `capture: { max_readings: 0 }`); INPROC_SOURCE_ONLY=1: the
 * source's handler only (readings are not passed to the pipeline).
 */
import { pino } from 'pino';
import { SPREAD_CLOSES } from '../../agent/agent.js';
import { parseConfig } from '../../agent/config/load.js';
import { type BoundSensor, bindSensor } from '../../agent/driver.js';
import { Interlocks } from '../../agent/interlock.js';
import { Pipeline } from '../../agent/pipeline.js';
import { sensorSlots } from '../../agent/reading.js';
import type { AgentEvent, Reading } from '../../agent/types.js';
import { type MqttConfig, mqttSchema } from '../../drivers/mqtt/schema.js';
import { MqttSource } from '../../drivers/mqtt/source.js';
import { scaleConfig } from './scale.js';

const n = Number(process.argv[2] ?? 2000);
const total = Number(process.argv[3] ?? 400_000);
const silent = pino({ level: 'silent' });
const yaml = scaleConfig({ sensors: n, mqttPort: 1, apiPort: 2, dbPath: '/nonexistent/inproc.db', prefix: 'p' });
const res = await parseConfig(`${yaml}${process.env.INPROC_EXTRA ?? ''}\n`, 'inproc.yaml');
if (!res.ok) throw new Error(JSON.stringify(res.errors));
const config = res.config;
let events = 0;
const emit = (_: AgentEvent) => {
  events++;
};
const pipeline = new Pipeline(config, new Interlocks(config.interlocks, new Map(), emit, silent), emit, Date.now, {
  spreadCloses: SPREAD_CLOSES,
});
const slots = sensorSlots(config.assets);
const sensors: BoundSensor[] = config.assets.flatMap((a) =>
  a.sensors.map((s) => bindSensor(s, a.id, slots.get(a.id)?.get(s.id) as number)),
);
let readings = 0;
const ctx = {
  id: 'broker',
  sensors,
  logger: silent,
  emit(batch: readonly Reading[]) {
    readings += batch.length;
    pipeline.ingest(batch);
  },
  emitOne(s: BoundSensor, r: Reading) {
    readings++;
    if (process.env.INPROC_SOURCE_ONLY) return;
    pipeline.ingestOne(s.slot as number, r);
  },
  count() {},
  now: Date.now,
};
const { id: _id, type: _type, ...options } = config.sources[0] as Record<string, unknown>;
const src = new MqttSource({ ...(mqttSchema.parse(options) as MqttConfig), id: 'broker' }, ctx);
src.init();
const handle = (src as unknown as { handle(t: string, p: Buffer): void }).handle.bind(src);
const topicBufs = Array.from({ length: n }, (_, i) => Buffer.from(`p/a${i}/temperature`));
const t0 = Date.now();
const run = (count: number, from: number) => {
  for (let k = from; k < from + count; k++) {
    const i = k % n;
    const ts = t0 + Math.floor(k / n) * 100;
    const value = i === 7 && Math.floor(k / n) % 50 === 1 ? 150 : 50 + (k % 7) / 10;
    // A fresh topic string and payload per message, as MQTT.js hands them over.
    handle((topicBufs[i] as Buffer).toString(), Buffer.from(`{"value":${value.toFixed(3)},"ts":${ts}}`));
  }
};
run(total / 4, 0);
const c0 = process.cpuUsage();
const w0 = performance.now();
run(total, total / 4);
const c1 = process.cpuUsage(c0);
const w1 = performance.now();
process.stdout.write(
  `${n} sensors, ${total} messages: ${((c1.user + c1.system) / total).toFixed(2)} µs CPU per message (wall ${(((w1 - w0) * 1000) / total).toFixed(2)} µs), ${readings} readings, ${events} events\n`,
);
