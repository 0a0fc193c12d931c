/**
 * Request/response over the Device Shadow reserved topics on one MQTT connection: the one implementation
 * under both the MQTT transport (`shadow-sync/mqtt`) and the device agent (`shadow-sync/device`).
 *
 * - Subscribe before publish: a request is published only once its shadow's response topics are granted
 *   (AWS's advice: an answer can arrive before a late subscription). Subscriptions live in a
 *   {@link SubscriptionPool} that keeps the connection inside AWS's per-connection quotas.
 * - Correlation by `clientToken`: a token the caller put in its request is used as is (a second request with a
 *   token already in flight is refused: the answers could not be told apart); otherwise one is generated,
 *   `<prefix>-<counter>`, within AWS's 64 bytes. Only `accepted` / `rejected` answer a request: `update/delta`
 *   and `update/documents` carry the writer's token too.
 * - One timeout per request, on the injected clock; an `AbortSignal` per request; `failPending` when the
 *   connection is gone, `close` to stop.
 * - Every message on a subscribed response topic is decoded the same way: not UTF-8 JSON, or (when validating)
 *   not the documented shape, gives a `ShadowValidationError`, reported through `onInvalid`, and rejects the
 *   request it answers when its clientToken names one.
 */
import type { MqttClient } from 'mqtt';
import type {
  DeleteAcceptedBody,
  DeltaBody,
  DocumentsBody,
  ShadowTarget,
  UpdateAcceptedBody,
} from '../core/document.js';
import { rejectionFromBody } from '../core/error-types.js';
import {
  deleteAcceptedBodySchema,
  deltaBodySchema,
  documentsBodySchema,
  getAcceptedBodySchema,
  type MessageSchema,
  parseWithSchema,
  rejectedBodySchema,
  updateAcceptedBodySchema,
} from '../core/schemas.js';
import {
  parseShadowTopic,
  type ShadowOperation,
  type ShadowTopicSuffix,
  shadowTopic,
} from '../core/topics.js';
import {
  describeTarget,
  errorFromRejection,
  isShadowError,
  ShadowOptionsError,
  ShadowTimeoutError,
  ShadowTransportError,
  ShadowValidationError,
  targetContext,
} from '../errors.js';
import { SubscriptionRefusedError } from './subscribe-filters.js';
import { createSubscriptionPool, type SubscriptionMode, type SubscriptionPool } from './subscription-pool.js';
import type { TimerClock } from './timer-clock.js';

/** A broadcast the session hands to its owner (anyone's update or delete, deltas, documents). */
export type SessionMessage =
  | { kind: 'update/accepted'; target: ShadowTarget; body: UpdateAcceptedBody; own: boolean }
  | { kind: 'update/delta'; target: ShadowTarget; body: DeltaBody }
  | { kind: 'update/documents'; target: ShadowTarget; body: DocumentsBody }
  | { kind: 'delete/accepted'; target: ShadowTarget; body: DeleteAcceptedBody; own: boolean };

/** The suffixes a session can hand to its owner. */
export type ObservedSuffix = SessionMessage['kind'];

/** Settings of a {@link ReservedTopicSession} (validated by its owner's options resolver). */
export interface ReservedTopicSessionSettings {
  /** Milliseconds to wait for the answer of a published request. */
  timeoutMs: number;
  /** QoS of requests and subscriptions. */
  qos: 0 | 1;
  /** Prefix of generated tokens (at most 40 UTF-8 bytes, so tokens stay within AWS's 64). */
  clientTokenPrefix: string;
  /** Check answers and broadcasts against the documented shapes. */
  validate: boolean;
  /** Response suffixes subscribed per shadow (every `accepted`/`rejected` of the operations used, plus the observed ones). */
  suffixes: readonly ShadowTopicSuffix[];
  /** Broadcasts handed to `onMessage`. */
  observe: readonly ObservedSuffix[];
  mode: SubscriptionMode;
  maxSubscriptions: number;
  maxFiltersPerSubscribe: number;
  clock: TimerClock;
  /** Names the owner in errors, for example `the MQTT transport`. */
  owner: string;
  onMessage?: (message: SessionMessage) => void;
  /** A message on a subscribed response topic could not be used. */
  onInvalid?: (error: ShadowValidationError, topic: string) => void;
  /** A shadow's subscriptions were released to make room: its broadcasts no longer arrive. */
  onReleased?: (target: ShadowTarget) => void;
}

/** Per-request options. */
export interface SessionRequestOptions {
  signal?: AbortSignal | undefined;
  /** The version a versioned update named, carried by its conflict error. */
  expectedVersion?: number | undefined;
}

/** Request/response over the reserved topics of one connection. */
export interface ReservedTopicSession {
  /**
   * Sends one request and waits for its answer: the `accepted` body (`undefined` for a `get` answered 404),
   * or the typed error of the `rejected` one.
   *
   * @throws ShadowOptionsError for a clientToken that is not a string or is already in flight
   * @throws ShadowTimeoutError, ShadowTransportError, ShadowValidationError; the signal's reason when aborted
   */
  request(
    operation: ShadowOperation,
    target: ShadowTarget,
    body: Record<string, unknown>,
    options?: SessionRequestOptions,
  ): Promise<unknown>;
  /**
   * Subscribes the shadow's response topics now (a device subscribes on connect, before reading); the
   * subscription is then kept until it must make room for another shadow.
   *
   * @throws ShadowTransportError when the broker refused a filter or the subscription failed
   */
  subscribe(target: ShadowTarget): Promise<void>;
  /** Rejects every request in flight with a `ShadowTransportError` naming `reason` (the connection is gone). */
  failPending(reason: string): void;
  /**
   * The connection was lost and its session with it (clean session): fails what is pending like
   * {@link ReservedTopicSession.failPending} and forgets the subscriptions, so the next
   * {@link ReservedTopicSession.subscribe} or request subscribes again.
   */
  connectionLost(reason: string): void;
  /** Filters the session holds at the broker (subscribed, being subscribed or unsubscribed). */
  subscriptionCount(): number;
  /**
   * Stops listening, rejects what is pending and unsubscribes (when connected, waiting at most `timeoutMs`).
   * Never ends the client.
   */
  close(): Promise<void>;
}

type SessionClient = Pick<
  MqttClient,
  'on' | 'removeListener' | 'publish' | 'subscribeAsync' | 'connected'
> & {
  unsubscribeAsync(topics: string[]): Promise<unknown>;
};

interface Pending {
  operation: ShadowOperation;
  target: ShadowTarget;
  expectedVersion: number | undefined;
  /** Set once the subscription is held (released when the request settles). */
  holding: boolean;
  /** Set once published: only then may an answer settle it. */
  timer: unknown;
  published: boolean;
  settle(outcome: { value: unknown } | { error: unknown }): void;
}

const ACCEPTED_SCHEMAS: Record<ShadowOperation, MessageSchema<unknown>> = {
  get: getAcceptedBodySchema,
  update: updateAcceptedBodySchema,
  delete: deleteAcceptedBodySchema,
};

/** One set per suffix list: a fleet of 10,000 agents shares its two lists instead of holding 20,000 sets. */
const suffixSets = new WeakMap<readonly string[], ReadonlySet<string>>();
function setOf(list: readonly string[]): ReadonlySet<string> {
  let set = suffixSets.get(list);
  if (set === undefined) {
    set = new Set(list);
    suffixSets.set(list, set);
  }
  return set;
}

const decoder = new TextDecoder('utf-8', { fatal: true });

function sameTarget(a: ShadowTarget, b: ShadowTarget): boolean {
  return a.thingName === b.thingName && a.shadowName === b.shadowName;
}

function transportError(target: ShadowTarget, message: string, cause?: unknown): ShadowTransportError {
  return new ShadowTransportError(`${describeTarget(targetContext(target))}: ${message}`, {
    ...targetContext(target),
    ...(cause === undefined ? {} : { cause }),
  });
}

function subscriptionError(target: ShadowTarget, error: unknown): unknown {
  if (isShadowError(error)) return error;
  if (error instanceof SubscriptionRefusedError) return transportError(target, error.message, error);
  return transportError(target, `subscribing failed: ${String(error)}`, error);
}

/**
 * The session as a class: every device agent holds one, and methods on a prototype cost nothing per instance
 * where a closure per function would (a fleet of 10,000 agents in one process is a measured case).
 */
class Session implements ReservedTopicSession {
  private readonly subscribedSuffixes: ReadonlySet<string>;
  private readonly observed: ReadonlySet<string>;
  private readonly pool: SubscriptionPool;
  private readonly pending = new Map<string, Pending>();
  private readonly listener: (topic: string, payload: Buffer) => void;
  private counter = 0;
  private closed = false;

  constructor(
    private readonly client: SessionClient,
    private readonly settings: ReservedTopicSessionSettings,
  ) {
    this.subscribedSuffixes = setOf(settings.suffixes);
    this.observed = setOf(settings.observe);
    this.pool = createSubscriptionPool(client, {
      mode: settings.mode,
      suffixes: settings.suffixes,
      qos: settings.qos,
      maxSubscriptions: settings.maxSubscriptions,
      maxFiltersPerSubscribe: settings.maxFiltersPerSubscribe,
      ...(settings.onReleased === undefined ? {} : { onReleased: settings.onReleased }),
    });
    // mqtt.js re-subscribes every topic in one SUBSCRIBE after a reconnect unless told a batch size: keep that
    // one inside the quota too (only when the application has not chosen one).
    const clientOptions = (client as { options?: { subscribeBatchSize?: number } }).options;
    if (clientOptions !== undefined && clientOptions.subscribeBatchSize === undefined) {
      clientOptions.subscribeBatchSize = settings.maxFiltersPerSubscribe;
    }
    this.listener = (topic, payload) => this.onMessage(topic, payload);
    client.on('message', this.listener);
  }

  private invalid(topic: string, target: ShadowTarget, what: string, cause: unknown): void {
    const context = targetContext(target);
    const error = new ShadowValidationError(
      `Invalid ${what} for ${describeTarget(context)}: not UTF-8 JSON`,
      {
        ...context,
        cause,
        issues: [{ path: [], message: 'not UTF-8 JSON' }],
      },
    );
    this.settings.onInvalid?.(error, topic);
  }

  private onMessage(topic: string, payload: Buffer | Uint8Array | string): void {
    const parsed = parseShadowTopic(topic);
    if (parsed === undefined || parsed.response === undefined) return;
    const { target, operation, response } = parsed;
    const suffix = `${operation}/${response}`;
    if (!this.subscribedSuffixes.has(suffix) || !this.pool.covers(target)) return;
    const what = `${suffix} body`;
    let body: unknown;
    try {
      body = JSON.parse(typeof payload === 'string' ? payload : decoder.decode(payload));
    } catch (cause) {
      this.invalid(topic, target, what, cause);
      return;
    }
    const token = (body as { clientToken?: unknown } | null)?.clientToken;
    const request = typeof token === 'string' ? this.pending.get(token) : undefined;
    const answers =
      request?.published === true &&
      (response === 'accepted' || response === 'rejected') &&
      request.operation === operation &&
      sameTarget(request.target, target);
    const observed = this.observed.has(suffix);
    // Others' answers share these topics (another client reading the same shadow): not ours to judge.
    if (!answers && !observed) return;
    const schema =
      response === 'accepted'
        ? ACCEPTED_SCHEMAS[operation]
        : response === 'rejected'
          ? rejectedBodySchema
          : response === 'delta'
            ? deltaBodySchema
            : documentsBodySchema;
    let decoded: unknown = body;
    if (this.settings.validate) {
      try {
        decoded = parseWithSchema(schema, body, { ...targetContext(target), what });
      } catch (error) {
        if (!(error instanceof ShadowValidationError)) throw error;
        this.settings.onInvalid?.(error, topic);
        if (answers) request.settle({ error });
        return;
      }
    }
    if (observed) {
      this.settings.onMessage?.({
        kind: suffix as ObservedSuffix,
        target,
        body: decoded,
        own: answers,
      } as SessionMessage);
    }
    if (!answers) return;
    if (response === 'accepted') {
      request.settle({ value: decoded });
      return;
    }
    const rejected = decoded as { code: number; message: string };
    if (operation === 'get' && rejected.code === 404) {
      request.settle({ value: undefined });
      return;
    }
    request.settle({
      error: errorFromRejection(rejectionFromBody(decoded as Parameters<typeof rejectionFromBody>[0]), {
        ...targetContext(target),
        ...(request.expectedVersion === undefined ? {} : { expectedVersion: request.expectedVersion }),
      }),
    });
  }

  private reserveToken(target: ShadowTarget, body: Record<string, unknown>): string {
    const given = body.clientToken;
    if (given === undefined) {
      this.counter += 1;
      return `${this.settings.clientTokenPrefix}-${this.counter.toString(36)}`;
    }
    if (typeof given !== 'string') {
      throw new ShadowOptionsError(
        `${describeTarget(targetContext(target))}: clientToken must be a string`,
        targetContext(target),
      );
    }
    if (this.pending.has(given)) {
      throw new ShadowOptionsError(
        `${describeTarget(targetContext(target))}: clientToken '${given}' is already used by a request in flight; answers could not be told apart`,
        targetContext(target),
      );
    }
    return given;
  }

  request(
    operation: ShadowOperation,
    target: ShadowTarget,
    body: Record<string, unknown>,
    options: SessionRequestOptions = {},
  ): Promise<unknown> {
    const { signal, expectedVersion } = options;
    if (this.closed) return Promise.reject(transportError(target, `${this.settings.owner} is closed`));
    if (signal?.aborted) return Promise.reject(signal.reason);
    let clientToken: string;
    try {
      clientToken = this.reserveToken(target, body);
    } catch (error) {
      return Promise.reject(error);
    }
    const { pending, pool, settings } = this;
    return new Promise<unknown>((resolve, reject) => {
      const entry: Pending = {
        operation,
        target,
        expectedVersion,
        holding: false,
        timer: undefined,
        published: false,
        settle(outcome) {
          if (pending.get(clientToken) !== entry) return;
          pending.delete(clientToken);
          if (entry.timer !== undefined) settings.clock.clearTimer(entry.timer);
          signal?.removeEventListener('abort', onAbort);
          if (entry.holding) pool.release(target);
          if ('error' in outcome) reject(outcome.error);
          else resolve(outcome.value);
        },
      };
      const onAbort = () => entry.settle({ error: signal?.reason });
      pending.set(clientToken, entry);
      signal?.addEventListener('abort', onAbort, { once: true });
      pool.acquire(target, signal).then(
        () => {
          // The subscription took a round trip: the session may have been closed, the connection lost or the
          // caller may have given up meanwhile. Publishing now would apply a write nobody waits for.
          if (pending.get(clientToken) !== entry) {
            pool.release(target);
            return;
          }
          entry.holding = true;
          this.publish(clientToken, entry, { ...body, clientToken });
        },
        (error: unknown) => entry.settle({ error: subscriptionError(target, error) }),
      );
    });
  }

  private publish(clientToken: string, entry: Pending, body: Record<string, unknown>): void {
    const { operation, target, expectedVersion } = entry;
    const { timeoutMs, qos, clock } = this.settings;
    entry.published = true;
    entry.timer = clock.setTimer(() => {
      entry.timer = undefined;
      entry.settle({
        error: new ShadowTimeoutError(
          `${describeTarget(targetContext(target))}: no answer to ${operation} (clientToken '${clientToken}') within ${timeoutMs} ms`,
          {
            ...targetContext(target),
            timeoutMs,
            ...(expectedVersion === undefined ? {} : { expectedVersion }),
          },
        ),
      });
    }, timeoutMs);
    // Registered before publishing: the answer may arrive before the publish callback.
    this.client.publish(shadowTopic(target, operation), JSON.stringify(body), { qos }, (error) => {
      if (error === undefined || error === null) return;
      entry.settle({
        error: transportError(target, `publishing the ${operation} request failed: ${error.message}`, error),
      });
    });
  }

  async subscribe(target: ShadowTarget): Promise<void> {
    if (this.closed) throw transportError(target, `${this.settings.owner} is closed`);
    try {
      await this.pool.acquire(target);
    } catch (error) {
      throw subscriptionError(target, error);
    }
    this.pool.release(target);
  }

  failPending(reason: string): void {
    for (const entry of [...this.pending.values()]) {
      entry.settle({ error: transportError(entry.target, `${entry.operation} request failed: ${reason}`) });
    }
  }

  connectionLost(reason: string): void {
    this.failPending(reason);
    this.pool.reset();
  }

  subscriptionCount(): number {
    return this.pool.filterCount();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const { owner, clock, timeoutMs } = this.settings;
    this.client.removeListener('message', this.listener);
    for (const entry of [...this.pending.values()]) {
      entry.settle({ error: transportError(entry.target, `${owner} was closed`) });
    }
    // Bounded: on a link that went silent the UNSUBACK never comes, and close() must still return.
    let timer: unknown;
    await Promise.race([
      this.pool.close(new ShadowTransportError(`${owner} was closed`), this.client.connected),
      new Promise<void>((resolve) => {
        timer = clock.setTimer(resolve, timeoutMs);
      }),
    ]);
    clock.clearTimer(timer);
  }
}

/**
 * Creates a session over an mqtt.js client (MQTT 3.1.1 or 5); nothing is subscribed until the first request
 * or {@link ReservedTopicSession.subscribe}.
 *
 * @param client - a connected or connecting client; the session never ends it
 * @param settings - see {@link ReservedTopicSessionSettings}
 */
export function createReservedTopicSession(
  client: SessionClient,
  settings: ReservedTopicSessionSettings,
): ReservedTopicSession {
  return new Session(client, settings);
}
