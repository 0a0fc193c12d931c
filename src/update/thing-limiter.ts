/**
 * Keeps one client at or below the service's per-thing quotas (requests per second and requests in
 * flight), so that its own traffic does not earn it 429s, and below its share of them when other clients
 * of the same thing compete: the rate of each thing adapts to the service's 429s (see `rate-adapter.ts`).
 * A token bucket plus a counting semaphore per thing; waiters are served first come, first served.
 *
 * At the full rate the bucket holds one token less than the service's (which holds one second of
 * requests): requests reach the service with varying delays, and a client pacing at exactly the rate with
 * an empty bucket gets a 429 whenever one request arrives a little later than the next. The missing token
 * is slack for that jitter (50 ms at 20 requests/s) at the cost of one request of burst. Below the full
 * rate the bucket holds at least two tokens, so that a read and the write it leads to can go back to back
 * (see `run`'s `tokens`).
 */
import type { ShadowClock } from './client-options.js';
import { createRateAdapter, type RateAdapter, type RateAdapterSettings } from './rate-adapter.js';

/**
 * An adaptive client paces at most at this share of the quota. The service's bucket takes whichever request
 * comes first once a token is back, so a client pacing at exactly the quota, in step with the refill, takes
 * every token and never sees a 429, while the other clients of the thing see nothing else (simulated: one of
 * two clients went 45 s without a request through). The 5 % left over lets them in, and their requests then
 * cut the fast client's rate too.
 */
const ADAPTIVE_SHARE = 0.95;

/** Below this many tracked things the limiter does not sweep idle ones. */
const MIN_SWEEP_SIZE = 1024;

/**
 * A thing whose rate was cut is remembered while idle for this long, then forgotten (its next request
 * starts at the ceiling again): long enough to span the pauses between the bursts of one workload.
 */
const CUT_MEMORY_MS = 60_000;

/** Settings of {@link createThingLimiter}. */
export interface ThingLimiterSettings {
  /** Tokens per second per thing (the ceiling when the rate adapts); `Infinity` disables the rate limit. */
  requestsPerSecond: number;
  /** Requests in flight per thing; `Infinity` disables it. */
  maxInFlight: number;
  clock: ShadowClock;
  /**
   * Adapt the rate of each thing to the service's 429s (the ceiling is `requestsPerSecond`); `false` keeps
   * the rate fixed. Ignored when `requestsPerSecond` is `Infinity`.
   */
  adaptive?: Omit<RateAdapterSettings, 'ceiling'> | false;
  /** Random numbers in [0, 1) that spread the clients a 429 cut at the same moment. @defaultValue `Math.random` */
  random?: () => number;
  /** Called when a request had to wait for a token, with the wait in milliseconds. */
  onWait?: (thingName: string, waitMs: number) => void;
}

/** Options of one {@link ThingLimiter.run}. */
export interface LimiterRunOptions {
  /**
   * Tokens the request takes: 2 for a read a write will follow at once (the write then takes 0), so that the
   * write is not held back behind the read, where another writer's commit would make it conflict.
   * @defaultValue 1
   */
  tokens?: number;
}

/** What a task learns from the limiter that let it through. */
export interface LimiterTicket {
  /** When the request was let through (the clock's epoch milliseconds). */
  sentAt: number;
}

/** Runs requests under per-thing quotas. */
export interface ThingLimiter {
  /** Runs `task` once the thing has a free slot and its tokens; the slot is held until `task` settles. */
  run<T>(
    thingName: string,
    task: (ticket: LimiterTicket) => Promise<T>,
    options?: LimiterRunOptions,
  ): Promise<T>;
  /**
   * The service answered 429 to a request let through at `sentAt`: cuts the thing's rate (see
   * `rate-adapter.ts`) and pauses it for `retryAfterMs` when the service said so.
   *
   * @returns whether the rate was cut
   */
  throttled(thingName: string, sentAt: number, retryAfterMs?: number): boolean;
  /** The service answered a request of the thing with something other than 429. */
  succeeded(thingName: string): void;
  /** The thing's current rate in requests per second. */
  rate(thingName: string): number;
  /** Requests currently in flight for a thing (for tests and diagnostics). */
  inFlight(thingName: string): number;
  /** Things whose state the limiter currently keeps (for tests and diagnostics). */
  trackedThings(): number;
}

interface ThingState {
  tokens: number;
  refilledAt: number;
  inFlight: number;
  /** Last time a request was let through or answered. */
  lastActiveAt: number;
  /** Callers waiting for a slot, in arrival order. */
  waiting: Array<() => void>;
  /** Serialises token waits so that earlier callers get earlier tokens. */
  tokenChain: Promise<void>;
  adapter: RateAdapter | undefined;
}

/**
 * Creates a {@link ThingLimiter}.
 *
 * @param settings - quotas, clock, adaptation and an optional wait observer
 */
export function createThingLimiter(settings: ThingLimiterSettings): ThingLimiter {
  const { requestsPerSecond, maxInFlight, clock } = settings;
  const limited = Number.isFinite(requestsPerSecond);
  const adaptive = limited && settings.adaptive !== undefined && settings.adaptive !== false;
  const adapterSettings =
    adaptive && settings.adaptive !== undefined && settings.adaptive !== false
      ? { ...settings.adaptive, ceiling: requestsPerSecond * ADAPTIVE_SHARE }
      : undefined;
  const things = new Map<string, ThingState>();
  /** Map size at which the next sweep runs: doubling keeps sweeping O(1) per new thing on average. */
  let sweepAt = MIN_SWEEP_SIZE;

  const rateOf = (state: ThingState): number => state.adapter?.rateAt(clock.now()) ?? requestsPerSecond;

  // At least one token: a bucket that holds less than one (a rate below 1/s) could never pay for a request.
  // At the ceiling one token less than a second's worth (jitter slack, see above); below it at least two.
  const capacityOf = (state: ThingState): number => {
    const rate = rateOf(state);
    if (state.adapter === undefined || rate >= requestsPerSecond) {
      return rate >= 2 ? rate - 1 : Math.max(1, rate);
    }
    return Math.max(2, rate - 1);
  };

  /** Idle, with a full bucket and an unconstrained rate: forgetting it changes nothing (a new state starts so). */
  const forgettable = (state: ThingState, now: number): boolean => {
    if (state.inFlight !== 0 || state.waiting.length !== 0) return false;
    if (!limited) return true;
    if (
      state.adapter !== undefined &&
      !state.adapter.recovered(now) &&
      now - state.lastActiveAt < CUT_MEMORY_MS
    )
      return false;
    return state.tokens + (Math.max(0, now - state.refilledAt) * rateOf(state)) / 1000 >= capacityOf(state);
  };

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
      const now = clock.now();
      state = {
        tokens: 0,
        refilledAt: now,
        inFlight: 0,
        lastActiveAt: now,
        waiting: [],
        tokenChain: Promise.resolve(),
        adapter: adapterSettings === undefined ? undefined : createRateAdapter(adapterSettings, now),
      };
      state.tokens = limited ? capacityOf(state) : 0;
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

  const refill = (state: ThingState, now: number): void => {
    const elapsed = Math.max(0, now - state.refilledAt);
    state.tokens = Math.min(capacityOf(state), state.tokens + (elapsed * rateOf(state)) / 1000);
    state.refilledAt = now;
  };

  const takeTokens = async (thingName: string, state: ThingState, tokens: number): Promise<void> => {
    if (!limited || tokens <= 0) return;
    const turn = state.tokenChain.then(async () => {
      for (;;) {
        const now = clock.now();
        const pausedUntil = state.adapter?.pausedUntil ?? 0;
        if (now < pausedUntil) {
          settings.onWait?.(thingName, pausedUntil - now);
          await clock.sleep(pausedUntil - now);
          continue;
        }
        refill(state, now);
        // A request worth more tokens than the bucket holds waits for a full bucket, then overdraws it.
        const needed = Math.min(tokens, capacityOf(state));
        if (state.tokens >= needed) {
          state.tokens -= tokens;
          return;
        }
        const waitMs = Math.max(1, Math.ceil(((needed - state.tokens) * 1000) / rateOf(state)));
        settings.onWait?.(thingName, waitMs);
        await clock.sleep(waitMs);
      }
    });
    state.tokenChain = turn;
    await turn;
  };

  return {
    async run(thingName, task, options) {
      const state = stateOf(thingName);
      const waitForSlot = acquireSlot(state);
      if (waitForSlot !== undefined) await waitForSlot;
      try {
        await takeTokens(thingName, state, options?.tokens ?? 1);
        const sentAt = clock.now();
        state.lastActiveAt = sentAt;
        return await task({ sentAt });
      } finally {
        releaseSlot(thingName, state);
      }
    },
    throttled(thingName, sentAt, retryAfterMs) {
      const state = things.get(thingName);
      if (state?.adapter === undefined) return false;
      const now = clock.now();
      state.lastActiveAt = now;
      const cut = state.adapter.throttled(sentAt, now, retryAfterMs);
      // The service's bucket is empty: spending ours at once would only earn more 429s. Independent clients
      // that were cut by the same burst would, with empty buckets and equal rates, all come back at the same
      // moment and be cut together again (measured: 64 writers in lockstep every 7-8 s). A random level in
      // [-1, 1) token (never above what is left) spreads their returns over two of their request intervals.
      // Not added to what is left: the cuts of a burst of 429s would pile up a debt of many tokens (measured:
      // 16 s before the next read at the floor rate).
      if (cut) {
        state.tokens = Math.min(state.tokens, 2 * (settings.random ?? Math.random)() - 1);
        state.refilledAt = now;
      }
      return cut;
    },
    succeeded(thingName) {
      const state = things.get(thingName);
      if (state?.adapter === undefined) return;
      const now = clock.now();
      state.lastActiveAt = now;
      state.adapter.succeeded(now);
    },
    rate(thingName) {
      const state = things.get(thingName);
      return state === undefined ? requestsPerSecond : rateOf(state);
    },
    inFlight(thingName) {
      return things.get(thingName)?.inFlight ?? 0;
    },
    trackedThings() {
      return things.size;
    },
  };
}
