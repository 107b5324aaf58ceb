/**
 * Wraps drivers so they stay small: start with retry, exponential backoff and full jitter, a
 * per-driver logger, and idempotent stop. A driver whose start keeps failing never blocks the others.
 */
import type { Logger } from './log.js';

export function backoffDelay(attempt: number, baseMs = 500, maxMs = 30_000, random: () => number = Math.random): number {
  const ceiling = Math.min(maxMs, baseMs * 2 ** Math.min(attempt, 20));
  return Math.round(ceiling / 2 + (random() * ceiling) / 2);
}

export interface Lifecycle {
  start(): Promise<void>;
  stop(): Promise<void>;
}

export class Supervised {
  private attempt = 0;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  started = false;

  constructor(
    readonly name: string,
    private readonly driver: Lifecycle,
    private readonly logger: Logger,
  ) {}

  /** Starts now, or keeps retrying in the background. Resolves after the first attempt. */
  async start(): Promise<void> {
    this.stopped = false;
    await this.tryStart();
  }

  private async tryStart(): Promise<void> {
    if (this.stopped) return;
    try {
      await this.driver.start();
      this.started = true;
      if (this.attempt > 0) this.logger.info({ attempts: this.attempt + 1 }, 'started after retries');
      this.attempt = 0;
    } catch (err) {
      const delay = backoffDelay(this.attempt++);
      this.logger.warn({ err: (err as Error).message, retry_in_ms: delay }, 'start failed; retrying');
      await this.driver.stop().catch(() => {});
      this.timer = setTimeout(() => void this.tryStart(), delay);
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    await this.driver.stop();
    this.started = false;
  }
}
