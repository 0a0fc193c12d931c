/**
 * The device side of a shadow: follows deltas in version order, reconciles after every (re)connect, reports
 * what it applied, and reports its own values through a split policy (shadow part coalesced into reported
 * updates, telemetry part published to a plain topic).
 *
 * Reports and applied deltas change the device's intended `reported` section (see `reported-intent.ts`);
 * one update at a time carries every unconfirmed leaf of it, so reports made while offline or while an
 * update is in flight collapse into one patch holding the newest value of each leaf. After a read, the
 * intent is rebased on the document read, keeping the device's unconfirmed changes.
 */
import { randomBytes } from 'node:crypto';
import { connect, type MqttClient } from 'mqtt';
import { computeDelta } from '../core/delta.js';
import type {
  GetAcceptedBody,
  JsonObject,
  JsonValue,
  ShadowTarget,
  UpdateAcceptedBody,
} from '../core/document.js';
import { jsonEqual } from '../core/json-equal.js';
import { mergeSection } from '../core/merge.js';
import { checkWithSchema } from '../core/schemas.js';
import type { ShadowTopicSuffix } from '../core/topics.js';
import {
  isShadowError,
  ShadowTransportError,
  ShadowValidationError,
  type ValidationIssue,
} from '../errors.js';
import {
  createReservedTopicSession,
  type ObservedSuffix,
  type ReservedTopicSession,
} from '../mqtt-session/reserved-topic-session.js';
import type { SplitResult } from '../split/split-policy.js';
import { fullJitterDelay } from '../update/retry-policy.js';
import {
  type DeltaContext,
  type DeviceAgentOptions,
  type ResolvedDeviceAgentOptions,
  resolveDeviceAgentOptions,
} from './device-agent-options.js';
import { createReportSplitter } from './report-splitter.js';
import { createReportedIntent } from './reported-intent.js';
import {
  INITIAL_SYNC_STATE,
  type SyncEffect,
  type SyncEvent,
  type SyncState,
  stepSync,
} from './sync-machine.js';
import { createTelemetryBuffer } from './telemetry-buffer.js';

/** Payload of the `delta` event: a delta the agent is about to hand to the handler. */
export interface DeltaEvent {
  version: number;
  state: JsonObject;
  source: 'delta' | 'get';
}

/** Payload of the `synced` event: the agent has nothing left to do. */
export interface SyncedEvent {
  /** The newest shadow version the agent knows. */
  version: number | undefined;
  /** The `reported` section as the shadow holds it. */
  reported: JsonObject | undefined;
  /** What the device has applied. */
  applied: JsonObject | undefined;
}

/**
 * Payload of the `conflict` event: the device could not apply what was desired (the handler returned values
 * that differ from the delta), so the delta stays until desired or the device changes; or the service
 * answered an update with 409.
 */
export interface ConflictEvent {
  version: number | undefined;
  /** The delta asked for, when the conflict came from a handler. */
  desired: JsonObject | undefined;
  /** What the handler applied, when the conflict came from a handler. */
  applied: JsonObject | undefined;
  /** The service's 409 error, when the conflict came from the service. */
  error: unknown;
}

/** What went wrong, for the `error` event. */
export interface AgentErrorInfo {
  /**
   * `handler`: onDelta threw; `schema`: a delta failed the schema; `report`: the service refused a report;
   * `telemetry`: a telemetry publish failed; `message`: a message on the shadow's topics was malformed;
   * `sync`: a read failed; `subscribe`: the broker refused a subscription; `connection`: the MQTT client
   * reported an error (for example a refused CONNACK); it keeps reconnecting as its options say.
   */
  kind: 'handler' | 'schema' | 'report' | 'telemetry' | 'message' | 'sync' | 'subscribe' | 'connection';
  /** The shadow version concerned, when known. */
  version?: number;
}

/** Listeners of the agent's events. */
export interface DeviceAgentEvents {
  delta: (event: DeltaEvent) => void;
  synced: (event: SyncedEvent) => void;
  conflict: (event: ConflictEvent) => void;
  error: (error: unknown, info: AgentErrorInfo) => void;
}

/** Counters of the agent. */
export interface DeviceAgentStats {
  /** Shadow reads made (connects, gaps, resyncs). */
  gets: number;
  /** Reported updates accepted by the service. */
  reportsAccepted: number;
  /** Deltas handed to the handler. */
  deltasHandled: number;
  /** Delta messages discarded as older than the newest version processed. */
  deltasDiscarded: number;
  /** Version gaps that triggered a read. */
  gaps: number;
  /** Telemetry messages published. */
  telemetryPublished: number;
  /** Telemetry messages waiting for a connection. */
  telemetryBuffered: number;
  /** Telemetry messages dropped because the offline buffer was full. */
  telemetryDropped: number;
}

/** A running device agent. */
export interface DeviceAgent {
  /**
   * Reports the device's values through the policy: the shadow part is coalesced into the next reported
   * update (sent without version: the device owns `reported`), the telemetry part is published to the
   * telemetry topic as `{ state, timestamp }` (timestamp in epoch milliseconds). Works offline.
   *
   * @param values - current values (partial: absent keys are left as they are; `null` deletes a shadow key)
   * @returns how the values were split
   * @throws ShadowValidationError when the values are not a JSON object
   */
  report(values: JsonObject): SplitResult;
  /**
   * Adds an event listener.
   * @returns a function removing it
   */
  on<E extends keyof DeviceAgentEvents>(event: E, listener: DeviceAgentEvents[E]): () => void;
  /** What the device has applied (merge of the handler's results), or `undefined`. */
  applied(): JsonObject | undefined;
  /** The agent's view of the shadow: newest version, confirmed `reported`, and whether it is in sync. */
  status(): {
    connected: boolean;
    synced: boolean;
    version: number | undefined;
    reported: JsonObject | undefined;
    pending: boolean;
  };
  /** Counters. */
  stats(): DeviceAgentStats;
  /**
   * Resolves once the agent is connected, in sync and has nothing pending (reports sent, deltas handled).
   * @throws ShadowTransportError when the agent is closed first
   */
  whenSynced(): Promise<SyncedEvent>;
  /**
   * Stops timers and listeners, unsubscribes, and ends the MQTT client if the agent created it (waiting for
   * in-flight messages at most `requestTimeoutMs`, then by force).
   */
  close(): Promise<void>;
}

/** The agent's response topics (never `…/shadow/#`: AWS may add topics) and the broadcasts it follows. */
const DEVICE_SUFFIXES: readonly ShadowTopicSuffix[] = [
  'get/accepted',
  'get/rejected',
  'update/accepted',
  'update/rejected',
  'update/delta',
];
const DEVICE_OBSERVED: readonly ObservedSuffix[] = ['update/accepted', 'update/delta'];

interface QueuedDelta {
  state: JsonObject;
  version: number;
  source: 'delta' | 'get';
}

/** Throttling and server-side failures pass; other refusals (400, 413...) would fail the same way again. */
function isRetryable(error: { code: string; statusCode: number | undefined }): boolean {
  return error.code === 'THROTTLED' || (error.statusCode !== undefined && error.statusCode >= 500);
}

function copy<T>(value: T): T {
  return value === undefined ? value : structuredClone(value);
}

/**
 * Starts a device agent: connects (or uses your client), subscribes to the shadow's response topics before
 * publishing anything, reads the shadow and reconciles with its delta, then follows deltas.
 *
 * Ordering: a delta older than the newest version seen is discarded (`<`, not `<=`: the `update/accepted`
 * and `update/delta` of one update share a version); a version that skips one triggers a read, since a
 * message was lost. Deltas carry the full current delta, so only the newest waiting one is handled.
 *
 * @param options - see {@link DeviceAgentOptions}
 * @returns the agent, once its first subscription and read are under way (it works offline too)
 * @throws ShadowOptionsError when the options are invalid
 * @example
 * const agent = await createDeviceAgent({
 *   thingName: 'ac-17',
 *   mqtt: 'mqtts://example-ats.iot.eu-west-1.amazonaws.com:8883',
 *   policy: splitPolicy({ fields: { temperature: 'telemetry', humidity: 'telemetry' } }),
 *   onDelta: async (delta) => { await hvac.apply(delta); return delta; },
 * });
 * agent.report({ power: 'on', temperature: 22.4, humidity: 41 });
 * await agent.close();
 */
export async function createDeviceAgent<D = JsonObject>(
  options: DeviceAgentOptions<D>,
): Promise<DeviceAgent> {
  const o: ResolvedDeviceAgentOptions<D> = resolveDeviceAgentOptions(options);
  const target: ShadowTarget =
    o.shadowName === undefined
      ? { thingName: o.thingName }
      : { thingName: o.thingName, shadowName: o.shadowName };
  const owned = typeof o.mqtt === 'string' || !('publish' in o.mqtt);
  const client: MqttClient = owned
    ? typeof o.mqtt === 'string'
      ? connect(o.mqtt, { clientId: o.thingName })
      : connect((o.mqtt as { url: string }).url, {
          clientId: o.thingName,
          ...(o.mqtt as { options?: object }).options,
        })
    : (o.mqtt as MqttClient);
  const telemetryTopic = o.policy.telemetryTopicFor(o.thingName);

  const listeners: { [E in keyof DeviceAgentEvents]: Set<DeviceAgentEvents[E]> } = {
    delta: new Set(),
    synced: new Set(),
    conflict: new Set(),
    error: new Set(),
  };
  const counters = {
    gets: 0,
    reportsAccepted: 0,
    deltasHandled: 0,
    deltasDiscarded: 0,
    gaps: 0,
    telemetryPublished: 0,
  };
  const telemetry = createTelemetryBuffer<string>(o.telemetryBufferSize);
  const intent = createReportedIntent();
  const splitter = createReportSplitter({
    policy: o.policy,
    now: o.clock,
    timers: o.timers,
    lastReported: () => intent.wanted,
    onShadow: (patch) => {
      intent.change(patch);
      idleAnnounced = false;
    },
    onRechecked: () => pump(),
  });

  // Connection, reading and ordering: the pure machine's state (see sync-machine.ts), changed only by `dispatch`.
  // Its `link` is what the agent knows ('connect' seen, no 'close'/'offline' since), not `client.connected`:
  // mqtt.js sets that before emitting 'connect', and telemetry published then would overtake the buffer.
  let machine: SyncState = INITIAL_SYNC_STATE;
  let retryTimer: unknown; // the backoff of a failed read
  // `reported` as last read or acknowledged, the device's intended `reported`, and what the device applied.
  let confirmed: JsonObject | undefined;
  let applied: JsonObject | undefined;
  let inFlight = false;
  // After the service refused an update of several leaves: send that many leaves one per update, so only the
  // refused leaf is given up and the values coalesced with it still reach the shadow. Bounded, so a device that
  // keeps reporting goes back to one update per round instead of one per leaf.
  let isolateLeft = 0;
  const timers = o.timers;
  let reportTimer: unknown;
  // Failed report attempts in a row: the next one waits a fully jittered delay (see `backoff`).
  let reportFailures = 0;
  // Delta handling.
  let queued: QueuedDelta | undefined;
  let handling = false;
  let lastOutcome: { state: JsonObject; values: JsonObject } | undefined;
  let failure: { state: JsonObject; attempts: number; final: boolean } | undefined;
  let handlerRetryTimer: unknown;
  // Gated values the policy held back, and when to look at them again.
  let resyncTimer: unknown;
  let idleAnnounced = false;
  const syncWaiters: { resolve: (event: SyncedEvent) => void; reject: (error: unknown) => void }[] = [];

  function emit<E extends keyof DeviceAgentEvents>(
    event: E,
    ...args: Parameters<DeviceAgentEvents[E]>
  ): void {
    for (const listener of listeners[event]) {
      try {
        (listener as (...a: Parameters<DeviceAgentEvents[E]>) => void)(...args);
      } catch {
        // A listener's failure must not break the agent's state machine.
      }
    }
  }

  /** The wait before the n-th retry of a read or a report: full jitter, as the update engine's retries. */
  const backoff = (failures: number) =>
    fullJitterDelay(failures, {
      baseDelayMs: o.retryBaseDelayMs,
      maxDelayMs: o.retryMaxDelayMs,
      random: o.random,
    });

  const session: ReservedTopicSession = createReservedTopicSession(client, {
    timeoutMs: o.requestTimeoutMs,
    qos: o.shadowQos,
    // ≤ 24 + 1 + 8 bytes: tokens stay within AWS's 64 with the counter.
    clientTokenPrefix: `${o.thingName.slice(0, 24)}-${randomBytes(4).toString('hex')}`,
    validate: true,
    suffixes: DEVICE_SUFFIXES,
    observe: DEVICE_OBSERVED,
    // One shadow's five topics: far inside AWS's per-connection quotas, never released.
    mode: 'per-shadow',
    maxSubscriptions: 50,
    maxFiltersPerSubscribe: 8,
    clock: timers,
    owner: `the device agent of thing '${o.thingName}'`,
    onMessage(message) {
      if (message.kind === 'update/delta') dispatch({ type: 'delta', body: message.body });
      else if (message.kind === 'update/accepted')
        dispatch({ type: 'accepted-seen', version: message.body.version });
    },
    onInvalid: (error) => emit('error', error, { kind: 'message' }),
  });

  // ---- the machine's runtime -------------------------------------------------------------------------------

  /** Feeds an event to the pure machine and performs the effects it asks for, in order. */
  function dispatch(event: SyncEvent): void {
    const step = stepSync(machine, event);
    machine = step.state;
    // Busy again (a read started, the link dropped): the next idle moment is announced again.
    if (!isIdle()) idleAnnounced = false;
    for (const effect of step.effects) perform(effect);
  }

  function perform(effect: SyncEffect): void {
    switch (effect.type) {
      case 'subscribe':
        session.subscribe(target).then(
          () => dispatch({ type: 'subscribed', epoch: effect.epoch }),
          (error: unknown) => dispatch({ type: 'subscribe-failed', epoch: effect.epoch, error }),
        );
        return;
      case 'read':
        (session.request('get', target, {}) as Promise<GetAcceptedBody | undefined>).then(
          (document) =>
            dispatch({ type: 'read-answered', epoch: effect.epoch, document, reportInFlight: inFlight }),
          (error: unknown) => dispatch({ type: 'read-failed', epoch: effect.epoch, error }),
        );
        return;
      case 'start-retry-timer':
        retryTimer = timers.setTimer(() => {
          retryTimer = undefined;
          dispatch({ type: 'retry-due' });
        }, backoff(effect.retry));
        return;
      case 'cancel-retry-timer':
        if (handlerRetryTimer !== undefined) timers.clearTimer(handlerRetryTimer);
        retryTimer = undefined;
        return;
      case 'adopt':
        adopt(effect.document, effect.current, effect.keepReported);
        return;
      case 'queue-delta': {
        const { body } = effect;
        if (!effect.ifNewer || queued === undefined || body.version >= queued.version) {
          queued = { state: body.state, version: body.version, source: 'delta' };
        }
        return;
      }
      case 'count':
        counters[effect.counter]++;
        return;
      case 'error':
        emit('error', effect.error, { kind: effect.kind });
        return;
      case 'fail-pending':
        // The agent's clients connect with a clean session: its subscriptions went with the connection, and
        // the next connect subscribes again before reading (mqtt.js re-subscribes by itself only when it
        // reconnects on its own).
        session.connectionLost('the connection was lost');
        return;
      case 'flush-telemetry':
        flushTelemetry();
        return;
      case 'reset-outcome':
        lastOutcome = undefined; // reconcile with the full delta on every connect
        return;
      case 'pump':
        pump();
        return;
    }
  }

  const requestSync = () => dispatch({ type: 'sync-wanted' });

  /**
   * Takes a read document as the truth, keeping the device's unconfirmed changes on top of it.
   * `current`: no newer version was seen and no update is in flight, so the document reflects every update.
   * `keepReported`: the read is older than the device's last accepted report, which knows `reported` better.
   */
  function adopt(document: GetAcceptedBody | undefined, current: boolean, keepReported: boolean): void {
    if (!keepReported) confirmed = document?.state.reported;
    intent.rebase(confirmed, { confirm: current });
    if (document === undefined) return;
    const delta = document.state.delta;
    if (queued !== undefined && queued.version > document.version) {
      // A delta newer than the read arrived meanwhile: keep it.
    } else if (delta !== undefined && Object.keys(delta).length > 0) {
      queued = { state: delta, version: document.version, source: 'get' };
    } else {
      queued = undefined;
    }
  }

  // ---- the work loop ------------------------------------------------------------------------------------------

  function pump(): void {
    if (machine.closed) return;
    if (machine.link === 'ready' && machine.synced) {
      if (queued !== undefined && !handling) void handle(queued);
      scheduleReport();
    }
    announceIfIdle();
  }

  function isIdle(): boolean {
    return (
      machine.link === 'ready' &&
      machine.synced &&
      machine.sync === 'idle' &&
      !handling &&
      !inFlight &&
      queued === undefined &&
      handlerRetryTimer === undefined &&
      !intent.dirty
    );
  }

  /** Callers get copies: changing them must not change the agent's state. */
  function syncedEvent(): SyncedEvent {
    return { version: machine.version, reported: copy(confirmed), applied: copy(applied) };
  }

  function announceIfIdle(): void {
    if (!isIdle()) {
      idleAnnounced = false;
      return;
    }
    if (idleAnnounced) return;
    idleAnnounced = true;
    const event = syncedEvent();
    for (const waiter of syncWaiters.splice(0)) waiter.resolve(event);
    emit('synced', event);
  }

  // ---- deltas -----------------------------------------------------------------------------------------------

  function refuse(item: QueuedDelta, issues: readonly ValidationIssue[]): void {
    const error = new ShadowValidationError(
      `delta of version ${item.version} for thing '${o.thingName}' fails the schema: ${issues
        .map((issue) => `${issue.path.join('.') || '(root)'}: ${issue.message}`)
        .join('; ')}`,
      { ...target, issues },
    );
    failure = { state: item.state, attempts: o.maxHandlerAttempts, final: true };
    setWanted({ [o.errorKey]: { kind: 'schema', version: item.version, message: error.message } });
    emit('error', error, { kind: 'schema', version: item.version });
  }

  async function handle(item: QueuedDelta): Promise<void> {
    queued = undefined;
    // The service re-publishes the full delta after every update while desired and reported differ. Skip it
    // when the device has applied and reports every value it asks for (the report is on its way), when the handler
    // already answered this delta and the device still reports that answer, and when it failed for good
    // (reporting the failure again would re-publish the delta again: a loop).
    if (
      computeDelta(item.state, applied) === undefined &&
      computeDelta(item.state, intent.wanted) === undefined
    ) {
      return pump();
    }
    if (
      lastOutcome !== undefined &&
      jsonEqual(lastOutcome.state, item.state) &&
      computeDelta(lastOutcome.values, applied) === undefined &&
      computeDelta(lastOutcome.values, intent.wanted) === undefined
    ) {
      return pump();
    }
    if (failure?.final && jsonEqual(failure.state, item.state)) return pump();
    let delta = item.state as unknown as D;
    if (o.schema !== undefined) {
      const checked = checkWithSchema(o.schema, item.state, { ...target, what: 'delta' });
      if (checked.issues !== undefined) {
        refuse(item, checked.issues);
        return pump();
      }
      delta = checked.value;
    }
    handling = true;
    emit('delta', { version: item.version, state: item.state, source: item.source });
    const context: DeltaContext = {
      version: item.version,
      thingName: o.thingName,
      shadowName: o.shadowName,
      applied: copy(applied),
      source: item.source,
    };
    let result: JsonObject | undefined;
    let thrown: { error: unknown } | undefined;
    try {
      result = ((await o.onDelta(delta, context)) ?? undefined) as JsonObject | undefined;
      if (result !== undefined && (typeof result !== 'object' || result === null || Array.isArray(result))) {
        throw new TypeError(
          `onDelta must return the applied values as an object or nothing, got ${JSON.stringify(result)}`,
        );
      }
    } catch (error) {
      thrown = { error };
    }
    handling = false;
    if (machine.closed) return;
    counters.deltasHandled++;
    if (thrown !== undefined) {
      onHandlerFailure(item, thrown.error);
      return pump();
    }
    const values = (result ?? item.state) as JsonObject;
    applied = mergeSection(applied, values);
    lastOutcome = { state: item.state, values };
    const patch: JsonObject = { ...values };
    if (failure !== undefined) {
      failure = undefined;
      patch[o.errorKey] = null;
    }
    setWanted(patch);
    const disagrees = Object.keys(item.state).some((key) => {
      const got = values[key];
      return got === undefined || !jsonEqual(got, item.state[key] as JsonValue);
    });
    if (disagrees)
      emit('conflict', { version: item.version, desired: item.state, applied: values, error: undefined });
    pump();
  }

  function onHandlerFailure(item: QueuedDelta, error: unknown): void {
    const attempts = failure !== undefined && jsonEqual(failure.state, item.state) ? failure.attempts + 1 : 1;
    const final = attempts >= o.maxHandlerAttempts;
    failure = { state: item.state, attempts, final };
    emit('error', error, { kind: 'handler', version: item.version });
    if (final) {
      const message = error instanceof Error ? error.message : String(error);
      setWanted({ [o.errorKey]: { kind: 'handler', version: item.version, attempts, message } });
      return;
    }
    // One retry at a time: a timer left behind would outlive close() and re-queue its delta later.
    if (retryTimer !== undefined) timers.clearTimer(retryTimer);
    const failed = failure;
    handlerRetryTimer = timers.setTimer(() => {
      handlerRetryTimer = undefined;
      // A newer delta that arrived meanwhile supersedes the retry: one waiting, or one handled since (which
      // replaced or cleared `failure`). Retrying the older one would apply a stale value over a newer one.
      if (failure === failed) queued ??= item;
      pump();
    }, o.handlerRetryDelayMs);
  }

  // ---- reports ------------------------------------------------------------------------------------------------

  /** Adds values to what the device wants `reported` to hold. */
  function setWanted(patch: JsonObject): void {
    intent.change(patch);
    idleAnnounced = false;
    pump();
  }

  function scheduleReport(): void {
    if (inFlight || reportTimer !== undefined || !intent.dirty) return;
    reportTimer = timers.setTimer(
      () => {
        reportTimer = undefined;
        void sendReport();
      },
      Math.max(o.coalesceMs, reportFailures === 0 ? 0 : backoff(reportFailures)),
    );
  }

  async function sendReport(): Promise<void> {
    if (machine.closed || machine.link !== 'ready' || !machine.synced || inFlight) return;
    const update = intent.pending(isolateLeft > 0 ? 1 : undefined);
    if (update === undefined) {
      isolateLeft = 0;
      return pump();
    }
    const patch = update.patch;
    inFlight = true;
    const epoch = machine.epoch;
    try {
      const accepted: UpdateAcceptedBody = (await session.request('update', target, {
        state: { reported: patch },
      })) as UpdateAcceptedBody;
      if (epoch === machine.epoch) confirmed = mergeSection(confirmed, patch);
      intent.acknowledge(update.sent);
      if (isolateLeft > 0) isolateLeft--;
      counters.reportsAccepted++;
      reportFailures = 0;
      dispatch({ type: 'report-accepted', epoch, version: accepted.version });
    } catch (error) {
      if (
        isShadowError(error) &&
        (isRetryable(error) || error.code === 'TIMEOUT' || error.code === 'TRANSPORT')
      ) {
        // Lost, throttled or a service failure: send again (reported updates without version are safe to repeat).
        reportFailures++;
        if (error.code === 'TIMEOUT' || error.code === 'TRANSPORT') {
          // Applied or not? Only a read can tell.
          intent.unsure();
          requestSync();
        }
      } else if (isShadowError(error) && error.code === 'CONFLICT') {
        emit('conflict', { version: machine.version, desired: undefined, applied: undefined, error });
        requestSync();
      } else if (update.sent.length > 1) {
        // The service refuses this content (too large, too deep...), maybe because of one leaf: find it.
        isolateLeft = update.sent.length;
      } else {
        // The service refuses this leaf: drop it, or it would be refused forever.
        intent.discardLeaves(update.sent, confirmed);
        if (isolateLeft > 0) isolateLeft--;
        emit('error', error, { kind: 'report' });
      }
    } finally {
      inFlight = false;
    }
    pump();
  }

  // ---- telemetry ----------------------------------------------------------------------------------------------

  function publishTelemetry(payload: string): void {
    client.publish(telemetryTopic, payload, { qos: o.telemetryQos }, (error) => {
      if (error) emit('error', error, { kind: 'telemetry' });
    });
    counters.telemetryPublished++;
  }

  function flushTelemetry(): void {
    for (const payload of telemetry.drain()) publishTelemetry(payload);
  }

  // ---- connection ---------------------------------------------------------------------------------------------

  function onConnect(): void {
    (client.stream as { setNoDelay?: (on: boolean) => void } | undefined)?.setNoDelay?.(true);
    dispatch({ type: 'connected' });
  }

  const onDisconnect = () => dispatch({ type: 'disconnected' });

  const onConnectListener = () => onConnect();
  // Without an 'error' listener an EventEmitter throws; the client reconnects by itself, so only report it.
  const onClientError = (error: Error) => emit('error', error, { kind: 'connection' });
  client.on('connect', onConnectListener);
  client.on('close', onDisconnect);
  client.on('offline', onDisconnect);
  client.on('error', onClientError);
  if (client.connected) onConnect();

  if (o.resyncIntervalMs > 0) {
    // A safety net only: with Node's timers it must not keep a process alive on its own.
    const arm = () => {
      resyncTimer = timers.setTimer(resync, o.resyncIntervalMs);
      (resyncTimer as { unref?: () => void }).unref?.();
    };
    const resync = () => {
      arm();
      if (machine.link === 'ready' && machine.synced && machine.sync === 'idle') requestSync();
    };
    arm();
  }

  return {
    report(values) {
      if (machine.closed)
        throw new ShadowTransportError(`the device agent of thing '${o.thingName}' is closed`, target);
      const now = o.clock();
      const result = splitter.split(values);
      if (result.telemetry !== undefined) {
        const payload = JSON.stringify({ state: result.telemetry, timestamp: now });
        if (machine.link !== 'down') publishTelemetry(payload);
        else telemetry.push(payload);
      }
      pump();
      return result;
    },
    on(event, listener) {
      listeners[event].add(listener);
      return () => {
        listeners[event].delete(listener);
      };
    },
    applied: () => copy(applied),
    status: () => ({
      connected: machine.link === 'ready',
      synced: isIdle(),
      version: machine.version,
      reported: copy(confirmed),
      pending: intent.dirty,
    }),
    stats: () => ({
      ...counters,
      telemetryBuffered: telemetry.size,
      telemetryDropped: telemetry.dropped,
    }),
    whenSynced() {
      // Closed first: a closed agent follows nothing, however in sync it was when it stopped.
      if (machine.closed) {
        return Promise.reject(
          new ShadowTransportError(`the device agent of thing '${o.thingName}' is closed`, target),
        );
      }
      if (isIdle()) return Promise.resolve(syncedEvent());
      // Busy now although the last idle moment was announced (a gap read started without an announcement in
      // between): the next idle moment must be announced again, or this waiter would never be resolved.
      idleAnnounced = false;
      return new Promise((resolve, reject) => syncWaiters.push({ resolve, reject }));
    },
    async close() {
      if (machine.closed) return;
      dispatch({ type: 'close' });
      splitter.close();
      for (const timer of [reportTimer, handlerRetryTimer, resyncTimer])
        if (timer !== undefined) timers.clearTimer(timer);
      client.removeListener('connect', onConnectListener);
      client.removeListener('close', onDisconnect);
      client.removeListener('offline', onDisconnect);
      client.removeListener('error', onClientError);
      const closedError = new ShadowTransportError(
        `the device agent of thing '${o.thingName}' is closed`,
        target,
      );
      for (const waiter of syncWaiters.splice(0)) waiter.reject(closedError);
      await session.close();
      if (owned) {
        // A graceful end waits for every in-flight QoS 1 message, forever on a link that went silent: wait
        // for them at most the request timeout, then end the client by force.
        const drained = await new Promise<boolean>((resolve) => {
          if (Object.keys(client.outgoing).length === 0) return resolve(true);
          const onEmpty = () => {
            timers.clearTimer(timer);
            resolve(true);
          };
          const timer = timers.setTimer(() => {
            client.removeListener('outgoingEmpty', onEmpty);
            resolve(false);
          }, o.requestTimeoutMs);
          client.once('outgoingEmpty', onEmpty);
        });
        await client.endAsync(!drained);
      }
    },
  };
}
