/**
 * Wraps drivers so they stay small: start with retry, exponential backoff and full jitter, a
 * per-driver logger, and idempotent stop. A driver whose start keeps failing never blocks the others.
 */
import { Backoff } from './backoff.js';
import type { Logger } from './log.js';

export interface Lifecycle {
  start(): Promise<void>;
  stop(): Promise<void>;
}

export class Supervised {
  private readonly retry = new Backoff({ baseMs: 500, maxMs: 30_000 });
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  started = false;

  constructor(
    readonly name: string,
    readonly driver: Lifecycle,
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
      if (this.retry.failing) this.logger.info({ attempts: this.retry.failures + 1 }, 'started after retries');
      this.retry.succeed();
    } catch (err) {
      const delay = this.retry.fail();
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
