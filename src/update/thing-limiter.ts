/**
 * Keeps one client at or below the service's per-thing quotas (requests per second and requests in
 * flight), so that its own traffic does not earn it 429s. A token bucket plus a counting semaphore per
 * thing; waiters are served first come, first served.
 *
 * The bucket refills at the full rate but holds one token less than the service's (which holds one second
 * of requests): requests reach the service with varying delays, and a client pacing at exactly the rate
 * with an empty bucket gets a 429 whenever one request arrives a little later than the next. The missing
 * token is slack for that jitter (50 ms at 20 requests/s) at the cost of one request of burst.
 */
import type { ShadowClock } from './client-options.js';

/** Below this many tracked things the limiter does not sweep idle ones. */
const MIN_SWEEP_SIZE = 1024;

/** Settings of {@link createThingLimiter}. */
export interface ThingLimiterSettings {
  /** Tokens per second per thing; `Infinity` disables the rate limit. */
  requestsPerSecond: number;
  /** Requests in flight per thing; `Infinity` disables it. */
  maxInFlight: number;
  clock: ShadowClock;
  /** Called when a request had to wait for a token, with the wait in milliseconds. */
  onWait?: (thingName: string, waitMs: number) => void;
}

/** Runs requests under per-thing quotas. */
export interface ThingLimiter {
  /** Runs `task` once the thing has a free slot and a token; the slot is held until `task` settles. */
  run<T>(thingName: string, task: () => Promise<T>): Promise<T>;
  /** Requests currently in flight for a thing (for tests and diagnostics). */
  inFlight(thingName: string): number;
  /** Things whose state the limiter currently keeps (for tests and diagnostics). */
  trackedThings(): number;
}

interface ThingState {
  tokens: number;
  refilledAt: number;
  inFlight: number;
  /** Callers waiting for a slot, in arrival order. */
  waiting: Array<() => void>;
  /** Serialises token waits so that earlier callers get earlier tokens. */
  tokenChain: Promise<void>;
}

/**
 * Creates a {@link ThingLimiter}.
 *
 * @param settings - quotas, clock and an optional wait observer
 */
export function createThingLimiter(settings: ThingLimiterSettings): ThingLimiter {
  const { requestsPerSecond, maxInFlight, clock } = settings;
  // At least one token: a bucket that holds less than one (a rate below 1/s) could never pay for a request.
  const capacity = requestsPerSecond >= 2 ? requestsPerSecond - 1 : Math.max(1, requestsPerSecond);
  const things = new Map<string, ThingState>();
  /** Map size at which the next sweep runs: doubling keeps sweeping O(1) per new thing on average. */
  let sweepAt = MIN_SWEEP_SIZE;

  /** Idle and with a full bucket: forgetting it changes nothing, since a new state starts full. */
  const forgettable = (state: ThingState, now: number): boolean =>
    state.inFlight === 0 &&
    state.waiting.length === 0 &&
    (!Number.isFinite(requestsPerSecond) ||
      state.tokens + (Math.max(0, now - state.refilledAt) * requestsPerSecond) / 1000 >= capacity);

  // A thing's state outlives its last request until its bucket refills; one client of a large fleet
  // would otherwise keep a state for every thing it ever addressed.
  const sweep = (): void => {
    const now = clock.now();
    for (const [thingName, state] of things) if (forgettable(state, now)) things.delete(thingName);
    sweepAt = Math.max(MIN_SWEEP_SIZE, things.size * 2);
  };

  const stateOf = (thingName: string): ThingState => {
    let state = things.get(thingName);
    if (state === undefined) {
      if (things.size >= sweepAt) sweep();
      state = {
        tokens: Number.isFinite(requestsPerSecond) ? capacity : 0,
        refilledAt: clock.now(),
        inFlight: 0,
        waiting: [],
        tokenChain: Promise.resolve(),
      };
      things.set(thingName, state);
    }
    return state;
  };

  const acquireSlot = (state: ThingState): Promise<void> | undefined => {
    if (state.inFlight < maxInFlight) {
      state.inFlight++;
      return undefined;
    }
    return new Promise<void>((resolve) => state.waiting.push(resolve));
  };

  const releaseSlot = (thingName: string, state: ThingState): void => {
    const next = state.waiting.shift();
    if (next !== undefined) {
      next(); // the slot passes straight to the next waiter
      return;
    }
    state.inFlight--;
    if (forgettable(state, clock.now())) things.delete(thingName);
  };

  const takeToken = async (thingName: string, state: ThingState): Promise<void> => {
    if (!Number.isFinite(requestsPerSecond)) return;
    const turn = state.tokenChain.then(async () => {
      for (;;) {
        const now = clock.now();
        const elapsed = Math.max(0, now - state.refilledAt);
        state.tokens = Math.min(capacity, state.tokens + (elapsed * requestsPerSecond) / 1000);
        state.refilledAt = now;
        if (state.tokens >= 1) {
          state.tokens -= 1;
          return;
        }
        const waitMs = Math.ceil(((1 - state.tokens) * 1000) / requestsPerSecond);
        settings.onWait?.(thingName, waitMs);
        await clock.sleep(waitMs);
      }
    });
    state.tokenChain = turn;
    await turn;
  };

  return {
    async run(thingName, task) {
      const state = stateOf(thingName);
      const waitForSlot = acquireSlot(state);
      if (waitForSlot !== undefined) await waitForSlot;
      try {
        await takeToken(thingName, state);
        return await task();
      } finally {
        releaseSlot(thingName, state);
      }
    },
    inFlight(thingName) {
      return things.get(thingName)?.inFlight ?? 0;
    },
    trackedThings() {
      return things.size;
    },
  };
}
