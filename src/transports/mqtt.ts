/**
 * The MQTT transport: request/response over the Device Shadow reserved topics with an mqtt.js client, on the
 * shared reserved-topic session (`src/mqtt-session/`), which subscribes before publishing, correlates answers
 * by `clientToken`, times requests out and keeps the connection inside AWS IoT's per-connection quotas.
 *
 * On top of the session, the transport keeps the newest document announced on `update/documents` (and the
 * version a re-create must name after `delete/accepted`), which the update engine uses instead of a read
 * after a conflict.
 */
import type { MqttClient } from 'mqtt';
import type {
  DeleteAcceptedBody,
  ShadowTarget,
  UpdateAcceptedBody,
  UpdateRequest,
} from '../core/document.js';
import type { ShadowTopicSuffix } from '../core/topics.js';
import type { ShadowValidationError } from '../errors.js';
import { ShadowOptionsError } from '../errors.js';
import { createReservedTopicSession, type ObservedSuffix } from '../mqtt-session/reserved-topic-session.js';
import type { SubscriptionMode } from '../mqtt-session/subscription-pool.js';
import { isTimerClock, SYSTEM_TIMER_CLOCK, type TimerClock } from '../mqtt-session/timer-clock.js';
import type { KnownState, ShadowDocument, ShadowTransport } from './transport.js';

/** Options of {@link mqttTransport}. */
export interface MqttTransportOptions {
  /**
   * Milliseconds to wait for the `accepted` / `rejected` answer of one request, from its publish.
   * @defaultValue 5000
   */
  timeoutMs?: number;
  /**
   * QoS of the requests published and of the response subscriptions (AWS IoT supports 0 and 1).
   * @defaultValue 1
   */
  qos?: 0 | 1;
  /**
   * Check every answer against the service's documented shapes (`ShadowValidationError` otherwise).
   * @defaultValue true
   */
  validateResponses?: boolean;
  /**
   * Prefix of generated client tokens; a random one per transport by default, so that two transports
   * sharing a broker never mistake each other's answers.
   * @defaultValue 8 random base-36 characters
   */
  clientTokenPrefix?: string;
  /**
   * Subscribe to `update/documents` and `delete/accepted` to keep the current document known.
   * @defaultValue true
   */
  trackDocuments?: boolean;
  /**
   * How the connection subscribes to response topics. `'per-shadow'`: each addressed shadow's own topics,
   * released least recently used first when `maxSubscriptions` would be exceeded (requests wait while every
   * subscribed shadow is busy). `'wildcard'`: one `$aws/things/+/shadow/...` filter per response topic (and the
   * `name/+` form once a named shadow is used), kept until `close()`; the policy must allow these filters, and
   * the connection then receives every shadow's responses.
   * @defaultValue 'per-shadow'
   */
  subscriptions?: SubscriptionMode;
  /**
   * Most filters this transport keeps subscribed on the connection (AWS IoT: 50 subscriptions per connection).
   * Lower it by what the application subscribes on the same client itself.
   * @defaultValue 50
   */
  maxSubscriptions?: number;
  /**
   * Most filters in one SUBSCRIBE packet (AWS IoT: 8). Also set as the client's `subscribeBatchSize` when it
   * has none, so that mqtt.js's own re-subscription after a reconnect stays within it.
   * @defaultValue 8
   */
  maxFiltersPerSubscribe?: number;
  /**
   * Told about every message on a subscribed response topic that is not UTF-8 JSON or (when validating) not
   * the documented shape. A request such a message answers is also rejected with the same error.
   * @defaultValue undefined (not told)
   */
  onInvalidMessage?: (error: ShadowValidationError, topic: string) => void;
  /**
   * Time and timers of the request timeouts.
   * @defaultValue Node's clock
   */
  clock?: TimerClock;
}

/** The longest delay a Node timer honours. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/** Defaults of {@link MqttTransportOptions} (the token prefix is drawn per transport). */
export const MQTT_TRANSPORT_DEFAULTS = Object.freeze({
  timeoutMs: 5000,
  qos: 1 as 0 | 1,
  validateResponses: true,
  trackDocuments: true,
  subscriptions: 'per-shadow' as SubscriptionMode,
  maxSubscriptions: 50,
  maxFiltersPerSubscribe: 8,
});

/** The MQTT transport: a {@link ShadowTransport} whose `close` releases its subscriptions and listener. */
export interface MqttShadowTransport extends ShadowTransport {
  known(target: ShadowTarget): KnownState | undefined;
  /** Rejects requests in flight, unsubscribes and detaches from the client (which stays connected). */
  close(): Promise<void>;
}

interface ResolvedMqttTransportOptions {
  timeoutMs: number;
  qos: 0 | 1;
  validateResponses: boolean;
  clientTokenPrefix: string;
  trackDocuments: boolean;
  subscriptions: SubscriptionMode;
  maxSubscriptions: number;
  maxFiltersPerSubscribe: number;
  onInvalidMessage: ((error: ShadowValidationError, topic: string) => void) | undefined;
  clock: TimerClock;
}

const KNOWN_OPTIONS = [
  'timeoutMs',
  'qos',
  'validateResponses',
  'clientTokenPrefix',
  'trackDocuments',
  'subscriptions',
  'maxSubscriptions',
  'maxFiltersPerSubscribe',
  'onInvalidMessage',
  'clock',
];

const RESPONSE_SUFFIXES: readonly ShadowTopicSuffix[] = [
  'get/accepted',
  'get/rejected',
  'update/accepted',
  'update/rejected',
  'delete/accepted',
  'delete/rejected',
];
const TRACKING_SUFFIXES: readonly ShadowTopicSuffix[] = ['update/documents'];

function positiveInteger(name: string, value: unknown, fallback: number, min: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min) {
    throw new ShadowOptionsError(`mqttTransport: ${name} must be an integer ≥ ${min}, got ${String(value)}`);
  }
  return value;
}

/**
 * Validates {@link MqttTransportOptions} and fills in defaults.
 *
 * @throws ShadowOptionsError naming an unknown key or a bad value
 */
export function resolveMqttTransportOptions(
  options: MqttTransportOptions = {},
): ResolvedMqttTransportOptions {
  for (const key of Object.keys(options)) {
    if (!KNOWN_OPTIONS.includes(key)) {
      throw new ShadowOptionsError(
        `mqttTransport: unknown option '${key}' (known: ${KNOWN_OPTIONS.join(', ')})`,
      );
    }
  }
  const timeoutMs = options.timeoutMs ?? MQTT_TRANSPORT_DEFAULTS.timeoutMs;
  // Node fires a timer longer than 2^31 - 1 ms at once, which would time out every request immediately.
  if (
    typeof timeoutMs !== 'number' ||
    !Number.isFinite(timeoutMs) ||
    timeoutMs <= 0 ||
    timeoutMs > MAX_TIMER_MS
  ) {
    throw new ShadowOptionsError(
      `mqttTransport: timeoutMs must be a positive number of at most ${MAX_TIMER_MS}, got ${String(timeoutMs)}`,
    );
  }
  const qos = options.qos ?? MQTT_TRANSPORT_DEFAULTS.qos;
  if (qos !== 0 && qos !== 1) {
    throw new ShadowOptionsError(
      `mqttTransport: qos must be 0 or 1 (AWS IoT has no QoS 2), got ${String(qos)}`,
    );
  }
  for (const key of ['validateResponses', 'trackDocuments'] as const) {
    if (options[key] !== undefined && typeof options[key] !== 'boolean') {
      throw new ShadowOptionsError(`mqttTransport: ${key} must be a boolean, got ${String(options[key])}`);
    }
  }
  const clientTokenPrefix =
    options.clientTokenPrefix ?? Math.random().toString(36).slice(2, 10).padEnd(8, '0');
  if (
    typeof clientTokenPrefix !== 'string' ||
    clientTokenPrefix.length === 0 ||
    // Bytes, not characters: the service refuses a clientToken over 64 bytes, and the counter needs room.
    Buffer.byteLength(clientTokenPrefix, 'utf8') > 40
  ) {
    throw new ShadowOptionsError('mqttTransport: clientTokenPrefix must be a string of 1 to 40 UTF-8 bytes');
  }
  const subscriptions = options.subscriptions ?? MQTT_TRANSPORT_DEFAULTS.subscriptions;
  if (subscriptions !== 'per-shadow' && subscriptions !== 'wildcard') {
    throw new ShadowOptionsError(
      `mqttTransport: subscriptions must be 'per-shadow' or 'wildcard', got ${String(subscriptions)}`,
    );
  }
  const trackDocuments = options.trackDocuments ?? MQTT_TRANSPORT_DEFAULTS.trackDocuments;
  const perShadow = RESPONSE_SUFFIXES.length + (trackDocuments ? TRACKING_SUFFIXES.length : 0);
  // One shadow's topics (one wildcard group's) must fit, or its requests would wait for room forever.
  const maxSubscriptions = positiveInteger(
    'maxSubscriptions',
    options.maxSubscriptions,
    MQTT_TRANSPORT_DEFAULTS.maxSubscriptions,
    perShadow,
  );
  const maxFiltersPerSubscribe = positiveInteger(
    'maxFiltersPerSubscribe',
    options.maxFiltersPerSubscribe,
    MQTT_TRANSPORT_DEFAULTS.maxFiltersPerSubscribe,
    1,
  );
  if (options.onInvalidMessage !== undefined && typeof options.onInvalidMessage !== 'function') {
    throw new ShadowOptionsError('mqttTransport: onInvalidMessage must be a function');
  }
  const clock = options.clock ?? SYSTEM_TIMER_CLOCK;
  if (!isTimerClock(clock)) {
    throw new ShadowOptionsError('mqttTransport: clock must have now(), setTimer() and clearTimer()');
  }
  return {
    timeoutMs,
    qos,
    validateResponses: options.validateResponses ?? MQTT_TRANSPORT_DEFAULTS.validateResponses,
    clientTokenPrefix,
    trackDocuments,
    subscriptions,
    maxSubscriptions,
    maxFiltersPerSubscribe,
    onInvalidMessage: options.onInvalidMessage,
    clock,
  };
}

function keyOf(target: ShadowTarget): string {
  return target.shadowName === undefined ? target.thingName : `${target.thingName}/${target.shadowName}`;
}

const versionOf = (state: KnownState) => (state.exists ? state.document.version : state.version);

/**
 * Creates a transport over a connected mqtt.js client (MQTT 3.1.1 or 5). Works with AWS IoT Core and
 * with the local shadow service; the client must be allowed to use the shadow's reserved topics.
 *
 * One connection may address any number of shadows: subscriptions stay within AWS IoT's per-connection
 * quotas (`maxSubscriptions`, `maxFiltersPerSubscribe`, see {@link MqttTransportOptions.subscriptions}).
 *
 * @param client - a connected (or connecting) `MqttClient`; the transport never ends it
 * @param options - see {@link MqttTransportOptions}
 * @throws ShadowOptionsError for unknown or invalid options
 * @example
 * ```ts
 * const client = await mqtt.connectAsync(mqttUrl, { clientId: 'app-1' });
 * const shadows = createShadowClient({ transport: mqttTransport(client) });
 * await shadows.shadow('aircon-1').merge({ desired: { power: 'on' } });
 * ```
 */
export function mqttTransport(client: MqttClient, options: MqttTransportOptions = {}): MqttShadowTransport {
  const settings = resolveMqttTransportOptions(options);
  const known = new Map<string, KnownState>();

  const learn = (target: ShadowTarget, state: KnownState) => {
    const key = keyOf(target);
    const previous = known.get(key);
    if (previous === undefined || versionOf(state) > versionOf(previous)) known.set(key, state);
  };

  const observe: ObservedSuffix[] = settings.trackDocuments ? ['update/documents', 'delete/accepted'] : [];
  const session = createReservedTopicSession(client, {
    timeoutMs: settings.timeoutMs,
    qos: settings.qos,
    clientTokenPrefix: settings.clientTokenPrefix,
    validate: settings.validateResponses,
    suffixes: settings.trackDocuments ? [...RESPONSE_SUFFIXES, ...TRACKING_SUFFIXES] : RESPONSE_SUFFIXES,
    observe,
    mode: settings.subscriptions,
    maxSubscriptions: settings.maxSubscriptions,
    maxFiltersPerSubscribe: settings.maxFiltersPerSubscribe,
    clock: settings.clock,
    owner: 'the MQTT transport',
    onMessage(message) {
      if (message.kind === 'update/documents') {
        learn(message.target, { exists: true, document: message.body.current as ShadowDocument });
      } else if (message.kind === 'delete/accepted') {
        // Anyone's delete: a re-create must now name the deleted version + 1.
        learn(message.target, { exists: false, version: message.body.version + 1 });
      }
    },
    ...(settings.onInvalidMessage === undefined ? {} : { onInvalid: settings.onInvalidMessage }),
    // No longer subscribed: its broadcasts stop arriving, so what we knew of it goes stale.
    onReleased: (target) => known.delete(keyOf(target)),
  });

  const onClose = () => {
    // Broadcasts may be missed while disconnected: what we knew can no longer be trusted as current.
    known.clear();
  };
  client.on('close', onClose);

  return {
    async get(target, call) {
      const document = (await session.request('get', target, {}, { signal: call?.signal })) as
        | (ShadowDocument & { clientToken?: string })
        | undefined;
      if (document === undefined) return undefined;
      const { clientToken: _token, ...rest } = document;
      learn(target, { exists: true, document: rest });
      return rest;
    },
    async update(target, request: UpdateRequest, call) {
      return (await session.request(
        'update',
        target,
        { ...request },
        { signal: call?.signal, expectedVersion: request.version },
      )) as UpdateAcceptedBody;
    },
    async delete(target, call) {
      return (await session.request('delete', target, {}, { signal: call?.signal })) as DeleteAcceptedBody;
    },
    known(target) {
      return known.get(keyOf(target));
    },
    async close() {
      client.removeListener('close', onClose);
      await session.close();
    },
  };
}
