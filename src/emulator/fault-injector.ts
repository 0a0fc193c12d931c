/**
 * Fault injection for the local service's outgoing shadow messages (`accepted`, `rejected`, `delta`,
 * `documents`): drop, duplicate, delay and reorder them, driven by a seeded random number generator so a
 * failing client test can be replayed with the same seed. Faults can be changed or stopped at runtime,
 * which lets a test inject chaos, then call `clear()` and check that the client converges.
 *
 * Determinism: for a given seed and the same sequence of submitted messages, the decisions (which message
 * is dropped, duplicated, delayed by how much, held back) are always the same. Only the wall-clock
 * moment at which a delayed message leaves depends on the timer.
 */
import { ShadowOptionsError } from '../errors.js';
import { SYSTEM_TIMER_CLOCK, type TimerClock } from '../mqtt-session/timer-clock.js';

/** Which faults to inject; every probability is in [0, 1] and applies to each message independently. */
export interface FaultOptions {
  /**
   * Seed of the random number generator (any 32-bit integer). Setting it again restarts the sequence.
   * @defaultValue 1
   */
  seed?: number;
  /**
   * Probability that a message is dropped.
   * @defaultValue 0
   */
  drop?: number;
  /**
   * Probability that a message is delivered twice.
   * @defaultValue 0
   */
  duplicate?: number;
  /**
   * Probability that a message is delayed by a random time in {@link FaultOptions.delayMs}.
   * @defaultValue 0
   */
  delay?: number;
  /**
   * Inclusive range `[min, max]` of an injected delay, in milliseconds.
   * @defaultValue [1, 50]
   */
  delayMs?: readonly [number, number];
  /**
   * Probability that a message is held back and released right after the next message that is delivered
   * (so the two swap places), or after {@link FaultOptions.reorderWindowMs} if no other message comes.
   * @defaultValue 0
   */
  reorder?: number;
  /**
   * Longest time a message is held back for reordering, in milliseconds.
   * @defaultValue 20
   */
  reorderWindowMs?: number;
}

/** Fault options with every default applied. */
export interface ResolvedFaultOptions {
  seed: number;
  drop: number;
  duplicate: number;
  delay: number;
  delayMs: readonly [number, number];
  reorder: number;
  reorderWindowMs: number;
}

/** The defaults of {@link FaultOptions}: no fault at all. */
export const DEFAULT_FAULT_OPTIONS: Readonly<ResolvedFaultOptions> = Object.freeze({
  seed: 1,
  drop: 0,
  duplicate: 0,
  delay: 0,
  delayMs: Object.freeze([1, 50] as const),
  reorder: 0,
  reorderWindowMs: 20,
});

const FAULT_KEYS = new Set(Object.keys(DEFAULT_FAULT_OPTIONS));

/**
 * Validates fault options and applies the defaults.
 *
 * @param options - the faults to inject; `undefined` means none
 * @returns the resolved options
 * @throws ShadowOptionsError for an unknown key, a probability outside [0, 1], a negative or non-integer
 *   delay, or a delay range whose minimum exceeds its maximum
 */
export function resolveFaultOptions(options: FaultOptions | undefined = {}): ResolvedFaultOptions {
  if (typeof options !== 'object' || options === null)
    throw new ShadowOptionsError(`fault options must be an object, got ${String(options)}`);
  for (const key of Object.keys(options)) {
    if (!FAULT_KEYS.has(key))
      throw new ShadowOptionsError(`unknown fault option '${key}' (known: ${[...FAULT_KEYS].join(', ')})`);
  }
  const resolved: ResolvedFaultOptions = { ...DEFAULT_FAULT_OPTIONS };
  for (const key of ['drop', 'duplicate', 'delay', 'reorder'] as const) {
    const value = options[key];
    if (value === undefined) continue;
    if (typeof value !== 'number' || !(value >= 0 && value <= 1))
      throw new ShadowOptionsError(
        `fault option '${key}' must be a probability in [0, 1], got ${String(value)}`,
      );
    resolved[key] = value;
  }
  if (options.seed !== undefined) {
    if (!Number.isInteger(options.seed))
      throw new ShadowOptionsError(`fault option 'seed' must be an integer, got ${String(options.seed)}`);
    resolved.seed = options.seed;
  }
  if (options.delayMs !== undefined) {
    const range = options.delayMs;
    const [min, max] = Array.isArray(range) ? range : [];
    if (!isMillis(min) || !isMillis(max) || range.length !== 2 || min > max)
      throw new ShadowOptionsError(
        `fault option 'delayMs' must be [min, max] with integers 0 <= min <= max, got ${JSON.stringify(range)}`,
      );
    resolved.delayMs = Object.freeze([min, max] as const);
  }
  if (options.reorderWindowMs !== undefined) {
    if (!isMillis(options.reorderWindowMs) || options.reorderWindowMs < 1)
      throw new ShadowOptionsError(
        `fault option 'reorderWindowMs' must be a positive integer, got ${String(options.reorderWindowMs)}`,
      );
    resolved.reorderWindowMs = options.reorderWindowMs;
  }
  return resolved;
}

function isMillis(value: unknown): value is number {
  return typeof value === 'number' && Number.isInteger(value) && value >= 0;
}

/**
 * A deterministic 32-bit generator: a Weyl sequence (golden-ratio increment) passed through a
 * murmur3-style avalanche. Small, fast and good enough to pick faults; not for cryptography.
 *
 * @param seed - any integer; equal seeds give equal sequences
 * @returns a function returning floats in [0, 1)
 */
export function createSeededRandom(seed: number): () => number {
  let state = seed | 0;
  return () => {
    state = (state + 0x9e3779b9) | 0;
    let z = state;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
    z ^= z >>> 16;
    return (z >>> 0) / 4294967296;
  };
}

/** What the injector did so far. */
export interface FaultStats {
  /** Messages submitted. */
  submitted: number;
  /** Deliveries made (a duplicated message counts twice). */
  delivered: number;
  dropped: number;
  duplicated: number;
  delayed: number;
  reordered: number;
}

/** Applies faults to a stream of messages on their way out. */
export interface FaultInjector<T> {
  /** Submits one outgoing message; it is delivered now, later, twice, or never, as the faults decide. */
  submit(message: T): void;
  /** Replaces the faults (a `seed` restarts the random sequence); pending messages keep their fate. */
  set(faults: FaultOptions): void;
  /** Stops every fault and delivers the held and delayed messages now, in submission order. */
  clear(): void;
  /** True while any fault probability is above zero. */
  active(): boolean;
  /** Counts of what was done. */
  stats(): FaultStats;
  /** Cancels pending timers and discards held and delayed messages (used when the service closes). */
  close(): void;
}

interface Pending<T> {
  seq: number;
  message: T;
  timer: unknown;
}

/**
 * Creates a fault injector in front of `deliver`.
 *
 * @param deliver - sends one message for real (for example, publishes it on the broker)
 * @param faults - initial faults; none by default
 * @param clock - owns the timers of delayed and held messages (tests pass a fake one); Node's by default
 * @returns the injector
 * @throws ShadowOptionsError when `faults` is invalid (see {@link resolveFaultOptions})
 * @example
 * const faults = createFaultInjector((m) => broker.publish(m.topic, m.payload), { seed: 7, drop: 0.1 });
 * engine.onMessage((m) => faults.submit(m));
 */
export function createFaultInjector<T>(
  deliver: (message: T) => void,
  faults?: FaultOptions,
  clock: TimerClock = SYSTEM_TIMER_CLOCK,
): FaultInjector<T> {
  let options = resolveFaultOptions(faults);
  let random = createSeededRandom(options.seed);
  let seq = 0;
  let closed = false;
  const held: Pending<T>[] = [];
  let heldTimer: unknown;
  const delayed = new Map<number, Pending<T>>();
  const counts: FaultStats = {
    submitted: 0,
    delivered: 0,
    dropped: 0,
    duplicated: 0,
    delayed: 0,
    reordered: 0,
  };

  const isActive = () =>
    options.drop > 0 || options.duplicate > 0 || options.delay > 0 || options.reorder > 0;
  let active = isActive();

  function send(message: T): void {
    counts.delivered++;
    deliver(message);
  }

  function releaseHeld(): void {
    if (heldTimer !== undefined) clock.clearTimer(heldTimer);
    heldTimer = undefined;
    for (const entry of held.splice(0)) send(entry.message);
  }

  function route(message: T): void {
    if (options.delay > 0 && random() < options.delay) {
      counts.delayed++;
      const [min, max] = options.delayMs;
      const wait = min + Math.floor(random() * (max - min + 1));
      const entry: Pending<T> = { seq: seq++, message, timer: undefined };
      entry.timer = clock.setTimer(() => {
        delayed.delete(entry.seq);
        send(entry.message);
      }, wait);
      delayed.set(entry.seq, entry);
      return;
    }
    if (options.reorder > 0 && random() < options.reorder) {
      counts.reordered++;
      held.push({ seq: seq++, message, timer: undefined });
      heldTimer ??= clock.setTimer(releaseHeld, options.reorderWindowMs);
      return;
    }
    send(message);
    // The message just delivered overtook the held ones: release them behind it.
    if (held.length > 0) releaseHeld();
  }

  return {
    submit(message) {
      if (closed) return;
      counts.submitted++;
      if (!active) {
        send(message);
        if (held.length > 0) releaseHeld();
        return;
      }
      if (options.drop > 0 && random() < options.drop) {
        counts.dropped++;
        return;
      }
      const twice = options.duplicate > 0 && random() < options.duplicate;
      route(message);
      if (twice) {
        counts.duplicated++;
        route(message);
      }
    },
    set(next) {
      const seedGiven = next.seed !== undefined;
      options = resolveFaultOptions(next);
      if (seedGiven) random = createSeededRandom(options.seed);
      active = isActive();
    },
    clear() {
      options = { ...DEFAULT_FAULT_OPTIONS, seed: options.seed };
      active = false;
      const pending = [...held.splice(0), ...delayed.values()].sort((a, b) => a.seq - b.seq);
      delayed.clear();
      if (heldTimer !== undefined) clock.clearTimer(heldTimer);
      heldTimer = undefined;
      for (const entry of pending) {
        if (entry.timer !== undefined) clock.clearTimer(entry.timer);
        send(entry.message);
      }
    },
    active: () => active,
    stats: () => ({ ...counts }),
    close() {
      closed = true;
      if (heldTimer !== undefined) clock.clearTimer(heldTimer);
      heldTimer = undefined;
      held.length = 0;
      for (const entry of delayed.values()) if (entry.timer !== undefined) clock.clearTimer(entry.timer);
      delayed.clear();
    },
  };
}
