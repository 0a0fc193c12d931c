/**
 * The MQTT transport: request/response over the Device Shadow reserved topics with an mqtt.js client.
 *
 * - Subscribes to a shadow's response topics before its first request is published (AWS's advice: a
 *   response can arrive before a late subscription).
 * - Correlates answers by `clientToken`: a token the caller put in its request is used as is and never
 *   replaced; otherwise a unique one is generated (`<random prefix>-<counter>`, well under 64 bytes).
 * - One timeout per request (`ShadowTimeoutError`); any number of requests in flight.
 * - Keeps the newest document announced on `update/documents` (and the version a re-create must name after
 *   `delete/accepted`), which the update engine uses instead of a read after a conflict.
 */
import type { MqttClient } from 'mqtt';
import type {
  DeleteAcceptedBody,
  ShadowTarget,
  UpdateAcceptedBody,
  UpdateRequest,
} from '../core/document.js';
import { rejectionFromBody } from '../core/error-types.js';
import { parseShadowTopic, type ShadowTopicSuffix, shadowTopic } from '../core/topics.js';
import {
  describeTarget,
  errorFromRejection,
  ShadowOptionsError,
  ShadowTimeoutError,
  ShadowTransportError,
} from '../errors.js';
import { decodeResponseBody } from './response-decoder.js';
import type { KnownState, ShadowDocument, ShadowTransport, TransportCallOptions } from './transport.js';

/** Options of {@link mqttTransport}. */
export interface MqttTransportOptions {
  /**
   * Milliseconds to wait for the `accepted` / `rejected` answer of one request.
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
}

/** The longest delay a Node timer honours. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/** Defaults of {@link MqttTransportOptions} (the token prefix is drawn per transport). */
export const MQTT_TRANSPORT_DEFAULTS = Object.freeze({
  timeoutMs: 5000,
  qos: 1 as 0 | 1,
  validateResponses: true,
  trackDocuments: true,
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
}

/**
 * Validates {@link MqttTransportOptions} and fills in defaults.
 *
 * @throws ShadowOptionsError naming an unknown key or a bad value
 */
export function resolveMqttTransportOptions(
  options: MqttTransportOptions = {},
): ResolvedMqttTransportOptions {
  const known = ['timeoutMs', 'qos', 'validateResponses', 'clientTokenPrefix', 'trackDocuments'];
  for (const key of Object.keys(options)) {
    if (!known.includes(key)) {
      throw new ShadowOptionsError(`mqttTransport: unknown option '${key}' (known: ${known.join(', ')})`);
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
  return {
    timeoutMs,
    qos,
    validateResponses: options.validateResponses ?? MQTT_TRANSPORT_DEFAULTS.validateResponses,
    clientTokenPrefix,
    trackDocuments: options.trackDocuments ?? MQTT_TRANSPORT_DEFAULTS.trackDocuments,
  };
}

type Operation = 'get' | 'update' | 'delete';

interface Pending {
  operation: Operation;
  target: ShadowTarget;
  expectedVersion: number | undefined;
  resolve(body: unknown): void;
  reject(error: unknown): void;
  timer: ReturnType<typeof setTimeout>;
}

function keyOf(target: ShadowTarget): string {
  return target.shadowName === undefined ? target.thingName : `${target.thingName}/${target.shadowName}`;
}

function contextOf(target: ShadowTarget) {
  return {
    thingName: target.thingName,
    ...(target.shadowName === undefined ? {} : { shadowName: target.shadowName }),
  };
}

const RESPONSE_SUFFIXES: readonly ShadowTopicSuffix[] = [
  'get/accepted',
  'get/rejected',
  'update/accepted',
  'update/rejected',
  'delete/accepted',
  'delete/rejected',
];
const TRACKING_SUFFIXES: readonly ShadowTopicSuffix[] = ['update/documents'];

/**
 * Creates a transport over a connected mqtt.js client (MQTT 3.1.1 or 5). Works with AWS IoT Core and
 * with the local shadow service; the client must be allowed to use the shadow's reserved topics.
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
  const pending = new Map<string, Pending>();
  const subscribed = new Map<string, Promise<void>>();
  const known = new Map<string, KnownState>();
  let counter = 0;
  let closed = false;
  const subscribedSuffixes: readonly ShadowTopicSuffix[] = settings.trackDocuments
    ? [...RESPONSE_SUFFIXES, ...TRACKING_SUFFIXES]
    : RESPONSE_SUFFIXES;

  const learn = (target: ShadowTarget, state: KnownState) => {
    const key = keyOf(target);
    const previous = known.get(key);
    const version = (s: KnownState) => (s.exists ? s.document.version : s.version);
    if (previous === undefined || version(state) > version(previous)) known.set(key, state);
  };

  const onMessage = (topic: string, payload: Buffer) => {
    const parsed = parseShadowTopic(topic);
    if (parsed === undefined || parsed.response === undefined) return;
    const { target, operation, response } = parsed;
    let body: Record<string, unknown>;
    try {
      body = JSON.parse(payload.toString('utf8')) as Record<string, unknown>;
    } catch {
      return; // not ours to judge: an unparsable broadcast is ignored; a request of ours will time out
    }
    if (typeof body !== 'object' || body === null) return;
    if (response === 'documents') {
      try {
        const documents = decodeResponseBody('documents', payload, target, settings.validateResponses);
        learn(target, { exists: true, document: documents.current as ShadowDocument });
      } catch {
        // A malformed broadcast must not poison the cache.
      }
      return;
    }
    const token = typeof body.clientToken === 'string' ? body.clientToken : undefined;
    const request = token === undefined ? undefined : pending.get(token);
    if (operation === 'delete' && response === 'accepted' && typeof body.version === 'number') {
      // Anyone's delete: a re-create must now name the deleted version + 1.
      learn(target, { exists: false, version: body.version + 1 });
    }
    // Only accepted / rejected answer a request: `update/delta` carries the clientToken of the update that
    // caused it too, and reaches a client that listens to deltas on this connection (a device), possibly
    // before the `update/accepted`.
    if (response !== 'accepted' && response !== 'rejected') return;
    if (request === undefined || request.operation !== operation || keyOf(request.target) !== keyOf(target))
      return;
    pending.delete(token as string);
    clearTimeout(request.timer);
    try {
      if (response === 'rejected') {
        const rejected = decodeResponseBody('rejected', payload, target, settings.validateResponses);
        const rejection = rejectionFromBody(rejected);
        if (operation === 'get' && rejected.code === 404) {
          request.resolve(undefined);
          return;
        }
        request.reject(
          errorFromRejection(rejection, {
            ...contextOf(target),
            ...(request.expectedVersion === undefined ? {} : { expectedVersion: request.expectedVersion }),
          }),
        );
        return;
      }
      const decoded = decodeResponseBody(operation, payload, target, settings.validateResponses);
      if (operation === 'get') {
        const { clientToken: _token, ...document } = decoded as ShadowDocument & { clientToken?: string };
        learn(target, { exists: true, document });
        request.resolve(document);
      } else {
        request.resolve(decoded);
      }
    } catch (error) {
      request.reject(error);
    }
  };

  const onClose = () => {
    // Broadcasts may be missed while disconnected: what we knew can no longer be trusted as current.
    known.clear();
  };

  client.on('message', onMessage);
  client.on('close', onClose);

  const ensureSubscribed = (target: ShadowTarget): Promise<void> => {
    const key = keyOf(target);
    let ready = subscribed.get(key);
    if (ready === undefined) {
      const topics = subscribedSuffixes.map((suffix) => shadowTopic(target, suffix));
      ready = client.subscribeAsync(topics, { qos: settings.qos }).then((grants) => {
        const refused = grants.filter((grant) => grant.qos === 128).map((grant) => grant.topic);
        if (refused.length > 0) {
          throw new ShadowTransportError(
            `${describeTarget(contextOf(target))}: the broker refused the subscriptions ${refused.join(', ')}`,
            contextOf(target),
          );
        }
      });
      ready.catch(() => subscribed.delete(key));
      subscribed.set(key, ready);
    }
    return ready;
  };

  const send = async (
    operation: Operation,
    target: ShadowTarget,
    body: Record<string, unknown>,
    call: TransportCallOptions | undefined,
    expectedVersion?: number,
  ): Promise<unknown> => {
    if (closed)
      throw new ShadowTransportError(
        `${describeTarget(contextOf(target))}: the MQTT transport is closed`,
        contextOf(target),
      );
    call?.signal?.throwIfAborted();
    try {
      await ensureSubscribed(target);
    } catch (error) {
      if (error instanceof ShadowTransportError) throw error;
      throw new ShadowTransportError(
        `${describeTarget(contextOf(target))}: subscribing failed: ${String(error)}`,
        {
          ...contextOf(target),
          cause: error,
        },
      );
    }
    // The subscription took a round trip: the transport may have been closed or the caller may have given
    // up meanwhile. Publishing now would apply a write nobody waits for (the caller would see a timeout, or
    // the abort, for a write that was in fact made), and no listener would take its answer.
    if (closed)
      throw new ShadowTransportError(
        `${describeTarget(contextOf(target))}: the MQTT transport was closed before the ${operation} request was sent`,
        contextOf(target),
      );
    call?.signal?.throwIfAborted();
    let token = body.clientToken;
    if (token === undefined) {
      counter += 1;
      token = `${settings.clientTokenPrefix}-${counter.toString(36)}`;
      body = { ...body, clientToken: token };
    } else if (typeof token !== 'string') {
      throw new ShadowOptionsError(
        `${describeTarget(contextOf(target))}: clientToken must be a string`,
        contextOf(target),
      );
    } else if (pending.has(token)) {
      throw new ShadowOptionsError(
        `${describeTarget(contextOf(target))}: clientToken '${token}' is already used by a request in flight; answers could not be told apart`,
        contextOf(target),
      );
    }
    const clientToken = token as string;
    return new Promise<unknown>((resolve, reject) => {
      const finish = () => call?.signal?.removeEventListener('abort', onAbort);
      const onAbort = () => {
        const request = pending.get(clientToken);
        if (request === undefined) return;
        pending.delete(clientToken);
        clearTimeout(request.timer);
        reject(call?.signal?.reason);
      };
      const timer = setTimeout(() => {
        pending.delete(clientToken);
        finish();
        reject(
          new ShadowTimeoutError(
            `${describeTarget(contextOf(target))}: no answer to ${operation} (clientToken '${clientToken}') within ${settings.timeoutMs} ms`,
            {
              ...contextOf(target),
              timeoutMs: settings.timeoutMs,
              ...(expectedVersion === undefined ? {} : { expectedVersion }),
            },
          ),
        );
      }, settings.timeoutMs);
      pending.set(clientToken, {
        operation,
        target,
        expectedVersion,
        timer,
        resolve: (value) => {
          finish();
          resolve(value);
        },
        reject: (error) => {
          finish();
          reject(error);
        },
      });
      call?.signal?.addEventListener('abort', onAbort, { once: true });
      // Registered before publishing: the answer may arrive before the publish callback.
      client
        .publishAsync(shadowTopic(target, operation), JSON.stringify(body), { qos: settings.qos })
        .catch((error: unknown) => {
          const request = pending.get(clientToken);
          if (request === undefined) return;
          pending.delete(clientToken);
          clearTimeout(request.timer);
          request.reject(
            new ShadowTransportError(
              `${describeTarget(contextOf(target))}: publishing the ${operation} request failed: ${String(error)}`,
              {
                ...contextOf(target),
                cause: error,
              },
            ),
          );
        });
    });
  };

  return {
    async get(target, call) {
      return (await send('get', target, {}, call)) as ShadowDocument | undefined;
    },
    async update(target, request: UpdateRequest, call) {
      return (await send('update', target, { ...request }, call, request.version)) as UpdateAcceptedBody;
    },
    async delete(target, call) {
      return (await send('delete', target, {}, call)) as DeleteAcceptedBody;
    },
    known(target) {
      return known.get(keyOf(target));
    },
    async close() {
      if (closed) return;
      closed = true;
      client.removeListener('message', onMessage);
      client.removeListener('close', onClose);
      for (const [token, request] of pending) {
        clearTimeout(request.timer);
        request.reject(
          new ShadowTransportError(
            `${describeTarget(contextOf(request.target))}: the MQTT transport was closed`,
            contextOf(request.target),
          ),
        );
        pending.delete(token);
      }
      // Only the topics this transport subscribed: the application may subscribe to others on the same
      // client (for example `update/documents` when `trackDocuments` is false), and MQTT has no reference
      // counts, so unsubscribing them would silently end the application's own subscription.
      const topics = [...subscribed.keys()].flatMap((key) => {
        const [thingName, shadowName] = key.split('/') as [string, string | undefined];
        const target: ShadowTarget = shadowName === undefined ? { thingName } : { thingName, shadowName };
        return subscribedSuffixes.map((suffix) => shadowTopic(target, suffix));
      });
      subscribed.clear();
      if (topics.length > 0 && client.connected) {
        await client.unsubscribeAsync(topics).catch(() => undefined);
      }
    },
  };
}
