/**
 * Pre/post-trigger capture: each asset keeps a ring of its latest raw readings; when an anomaly is
 * raised, the readings from `before` ms earlier up to `after` ms later (event time) are emitted as
 * one `capture` event. Another anomaly raised meanwhile joins the open capture.
 *
 * The ring starts small and doubles when it is full while its oldest reading is still inside the
 * horizon (`before` plus how far behind the newest reading an anomaly can be stamped: the allowed
 * lateness and the longest detector window), up to `max_readings`. So it ends up sized from the
 * asset's actual rate, and an asset that never reports costs a few hundred bytes, not a ring sized for
 * the maximum. A full ring whose oldest reading is outside the horizon overwrites it.
 *
 * An open capture copies nothing while it waits for its `after` readings: they stay in the ring, which
 * grows rather than overwrite one of them, and are read out once when the capture closes (issue 20:
 * collecting them into arrays as they arrived kept thousands of numbers alive for `after` seconds per
 * trip, promoted to the old generation and freed by mark-compact pauses). Only a ring already at
 * `max_readings` copies the capture's readings out before overwriting one, and collects the rest as before.
 */
import type { CaptureConfig } from '../config/sections.js';
import type { AgentEvent, Anomaly, Quality, Reading } from '../types.js';

interface OpenCapture {
  readonly triggers: Array<{ detector: string; event_time: number; severity: string }>;
  readonly from: number;
  readonly until: number;
  /** Sequence number of the oldest reading in the ring when the capture opened: the readings it holds
   * from there on are read back from the ring when it closes. */
  readonly firstSeq: number;
  /** The readings so far, copied out of the ring: only when the ring had to overwrite one the capture
   * needs (it was at `max_readings`); from then on the capture collects its readings here. */
  copied: Collected | undefined;
}

interface Collected {
  readonly sensor: string[];
  readonly t: number[];
  readonly value: number[];
  readonly quality: Quality[];
}

/** Initial ring capacity (readings); it doubles on demand. */
const INITIAL_CAPACITY = 16;
/** Numbers per reading in the ring: event time, value, sensor index × 4 + quality code. */
const STRIDE = 3;

export class AssetCapture {
  /**
   * The ring, one record of STRIDE numbers per reading: event time, value, sensor index × 4 + quality
   * code. One array rather than one per field: a reading touches one place in memory, which counts
   * with thousands of assets whose rings are all cold between two readings of the same asset.
   */
  private ring: Float64Array;
  private cap: number;
  private readonly max: number;
  private readonly horizon: number;
  private head = 0;
  private size = 0;
  /** Readings recorded so far: the ring holds sequence numbers seq - size … seq - 1. */
  private seq = 0;
  private open: OpenCapture | undefined;

  constructor(
    private readonly asset: string,
    private readonly sensorIds: readonly string[],
    private readonly cfg: CaptureConfig,
    private readonly emit: (ev: AgentEvent) => void,
    /** How far behind the newest reading a trigger can be stamped (ms), beyond `before`. */
    slack = 0,
  ) {
    this.max = cfg.max_readings;
    this.horizon = cfg.before + Math.max(0, slack);
    this.cap = Math.min(this.max, INITIAL_CAPACITY);
    this.ring = new Float64Array(this.cap * STRIDE);
  }

  /** Ring capacity now (readings): grows with the asset's rate, never past `max_readings`. */
  get capacity(): number {
    return this.cap;
  }

  record(sensorIndex: number, r: Reading): void {
    let cap = this.cap;
    if (cap === 0) return;
    const o = this.open;
    // A reading past the open capture's end closes it first (the reading is not part of it).
    if (o !== undefined && r.eventTime > o.until) this.close();
    let ring = this.ring;
    if (this.size === cap) {
      const oldest = ring[this.head * STRIDE] as number;
      if (cap < this.max && (oldest >= r.eventTime - this.horizon || this.needsOldest())) ring = this.grow();
      else if (this.needsOldest()) this.copyOut();
    }
    cap = this.cap;
    const i = ((this.head + this.size) % cap) * STRIDE;
    ring[i] = r.eventTime;
    ring[i + 1] = r.value;
    ring[i + 2] = sensorIndex * 4 + QUALITY_CODE[r.quality];
    if (this.size < cap) this.size++;
    else this.head = (this.head + 1) % cap;
    this.seq++;
    const c = this.open?.copied;
    if (c !== undefined && r.eventTime >= (this.open as OpenCapture).from)
      this.push(c, r.eventTime, r.value, sensorIndex, r.quality);
  }

  /** Whether the oldest reading in the ring belongs to the open capture still read from the ring. */
  private needsOldest(): boolean {
    const o = this.open;
    if (o === undefined || o.copied !== undefined || this.seq - this.size < o.firstSeq) return false;
    const t = this.ring[this.head * STRIDE] as number;
    return t >= o.from && t <= o.until;
  }

  /** The open capture's readings still in the ring, oldest first (arrival order). */
  private collect(o: OpenCapture): Collected {
    const out: Collected = { sensor: [], t: [], value: [], quality: [] };
    const cap = this.cap;
    const ring = this.ring;
    for (let k = Math.max(0, o.firstSeq - (this.seq - this.size)); k < this.size; k++) {
      const i = ((this.head + k) % cap) * STRIDE;
      const t = ring[i] as number;
      if (t >= o.from && t <= o.until) {
        const code = ring[i + 2] as number;
        this.push(out, t, ring[i + 1] as number, code >> 2, QUALITIES_BY_CODE[code & 3] as Quality);
      }
    }
    return out;
  }

  /** The ring is at its maximum and must overwrite a reading the open capture needs: copy them out now. */
  private copyOut(): void {
    const o = this.open as OpenCapture;
    o.copied = this.collect(o);
  }

  trigger(a: Anomaly): void {
    if (this.cap === 0) return;
    const trig = { detector: a.detector, event_time: a.eventTime, severity: a.severity };
    if (this.open) {
      this.open.triggers.push(trig);
      return;
    }
    // Nothing is copied now: the readings stay in the ring (which grows rather than overwrite one of
    // them) and are read out when the capture closes.
    this.open = {
      triggers: [trig],
      from: a.eventTime - this.cfg.before,
      until: a.eventTime + this.cfg.after,
      firstSeq: this.seq - this.size,
      copied: undefined,
    };
  }

  /** Emits an open capture now (shutdown): it says how far it got. */
  close(): void {
    const o = this.open;
    if (!o) return;
    this.open = undefined;
    const c = o.copied ?? this.collect(o);
    const first = o.triggers[0] as OpenCapture['triggers'][number];
    this.emit({
      kind: 'capture',
      key: this.asset,
      eventTime: first.event_time,
      payload: {
        asset: this.asset,
        trigger: first,
        triggers: o.triggers,
        before_ms: this.cfg.before,
        after_ms: this.cfg.after,
        from: o.from,
        until: o.until,
        count: c.t.length,
        readings: { sensor: c.sensor, t: c.t, value: c.value, quality: c.quality },
      },
    });
  }

  /** Doubles the ring (capped at `max_readings`), oldest reading first; returns the new ring. */
  private grow(): Float64Array {
    const cap = this.cap;
    const next = Math.min(this.max, cap * 2);
    const ring = new Float64Array(next * STRIDE);
    ring.set(this.ring.subarray(this.head * STRIDE, cap * STRIDE), 0);
    ring.set(this.ring.subarray(0, this.head * STRIDE), (cap - this.head) * STRIDE);
    this.ring = ring;
    this.cap = next;
    this.head = 0;
    return ring;
  }

  private push(o: Collected, t: number, v: number, s: number, q: Quality): void {
    o.sensor.push(this.sensorIds[s] as string);
    o.t.push(t);
    o.value.push(v);
    o.quality.push(q);
  }
}

const QUALITIES_BY_CODE: readonly Quality[] = ['good', 'stale', 'comm_error', 'bad'];
const QUALITY_CODE: Record<Quality, number> = { good: 0, stale: 1, comm_error: 2, bad: 3 };
