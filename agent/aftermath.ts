/**
 * What follows a command waits a millisecond: right after a stop (or any command) is on the wire, the
 * records it causes (the latch journal line, the trip and anomaly events, their log lines) are held for
 * `HOLD_MS` and then run, in the order they were made.
 *
 * Why (issue 20): the command still has to cross the broker, usually on the same gateway, and the
 * broker and the machine's client need a CPU to deliver it. Measured at 1k readings/s, the agent kept
 * its core busy for about 0.23 ms after each stop building those records, and the stop took 0.2 ms
 * longer from the agent's socket to the machine than a bare relay's; with the records held, both were
 * the relay's (docs/plant-scale.md).
 *
 * Order is kept: while records are held, every new one queues behind them (one made by a record as it
 * runs runs inside it), so the journal still has a trip before its release and before the store hears of it. State changes are not held
 * (the latch is tripped at once); only their records are. The cost is a wider window in which a crash
 * loses the journal line of a trip whose stop already left (docs/safety.md, hazard 3).
 */

/** How long records wait after a command (ms): one timer turn, so the event loop can go idle. */
export const HOLD_MS = 1;

export class Aftermath {
  private readonly queue: Array<() => void> = [];
  private timer: NodeJS.Timeout | undefined;
  private running = false;

  /** @param onError told of a record that threw; the records after it still run. */
  constructor(private readonly onError: (err: unknown) => void) {}

  /** Records made from now on wait until `HOLD_MS` after the first hold since the queue last ran. */
  hold(): void {
    this.timer ??= setTimeout(() => this.flush(), HOLD_MS);
  }

  /**
   * Runs `record` now, or queues it behind the records already waiting. A record made by a record
   * that is running (an event's tap emitting another) runs at once, inside it, as it would have
   * without the hold.
   */
  run(record: () => void): void {
    if (this.timer !== undefined && !this.running) this.queue.push(record);
    else record();
  }

  /** Runs every waiting record now, in order (the hold's timer, and shutdown). */
  flush(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    if (this.running) return;
    this.running = true;
    const q = this.queue;
    for (let i = 0; i < q.length; i++) {
      try {
        (q[i] as () => void)();
      } catch (err) {
        this.onError(err);
      }
    }
    q.length = 0;
    this.running = false;
  }
}
