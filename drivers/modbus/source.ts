/**
 * The Modbus source: one connection (session.ts), one poller per unit (agent/poller.ts), request
 * plans built at init (plan.ts), raw registers → readings (mapping below, codec.ts).
 *
 * Per-unit isolation: each unit polls on its own cadence with its own timeout budget. A unit that
 * times out is skipped (its sensors reported `stale`) for a backoff period that doubles with jitter,
 * then probed with a single request, so on a shared RTU bus a dead unit costs at most one timeout
 * per backoff period, and on TCP none at all (requests to other units run concurrently).
 *
 * Qualities: `good` fresh value; `comm_error` this poll's request failed (value: last good, or NaN);
 * `stale` the unit is being skipped after failures (value: last good, or NaN).
 */

import { Backoff } from '../../agent/backoff.js';
import type { BoundSensor, SourceContext, SourceDriver } from '../../agent/driver.js';
import { DeviceHealth } from '../../agent/health.js';
import { RateLimitedLog } from '../../agent/log.js';
import { Poller } from '../../agent/poller.js';
import { makeReading } from '../../agent/reading.js';
import type { Quality, Reading } from '../../agent/types.js';
import { type BusHandle, openBus } from './bus.js';
import { applyScale, decode } from './codec.js';
import { type PlanItem, planRequests, type ReadRequest, type UnitItems } from './plan.js';
import { type ModbusConfig, modbusAddressSchema, type Table } from './schema.js';
import { classify, type ModbusErrorKind, type ModbusSession } from './session.js';

/** Per-unit counters besides its `DeviceHealth`. */
export interface UnitStats {
  /** Requests answered. */
  ok: number;
  /** Polls skipped because the unit was backing off after failures. */
  skipped: number;
}

interface UnitRuntime {
  readonly unitId: number;
  readonly intervalMs: number;
  readonly timeoutMs: number;
  readonly requests: readonly ReadRequest[];
  /** Sensor indexes of this unit, for stale readings. */
  readonly sensorIndexes: readonly number[];
  readonly backoff: Backoff;
  readonly stats: UnitStats;
  readonly health: DeviceHealth;
  poller?: Poller;
  /** Overruns of pollers already stopped. */
  overruns: number;
}

const newStats = (): UnitStats => ({ ok: 0, skipped: 0 });

/** How /metrics and the twin name a unit: `unit-<id>` (configured ids only). */
export const unitDevice = (unitId: number) => `unit-${unitId}`;

export class ModbusSource implements SourceDriver {
  private units: UnitRuntime[] = [];
  private session: ModbusSession | undefined;
  private bus: BusHandle | undefined;
  private readonly errorsLog = new RateLimitedLog(60_000);
  /** Last good value per sensor index. */
  private last = new Float64Array(0);
  private started = false;

  constructor(
    private readonly config: ModbusConfig & { id: string },
    private readonly ctx: SourceContext,
  ) {}

  /** Validates transport options and builds the request plan of every unit. No I/O. */
  init(): void {
    const c = this.config;
    if (c.transport === 'rtu' && !c.serial_port) throw new Error(`modbus source "${c.id}": transport rtu needs serial_port`);
    if (c.transport !== 'rtu' && !c.host) throw new Error(`modbus source "${c.id}": transport ${c.transport} needs host`);
    const sensors = this.ctx.sensors;
    this.last = new Float64Array(sensors.length).fill(Number.NaN);
    const groups = new Map<string, { unitId: number; table: Table; items: PlanItem[] }>();
    const unitSensors = new Map<number, number[]>();
    sensors.forEach((s, index) => {
      const a = modbusAddressSchema.parse(s.address ?? {});
      const table = a.table;
      const type = a.type ?? (table === 'coil' || table === 'discrete' ? 'bool' : 'uint16');
      const key = `${a.unit_id}/${table}`;
      let g = groups.get(key);
      if (!g) {
        g = { unitId: a.unit_id, table, items: [] };
        groups.set(key, g);
      }
      g.items.push({ index, address: a.address, type, order: a.byte_order, scale: a.scale, offset: a.offset });
      unitSensors.set(a.unit_id, [...(unitSensors.get(a.unit_id) ?? []), index]);
    });
    const requests = planRequests([...groups.values()] as UnitItems[], {
      maxGap: c.max_gap,
      maxRegisters: c.max_registers,
      maxBits: c.max_bits,
    });
    const overrides = new Map(c.units.map((u) => [u.unit_id, u]));
    for (const u of overrides.keys()) {
      if (!unitSensors.has(u)) this.ctx.logger.warn({ unit_id: u }, 'modbus unit configured but no sensor reads it');
    }
    const link = new DeviceHealth(c.id, 'link', 'modbus_link', describeLink(c));
    // One owner per serial port: a modbus-write actuator on the same bus shares this session (bus.ts).
    this.bus = openBus(this.ctx.shared, c, `modbus source "${c.id}"`, 'source', this.ctx.logger, this.ctx.now, (s) =>
      s.adopt(c, link),
    );
    this.session = this.bus.session;
    this.units = [...unitSensors.keys()]
      .sort((a, b) => a - b)
      .map((unitId) => {
        const o = overrides.get(unitId);
        return {
          health: new DeviceHealth(c.id, unitDevice(unitId), 'modbus_unit', `unit ${unitId} on ${describeLink(c)}`, link),
          unitId,
          intervalMs: o?.poll_interval ?? c.poll_interval,
          timeoutMs: o?.timeout ?? c.timeout,
          requests: requests.filter((r) => r.unitId === unitId),
          sensorIndexes: unitSensors.get(unitId) ?? [],
          backoff: new Backoff({ baseMs: c.unit_backoff_min, maxMs: c.unit_backoff_max }),
          stats: newStats(),
          overruns: 0,
        };
      });
  }

  /** The request plan, for logs and tests. */
  get plan(): readonly ReadRequest[] {
    return this.units.flatMap((u) => u.requests);
  }

  /** The health of the link and of every configured unit (published by the agent: /metrics, twin, dashboard). */
  health(): DeviceHealth[] {
    const session = this.session as ModbusSession | undefined;
    for (const u of this.units) u.health.overruns = u.overruns + (u.poller?.stats.overruns ?? 0);
    return [...(session ? [session.health] : []), ...this.units.map((u) => u.health)];
  }

  /** Counters per unit and of the link, for tests and benchmarks (the same numbers as `health()`). */
  stats(): {
    device: string;
    session: { connects: number; connectFailures: number; disconnects: number; staleReconnects: number };
    units: Record<
      number,
      UnitStats & {
        requests: number;
        timeouts: number;
        exceptions: number;
        disconnected: number;
        protocol: number;
        overruns: number;
        lastError?: ModbusErrorKind;
      }
    >;
  } {
    this.health();
    const link = (this.session as ModbusSession).health;
    return {
      device: this.session?.describe ?? '',
      session: {
        connects: link.connects,
        connectFailures: link.errors.disconnected,
        disconnects: link.disconnects,
        staleReconnects: link.deadLinks,
      },
      units: Object.fromEntries(
        this.units.map((u) => {
          const h = u.health;
          return [
            u.unitId,
            {
              ...u.stats,
              requests: h.requests,
              timeouts: h.errors.timeout,
              exceptions: h.errors.exception,
              disconnected: h.errors.disconnected,
              protocol: h.errors.protocol,
              overruns: h.overruns,
              ...(h.lastError ? { lastError: h.lastError.kind as ModbusErrorKind } : {}),
            },
          ];
        }),
      ),
    };
  }

  /**
   * Tries to connect once, then starts polling whatever the outcome: an unreachable device is normal
   * at boot and is reported per poll as comm_error while the session reconnects with backoff.
   */
  async start(): Promise<void> {
    if (this.started) return;
    const session = this.session as ModbusSession;
    this.bus?.acquire();
    try {
      await session.open();
    } catch (err) {
      this.ctx.logger.warn(
        { device: session.describe, err: (err as Error).message },
        'modbus device not reachable yet; will retry',
      );
    }
    this.started = true;
    for (const unit of this.units) {
      unit.poller = new Poller({
        name: `unit ${unit.unitId}`,
        intervalMs: unit.intervalMs,
        logger: this.ctx.logger,
        now: this.ctx.now,
        poll: () => this.pollUnit(unit),
      });
      unit.poller.start();
    }
    this.ctx.logger.info(
      { device: session.describe, units: this.units.length, requests: this.plan.length, sensors: this.ctx.sensors.length },
      'modbus polling started',
    );
  }

  private async pollUnit(unit: UnitRuntime): Promise<void> {
    const session = this.session as ModbusSession;
    const now = this.ctx.now();
    const batch: Reading[] = [];
    if (!unit.backoff.ready(now)) {
      unit.stats.skipped++;
      unit.health.skipped++;
      this.emitFlagged(unit.sensorIndexes, 'stale', now, batch);
      this.ctx.emit(batch);
      return;
    }
    const probing = unit.backoff.failing;
    const retries = probing ? 0 : this.config.retries;
    let unitDown = false;
    let anyOk = false;
    for (let i = 0; i < unit.requests.length; i++) {
      const req = unit.requests[i] as ReadRequest;
      if (unitDown) {
        this.emitFlagged(
          req.values.map((v) => v.index),
          'stale',
          this.ctx.now(),
          batch,
        );
        continue;
      }
      let attempt = 0;
      for (;;) {
        unit.health.requests++;
        const sent = this.ctx.now();
        try {
          const data = await session.read(unit.unitId, req.table, req.start, req.count, unit.timeoutMs);
          const at = this.ctx.now();
          unit.stats.ok++;
          unit.health.ok(at, at - sent);
          anyOk = true;
          this.decodeInto(req, data, at, batch);
          break;
        } catch (err) {
          const e = classify(err);
          const at = this.ctx.now();
          // An exception answer is an answer: the latency counts, the unit is alive.
          unit.health.fail(e.kind, at, e.kind === 'timeout' || e.kind === 'exception' ? at - sent : undefined);
          this.ctx.count('errors');
          if (e.kind === 'timeout' && attempt++ < retries) continue;
          this.report(unit, req, e.kind, e.message, e.modbusCode);
          this.emitFlagged(
            req.values.map((v) => v.index),
            'comm_error',
            this.ctx.now(),
            batch,
          );
          // A timeout is this unit's problem: back off from it. A lost connection is the session's,
          // which has its own reconnect backoff; an exception answer concerns this request only.
          if (e.kind === 'timeout' || e.kind === 'protocol') {
            const delay = unit.backoff.fail(this.ctx.now());
            if (unit.backoff.failures === 1) {
              this.ctx.logger.warn(
                { unit_id: unit.unitId, skip_ms: delay },
                'modbus unit not answering; skipping it with backoff',
              );
            }
            unitDown = true;
          }
          break;
        }
      }
    }
    if (!unitDown && anyOk) {
      if (unit.backoff.failing) {
        this.ctx.logger.info({ unit_id: unit.unitId, failures: unit.backoff.failures }, 'modbus unit answering again');
      }
      unit.backoff.succeed();
    }
    if (batch.length > 0) this.ctx.emit(batch);
  }

  private report(unit: UnitRuntime, req: ReadRequest, kind: ModbusErrorKind, message: string, code?: number): void {
    // An exception (illegal address, illegal function) will not fix itself: someone must fix the map.
    const level = kind === 'exception' ? 'error' : 'warn';
    this.errorsLog.log(
      this.ctx.logger,
      level,
      `${unit.unitId}/${kind}`,
      { unit_id: unit.unitId, table: req.table, start: req.start, count: req.count, kind, modbus_code: code, err: message },
      'modbus request failed',
    );
  }

  private decodeInto(req: ReadRequest, data: Uint16Array | boolean[], t: number, batch: Reading[]): void {
    const sensors = this.ctx.sensors;
    const bits = req.table === 'coil' || req.table === 'discrete';
    for (const v of req.values) {
      const raw = bits ? ((data as boolean[])[v.at] ? 1 : 0) : decode(data as Uint16Array, v.at, v.type, v.order);
      const value = applyScale(raw, v.scale, v.offset);
      this.last[v.index] = value;
      batch.push(makeReading(sensors[v.index] as BoundSensor, value, t, t));
    }
  }

  private emitFlagged(indexes: readonly number[], quality: Quality, t: number, batch: Reading[]): void {
    const sensors = this.ctx.sensors;
    for (const i of indexes) batch.push(makeReading(sensors[i] as BoundSensor, this.last[i] as number, t, t, quality));
  }

  /** Stops every poller, waiting for polls in flight (bounded by their timeouts), then closes the connection. Idempotent. */
  async stop(): Promise<void> {
    const pollers = this.units.map((u) => u.poller).filter((p): p is Poller => !!p);
    for (const u of this.units) {
      u.overruns += u.poller?.stats.overruns ?? 0;
      u.poller = undefined;
    }
    // Drains: a poll in flight ends within its timeout budget, and its readings still reach the pipeline.
    await Promise.all(pollers.map((p) => p.stop()));
    await this.bus?.release();
    this.started = false;
  }
}

function describeLink(c: ModbusConfig): string {
  return c.transport === 'rtu' ? `${c.serial_port}` : `${c.transport === 'tcp' ? '' : 'rtu over '}${c.host}:${c.port}`;
}
