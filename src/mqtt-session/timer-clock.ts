/**
 * The clock the reserved-topic session and the device agent run on: it owns the time and the timers, so that
 * tests drive both on fake time (a timer that fires only when the test advances the clock) and properties
 * explore reconnects and timeouts without waiting for real milliseconds.
 */

/** Time and timers. Handles are opaque: only the clock that made one may clear it. */
export interface TimerClock {
  /** Epoch milliseconds. */
  now(): number;
  /** Calls `callback` once after `ms` milliseconds (at most 2^31 - 1); returns a handle for {@link TimerClock.clearTimer}. */
  setTimer(callback: () => void, ms: number): unknown;
  /** Cancels a timer that has not fired yet; clearing a fired or cleared timer does nothing. */
  clearTimer(handle: unknown): void;
}

/** Node's clock: `Date.now` and `setTimeout`. */
export const SYSTEM_TIMER_CLOCK: TimerClock = Object.freeze({
  now: () => Date.now(),
  setTimer: (callback: () => void, ms: number) => setTimeout(callback, ms),
  clearTimer: (handle: unknown) => clearTimeout(handle as ReturnType<typeof setTimeout>),
});

/** Checks that a value has the shape of a {@link TimerClock}. */
export function isTimerClock(value: unknown): value is TimerClock {
  const candidate = value as Partial<TimerClock> | null;
  return (
    typeof candidate === 'object' &&
    candidate !== null &&
    typeof candidate.now === 'function' &&
    typeof candidate.setTimer === 'function' &&
    typeof candidate.clearTimer === 'function'
  );
}
