/**
 * Test support: a {@link TimerClock} on fake time. Timers fire only when the test advances the clock, in time
 * order (ties in the order they were set), with the event loop's pending work run between two timers so that
 * promise chains and socket callbacks started by one timer finish before the next fires.
 */
import type { TimerClock } from '../../src/mqtt-session/timer-clock.js';

/** A fake clock and the controls a test drives it with. */
export interface FakeClock extends TimerClock {
  /** Moves time forward by `ms`, firing every timer due on the way. */
  advance(ms: number): Promise<void>;
  /** Moves time to the next timer and fires it (and any due at the same time); false when none is set. */
  next(): Promise<boolean>;
  /** Timers set and not fired or cleared. */
  pendingTimers(): number;
}

interface Timer {
  at: number;
  order: number;
  callback: () => void;
}

/** Lets pending promise callbacks and I/O callbacks run (one turn of the event loop, no waiting). */
export const flush = () => new Promise<void>((resolve) => setImmediate(resolve));

/**
 * Creates a fake clock.
 *
 * @param start - the epoch milliseconds `now()` starts at
 */
export function createFakeClock(start = 1_700_000_000_000): FakeClock {
  let now = start;
  let order = 0;
  const timers = new Map<number, Timer>();

  function earliest(until: number): [number, Timer] | undefined {
    let found: [number, Timer] | undefined;
    for (const entry of timers) {
      const timer = entry[1];
      if (timer.at > until) continue;
      if (
        found === undefined ||
        timer.at < found[1].at ||
        (timer.at === found[1].at && timer.order < found[1].order)
      )
        found = entry;
    }
    return found;
  }

  async function fire([id, timer]: [number, Timer]): Promise<void> {
    timers.delete(id);
    now = Math.max(now, timer.at);
    timer.callback();
    await flush();
  }

  return {
    now: () => now,
    setTimer(callback, ms) {
      order += 1;
      timers.set(order, { at: now + Math.max(0, ms), order, callback });
      return order;
    },
    clearTimer(handle) {
      timers.delete(handle as number);
    },
    async advance(ms) {
      const end = now + ms;
      await flush();
      for (let due = earliest(end); due !== undefined; due = earliest(end)) await fire(due);
      now = end;
      await flush();
    },
    async next() {
      await flush();
      const due = earliest(Number.POSITIVE_INFINITY);
      if (due === undefined) return false;
      await fire(due);
      return true;
    },
    pendingTimers: () => timers.size,
  };
}
