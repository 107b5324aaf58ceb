/**
 * The source's own reading of incoming MQTT 3.1.1 PUBLISH packets (issue 20). Pure: bytes in, callbacks out.
 *
 * Why: at 20k messages/s most of the agent's main-thread time was MQTT.js's receive path (a buffer list,
 * a packet object, an event and a `process.nextTick` per message, a PUBACK written per message), the
 * same cost a bare MQTT.js relay pays. The readings' path to a stop goes through here, so it is kept
 * short: a PUBLISH at QoS 0 or 1 is framed in place, its topic and payload handed over, and the
 * caller acknowledges QoS 1 itself once the reading went through the pipeline.
 *
 * Every other packet (CONNACK, SUBACK, PINGRESP, QoS 2, anything unexpected) and every PUBLISH larger
 * than the limit is passed on byte for byte, whole packets only, so MQTT.js still parses them and owns
 * the session: connect, subscribe, keepalive, reconnect, QoS 2. Bytes that cannot be framed (a
 * remaining length over four bytes) switch the stream to passing everything on, so MQTT.js sees the
 * same malformed stream it would have seen and closes the connection; the next connection gets a new
 * `PublishFraming`.
 *
 * Order: the packets of one read are handed over in stream order, passed-on bytes before the
 * PUBLISH that follows them. MQTT.js handles the passed-on packets after the first on later ticks, so
 * a QoS 2 message can come after a QoS 0 or 1 message that followed it on the wire; MQTT orders
 * messages within one QoS only.
 */

/** What the framing hands out. */
export interface FramingSink {
  /** A whole PUBLISH at QoS 0 (`id` -1) or 1 (its packet id). `payload` is a view into the received bytes. */
  publish(topic: string, payload: Buffer, id: number): void;
  /** Whole packets (possibly split over calls) for MQTT.js, in stream order. */
  forward(bytes: Buffer): void;
}

const PUBLISH_QOS0 = 0x30;
const PUBLISH_QOS1 = 0x32;
/** Packet type and QoS bits of the fixed header's first byte (DUP and RETAIN do not matter here). */
const TYPE_QOS_MASK = 0xf6;

export class PublishFraming {
  /** A fixed header cut by the end of a read (at most 4 bytes): joined to the next read. */
  private head: Buffer | undefined;
  /** A PUBLISH cut by the end of a read: its bytes so far, in a buffer of its whole size. */
  private partial: Buffer | undefined;
  private partialFill = 0;
  /** Bytes still to pass on of a packet whose start was passed on. */
  private skip = 0;
  /** The stream could not be framed: everything is passed on from here. */
  private broken = false;

  /** @param maxRemaining the largest PUBLISH (remaining length) framed here; larger ones are passed on. */
  constructor(private readonly maxRemaining: number) {}

  /** Whether the stream could not be framed and everything is passed on. */
  get passingThrough(): boolean {
    return this.broken;
  }

  /** One read from the socket. */
  feed(chunk: Buffer, sink: FramingSink): void {
    if (this.broken) {
      sink.forward(chunk);
      return;
    }
    let buf = chunk;
    let pos = 0;
    if (this.partial !== undefined) {
      const p = this.partial;
      const n = Math.min(p.length - this.partialFill, buf.length);
      buf.copy(p, this.partialFill, 0, n);
      this.partialFill += n;
      if (this.partialFill < p.length) return;
      this.partial = undefined;
      this.deliver(p, 0, p.length, sink);
      pos = n;
      if (this.broken) {
        if (pos < buf.length) sink.forward(buf.subarray(pos));
        return;
      }
    } else if (this.head !== undefined) {
      buf = Buffer.concat([this.head, buf]);
      this.head = undefined;
    }
    let from = -1;
    if (this.skip > 0) {
      const n = Math.min(this.skip, buf.length - pos);
      this.skip -= n;
      from = pos;
      pos += n;
    }
    const end = buf.length;
    while (pos < end) {
      const first = buf[pos] as number;
      // Remaining length: 1 to 4 bytes, 7 bits each, low first.
      let len = 0;
      let mul = 1;
      let i = pos + 1;
      let complete = false;
      for (let k = 0; k < 4 && i < end; k++) {
        const b = buf[i++] as number;
        len += (b & 0x7f) * mul;
        mul *= 128;
        if (b < 0x80) {
          complete = true;
          break;
        }
      }
      if (!complete) {
        if (i - pos - 1 >= 4) {
          // A fifth length byte: not MQTT. MQTT.js gets the rest and closes the connection.
          this.broken = true;
          if (from < 0) from = pos;
          pos = end;
          break;
        }
        if (from >= 0) sink.forward(buf.subarray(from, pos));
        this.head = Buffer.from(buf.subarray(pos));
        return;
      }
      const total = i - pos + len;
      const kind = first & TYPE_QOS_MASK;
      if ((kind === PUBLISH_QOS0 || kind === PUBLISH_QOS1) && len <= this.maxRemaining) {
        if (from >= 0) {
          sink.forward(buf.subarray(from, pos));
          from = -1;
        }
        if (pos + total > end) {
          this.partial = Buffer.allocUnsafe(total);
          this.partialFill = buf.copy(this.partial, 0, pos, end);
          return;
        }
        this.deliver(buf, pos, pos + total, sink);
        if (this.broken) {
          if (pos + total < end) sink.forward(buf.subarray(pos + total));
          return;
        }
      } else {
        if (from < 0) from = pos;
        if (pos + total > end) {
          this.skip = pos + total - end;
          pos = end;
          break;
        }
      }
      pos += total;
    }
    if (from >= 0) sink.forward(from === 0 && pos === buf.length ? buf : buf.subarray(from, pos));
  }

  /** Forgets a cut packet (the connection ended). */
  reset(): void {
    this.head = undefined;
    this.partial = undefined;
    this.partialFill = 0;
    this.skip = 0;
    this.broken = false;
  }

  /** One whole PUBLISH at QoS 0 or 1 in `buf[start, end)`. */
  private deliver(buf: Buffer, start: number, end: number, sink: FramingSink): void {
    const first = buf[start] as number;
    let i = start + 1;
    while ((buf[i++] as number) >= 0x80);
    const qos1 = (first & TYPE_QOS_MASK) === PUBLISH_QOS1;
    const topicEnd = i + 2 + (((buf[i] as number) << 8) | (buf[i + 1] as number));
    const payloadStart = topicEnd + (qos1 ? 2 : 0);
    if (payloadStart > end) {
      // The topic runs past the packet: malformed. MQTT.js gets it (and closes the connection).
      this.broken = true;
      sink.forward(buf.subarray(start, end));
      return;
    }
    const id = qos1 ? ((buf[topicEnd] as number) << 8) | (buf[topicEnd + 1] as number) : -1;
    sink.publish(buf.toString('utf8', i + 2, topicEnd), buf.subarray(payloadStart, end), id);
  }
}

/** PUBACKs (MQTT 3.1.1) for the packet ids, in one buffer: one socket write for a read's QoS 1 messages. */
export function pubacks(ids: readonly number[]): Buffer {
  const out = Buffer.allocUnsafe(ids.length * 4);
  for (let k = 0; k < ids.length; k++) {
    const id = ids[k] as number;
    out[4 * k] = 0x40;
    out[4 * k + 1] = 0x02;
    out[4 * k + 2] = id >> 8;
    out[4 * k + 3] = id & 0xff;
  }
  return out;
}
