/**
 * The bounded queue between the hot path and inference. `offer()` is O(1) amortised and never
 * waits. When the queue is full, inference has fallen behind: the queue keeps only the newest
 * window per asset (the older ones are counted as coalesced); if it is still full because more
 * assets are waiting than it holds, the oldest window is dropped and counted.
 * Invariant: offered = taken + coalesced + dropped + size.
 */

export interface QueuedWindow {
  readonly asset: string;
  readonly windowStart: number;
  readonly features: Float32Array;
  /** Layout the features were computed for (the card's version); checked again at scoring. */
  readonly layout: string;
}

export interface QueueCounters {
  offered: number;
  taken: number;
  coalesced: number;
  dropped: number;
}

export class WindowQueue {
  readonly counters: QueueCounters = { offered: 0, taken: 0, coalesced: 0, dropped: 0 };
  private items: QueuedWindow[] = [];
  private head = 0;

  constructor(readonly capacity: number) {
    if (capacity < 1) throw new Error('queue capacity must be at least 1');
  }

  get size(): number {
    return this.items.length - this.head;
  }

  offer(w: QueuedWindow): void {
    this.counters.offered++;
    if (this.size >= this.capacity) this.coalesce();
    if (this.size >= this.capacity) {
      this.head++;
      this.counters.dropped++;
    }
    this.items.push(w);
  }

  /** Removes and returns up to `max` windows, oldest first. */
  take(max: number): QueuedWindow[] {
    const n = Math.min(max, this.size);
    const out = this.items.slice(this.head, this.head + n);
    this.head += n;
    if (this.head > 1024 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    this.counters.taken += n;
    return out;
  }

  private coalesce(): void {
    const newest = new Map<string, number>();
    for (let i = this.head; i < this.items.length; i++) newest.set((this.items[i] as QueuedWindow).asset, i);
    const kept: QueuedWindow[] = [];
    for (let i = this.head; i < this.items.length; i++) {
      const w = this.items[i] as QueuedWindow;
      if (newest.get(w.asset) === i) kept.push(w);
      else this.counters.coalesced++;
    }
    this.items = kept;
    this.head = 0;
  }
}
