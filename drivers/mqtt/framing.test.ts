import { generate, type Packet } from 'mqtt-packet';
import { describe, expect, it } from 'vitest';
import { rng } from '../../agent/prng.js';
import { type FramingSink, PublishFraming, pubacks } from './framing.js';

/** What the framing handed out, with consecutive forwarded bytes joined (their split is free). */
type Out = Array<{ publish: [string, string, number] } | { forward: string }>;

function collect(): { sink: FramingSink; out: Out } {
  const out: Out = [];
  const sink: FramingSink = {
    publish: (topic, payload, id) => out.push({ publish: [topic, payload.toString('hex'), id] }),
    forward: (bytes) => {
      const last = out[out.length - 1];
      if (last && 'forward' in last) last.forward += bytes.toString('hex');
      else if (bytes.length > 0) out.push({ forward: bytes.toString('hex') });
    },
  };
  return { sink, out };
}

/** Feeds `stream` cut at random places (single bytes among them). */
function feedCut(f: PublishFraming, stream: Buffer, sink: FramingSink, rnd: () => number, maxCut: number): number {
  let pos = 0;
  let reads = 0;
  while (pos < stream.length) {
    const n = rnd() < 0.1 ? 1 : 1 + Math.floor(rnd() * maxCut);
    f.feed(stream.subarray(pos, pos + n), sink);
    pos += n;
    reads++;
  }
  return reads;
}

const LIMIT = 2048;

/**
 * A random MQTT 3.1.1 stream encoded by mqtt-packet (MQTT.js's own encoder), and what the framing must
 * make of it: QoS 0 and 1 PUBLISHes up to the limit handed out, everything else forwarded as is.
 */
function randomStream(seed: number, n: number): { stream: Buffer; expected: Out } {
  const rnd = rng(seed);
  const { sink, out: expected } = collect();
  const parts: Buffer[] = [];
  const topics = ['plant/pump-1/temperature', 'p/ü/°C', 'a', 'line/7/' + 'x'.repeat(300)];
  for (let k = 0; k < n; k++) {
    const r = rnd();
    let packet: Packet;
    let framed = false;
    if (r < 0.75) {
      const qos = rnd() < 0.5 ? 0 : rnd() < 0.8 ? 1 : 2;
      const size = rnd() < 0.9 ? Math.floor(rnd() * 200) : Math.floor(rnd() * 3000);
      const payload = Buffer.from(Array.from({ length: size }, () => Math.floor(rnd() * 256)));
      const topic = topics[Math.floor(rnd() * topics.length)] as string;
      const messageId = 1 + Math.floor(rnd() * 65535);
      packet = { cmd: 'publish', topic, payload, qos, dup: qos > 0 && rnd() < 0.2, retain: rnd() < 0.2, messageId };
      const bytes = generate(packet);
      framed = qos < 2 && bytes.length - 1 - (bytes.length > 129 ? 2 : 1) <= LIMIT;
      if (framed) sink.publish(topic, payload, qos === 1 ? messageId : -1);
      parts.push(bytes);
      if (!framed) sink.forward(bytes);
      continue;
    }
    if (r < 0.85) packet = { cmd: 'pingresp' };
    else if (r < 0.93) packet = { cmd: 'suback', messageId: 1 + Math.floor(rnd() * 65535), granted: [0, 1, 128] };
    else if (r < 0.97) packet = { cmd: 'puback', messageId: 1 + Math.floor(rnd() * 65535) };
    else packet = { cmd: 'connack', returnCode: 0, sessionPresent: rnd() < 0.5 };
    const bytes = generate(packet);
    parts.push(bytes);
    sink.forward(bytes);
  }
  return { stream: Buffer.concat(parts), expected };
}

describe('PublishFraming', () => {
  it('hands out every QoS 0 and 1 PUBLISH and forwards every other packet byte for byte, in stream order, however the reads cut it', () => {
    for (const seed of [1, 2, 3, 4, 5]) {
      const { stream, expected } = randomStream(seed, 2000);
      const published = expected.filter((e) => 'publish' in e).length;
      expect(published).toBeGreaterThan(1000);
      for (const maxCut of [7, 200, 65_536]) {
        const f = new PublishFraming(LIMIT);
        const { sink, out } = collect();
        const reads = feedCut(f, stream, sink, rng(seed * 31 + maxCut), maxCut);
        expect(reads).toBeGreaterThan(maxCut === 65_536 ? 1 : 100);
        expect(out).toEqual(expected);
        expect(f.passingThrough).toBe(false);
      }
    }
  });

  it('passes a read with nothing to frame on as the same buffer (no copy)', () => {
    const f = new PublishFraming(LIMIT);
    const chunk = Buffer.concat([generate({ cmd: 'pingresp' }), generate({ cmd: 'puback', messageId: 7 })]);
    const seen: Buffer[] = [];
    f.feed(chunk, { publish: () => expect.unreachable(), forward: (b) => seen.push(b) });
    expect(seen).toHaveLength(1);
    expect(seen[0]).toBe(chunk);
  });

  it('forwards everything from a remaining length of five bytes on, so MQTT.js sees the stream it would have seen', () => {
    const f = new PublishFraming(LIMIT);
    const good = generate({ cmd: 'publish', topic: 't', payload: Buffer.from('1'), qos: 0, dup: false, retain: false });
    const bad = Buffer.from([0x30, 0xff, 0xff, 0xff, 0xff, 0x01, 0x00]);
    const { sink, out } = collect();
    f.feed(Buffer.concat([good, bad.subarray(0, 3)]), sink);
    f.feed(Buffer.concat([bad.subarray(3), good]), sink);
    expect(f.passingThrough).toBe(true);
    expect(out).toEqual([{ publish: ['t', '31', -1] }, { forward: Buffer.concat([bad, good]).toString('hex') }]);
    f.reset();
    expect(f.passingThrough).toBe(false);
  });

  it('forwards a PUBLISH whose topic runs past its end, and everything after it', () => {
    const f = new PublishFraming(LIMIT);
    const bad = Buffer.from([0x30, 0x04, 0x00, 0x09, 0x61, 0x62]);
    const ping = generate({ cmd: 'pingresp' });
    const { sink, out } = collect();
    f.feed(Buffer.concat([bad, ping]), sink);
    expect(out).toEqual([{ forward: Buffer.concat([bad, ping]).toString('hex') }]);
    expect(f.passingThrough).toBe(true);
  });

  it('frames a PUBLISH of exactly the limit and forwards one byte over it', () => {
    const f = new PublishFraming(LIMIT);
    const at = generate({ cmd: 'publish', topic: 'ab', payload: Buffer.alloc(LIMIT - 4, 7), qos: 0, dup: false, retain: false });
    const over = generate({
      cmd: 'publish',
      topic: 'ab',
      payload: Buffer.alloc(LIMIT - 3, 7),
      qos: 0,
      dup: false,
      retain: false,
    });
    const { sink, out } = collect();
    f.feed(Buffer.concat([at, over]), sink);
    expect(out).toEqual([{ publish: ['ab', Buffer.alloc(LIMIT - 4, 7).toString('hex'), -1] }, { forward: over.toString('hex') }]);
  });

  it('writes MQTT 3.1.1 PUBACKs as mqtt-packet does', () => {
    const ids = [1, 255, 256, 65535];
    expect(pubacks(ids)).toEqual(Buffer.concat(ids.map((messageId) => generate({ cmd: 'puback', messageId }))));
    expect(pubacks([])).toHaveLength(0);
  });
});
