// Load generator of the scale bench and the memory soak, run as its own process (plain Node + mqtt.js) so
// its CPU is not the system under test's. It plays N sensors (one asset each) at 10 Hz over MQTT and the
// machines behind them: now and then one sensor sends a single reading above the setpoint, the
// machine waits for its stop command, then (once a normal reading has followed) acknowledges on the ack
// topic and waits for the re-arm (reply ok: true) before that sensor may burst again.
//
// Input: one JSON object in argv[2]:
//   { url, prefix, rate, seconds, sensors, trips_per_s, setpoint, normal, burst, ack_topic, reply_topic, warmup_s,
//     settle_s, mqttjs }
// Output on stdout, one JSON line when done:
//   { readings, sent_per_s, trips, stops, lost, refused, latencies_ms: [...], lag_max_ms,
//     gen_cpu_us_per_reading (the generator's own CPU per reading over the measured seconds),
//     ack_flags: [...] one per latency: 1 when an ack for another sensor also left in the trip reading's tick (acks go
//     out right after the tick's readings), 2 when one left in the tick before and none in it, 0 otherwise,
//     first_latencies_ms: [...] of the trips sent during the warm-up (the trips sent during the settle_s seconds
//     that follow it, default 0, are in neither list: the system runs under the same load until it is steady),
//     slow: [[sent at (µs, monotonic clock), latency ms], ...] for latencies above slow_ms (default 20) }
import mqtt from 'mqtt';

const o = JSON.parse(process.argv[2]);
const lost_after_ms = 5_000;
const slow_ms = o.slow_ms ?? 20;
/** Bytes waiting in the socket's write buffer above which the generator stops publishing until it drains:
 * readings the broker cannot take are not counted as sent (they show up as lag), and the generator's own
 * memory stays bounded under overload. */
const max_buffered = 1 << 20;

const client = mqtt.connect(o.url, {
  clientId: `scale-load-${process.pid}`,
  protocolVersion: 5,
  reconnectPeriod: 0,
  properties: { receiveMaximum: 65535 },
});
await new Promise((resolve, reject) => {
  client.once('connect', resolve);
  client.once('error', reject);
});
client.stream.setNoDelay?.(true);
await client.subscribeAsync([`${o.prefix}/+/command`, o.reply_topic], { qos: 1 });

const n = o.sensors;
const assets = Array.from({ length: n }, (_, i) => `a${i}`);
const topics = assets.map((a) => `${o.prefix}/${a}/temperature`);
const topicBytes = topics.map((t) => Buffer.from(t));

// The readings' PUBLISH packets (QoS 0, MQTT 5, no properties) are encoded here, a tick's worth in one
// buffer and one write, rather than by mqtt.js one packet object at a time, so that the generator's CPU
// per reading is a fraction of the system's and more of a 2-core machine is left to the broker and the
// system under test. MQTT.js still owns the session (connect, subscribe, keepalive, the acks at QoS 1):
// a QoS 0 PUBLISH has no packet id, and a tick's readings go out in one write made between mqtt.js's
// calls (mqtt.js writes each of its packets within one synchronous call), so the two never interleave
// inside a packet. `mqttjs: true` in the options publishes the readings through mqtt.js, as
// the generator did before.
let batch = Buffer.allocUnsafe(1 << 16);
let batchLen = 0;
function addReading(i, payload) {
  const topic = topicBytes[i];
  const body = 2 + topic.length + 1 + payload.length; // topic, property length (0), payload (ASCII)
  if (batchLen + 5 + body > batch.length) {
    const bigger = Buffer.allocUnsafe(Math.max(batch.length * 2, batchLen + 5 + body));
    batch.copy(bigger, 0, 0, batchLen);
    batch = bigger;
  }
  batch[batchLen++] = 0x30;
  for (let x = body; ; ) {
    const b = x & 0x7f;
    x >>>= 7;
    batch[batchLen++] = x > 0 ? b | 0x80 : b;
    if (x === 0) break;
  }
  batch.writeUInt16BE(topic.length, batchLen);
  batchLen += 2;
  batchLen += topic.copy(batch, batchLen);
  batch[batchLen++] = 0;
  batchLen += batch.write(payload, batchLen, 'latin1');
}
function sendReadings() {
  if (batchLen === 0) return;
  client.stream.write(Buffer.from(batch.subarray(0, batchLen)));
  batchLen = 0;
}
const index = new Map(assets.map((a, i) => [a, i]));
// Per sensor: 0 normal, 1 burst pending (next reading is above), 2 awaiting stop, 3 stopped (ack after next reading),
// 4 acked, awaiting the re-arm reply.
const state = new Uint8Array(n);
const sentAt = new Float64Array(n);
const stoppedAt = new Float64Array(n);
/** When this sensor's current trip was sent: during the warm-up (the cold path), while the system settles
 * (counted nowhere), or while measuring (counted). */
const WARMUP = 0;
const MEASURED = 1;
const SETTLING = 2;
const counted = new Uint8Array(n);
const latencies = [];
/** Latencies of the trips sent during the warm-up: the first trips after the system started. */
const firstLatencies = [];
const slow = [];
// What else went out around each trip's reading (ack_flags in the output, one per latency): the acks sent in each
// tick (a ring by tick number) and the tick of each sensor's pending trip.
const ackRing = new Uint16Array(1 << 16);
let tickNo = 0;
const tripTick = new Uint32Array(n);
const ackFlags = [];
const monoUs = () => Number(process.hrtime.bigint() / 1000n);
let trips = 0;
let stops = 0;
let lost = 0;
let refused = 0;
let readings = 0;
let measuring = false;
/** The generator's own CPU and readings when the measured seconds began: its CPU per reading. */
let measureCpu = { user: 0, system: 0 };
let measureReadings = 0;

client.on('message', (topic, payload) => {
  const now = performance.now();
  if (topic === o.reply_topic) {
    let m;
    try {
      m = JSON.parse(payload.toString());
    } catch {
      return;
    }
    const i = index.get(m.asset);
    if (i === undefined || state[i] !== 4) return;
    if (m.ok && m.state !== 'tripped') state[i] = 0;
    else {
      refused++;
      state[i] = 3; // ack again after the next reading
    }
    return;
  }
  const asset = topic.slice(o.prefix.length + 1, topic.lastIndexOf('/'));
  const i = index.get(asset);
  if (i === undefined || state[i] !== 2) return; // re-asserted stops and stops for lost trips
  if (counted[i] === WARMUP) firstLatencies.push(now - sentAt[i]);
  else if (counted[i] === MEASURED) {
    latencies.push(now - sentAt[i]);
    ackFlags.push(ackRing[tripTick[i] & 0xffff] > 0 ? 1 : ackRing[(tripTick[i] - 1) & 0xffff] > 0 ? 2 : 0);
    stops++;
    // The slow ones with their send time on the monotonic clock (µs, as CPU profiles stamp samples).
    if (now - sentAt[i] > slow_ms && slow.length < 5000)
      slow.push([Math.round((sentAt[i] - now) * 1000 + monoUs()), now - sentAt[i]]);
  }
  state[i] = 3;
  stoppedAt[i] = now;
});

const t0 = performance.now();
const warmupMs = (o.warmup_s ?? 2) * 1000;
const settleMs = (o.settle_s ?? 0) * 1000;
const measureFromMs = warmupMs + settleMs;
const endMs = measureFromMs + o.seconds * 1000;
let cursor = 0;
let lagMax = 0;
// Trips start with the load, so that the warm-up runs the whole trip → stop → ack → re-arm path too: its
// trips are not counted in the measured latencies but reported apart (first_latencies_ms: the cold path).
let nextTrip = 0;
const tripEveryMs = 1000 / o.trips_per_s;
let genCpuUsPerReading = 0;

await new Promise((resolve) => {
  const tick = () => {
    const now = performance.now();
    const el = now - t0;
    if (el >= endMs) {
      const c = process.cpuUsage(measureCpu);
      genCpuUsPerReading = (c.user + c.system) / Math.max(1, readings - measureReadings);
      return resolve();
    }
    if (!measuring && el >= measureFromMs) {
      measuring = true;
      measureCpu = process.cpuUsage();
      measureReadings = readings;
    }
    const due = Math.floor((el * o.rate) / 1000);
    lagMax = Math.max(lagMax, (due - readings) / (o.rate / 1000));
    // Choose bursting sensors at the trip rate among those at rest.
    while (el >= nextTrip) {
      nextTrip += tripEveryMs;
      for (let k = 0; k < 8; k++) {
        const i = Math.floor(Math.random() * n);
        if (state[i] === 0) {
          state[i] = 1;
          break;
        }
      }
    }
    const ts = Date.now();
    tickNo++;
    ackRing[tickNo & 0xffff] = 0;
    while (readings < due) {
      if (client.stream.writableLength + batchLen > max_buffered) break;
      const i = cursor;
      cursor = (cursor + 1) % n;
      readings++;
      let value = o.normal + Math.random();
      if (state[i] === 1) {
        value = o.burst;
        state[i] = 2;
        sentAt[i] = performance.now();
        tripTick[i] = tickNo;
        counted[i] = measuring ? MEASURED : el < warmupMs ? WARMUP : SETTLING;
        if (measuring) trips++;
      } else if (state[i] === 2 && performance.now() - sentAt[i] > lost_after_ms) {
        if (counted[i] === MEASURED) lost++;
        state[i] = 3;
      } else if (state[i] === 3) {
        state[i] = 4;
        stoppedAt[i] = performance.now();
        ackRing[tickNo & 0xffff]++;
        setImmediate(() => client.publish(o.ack_topic, JSON.stringify({ asset: assets[i], by: 'bench' }), { qos: 1 }));
      } else if (state[i] === 4 && performance.now() - stoppedAt[i] > lost_after_ms) {
        state[i] = 3; // no reply: acknowledge again
      }
      const payload = `{"value":${value.toFixed(3)},"ts":${ts}}`;
      if (o.mqttjs) client.publish(topics[i], payload, { qos: 0 });
      else addReading(i, payload);
    }
    sendReadings();
    setTimeout(tick, 2);
  };
  tick();
});

// Trips still waiting for their stop get a grace period, then count as lost.
const graceEnd = performance.now() + 2_000;
while (performance.now() < graceEnd && state.some((s) => s === 2)) await new Promise((r) => setTimeout(r, 20));
for (let i = 0; i < n; i++) if (state[i] === 2 && counted[i] === MEASURED) lost++;
const seconds = (performance.now() - t0 - measureFromMs) / 1000;
await client.endAsync();
process.stdout.write(
  `${JSON.stringify({ readings, sent_per_s: Math.round(readings / (seconds + measureFromMs / 1000)), trips, stops, lost, refused, lag_max_ms: Math.round(lagMax), gen_cpu_us_per_reading: genCpuUsPerReading, latencies_ms: latencies, ack_flags: ackFlags, first_latencies_ms: firstLatencies, slow })}\n`,
);
