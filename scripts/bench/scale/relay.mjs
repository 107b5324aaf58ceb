// The floor of the scale bench: a bare mqtt.js relay applying the agent's change-of-state rule, run as its
// own process. Reading above the setpoint → publish stop (once, then latched); an acknowledgement releases
// the latch only when the latest reading is back below the setpoint minus the hysteresis, and is answered
// like the agent answers it ({"ok":true,"state":"running"} or {"ok":false}).
//
// Input: one JSON object in argv[2]: { url, prefix, setpoint, delta_down, ack_topic, reply_topic }.
// Prints "ready" on stdout once subscribed.
import mqtt from 'mqtt';

const o = JSON.parse(process.argv[2]);
const client = mqtt.connect(o.url, { clientId: `scale-relay-${process.pid}`, protocolVersion: 5, reconnectPeriod: 0 });
await new Promise((resolve, reject) => {
  client.once('connect', resolve);
  client.once('error', reject);
});
client.stream.setNoDelay?.(true);
const tripped = new Set();
const last = new Map();
const clear = o.setpoint - o.delta_down;
client.on('message', (topic, payload) => {
  if (topic === o.ack_topic) {
    let m;
    try {
      m = JSON.parse(payload.toString());
    } catch {
      return;
    }
    const ok = tripped.has(m.asset) && (last.get(m.asset) ?? Number.POSITIVE_INFINITY) < clear;
    if (ok) tripped.delete(m.asset);
    client.publish(
      o.reply_topic,
      JSON.stringify(ok ? { ok, asset: m.asset, by: m.by, state: 'running' } : { ok, asset: m.asset }),
      { qos: 1 },
    );
    return;
  }
  const asset = topic.slice(o.prefix.length + 1, topic.lastIndexOf('/'));
  const value = JSON.parse(payload.toString()).value;
  last.set(asset, value);
  if (value > o.setpoint && !tripped.has(asset)) {
    tripped.add(asset);
    client.publish(`${o.prefix}/${asset}/command`, JSON.stringify({ asset, command: 'stop', sent_at: Date.now() }), { qos: 1 });
  }
});
await client.subscribeAsync([`${o.prefix}/+/temperature`, o.ack_topic], { qos: 0 });
process.stdout.write('ready\n');
process.on('SIGTERM', () => client.end(true, () => process.exit(0)));
