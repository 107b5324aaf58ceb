/**
 * Structured JSON logs to stdout (journald picks them up). One child logger per component.
 * ERROR: data loss or a person must act. WARN: unexpected but recovered. INFO: lifecycle.
 * Never a line per reading; repeated problems go through `rateLimited`.
 */
import { pino } from 'pino';

export type Logger = pino.Logger;

export function createLogger(level: string, destination?: pino.DestinationStream): Logger {
  return pino(
    {
      level,
      base: { service: 'edge-agent' },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    destination ?? pino.destination({ dest: 1, sync: false }),
  );
}

/**
 * Logs at most one line per `key` per `intervalMs`, and says how many were suppressed in between.
 * Keys must come from a bounded set (a device id and an error class), never raw values.
 */
export class RateLimitedLog {
  private readonly last = new Map<string, { at: number; suppressed: number }>();

  constructor(
    private readonly intervalMs = 60_000,
    private readonly now: () => number = Date.now,
  ) {}

  log(logger: Logger, level: 'warn' | 'error' | 'info', key: string, obj: Record<string, unknown>, msg: string): void {
    const t = this.now();
    const entry = this.last.get(key);
    if (entry && t - entry.at < this.intervalMs) {
      entry.suppressed++;
      return;
    }
    const suppressed = entry?.suppressed ?? 0;
    this.last.set(key, { at: t, suppressed: 0 });
    logger[level](suppressed > 0 ? { ...obj, suppressed } : obj, msg);
  }
}
