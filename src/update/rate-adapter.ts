/**
 * The client-side rate of one thing, adapted from the service's answers (AIMD, in the spirit of the AWS
 * SDKs' `retryMode: 'adaptive'`, which uses CUBIC instead).
 *
 * Independent clients of one thing (Lambda invocations, each with its own SDK client) share the service's
 * per-thing quota (20 requests/s, 10 in flight) but nothing else: the only signal they have in common is
 * the service's 429. So each client starts at the configured ceiling and
 * - on a 429 multiplies its rate by `decrease` (multiplicative decrease), at most once per burst: a 429 for a
 *   request sent before the last cut says nothing about the cut rate, so it is ignored (TCP's one cut per
 *   round trip);
 * - on a success adds `increasePerSecond` per second since the previous success (additive increase, credited
 *   for at most one second at a time, so an idle client does not climb back in one step). The longer no 429
 *   has been seen, the faster it climbs (the increase grows by itself every `quietDoublingMs`): that keeps
 *   the probing gentle right after a cut, where it matters with many clients, and still brings a client
 *   back to the ceiling within tens of seconds once throttling has stopped.
 * Multiplicative decrease with additive increase is what makes competing clients converge to equal shares
 * (Chiu and Jain, 1989); the floor keeps every client sending, so none is starved forever.
 *
 * AIMD shares the quota fairly on average, but a client that is cut by bad luck waits longest for its next
 * chance and so is the likeliest to be cut again: with 12-16 clients some went 15 s without a single request
 * through. So the rate in use grows with the time since the client's last answer that was not a 429 (it
 * doubles every `starvedDoublingMs`, up to the ceiling): the longer a client has starved, the more often it
 * asks, which gives it back its share without any coordination between clients.
 *
 * A `Retry-After` the service sends pauses the thing until then, on top of the cut.
 *
 * Pure state and arithmetic: time comes in as arguments, so properties run on fake time.
 */

/** How a {@link RateAdapter} reacts. */
export interface RateAdapterSettings {
  /** Requests per second at most (the configured `requestsPerSecondPerThing`); also the starting rate. */
  ceiling: number;
  /** Requests per second at least, however many 429s arrive. */
  floor: number;
  /** Factor applied to the rate on a 429, in (0, 1). */
  decrease: number;
  /** Requests per second gained per second of successful sending, right after a cut. */
  increasePerSecond: number;
  /** The increase doubles for every this many milliseconds without a 429 (grows linearly in between). */
  quietDoublingMs: number;
  /** The rate in use doubles for every this many milliseconds without an answer other than 429. */
  starvedDoublingMs: number;
}

/** Defaults of the adaptive rate, except the ceiling (the client's `requestsPerSecondPerThing`). */
export const RATE_ADAPTER_DEFAULTS: Readonly<Omit<RateAdapterSettings, 'ceiling'>> = Object.freeze({
  floor: 0.25,
  decrease: 0.5,
  increasePerSecond: 0.3,
  quietDoublingMs: 4_000,
  starvedDoublingMs: 10_000,
});

/** The adaptive rate of one thing. */
export interface RateAdapter {
  /** Requests per second the adaptation has settled on (without the relief for starving, see `rateAt`). */
  readonly rate: number;
  /** Requests per second allowed at `now`: `rate`, raised the longer no answer but 429s arrived. */
  rateAt(now: number): number;
  /** No request may be sent before this epoch millisecond (a `Retry-After`); 0 when not paused. */
  readonly pausedUntil: number;
  /** When the rate was last cut (epoch ms; -Infinity before the first cut). */
  readonly lastCutAt: number;
  /**
   * A request sent at `sentAt` was answered 429 at `now`. Cuts the rate unless the request was sent before the
   * last cut; honours `retryAfterMs` when the service gave one.
   *
   * @returns whether the rate was cut
   */
  throttled(sentAt: number, now: number, retryAfterMs?: number): boolean;
  /** A request was answered (anything but 429) at `now`. */
  succeeded(now: number): void;
  /** True when the rate is back at the ceiling and no pause is pending at `now`. */
  recovered(now: number): boolean;
}

/**
 * Creates a {@link RateAdapter} starting at the ceiling.
 *
 * @param settings - ceiling, floor and the reaction constants
 * @param now - the current epoch millisecond
 */
export function createRateAdapter(settings: RateAdapterSettings, now: number): RateAdapter {
  const { ceiling, decrease, increasePerSecond, quietDoublingMs, starvedDoublingMs } = settings;
  const floor = Math.min(settings.floor, ceiling);
  let rate = ceiling;
  let lastCutAt = Number.NEGATIVE_INFINITY;
  let lastCreditAt = now;
  let pausedUntil = 0;
  let answeredAt = now;
  return {
    get rate() {
      return rate;
    },
    rateAt: (at) => Math.min(ceiling, rate * (1 + Math.max(0, at - answeredAt) / starvedDoublingMs)),
    get pausedUntil() {
      return pausedUntil;
    },
    get lastCutAt() {
      return lastCutAt;
    },
    throttled(sentAt, at, retryAfterMs) {
      if (retryAfterMs !== undefined && Number.isFinite(retryAfterMs) && retryAfterMs > 0) {
        pausedUntil = Math.max(pausedUntil, at + retryAfterMs);
      }
      if (sentAt < lastCutAt) return false;
      rate = Math.max(floor, rate * decrease);
      lastCutAt = at;
      lastCreditAt = at;
      return true;
    },
    succeeded(at) {
      answeredAt = Math.max(answeredAt, at);
      const credit = Math.min(1000, Math.max(0, at - lastCreditAt)) / 1000;
      lastCreditAt = Math.max(lastCreditAt, at);
      if (rate >= ceiling || credit === 0) return;
      const quietMs = Number.isFinite(lastCutAt) ? Math.max(0, at - lastCutAt) : quietDoublingMs;
      const step = increasePerSecond * (1 + quietMs / quietDoublingMs) * credit;
      rate = Math.min(ceiling, rate + step);
    },
    recovered(at) {
      return rate >= ceiling && at >= pausedUntil;
    },
  };
}
