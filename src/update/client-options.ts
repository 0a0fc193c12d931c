/**
 * Options of {@link createShadowClient}: one frozen DEFAULTS object and one resolver that validates every
 * value at the boundary, so that the engine itself never sees a bad setting.
 */
import { DEFAULT_LIMITS, type ShadowLimits } from '../core/limits.js';
import { ShadowOptionsError } from '../errors.js';
import type { ShadowTransport } from '../transports/transport.js';
import type { ShadowEvent, ShadowLogger } from './shadow-events.js';

/** The engine's source of time; inject a fake one in tests. */
export interface ShadowClock {
  /** Epoch milliseconds. */
  now(): number;
  /** Resolves after `ms` milliseconds. */
  sleep(ms: number): Promise<void>;
}

/** Options of `createShadowClient`. Only `transport` is required. */
export interface ShadowClientOptions {
  /** How requests reach the service: `awsTransport(...)`, `mqttTransport(...)` or your own. */
  transport: ShadowTransport;
  /**
   * Most attempts of one round that may lose to another writer (409) or meet a server error (5xx) before the
   * round gives up with `ShadowConflictError` (or the last server error). Throttled attempts (429) do not
   * count: they spend only time, bounded by `maxElapsedMs`, after which the round gives up with
   * `ShadowThrottledError`. An attempt runs the intents once and sends at most one write (sent again, up to
   * 10 times, when the service throttles it right behind its read), plus the read of the base document when
   * no current one is used (and one confirming read before a skip or a failure decided on a remembered
   * document).
   *
   * 50 by default, so that time (`maxElapsedMs`) is what bounds a round in practice: among N independent
   * writers of one shadow (separate Lambdas, each with its own client) one round may fairly lose many races
   * in a row. With 10, 5 writers x 20 increments under AWS's quotas lost about one round in 100 on a busy
   * machine (10 conflicts in 6.4 s, far inside the time budget); every attempt still passes the per-thing
   * limiter, so a larger budget adds no load the quota does not already bound.
   * @defaultValue 50
   */
  maxAttempts?: number;
  /**
   * Most milliseconds one round may spend, waits included, before giving up.
   * @defaultValue 20000
   */
  maxElapsedMs?: number;
  /**
   * Backoff base: the n-th retry waits a random time between 0 and `min(maxDelayMs, baseDelayMs * 2^(n-1))`
   * ("full jitter", which spreads competing writers instead of re-colliding them).
   * @defaultValue 20
   */
  baseDelayMs?: number;
  /**
   * Backoff cap in milliseconds.
   * @defaultValue 1000
   */
  maxDelayMs?: number;
  /**
   * Requests per second this client sends per thing at most (all its shadows together); the service's quota
   * is 20. With `adaptiveRate` the client paces at 95 % of this at most (the rest lets other clients of
   * the thing in) and lowers its rate when the service throttles it.
   * `Infinity` disables the rate limit (and the adaptation).
   * @defaultValue 20
   */
  requestsPerSecondPerThing?: number;
  /**
   * Adapt each thing's rate to the service's 429s: halve it on a throttle, climb back while requests pass
   * (see `rate-adapter.ts`), and wait out a `Retry-After`. Independent clients of one thing (Lambdas, each
   * with its own client) then share the per-thing quota instead of throttling each other's rounds to death.
   * @defaultValue true
   */
  adaptiveRate?: boolean;
  /**
   * Requests this client keeps in flight per thing; the service's quota is 10. `Infinity` disables it.
   * @defaultValue 10
   */
  maxInFlightPerThing?: number;
  /**
   * Combine concurrent `update` / `merge` calls on one shadow into one request per round.
   * @defaultValue true
   */
  coalesce?: boolean;
  /**
   * Whether a round writes on a document the engine or the transport already knows (from earlier answers or
   * `update/documents`) instead of reading first. A stale one costs a 409 and a read (three requests instead
   * of two), never correctness. `'auto'` decides per shadow (see `base-chooser.ts`): it reads first when the
   * last write left a delta a device will answer (unless the transport hears the answer), or when
   * remembered documents keep turning out stale; each decision is an `onEvent` `base` event. `true` always
   * uses a known document, `false` always reads.
   * @defaultValue 'auto'
   */
  useKnownDocuments?: boolean | 'auto';
  /**
   * Service limits checked before any request (size, depth, names, clientToken).
   * @defaultValue DEFAULT_LIMITS
   */
  limits?: Partial<ShadowLimits>;
  /** Receives every {@link ShadowEvent}. @defaultValue no listener */
  onEvent?: (event: ShadowEvent) => void;
  /** Receives log lines. @defaultValue a silent logger */
  logger?: ShadowLogger;
  /** Time source. @defaultValue `Date.now` and `setTimeout` */
  clock?: ShadowClock;
  /** Random numbers in [0, 1) for the jitter. @defaultValue `Math.random` */
  random?: () => number;
}

/** The options after validation, with every default filled in. */
export interface ResolvedShadowClientOptions {
  transport: ShadowTransport;
  maxAttempts: number;
  maxElapsedMs: number;
  baseDelayMs: number;
  maxDelayMs: number;
  requestsPerSecondPerThing: number;
  maxInFlightPerThing: number;
  adaptiveRate: boolean;
  coalesce: boolean;
  useKnownDocuments: boolean | 'auto';
  limits: Partial<ShadowLimits>;
  onEvent: ((event: ShadowEvent) => void) | undefined;
  logger: ShadowLogger;
  clock: ShadowClock;
  random: () => number;
}

/** The real clock. */
export const SYSTEM_CLOCK: ShadowClock = Object.freeze({
  now: () => Date.now(),
  sleep: (ms: number) =>
    new Promise<void>((resolve) => {
      setTimeout(resolve, ms);
    }),
});

/** Defaults of every optional {@link ShadowClientOptions} value. */
export const SHADOW_CLIENT_DEFAULTS = Object.freeze({
  maxAttempts: 50,
  maxElapsedMs: 20_000,
  baseDelayMs: 20,
  maxDelayMs: 1_000,
  requestsPerSecondPerThing: DEFAULT_LIMITS.requestsPerSecondPerThing,
  maxInFlightPerThing: DEFAULT_LIMITS.maxInFlightPerThing,
  adaptiveRate: true,
  coalesce: true,
  useKnownDocuments: 'auto' as boolean | 'auto',
});

/** The options with a default, and those without one. */
const KNOWN_KEYS = new Set<string>([
  ...Object.keys(SHADOW_CLIENT_DEFAULTS),
  'transport',
  'limits',
  'onEvent',
  'logger',
  'clock',
  'random',
]);

function fail(message: string): never {
  throw new ShadowOptionsError(`createShadowClient: ${message}`);
}

function optionalFunction<T>(name: string, value: T | undefined): T | undefined {
  if (value !== undefined && typeof value !== 'function') fail(`${name} must be a function`);
  return value;
}

/**
 * Validates {@link ShadowClientOptions} and fills in {@link SHADOW_CLIENT_DEFAULTS}.
 *
 * @param options - what the caller passed
 * @throws ShadowOptionsError naming the first unknown key, missing transport or out-of-range value
 */
export function resolveShadowClientOptions(options: ShadowClientOptions): ResolvedShadowClientOptions {
  if (typeof options !== 'object' || options === null) fail('options must be an object with a transport');
  for (const key of Object.keys(options)) {
    if (!KNOWN_KEYS.has(key)) fail(`unknown option '${key}' (known: ${[...KNOWN_KEYS].join(', ')})`);
  }
  const { transport } = options;
  if (
    typeof transport !== 'object' ||
    transport === null ||
    typeof transport.get !== 'function' ||
    typeof transport.update !== 'function' ||
    typeof transport.delete !== 'function'
  ) {
    fail('transport must be a ShadowTransport (get, update, delete), e.g. awsTransport(client)');
  }
  const d = SHADOW_CLIENT_DEFAULTS;
  // One checker for every numeric option (positional flags keep the app's bundle small, issue #11).
  const numberIn = (
    name:
      | 'maxAttempts'
      | 'maxElapsedMs'
      | 'baseDelayMs'
      | 'maxDelayMs'
      | 'requestsPerSecondPerThing'
      | 'maxInFlightPerThing',
    min: number,
    integer: boolean,
    infinity: boolean,
  ): number => {
    const value: unknown = options[name];
    if (value === undefined) return d[name];
    if (typeof value !== 'number' || Number.isNaN(value))
      fail(`${name} must be a number, got ${String(value)}`);
    if (value === Number.POSITIVE_INFINITY) {
      if (!infinity) fail(`${name} must be finite`);
      return value;
    }
    if (integer && !Number.isInteger(value)) fail(`${name} must be an integer, got ${value}`);
    if (value < min) fail(`${name} must be at least ${min}, got ${value}`);
    return value;
  };
  const maxAttempts = numberIn('maxAttempts', 1, true, false);
  const maxElapsedMs = numberIn('maxElapsedMs', 0, false, true);
  const baseDelayMs = numberIn('baseDelayMs', 0, false, false);
  const maxDelayMs = numberIn('maxDelayMs', 0, false, false);
  if (maxDelayMs < baseDelayMs)
    fail(`maxDelayMs (${maxDelayMs}) must not be below baseDelayMs (${baseDelayMs})`);
  const requestsPerSecondPerThing = numberIn('requestsPerSecondPerThing', Number.MIN_VALUE, false, true);
  const maxInFlightPerThing = numberIn('maxInFlightPerThing', 1, true, true);
  const booleanOption = (name: 'coalesce' | 'adaptiveRate'): boolean => {
    const value = options[name];
    if (value === undefined) return d[name];
    if (typeof value !== 'boolean') fail(`${name} must be a boolean, got ${String(value)}`);
    return value;
  };
  const useKnownDocuments = options.useKnownDocuments ?? d.useKnownDocuments;
  if (typeof useKnownDocuments !== 'boolean' && useKnownDocuments !== 'auto')
    fail(`useKnownDocuments must be true, false or 'auto', got ${String(useKnownDocuments)}`);
  const limits = options.limits ?? {};
  if (typeof limits !== 'object' || limits === null) fail('limits must be an object');
  const logger = options.logger ?? {};
  if (typeof logger !== 'object' || logger === null)
    fail('logger must be an object with debug/info/warn/error');
  const clock = options.clock ?? SYSTEM_CLOCK;
  if (typeof clock.now !== 'function' || typeof clock.sleep !== 'function') {
    fail('clock must have now() and sleep(ms)');
  }
  return {
    transport,
    maxAttempts,
    maxElapsedMs,
    baseDelayMs,
    maxDelayMs,
    requestsPerSecondPerThing,
    maxInFlightPerThing,
    adaptiveRate: booleanOption('adaptiveRate'),
    coalesce: booleanOption('coalesce'),
    useKnownDocuments,
    limits,
    onEvent: optionalFunction('onEvent', options.onEvent),
    logger,
    clock,
    random: optionalFunction('random', options.random) ?? Math.random,
  };
}
