/**
 * The latch journal: a small append-only file that makes a trip decision durable right after the stop
 * commands left, independent of the event store (whose writer batches every `store.flush_interval`).
 *
 * One JSON object per line: `{"op":"trip",...}` when an asset trips, `{"op":"release",...}` when it is
 * released. Each record is written with one synchronous `write(2)` in the tick of the trip (so a crash of
 * the process right after keeps it: the page cache belongs to the kernel) and then flushed to the device
 * with `fdatasync(2)` on the libuv thread pool (so a power loss keeps it once that returns). The stop
 * command never waits for either: `Interlocks` writes the record after `execute()` returned.
 *
 * A release is written the same way, but its flush waits up to RELEASE_SYNC_MS, or rides on the next
 * trip's: a release lost to a power cut leaves the asset latched at restart, the safe side, and a plant
 * tripping and releasing many assets a second saves one device flush (and a thread-pool wake-up that
 * preempts the readings on a two-core gateway) per release.
 *
 * Lifecycle: the constructor only assigns; `open()` reads the file back (a torn last line, as left by a
 * crash in the middle of a write, is ignored), rewrites it compacted (one line per latched asset, written
 * to a temporary file, fsync'd, renamed over, directory fsync'd) and opens it for appending. `close()`
 * syncs and closes; idempotent.
 */
import { closeSync, fdatasync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, statSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';

/** What the journal remembers of a latched asset: enough to re-latch it and to re-record the trip. */
export interface LatchRecord {
  readonly asset: string;
  readonly detector: string;
  readonly sensor: string;
  readonly severity: string;
  readonly value: number | null;
  readonly reading_event_time: number;
  readonly decided_at: number;
  readonly commands: ReadonlyArray<{ actuator: string; command: string; sent_at: number }>;
}

/** Longest a written release waits for its device flush (a trip's flush covers it sooner). */
export const RELEASE_SYNC_MS = 1_000;

type Line = ({ op: 'trip' } & LatchRecord) | { op: 'release'; asset: string; by: string; at: number };

export interface JournalStats {
  records: number;
  syncs: number;
  errors: number;
  lastError: string | undefined;
}

export class LatchJournal {
  private fd: number | undefined;
  private syncing = false;
  private again = false;
  private waiters: Array<() => void> = [];
  /** The deferred flush of a release record (see RELEASE_SYNC_MS). */
  private releaseSync: NodeJS.Timeout | undefined;
  readonly stats: JournalStats = { records: 0, syncs: 0, errors: 0, lastError: undefined };
  /** Called with each fdatasync's seconds, from the call to its callback on the main thread (telemetry). */
  onSynced: ((seconds: number) => void) | undefined;
  /** Called (with the error) when a record could not be written or synced; the trip itself stands. */
  onError: ((err: Error) => void) | undefined;

  constructor(readonly path: string) {}

  /**
   * Reads the latched assets back, compacts the file and opens it for appending. Returns every asset the
   * journal knows (`latched`: still tripped; `released`: its last record is a release).
   */
  open(): { latched: Map<string, LatchRecord>; released: Map<string, { by: string; at: number }> } {
    const latched = new Map<string, LatchRecord>();
    const released = new Map<string, { by: string; at: number }>();
    let text = '';
    // Compaction replaces the file by rename: a device or pipe named here (`latch_journal: /dev/null`)
    // would be replaced by a plain file, which as root breaks the whole machine's /dev/null.
    const st = statSync(this.path, { throwIfNoEntry: false });
    if (st && !st.isFile())
      throw new Error(`${this.path} is not a regular file: store.latch_journal must name a file the agent owns`);
    try {
      text = readFileSync(this.path, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    for (const raw of text.split('\n')) {
      if (!raw) continue;
      let line: Line;
      try {
        line = JSON.parse(raw) as Line;
      } catch {
        continue; // a torn write at a crash; every complete line before it counts
      }
      if (line.op === 'trip') {
        const { op: _op, ...rec } = line;
        latched.set(rec.asset, rec);
        released.delete(rec.asset);
      } else if (line.op === 'release') {
        latched.delete(line.asset);
        released.set(line.asset, { by: line.by, at: line.at });
      }
    }
    mkdirSync(dirname(this.path), { recursive: true });
    const tmp = `${this.path}.tmp`;
    const fd = openSync(tmp, 'w', 0o640);
    try {
      const body = [...latched.values()].map((r) => `${JSON.stringify({ op: 'trip', ...r })}\n`).join('');
      if (body) writeSync(fd, body);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, this.path);
    syncDir(dirname(this.path));
    this.fd = openSync(this.path, 'a', 0o640);
    return { latched, released };
  }

  /** Hot path, after the stop commands were issued: one write now, the device flush off the thread. */
  tripped(rec: LatchRecord): void {
    this.append({ op: 'trip', ...rec });
  }

  /** Written now; flushed within RELEASE_SYNC_MS (a power cut before that re-latches the asset). */
  released(asset: string, by: string, at: number): void {
    if (!this.append({ op: 'release', asset, by, at })) return;
    if (this.releaseSync !== undefined) return;
    this.releaseSync = setTimeout(() => this.sync(), RELEASE_SYNC_MS);
    this.releaseSync.unref?.();
  }

  /** Resolves once every record written so far has been flushed to the device (or failed to). */
  durable(): Promise<void> {
    if (this.releaseSync !== undefined) this.sync();
    if (!this.syncing && !this.again) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  close(): void {
    clearTimeout(this.releaseSync);
    this.releaseSync = undefined;
    const fd = this.fd;
    this.fd = undefined;
    if (fd === undefined) return;
    try {
      fsyncSync(fd);
    } catch (err) {
      this.fail(err as Error);
    }
    closeSync(fd);
  }

  /** Writes the record; a trip is flushed now, a release by `released()`'s timer. Returns whether it was written. */
  private append(line: Line): boolean {
    const fd = this.fd;
    if (fd === undefined) return false;
    try {
      writeSync(fd, `${JSON.stringify(line)}\n`);
      this.stats.records++;
    } catch (err) {
      this.fail(err as Error);
      return false;
    }
    if (line.op === 'trip') this.sync();
    return true;
  }

  /**
   * One fdatasync in flight at a time; records written meanwhile are covered by the next one. Any flush
   * started or queued here covers a release waiting for its deferred one.
   */
  private sync(): void {
    clearTimeout(this.releaseSync);
    this.releaseSync = undefined;
    if (this.syncing) {
      this.again = true;
      return;
    }
    const fd = this.fd;
    if (fd === undefined) return;
    this.syncing = true;
    this.again = false;
    const waiting = this.waiters;
    this.waiters = [];
    const started = performance.now();
    fdatasync(fd, (err) => {
      this.syncing = false;
      if (err) this.fail(err);
      else {
        this.stats.syncs++;
        this.onSynced?.((performance.now() - started) / 1000);
      }
      if (this.again && this.fd !== undefined) {
        // Records written while this sync ran: their waiters wait for the next one.
        this.sync();
      } else {
        this.again = false;
        const rest = this.waiters;
        this.waiters = [];
        for (const w of rest) w();
      }
      for (const w of waiting) w();
    });
  }

  private fail(err: Error): void {
    this.stats.errors++;
    this.stats.lastError = err.message;
    this.onError?.(err);
  }
}

/** fsync of a directory, so a rename in it survives power loss (not possible on every platform). */
function syncDir(dir: string): void {
  let fd: number | undefined;
  try {
    fd = openSync(dir, 'r');
    fsyncSync(fd);
  } catch {
    // Some filesystems refuse fsync on a directory; the rename is still atomic.
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}
