/**
 * The device agent's request/response over one shadow's reserved topics: subscribes to the response topics
 * (never `…/shadow/#`, AWS may add topics), correlates answers by clientToken, times requests out, and hands
 * every `update/delta` and `update/accepted` (anyone's) to the agent, which orders them by version.
 *
 * The agent keeps its own small channel instead of the update engine's MQTT transport because it needs what a
 * transport hides: every `update/accepted` of every writer (for version gaps), the deltas, and control over
 * what happens on disconnect (fail fast, re-read on reconnect) rather than retries.
 */
import type { MqttClient } from 'mqtt';
import type {
  DeltaBody,
  GetAcceptedBody,
  ShadowTarget,
  UpdateAcceptedBody,
  UpdateRequest,
} from '../core/document.js';
import { rejectionFromBody } from '../core/error-types.js';
import {
  deltaBodySchema,
  getAcceptedBodySchema,
  parseWithSchema,
  rejectedBodySchema,
  updateAcceptedBodySchema,
} from '../core/schemas.js';
import { parseShadowTopic, shadowTopic } from '../core/topics.js';
import {
  errorFromRejection,
  ShadowError,
  ShadowTimeoutError,
  ShadowTransportError,
  ShadowValidationError,
} from '../errors.js';

/** What the channel reports to its owner. */
export interface ShadowChannelEvents {
  /** A valid `update/delta` arrived. */
  delta(body: DeltaBody): void;
  /** A valid `update/accepted` arrived, from any writer; `own` when it answers one of this channel's requests. */
  accepted(body: UpdateAcceptedBody, own: boolean): void;
  /** A message on one of the channel's topics could not be used (bad JSON or shape). */
  invalid(error: ShadowError): void;
}

/** Request/response over one shadow's reserved topics. */
export interface ShadowChannel {
  /** Subscribes to every response topic; resolves once the broker granted all of them. */
  subscribe(): Promise<void>;
  /** Reads the shadow: its document, or `undefined` when it does not exist (404). */
  get(): Promise<GetAcceptedBody | undefined>;
  /** Sends an update (a clientToken is added); resolves with the `update/accepted` body. */
  update(request: Omit<UpdateRequest, 'clientToken'>): Promise<UpdateAcceptedBody>;
  /** Rejects every request waiting for an answer (the connection is gone: the answers will not come). */
  failPending(reason: string): void;
  /**
   * Stops listening and fails what is pending; unsubscribes when still connected, waiting for the broker at
   * most the request timeout. Never ends the client.
   */
  close(): Promise<void>;
}

interface Pending {
  operation: 'get' | 'update';
  resolve(body: unknown): void;
  reject(error: unknown): void;
  timer: ReturnType<typeof setTimeout>;
}

/**
 * Creates the channel. Nothing is subscribed until {@link ShadowChannel.subscribe}.
 *
 * @param client - an mqtt.js client
 * @param target - the shadow
 * @param options - request timeout, QoS, clientToken prefix (≤ 40 bytes keeps tokens within AWS's 64) and events
 */
export function createShadowChannel(
  client: MqttClient,
  target: ShadowTarget,
  options: { timeoutMs: number; qos: 0 | 1; tokenPrefix: string; events: ShadowChannelEvents },
): ShadowChannel {
  const { timeoutMs, qos, tokenPrefix, events } = options;
  const context = {
    thingName: target.thingName,
    ...(target.shadowName === undefined ? {} : { shadowName: target.shadowName }),
  };
  const topics = {
    get: shadowTopic(target, 'get'),
    update: shadowTopic(target, 'update'),
    responses: (
      ['get/accepted', 'get/rejected', 'update/accepted', 'update/rejected', 'update/delta'] as const
    ).map((suffix) => shadowTopic(target, suffix)),
  };
  const pending = new Map<string, Pending>();
  let counter = 0;
  let closed = false;

  function settle(token: string | undefined, operation: 'get' | 'update'): Pending | undefined {
    if (token === undefined) return undefined;
    const entry = pending.get(token);
    if (entry === undefined || entry.operation !== operation) return undefined;
    pending.delete(token);
    clearTimeout(entry.timer);
    return entry;
  }

  function onMessage(topic: string, payload: Buffer): void {
    const parsed = parseShadowTopic(topic);
    if (
      parsed === undefined ||
      parsed.response === undefined ||
      parsed.target.thingName !== target.thingName ||
      parsed.target.shadowName !== target.shadowName
    ) {
      return;
    }
    const what = `${parsed.operation}/${parsed.response} body`;
    let body: unknown;
    try {
      body = JSON.parse(payload.toString('utf8'));
    } catch (cause) {
      events.invalid(
        new ShadowValidationError(`Invalid ${what} for thing '${target.thingName}': not JSON`, {
          ...context,
          cause,
          issues: [{ path: [], message: 'not JSON' }],
        }),
      );
      return;
    }
    try {
      if (parsed.response === 'delta') {
        events.delta(parseWithSchema(deltaBodySchema, body, { ...context, what }));
      } else if (parsed.response === 'accepted' && parsed.operation === 'update') {
        const accepted = parseWithSchema(updateAcceptedBodySchema, body, { ...context, what });
        const entry = settle(accepted.clientToken, 'update');
        events.accepted(accepted, entry !== undefined);
        entry?.resolve(accepted);
      } else if (parsed.response === 'accepted' && parsed.operation === 'get') {
        // Others' reads are answered on the same topic: only our tokens matter, so check the token first.
        const token = (body as { clientToken?: unknown } | null)?.clientToken;
        if (typeof token !== 'string' || !pending.has(token)) return;
        const document = parseWithSchema(getAcceptedBodySchema, body, { ...context, what });
        settle(token, 'get')?.resolve(document);
      } else if (parsed.response === 'rejected') {
        const token = (body as { clientToken?: unknown } | null)?.clientToken;
        if (typeof token !== 'string' || !pending.has(token)) return;
        const rejected = parseWithSchema(rejectedBodySchema, body, { ...context, what });
        const operation = parsed.operation === 'get' ? 'get' : 'update';
        const entry = settle(token, operation);
        if (entry === undefined) return;
        if (operation === 'get' && rejected.code === 404) {
          entry.resolve(undefined);
          return;
        }
        entry.reject(errorFromRejection(rejectionFromBody(rejected), context));
      }
    } catch (error) {
      if (error instanceof ShadowError) events.invalid(error);
      else throw error;
    }
  }

  client.on('message', onMessage);

  function request(operation: 'get' | 'update', body: Record<string, unknown>): Promise<unknown> {
    if (closed) return Promise.reject(new ShadowTransportError('the device agent is closed', context));
    counter += 1;
    const clientToken = `${tokenPrefix}-${counter}`;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        if (pending.delete(clientToken)) {
          reject(
            new ShadowTimeoutError(
              `${operation} of thing '${target.thingName}' got no answer in ${timeoutMs} ms`,
              {
                ...context,
                timeoutMs,
              },
            ),
          );
        }
      }, timeoutMs);
      pending.set(clientToken, { operation, resolve, reject, timer });
      client.publish(topics[operation], JSON.stringify({ ...body, clientToken }), { qos }, (error) => {
        if (error === undefined || error === null) return;
        const entry = pending.get(clientToken);
        if (entry === undefined) return;
        pending.delete(clientToken);
        clearTimeout(entry.timer);
        reject(
          new ShadowTransportError(
            `${operation} of thing '${target.thingName}' was not sent: ${error.message}`,
            { ...context, cause: error },
          ),
        );
      });
    });
  }

  function failPending(reason: string): void {
    for (const [token, entry] of pending) {
      pending.delete(token);
      clearTimeout(entry.timer);
      entry.reject(
        new ShadowTransportError(`${entry.operation} of thing '${target.thingName}': ${reason}`, context),
      );
    }
  }

  return {
    async subscribe() {
      const granted = await client.subscribeAsync(topics.responses, { qos });
      const refused = granted.filter((grant) => grant.qos === 128).map((grant) => grant.topic);
      if (refused.length > 0) {
        throw new ShadowTransportError(`the broker refused the subscriptions ${refused.join(', ')}`, context);
      }
    },
    get: () => request('get', {}) as Promise<GetAcceptedBody | undefined>,
    update: (body) => request('update', body as Record<string, unknown>) as Promise<UpdateAcceptedBody>,
    failPending,
    async close() {
      if (closed) return;
      closed = true;
      client.removeListener('message', onMessage);
      failPending('the device agent is closed');
      if (client.connected) {
        // Bounded: on a link that went silent the UNSUBACK never comes, and close() must still return.
        let timer: ReturnType<typeof setTimeout> | undefined;
        await Promise.race([
          client.unsubscribeAsync(topics.responses).catch(() => undefined),
          new Promise<void>((resolve) => {
            timer = setTimeout(resolve, timeoutMs);
          }),
        ]);
        clearTimeout(timer);
      }
    },
  };
}
