/** The hold on what follows a command: order, records made inside records, errors, shutdown. */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { Aftermath, HOLD_MS } from './aftermath.js';

beforeEach(() => {
  vi.useFakeTimers();
});
afterEach(() => {
  vi.useRealTimers();
});

describe('aftermath', () => {
  it('runs records at once while nothing is held', () => {
    const done: string[] = [];
    const a = new Aftermath(() => {});
    a.run(() => done.push('a'));
    expect(done).toEqual(['a']);
  });

  it('after a hold, queues records and runs them in order HOLD_MS later; a record made inside one runs inside it', () => {
    const done: string[] = [];
    const a = new Aftermath(() => {});
    a.hold();
    a.run(() => {
      done.push('journal');
      a.run(() => done.push('tap of journal'));
    });
    a.hold(); // a second command within the hold does not push the first records further out
    a.run(() => done.push('event'));
    expect(done).toEqual([]);
    vi.advanceTimersByTime(HOLD_MS - 0.5);
    expect(done).toEqual([]);
    vi.advanceTimersByTime(1);
    expect(done).toEqual(['journal', 'tap of journal', 'event']);
    a.run(() => done.push('later'));
    expect(done.at(-1)).toBe('later');
  });

  it('a record that throws is reported and the ones after it still run', () => {
    const done: string[] = [];
    const errors: unknown[] = [];
    const a = new Aftermath((err) => errors.push(err));
    a.hold();
    a.run(() => {
      throw new Error('disk gone');
    });
    a.run(() => done.push('after'));
    vi.advanceTimersByTime(HOLD_MS);
    expect((errors[0] as Error).message).toBe('disk gone');
    expect(done).toEqual(['after']);
  });

  it('flush (shutdown) runs what waits now, and the timer then finds nothing', () => {
    const done: string[] = [];
    const a = new Aftermath(() => {});
    a.hold();
    a.run(() => done.push('a'));
    a.flush();
    expect(done).toEqual(['a']);
    vi.advanceTimersByTime(HOLD_MS * 10);
    expect(done).toEqual(['a']);
    expect(vi.getTimerCount()).toBe(0);
  });
});
