/**
 * Options of the device agent: one frozen DEFAULTS object and one resolver that validates every value at the
 * boundary and rejects unknown keys, so the agent itself never sees a bad setting.
 */
import type { StandardSchemaV1 } from '@standard-schema/spec';
import type { IClientOptions, MqttClient } from 'mqtt';
import type { JsonObject } from '../core/document.js';
import { checkShadowName, checkThingName } from '../core/limits.js';
import { ShadowOptionsError } from '../errors.js';
import { isTimerClock, SYSTEM_TIMER_CLOCK, type TimerClock } from '../mqtt-session/timer-clock.js';
import { type SplitPolicy, splitPolicy } from '../split/split-policy.js';

/** What the delta handler learns besides the delta itself. */
export interface DeltaContext {
  /** The shadow version the delta belongs to. */
  version: number;
  thingName: string;
  /** Absent for the classic shadow. */
  shadowName: string | undefined;
  /** What the device applied so far (the merge of every handler result), or `undefined` before the first. */
  applied: Readonly<JsonObject> | undefined;
  /** `'delta'` for an `update/delta` message, `'get'` for the delta of a read after (re)connecting or a gap. */
  source: 'delta' | 'get';
}

/**
 * Applies a delta on the device and returns the values actually applied (they are reported to the shadow).
 * Returning nothing means "applied exactly as asked". Throwing marks the delta as failed (retried a bounded
 * number of times, then reported under the error key).
 */
export type DeltaHandler<D = JsonObject> = (
  delta: D,
  context: DeltaContext,
  // biome-ignore lint/suspicious/noConfusingVoidType: a handler that returns nothing is the common case
) => JsonObject | D | void | Promise<JsonObject | D | void>;

/** How the agent reaches the broker. */
export type DeviceMqttOption =
  | string
  | { url: string; options?: IClientOptions }
  /** A client you created (connected or connecting); the agent never ends it. */
  | MqttClient;

/** Options of `createDeviceAgent`. `thingName`, `mqtt` and `onDelta` are required. */
export interface DeviceAgentOptions<D = JsonObject> {
  /** The device's thing name. */
  thingName: string;
  /**
   * A broker URL (the agent creates the client with client id = thing name and ends it on `close()`), a URL
   * with mqtt.js options (TLS keys, credentials, `reconnectPeriod`...), or an mqtt.js client you own.
   */
  mqtt: DeviceMqttOption;
  /** Applies deltas; see {@link DeltaHandler}. */
  onDelta: DeltaHandler<D>;
  /**
   * The named shadow the agent follows.
   * @defaultValue undefined (the classic shadow)
   */
  shadowName?: string;
  /**
   * How `report()` splits values between the shadow and the telemetry topic.
   * @defaultValue splitPolicy({}) (every value to the shadow)
   */
  policy?: SplitPolicy;
  /**
   * Standard Schema (zod, valibot, arktype ...) every delta must satisfy (a delta is a partial desired state: make fields optional). A delta that
   * fails it is refused: never handed to `onDelta`, reported under `errorKey`, emitted as an `error`.
   * @defaultValue undefined (no check)
   */
  schema?: StandardSchemaV1<unknown, D>;
  /**
   * Key of `reported` under which a refused delta or a handler that kept failing is reported; removed
   * (set to null) after the next delta that applies.
   * @defaultValue 'deviceAgentError'
   */
  errorKey?: string;
  /**
   * Handler calls for one delta content before it is given up and reported as failed.
   * @defaultValue 3
   */
  maxHandlerAttempts?: number;
  /**
   * Milliseconds between two handler calls for the same failing delta.
   * @defaultValue 1000
   */
  handlerRetryDelayMs?: number;
  /**
   * Milliseconds to wait for the answer to a get or an update before treating it as lost.
   * @defaultValue 5000
   */
  requestTimeoutMs?: number;
  /**
   * QoS of the agent's shadow requests and subscriptions.
   * @defaultValue 1
   */
  shadowQos?: 0 | 1;
  /**
   * QoS of telemetry publishes.
   * @defaultValue 0
   */
  telemetryQos?: 0 | 1;
  /**
   * Telemetry messages kept while offline; beyond it the oldest is dropped (and counted).
   * @defaultValue 100
   */
  telemetryBufferSize?: number;
  /**
   * Milliseconds to wait after a report before sending the shadow update, so that reports close together
   * share one update (they always do while an update is in flight).
   * @defaultValue 0
   */
  coalesceMs?: number;
  /**
   * Milliseconds between two reads of the shadow while connected, as a safety net for deltas lost on the
   * way (AWS publishes at QoS 0). 0 disables it; reads also happen on every (re)connect and version gap.
   * @defaultValue 300000
   */
  resyncIntervalMs?: number;
  /**
   * Time of the agent: a function returning epoch milliseconds (policy time and telemetry timestamps; timers
   * stay Node's), or a `TimerClock` that owns both time and every timer of the agent (request timeouts,
   * coalescing, retries, backoff, re-checks, resyncs), so that tests run the agent on fake time.
   * @defaultValue Date.now with Node's timers
   */
  clock?: (() => number) | TimerClock;
  /**
   * Random numbers in [0, 1) for the full-jitter backoff of reads and reports.
   * @defaultValue Math.random
   */
  random?: () => number;
  /**
   * Backoff of failed reads and reports: the n-th retry waits a random time in
   * [0, min(retryMaxDelayMs, retryBaseDelayMs * 2^(n-1))) (full jitter, as the update engine).
   * @defaultValue 50
   */
  retryBaseDelayMs?: number;
  /**
   * Cap of the backoff (see `retryBaseDelayMs`).
   * @defaultValue 2000
   */
  retryMaxDelayMs?: number;
}

/** {@link DeviceAgentOptions} validated, with every default filled in. */
export interface ResolvedDeviceAgentOptions<D = JsonObject> {
  thingName: string;
  shadowName: string | undefined;
  mqtt: DeviceMqttOption;
  onDelta: DeltaHandler<D>;
  policy: SplitPolicy;
  schema: StandardSchemaV1<unknown, D> | undefined;
  errorKey: string;
  maxHandlerAttempts: number;
  handlerRetryDelayMs: number;
  requestTimeoutMs: number;
  shadowQos: 0 | 1;
  telemetryQos: 0 | 1;
  telemetryBufferSize: number;
  coalesceMs: number;
  resyncIntervalMs: number;
  /** Epoch milliseconds. */
  clock: () => number;
  /** Owner of every timer of the agent (and of `clock` when one was given). */
  timers: TimerClock;
  random: () => number;
  retryBaseDelayMs: number;
  retryMaxDelayMs: number;
}

/** Defaults of every optional {@link DeviceAgentOptions} value. */
export const DEVICE_AGENT_DEFAULTS = Object.freeze({
  errorKey: 'deviceAgentError',
  maxHandlerAttempts: 3,
  handlerRetryDelayMs: 1_000,
  requestTimeoutMs: 5_000,
  shadowQos: 1 as 0 | 1,
  telemetryQos: 0 as 0 | 1,
  telemetryBufferSize: 100,
  coalesceMs: 0,
  resyncIntervalMs: 300_000,
  retryBaseDelayMs: 50,
  retryMaxDelayMs: 2_000,
});

const KNOWN_KEYS = new Set([
  'thingName',
  'mqtt',
  'onDelta',
  'shadowName',
  'policy',
  'schema',
  'errorKey',
  'maxHandlerAttempts',
  'handlerRetryDelayMs',
  'requestTimeoutMs',
  'shadowQos',
  'telemetryQos',
  'telemetryBufferSize',
  'coalesceMs',
  'resyncIntervalMs',
  'clock',
  'random',
  'retryBaseDelayMs',
  'retryMaxDelayMs',
]);

function fail(message: string): never {
  throw new ShadowOptionsError(`createDeviceAgent: ${message}`);
}

/** Longest delay a Node timer holds: a longer one fires after 1 ms instead (TimeoutOverflowWarning). */
export const MAX_TIMER_DELAY_MS = 2 ** 31 - 1;

function integer(
  name: string,
  value: unknown,
  fallback: number,
  min: number,
  max = Number.MAX_SAFE_INTEGER,
): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    const range = max === Number.MAX_SAFE_INTEGER ? `≥ ${min}` : `in [${min}, ${max}]`;
    fail(`${name} must be an integer ${range}, got ${String(value)}`);
  }
  return value;
}

/** A delay option: an integer a Node timer can hold. */
function delay(name: string, value: unknown, fallback: number, min: number): number {
  return integer(name, value, fallback, min, MAX_TIMER_DELAY_MS);
}

function qos(name: string, value: unknown, fallback: 0 | 1): 0 | 1 {
  if (value === undefined) return fallback;
  if (value !== 0 && value !== 1) fail(`${name} must be 0 or 1 (AWS IoT has no QoS 2), got ${String(value)}`);
  return value;
}

function isMqttClient(value: unknown): value is MqttClient {
  // What the agent uses of an mqtt.js 5 client (subscribeAsync arrived in mqtt.js 5).
  const candidate = value as { publish?: unknown; subscribeAsync?: unknown; on?: unknown } | null;
  return (
    typeof candidate === 'object' &&
    candidate !== null &&
    typeof candidate.publish === 'function' &&
    typeof candidate.subscribeAsync === 'function' &&
    typeof candidate.on === 'function'
  );
}

function resolveMqtt(value: unknown): DeviceMqttOption {
  if (typeof value === 'string') {
    if (!/^(mqtts?|wss?|tcp|tls):\/\//.test(value))
      fail(`mqtt URL must start with mqtt://, mqtts://, ws:// or wss://, got '${value}'`);
    return value;
  }
  if (isMqttClient(value)) return value;
  if (typeof value === 'object' && value !== null && typeof (value as { url?: unknown }).url === 'string') {
    const entry = value as { url: string; options?: IClientOptions };
    for (const key of Object.keys(entry)) {
      if (key !== 'url' && key !== 'options') fail(`unknown option mqtt.${key} (allowed: url, options)`);
    }
    resolveMqtt(entry.url);
    return entry;
  }
  fail('mqtt must be a broker URL, { url, options } or an mqtt.js client');
}

/**
 * Validates {@link DeviceAgentOptions} and fills in the defaults.
 *
 * @param options - the options as the caller gave them
 * @returns the options in normal form
 * @throws ShadowOptionsError naming the option for an unknown key, a missing `thingName`/`mqtt`/`onDelta`,
 *   an invalid thing or shadow name, a QoS other than 0 or 1, or a negative or fractional number
 */
export function resolveDeviceAgentOptions<D = JsonObject>(
  options: DeviceAgentOptions<D>,
): ResolvedDeviceAgentOptions<D> {
  if (typeof options !== 'object' || options === null) fail('options must be an object');
  for (const key of Object.keys(options)) {
    if (!KNOWN_KEYS.has(key)) fail(`unknown option ${key} (allowed: ${[...KNOWN_KEYS].join(', ')})`);
  }
  const { thingName, shadowName } = options;
  if (typeof thingName !== 'string') fail(`thingName must be a string, got ${String(thingName)}`);
  const badThing = checkThingName(thingName);
  if (badThing !== undefined) fail(`thingName: ${badThing.message}`);
  if (shadowName !== undefined) {
    if (typeof shadowName !== 'string') fail(`shadowName must be a string, got ${String(shadowName)}`);
    const badShadow = checkShadowName(shadowName);
    if (badShadow !== undefined) fail(`shadowName: ${badShadow.message}`);
  }
  if (typeof options.onDelta !== 'function') fail('onDelta must be a function');
  const policy = options.policy ?? splitPolicy({});
  if (typeof policy !== 'object' || policy === null || typeof policy.split !== 'function') {
    fail('policy must be a policy made by splitPolicy()');
  }
  const schema = options.schema;
  if (
    schema !== undefined &&
    typeof (schema as { '~standard'?: { validate?: unknown } })['~standard']?.validate !== 'function'
  ) {
    fail('schema must be a Standard Schema (zod 3.24+, zod 4, valibot, arktype ...)');
  }
  const errorKey = options.errorKey ?? DEVICE_AGENT_DEFAULTS.errorKey;
  if (typeof errorKey !== 'string' || errorKey.length === 0) fail('errorKey must be a non-empty string');
  const given = options.clock ?? Date.now;
  if (typeof given !== 'function' && !isTimerClock(given)) {
    fail(
      'clock must be a function returning epoch milliseconds or a clock with now(), setTimer() and clearTimer()',
    );
  }
  const timers: TimerClock = typeof given === 'function' ? SYSTEM_TIMER_CLOCK : given;
  const clock = typeof given === 'function' ? given : () => given.now();
  const random = options.random ?? Math.random;
  if (typeof random !== 'function') fail('random must be a function returning numbers in [0, 1)');
  const d = DEVICE_AGENT_DEFAULTS;
  const retryBaseDelayMs = delay('retryBaseDelayMs', options.retryBaseDelayMs, d.retryBaseDelayMs, 1);
  const retryMaxDelayMs = delay('retryMaxDelayMs', options.retryMaxDelayMs, d.retryMaxDelayMs, 1);
  if (retryMaxDelayMs < retryBaseDelayMs) {
    fail(`retryMaxDelayMs (${retryMaxDelayMs}) must be at least retryBaseDelayMs (${retryBaseDelayMs})`);
  }
  return {
    thingName,
    shadowName,
    mqtt: resolveMqtt(options.mqtt),
    onDelta: options.onDelta,
    policy,
    schema,
    errorKey,
    maxHandlerAttempts: integer('maxHandlerAttempts', options.maxHandlerAttempts, d.maxHandlerAttempts, 1),
    handlerRetryDelayMs: delay('handlerRetryDelayMs', options.handlerRetryDelayMs, d.handlerRetryDelayMs, 0),
    requestTimeoutMs: delay('requestTimeoutMs', options.requestTimeoutMs, d.requestTimeoutMs, 1),
    shadowQos: qos('shadowQos', options.shadowQos, d.shadowQos),
    telemetryQos: qos('telemetryQos', options.telemetryQos, d.telemetryQos),
    telemetryBufferSize: integer(
      'telemetryBufferSize',
      options.telemetryBufferSize,
      d.telemetryBufferSize,
      0,
    ),
    coalesceMs: delay('coalesceMs', options.coalesceMs, d.coalesceMs, 0),
    resyncIntervalMs: delay('resyncIntervalMs', options.resyncIntervalMs, d.resyncIntervalMs, 0),
    clock,
    timers,
    random,
    retryBaseDelayMs,
    retryMaxDelayMs,
  };
}
