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
 */
import type { CaptureConfig } from '../config/sections.js';
import type { AgentEvent, Anomaly, Quality, Reading } from '../types.js';

interface OpenCapture {
  readonly triggers: Array<{ detector: string; event_time: number; severity: string }>;
  readonly from: number;
  readonly until: number;
  readonly sensor: string[];
  readonly t: number[];
  readonly value: number[];
  readonly quality: Quality[];
}

/** Initial ring capacity (readings); it doubles on demand. */
const INITIAL_CAPACITY = 16;

export class AssetCapture {
  private times: Float64Array;
  private values: Float64Array;
  private sensors: Int32Array;
  private qualities: Uint8Array;
  private readonly max: number;
  private readonly horizon: number;
  private head = 0;
  private size = 0;
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
    const cap = Math.min(this.max, INITIAL_CAPACITY);
    this.times = new Float64Array(cap);
    this.values = new Float64Array(cap);
    this.sensors = new Int32Array(cap);
    this.qualities = new Uint8Array(cap);
  }

  /** Ring capacity now (readings): grows with the asset's rate, never past `max_readings`. */
  get capacity(): number {
    return this.times.length;
  }

  record(sensorIndex: number, r: Reading): void {
    let cap = this.times.length;
    if (cap === 0) return;
    if (this.size === cap && cap < this.max && (this.times[this.head] as number) >= r.eventTime - this.horizon) {
      this.grow();
      cap = this.times.length;
    }
    const i = (this.head + this.size) % cap;
    this.times[i] = r.eventTime;
    this.values[i] = r.value;
    this.sensors[i] = sensorIndex;
    this.qualities[i] = QUALITY_CODE[r.quality];
    if (this.size < cap) this.size++;
    else this.head = (this.head + 1) % cap;
    const o = this.open;
    if (o) {
      if (r.eventTime > o.until) this.close();
      else if (r.eventTime >= o.from) this.push(o, r.eventTime, r.value, sensorIndex, r.quality);
    }
  }

  trigger(a: Anomaly): void {
    if (this.times.length === 0) return;
    const trig = { detector: a.detector, event_time: a.eventTime, severity: a.severity };
    if (this.open) {
      this.open.triggers.push(trig);
      return;
    }
    const o: OpenCapture = {
      triggers: [trig],
      from: a.eventTime - this.cfg.before,
      until: a.eventTime + this.cfg.after,
      sensor: [],
      t: [],
      value: [],
      quality: [],
    };
    const cap = this.times.length;
    for (let k = 0; k < this.size; k++) {
      const i = (this.head + k) % cap;
      const t = this.times[i] as number;
      if (t >= o.from && t <= o.until)
        this.push(
          o,
          t,
          this.values[i] as number,
          this.sensors[i] as number,
          QUALITIES_BY_CODE[this.qualities[i] as number] as Quality,
        );
    }
    this.open = o;
  }

  /** Emits an open capture now (shutdown): it says how far it got. */
  close(): void {
    const o = this.open;
    if (!o) return;
    this.open = undefined;
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
        count: o.t.length,
        readings: { sensor: o.sensor, t: o.t, value: o.value, quality: o.quality },
      },
    });
  }

  /** Doubles the ring (capped at `max_readings`), oldest reading first. */
  private grow(): void {
    const cap = this.times.length;
    const next = Math.min(this.max, cap * 2);
    const times = new Float64Array(next);
    const values = new Float64Array(next);
    const sensors = new Int32Array(next);
    const qualities = new Uint8Array(next);
    const tail = cap - this.head;
    times.set(this.times.subarray(this.head), 0);
    times.set(this.times.subarray(0, this.head), tail);
    values.set(this.values.subarray(this.head), 0);
    values.set(this.values.subarray(0, this.head), tail);
    sensors.set(this.sensors.subarray(this.head), 0);
    sensors.set(this.sensors.subarray(0, this.head), tail);
    qualities.set(this.qualities.subarray(this.head), 0);
    qualities.set(this.qualities.subarray(0, this.head), tail);
    this.times = times;
    this.values = values;
    this.sensors = sensors;
    this.qualities = qualities;
    this.head = 0;
  }

  private push(o: OpenCapture, t: number, v: number, s: number, q: Quality): void {
    o.sensor.push(this.sensorIds[s] as string);
    o.t.push(t);
    o.value.push(v);
    o.quality.push(q);
  }
}

const QUALITIES_BY_CODE: readonly Quality[] = ['good', 'stale', 'comm_error', 'bad'];
const QUALITY_CODE: Record<Quality, number> = { good: 0, stale: 1, comm_error: 2, bad: 3 };
