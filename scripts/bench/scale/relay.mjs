// The floor of the scale bench: a bare mqtt.js relay applying the agent's change-of-state rule, run as its
// own process. Reading above the setpoint → publish stop (once, then latched); an acknowledgement releases
// the latch only when the latest reading is back below the setpoint minus the hysteresis, and is answered
// like the agent answers it ({"ok":true,"state":"running"} or {"ok":false}).
//
// Input: one JSON object in argv[2]: { url, prefix, setpoint, delta_down, ack_topic, reply_topic }, and for
// diagnosis (SCALE_AA_RELAY: the A/A relay made like the agent in one respect, to see what moves the tail):
// `burn_us`, main-thread work after each stop is written (as the agent's records and events around a trip),
// `burn_after_ms` later if given (else as soon as the stop is written),
// `two_connections`, the stops and acks on a second connection (as the agent's actuator has its own),
// and `reading_us`, main-thread work on every reading before the rule (as the agent's source, windows and judge).
// Prints "ready" on stdout once subscribed.
import mqtt from 'mqtt';

const o = JSON.parse(process.argv[2]);
const open = async (suffix) => {
  const c = mqtt.connect(o.url, { clientId: `scale-relay-${process.pid}${suffix}`, protocolVersion: 5, reconnectPeriod: 0 });
  await new Promise((resolve, reject) => {
    c.once('connect', resolve);
    c.once('error', reject);
  });
  c.stream.setNoDelay?.(true);
  return c;
};
const client = await open('');
const commands = o.two_connections ? await open('-cmd') : client;
const burn = (us) => {
  const end = performance.now() + us / 1000;
  while (performance.now() < end);
};
const tripped = new Set();
const last = new Map();
const clear = o.setpoint - o.delta_down;
const onMessage = (topic, payload) => {
  if (topic === o.ack_topic) {
    let m;
    try {
      m = JSON.parse(payload.toString());
    } catch {
      return;
    }
    const ok = tripped.has(m.asset) && (last.get(m.asset) ?? Number.POSITIVE_INFINITY) < clear;
    if (ok) tripped.delete(m.asset);
    commands.publish(
      o.reply_topic,
      JSON.stringify(ok ? { ok, asset: m.asset, by: m.by, state: 'running' } : { ok, asset: m.asset }),
      { qos: 1 },
    );
    return;
  }
  if (o.reading_us) burn(o.reading_us);
  const asset = topic.slice(o.prefix.length + 1, topic.lastIndexOf('/'));
  const value = JSON.parse(payload.toString()).value;
  last.set(asset, value);
  if (value > o.setpoint && !tripped.has(asset)) {
    tripped.add(asset);
    commands.publish(`${o.prefix}/${asset}/command`, JSON.stringify({ asset, command: 'stop', sent_at: Date.now() }), { qos: 1 });
    // mqtt.js writes the stop on the next tick; the burn starts after it.
    if (o.burn_us && o.burn_after_ms !== undefined) setTimeout(() => burn(o.burn_us), o.burn_after_ms);
    else if (o.burn_us) setImmediate(() => burn(o.burn_us));
  }
};
client.on('message', onMessage);
if (commands !== client) commands.on('message', onMessage);
await client.subscribeAsync(`${o.prefix}/+/temperature`, { qos: 0 });
await commands.subscribeAsync(o.ack_topic, { qos: 0 });
process.stdout.write('ready\n');
process.on('SIGTERM', () => {
  if (commands !== client) commands.end(true);
  client.end(true, () => process.exit(0));
});
