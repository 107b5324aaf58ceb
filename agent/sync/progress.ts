/**
 * Progress of long drains and replays on stderr: a redrawn bar when stderr is a TTY, otherwise
 * (journald, CI, pipes) a log line at most every 30 s, so logs stay readable.
 */
import type { Logger } from '../log.js';

export interface ProgressOptions {
  readonly total: number;
  readonly label: string;
  readonly logger?: Logger;
  readonly stream?: NodeJS.WriteStream;
  readonly intervalMs?: number;
}

export class Progress {
  private readonly started = Date.now();
  private lastDraw = 0;
  private current = 0;
  private readonly stream: NodeJS.WriteStream;
  private readonly tty: boolean;
  private finished = false;

  constructor(private readonly opts: ProgressOptions) {
    this.stream = opts.stream ?? process.stderr;
    this.tty = Boolean(this.stream.isTTY);
  }

  update(current: number): void {
    this.current = current;
    const now = Date.now();
    const interval = this.opts.intervalMs ?? (this.tty ? 200 : 30_000);
    if (now - this.lastDraw < interval) return;
    this.lastDraw = now;
    this.draw(false);
  }

  done(): void {
    if (this.finished) return;
    this.finished = true;
    this.draw(true);
  }

  private draw(final: boolean): void {
    const { total, label } = this.opts;
    const secs = Math.max(0.001, (Date.now() - this.started) / 1000);
    const rate = Math.round(this.current / secs);
    const pct = total > 0 ? Math.min(100, (100 * this.current) / total) : 100;
    if (this.tty) {
      const width = 30;
      const fill = Math.round((pct / 100) * width);
      const eta = rate > 0 ? Math.round((total - this.current) / rate) : 0;
      this.stream.write(
        `\r${label} [${'#'.repeat(fill)}${'.'.repeat(width - fill)}] ${pct.toFixed(1)}% ${this.current}/${total} ${rate}/s eta ${eta}s${final ? '\n' : ''}`,
      );
    } else if (this.opts.logger) {
      this.opts.logger.info({ done: this.current, total, per_second: rate, percent: Math.round(pct) }, label);
    } else {
      this.stream.write(`${label}: ${this.current}/${total} (${pct.toFixed(1)}%, ${rate}/s)\n`);
    }
  }
}
