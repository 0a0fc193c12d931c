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
  DeltaBody,
  GetAcceptedBody,
  JsonObject,
  JsonValue,
  ShadowTarget,
  UpdateAcceptedBody,
} from '../core/document.js';
import { jsonEqual } from '../core/json-equal.js';
import { isJsonObject } from '../core/json-value.js';
import { mergeSection } from '../core/merge.js';
import { checkWithSchema } from '../core/schemas.js';
import {
  isShadowError,
  ShadowTransportError,
  ShadowValidationError,
  type ValidationIssue,
} from '../errors.js';
import type { SplitResult } from '../split/split-policy.js';
import {
  type DeltaContext,
  type DeviceAgentOptions,
  MAX_TIMER_DELAY_MS,
  type ResolvedDeviceAgentOptions,
  resolveDeviceAgentOptions,
} from './device-agent-options.js';
import { createReportedIntent } from './reported-intent.js';
import { createShadowChannel, type ShadowChannel } from './shadow-channel.js';
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

function pathValue(root: JsonObject, segments: readonly string[]): JsonValue | undefined {
  let node: JsonValue | undefined = root;
  for (const segment of segments) {
    if (!isJsonObject(node) || !Object.hasOwn(node, segment)) return undefined;
    node = node[segment];
  }
  return node;
}

function nest(segments: readonly string[], value: JsonValue): JsonObject {
  let out: JsonValue = value;
  for (let i = segments.length - 1; i >= 0; i--) out = { [segments[i] as string]: out };
  return out as JsonObject;
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

  // Connection and sync state.
  let closed = false;
  // Connected as far as the agent knows ('connect' seen, no 'close'/'offline' since). Not `client.connected`:
  // mqtt.js sets that before emitting 'connect', and telemetry published then would overtake the buffer.
  let linkUp = false;
  let ready = false; // connected and subscribed
  let synced = false; // a read completed since the last connect
  let syncing = false;
  let syncAgain = false;
  let wakeBackoff: (() => void) | undefined; // ends the wait of a read that failed, before its retry
  let connectEpoch = 0;
  let version: number | undefined;
  // `reported` as last read or acknowledged, the device's intended `reported`, and what the device applied.
  let confirmed: JsonObject | undefined;
  const intent = createReportedIntent();
  let applied: JsonObject | undefined;
  // The version at which `confirmed` was last known: a read answered before our last accepted report (the
  // answers can arrive in either order) is older than what we know, and must not roll `confirmed` back.
  let confirmedVersion: number | undefined;
  let inFlight = false;
  // After the service refused an update of several leaves: send that many leaves one per update, so only the
  // refused leaf is given up and the values coalesced with it still reach the shadow. Bounded, so a device that
  // keeps reporting goes back to one update per round instead of one per leaf.
  let isolateLeft = 0;
  let reportTimer: ReturnType<typeof setTimeout> | undefined;
  let reportBackoffMs = 0;
  // Delta handling.
  let queued: QueuedDelta | undefined;
  let handling = false;
  let lastOutcome: { state: JsonObject; values: JsonObject } | undefined;
  let failure: { state: JsonObject; attempts: number; final: boolean } | undefined;
  let retryTimer: ReturnType<typeof setTimeout> | undefined;
  // Gated values the policy held back, and when to look at them again.
  const lastReportedAt: Record<string, number> = {};
  const withheld = new Map<string, { segments: string[]; value: JsonValue }>();
  let checkTimer: ReturnType<typeof setTimeout> | undefined;
  let checkAt = Number.POSITIVE_INFINITY;
  let resyncTimer: ReturnType<typeof setInterval> | undefined;
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

  const channel: ShadowChannel = createShadowChannel(client, target, {
    timeoutMs: o.requestTimeoutMs,
    qos: o.shadowQos,
    tokenPrefix: `${o.thingName.slice(0, 24)}-${randomBytes(4).toString('hex')}`,
    events: {
      delta: onDeltaMessage,
      accepted: (body) => observeVersion(body.version),
      invalid: (error) => emit('error', error, { kind: 'message' }),
    },
  });

  // ---- versions and ordering -------------------------------------------------------------------------------

  /** Notes a version seen on the wire; a skipped version means a lost message, so read the shadow. */
  function observeVersion(seen: number): void {
    if (version !== undefined && seen > version + 1 && synced) {
      counters.gaps++;
      requestSync();
    }
    if (version === undefined || seen > version) version = seen;
  }

  function onDeltaMessage(body: DeltaBody): void {
    if (closed) return;
    if (!synced) {
      // A read is under way or will start on connect; keep the newest delta in case it is newer than the read.
      if (queued === undefined || body.version >= queued.version) {
        queued = { state: body.state, version: body.version, source: 'delta' };
      }
      return;
    }
    if (version !== undefined && body.version < version) {
      counters.deltasDiscarded++;
      return;
    }
    if (version !== undefined && body.version > version + 1) {
      // A message was lost: the read tells the truth (the delta itself is not trusted to move the version).
      counters.gaps++;
      requestSync();
      return;
    }
    version = body.version;
    queued = { state: body.state, version: body.version, source: 'delta' };
    pump();
  }

  // ---- reading the shadow -----------------------------------------------------------------------------------

  function requestSync(): void {
    if (closed || !ready) return;
    if (syncing) {
      syncAgain = true;
      return;
    }
    void runSync();
  }

  async function runSync(): Promise<void> {
    syncing = true;
    const epoch = connectEpoch;
    let delayMs = 50;
    let stale = 0;
    while (!closed && ready && epoch === connectEpoch) {
      syncAgain = false;
      try {
        counters.gets++;
        const document = await channel.get();
        if (closed || epoch !== connectEpoch) break;
        // A read answered before an update we already saw accepted (answers on different topics overtake each
        // other) is older than what we know: read again (a few times; the store only moves forward).
        const known = Math.max(confirmedVersion ?? -1, version ?? -1);
        // A 404 is as stale once a version is known: the read was answered before the update that created
        // the shadow (a real deletion is adopted after the re-reads, as they keep answering 404).
        const current = document === undefined ? known < 0 : document.version >= known;
        if (!current && ++stale < 3) continue;
        stale = 0;
        adopt(document, current && !inFlight);
        if (!syncAgain) break;
      } catch (error) {
        if (closed || epoch !== connectEpoch) break;
        emit('error', error, { kind: 'sync' });
        // Woken early by a disconnect or close(): a new connection reads at once, and no timer outlives close().
        await new Promise<void>((resolve) => {
          const wake = () => {
            clearTimeout(timer);
            wakeBackoff = undefined;
            resolve();
          };
          const timer = setTimeout(wake, delayMs);
          wakeBackoff = wake;
        });
        delayMs = Math.min(delayMs * 2, 2_000);
      }
    }
    syncing = false;
    // The connection changed while this loop was reading or backing off: the new connection's request for a
    // read only set `syncAgain` (this loop was still running), so read now for it, or the agent stays unsynced.
    if (!closed && ready && epoch !== connectEpoch) {
      void runSync();
      return;
    }
    pump();
  }

  /**
   * Takes a read document as the truth, keeping the device's unconfirmed changes on top of it.
   * `current`: no newer version was seen and no update is in flight, so the document reflects every update.
   */
  function adopt(document: GetAcceptedBody | undefined, current: boolean): void {
    // Only this device writes `reported`: a read older than its last accepted report knows less about
    // `reported` than the device does, so the device keeps its own view of that section.
    const olderThanOurs =
      document !== undefined && confirmedVersion !== undefined && document.version < confirmedVersion;
    if (!olderThanOurs) {
      confirmed = document?.state.reported;
      confirmedVersion = document?.version;
    }
    intent.rebase(confirmed, { confirm: current });
    if (document === undefined) {
      version = undefined;
    } else {
      version = document.version;
      const delta = document.state.delta;
      if (queued !== undefined && queued.version > document.version) {
        // A delta newer than the read arrived meanwhile: keep it.
      } else if (delta !== undefined && Object.keys(delta).length > 0) {
        queued = { state: delta, version: document.version, source: 'get' };
      } else {
        queued = undefined;
      }
    }
    synced = true;
  }

  // ---- the work loop ------------------------------------------------------------------------------------------

  function pump(): void {
    if (closed) return;
    if (ready && synced) {
      if (queued !== undefined && !handling) void handle(queued);
      scheduleReport();
    }
    announceIfIdle();
  }

  function isIdle(): boolean {
    return (
      ready &&
      synced &&
      !syncing &&
      !handling &&
      !inFlight &&
      queued === undefined &&
      retryTimer === undefined &&
      !intent.dirty
    );
  }

  /** Callers get copies: changing them must not change the agent's state. */
  function syncedEvent(): SyncedEvent {
    return { version, reported: copy(confirmed), applied: copy(applied) };
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
    if (closed) return;
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
    if (retryTimer !== undefined) clearTimeout(retryTimer);
    const failed = failure;
    retryTimer = setTimeout(() => {
      retryTimer = undefined;
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
    reportTimer = setTimeout(
      () => {
        reportTimer = undefined;
        void sendReport();
      },
      Math.max(o.coalesceMs, reportBackoffMs),
    );
  }

  async function sendReport(): Promise<void> {
    if (closed || !ready || !synced || inFlight) return;
    const update = intent.pending(isolateLeft > 0 ? 1 : undefined);
    if (update === undefined) {
      isolateLeft = 0;
      return pump();
    }
    const patch = update.patch;
    inFlight = true;
    const epoch = connectEpoch;
    try {
      const accepted: UpdateAcceptedBody = await channel.update({ state: { reported: patch } });
      if (epoch === connectEpoch) {
        confirmed = mergeSection(confirmed, patch);
        confirmedVersion = Math.max(confirmedVersion ?? 0, accepted.version);
      }
      intent.acknowledge(update.sent);
      if (isolateLeft > 0) isolateLeft--;
      counters.reportsAccepted++;
      reportBackoffMs = 0;
      observeVersion(accepted.version);
    } catch (error) {
      if (
        isShadowError(error) &&
        (isRetryable(error) || error.code === 'TIMEOUT' || error.code === 'TRANSPORT')
      ) {
        // Lost, throttled or a service failure: send again (reported updates without version are safe to repeat).
        reportBackoffMs = Math.min(Math.max(reportBackoffMs * 2, 50), 2_000);
        if (error.code === 'TIMEOUT' || error.code === 'TRANSPORT') {
          // Applied or not? Only a read can tell.
          intent.unsure();
          requestSync();
        }
      } else if (isShadowError(error) && error.code === 'CONFLICT') {
        emit('conflict', { version, desired: undefined, applied: undefined, error });
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

  // ---- the policy's held-back values --------------------------------------------------------------------------

  function applySplit(result: SplitResult, now: number): void {
    if (result.shadow !== undefined) {
      intent.change(result.shadow);
      idleAnnounced = false;
    }
    for (const path of result.reportedPaths) lastReportedAt[path] = now;
  }

  function trackWithheld(values: JsonObject, result: SplitResult): void {
    for (const [path, entry] of withheld) {
      if (pathValue(values, entry.segments) !== undefined) withheld.delete(path);
    }
    for (const path of result.withheldPaths) {
      const segments = path.split('.');
      const value = pathValue(values, segments);
      // A copy: the caller may reuse its values object.
      if (value !== undefined) withheld.set(path, { segments, value: structuredClone(value) });
    }
    if (result.nextCheckAt !== undefined && result.nextCheckAt < checkAt) {
      checkAt = result.nextCheckAt;
      if (checkTimer !== undefined) clearTimeout(checkTimer);
      // Clamped: a longer delay would fire after 1 ms, and the re-check would re-arm it in a busy loop. A
      // re-check that comes early finds the value still held back and arms the timer again.
      checkTimer = setTimeout(
        recheckWithheld,
        Math.min(MAX_TIMER_DELAY_MS, Math.max(0, checkAt - o.clock())),
      );
    }
  }

  /** Splits the held-back values again when they become due, so no change waits past its interval. */
  function recheckWithheld(): void {
    checkTimer = undefined;
    checkAt = Number.POSITIVE_INFINITY;
    if (closed || withheld.size === 0) return;
    let values: JsonObject | undefined;
    for (const entry of withheld.values()) values = mergeSection(values, nest(entry.segments, entry.value));
    if (values === undefined) return;
    const now = o.clock();
    const result = o.policy.split(values, { lastReported: intent.wanted, lastReportedAt, now });
    applySplit(result, now);
    trackWithheld(values, result);
    pump();
  }

  // ---- connection ---------------------------------------------------------------------------------------------

  async function onConnect(): Promise<void> {
    (client.stream as { setNoDelay?: (on: boolean) => void } | undefined)?.setNoDelay?.(true);
    connectEpoch++;
    const epoch = connectEpoch;
    ready = false;
    synced = false;
    lastOutcome = undefined; // reconcile with the full delta on every connect
    // Telemetry needs no subscription: send what was buffered now, before any newer reading can be published.
    linkUp = true;
    flushTelemetry();
    try {
      await channel.subscribe(); // subscribe before publishing anything
    } catch (error) {
      emit('error', error, { kind: 'subscribe' });
      return;
    }
    if (closed || epoch !== connectEpoch) return;
    ready = true;
    requestSync();
  }

  function onDisconnect(): void {
    linkUp = false;
    ready = false;
    synced = false;
    connectEpoch++;
    channel.failPending('the connection was lost');
    wakeBackoff?.();
    announceIfIdle();
  }

  const onConnectListener = () => {
    void onConnect();
  };
  // Without an 'error' listener an EventEmitter throws; the client reconnects by itself, so only report it.
  const onClientError = (error: Error) => emit('error', error, { kind: 'connection' });
  client.on('connect', onConnectListener);
  client.on('close', onDisconnect);
  client.on('offline', onDisconnect);
  client.on('error', onClientError);
  if (client.connected) void onConnect();

  if (o.resyncIntervalMs > 0) {
    resyncTimer = setInterval(() => {
      if (ready && synced && !syncing) requestSync();
    }, o.resyncIntervalMs);
    resyncTimer.unref?.();
  }

  return {
    report(values) {
      if (closed)
        throw new ShadowTransportError(`the device agent of thing '${o.thingName}' is closed`, target);
      const now = o.clock();
      const result = o.policy.split(values, { lastReported: intent.wanted, lastReportedAt, now });
      applySplit(result, now);
      trackWithheld(values, result);
      if (result.telemetry !== undefined) {
        const payload = JSON.stringify({ state: result.telemetry, timestamp: now });
        if (linkUp) publishTelemetry(payload);
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
      connected: ready,
      synced: isIdle(),
      version,
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
      if (closed) {
        return Promise.reject(
          new ShadowTransportError(`the device agent of thing '${o.thingName}' is closed`, target),
        );
      }
      if (isIdle()) return Promise.resolve(syncedEvent());
      return new Promise((resolve, reject) => syncWaiters.push({ resolve, reject }));
    },
    async close() {
      if (closed) return;
      closed = true;
      linkUp = false;
      ready = false;
      for (const timer of [reportTimer, retryTimer, checkTimer]) if (timer !== undefined) clearTimeout(timer);
      if (resyncTimer !== undefined) clearInterval(resyncTimer);
      wakeBackoff?.();
      client.removeListener('connect', onConnectListener);
      client.removeListener('close', onDisconnect);
      client.removeListener('offline', onDisconnect);
      client.removeListener('error', onClientError);
      const closedError = new ShadowTransportError(
        `the device agent of thing '${o.thingName}' is closed`,
        target,
      );
      for (const waiter of syncWaiters.splice(0)) waiter.reject(closedError);
      await channel.close();
      if (owned) {
        // A graceful end waits for every in-flight QoS 1 message, forever on a link that went silent: wait
        // for them at most the request timeout, then end the client by force.
        const drained = await new Promise<boolean>((resolve) => {
          if (Object.keys(client.outgoing).length === 0) return resolve(true);
          const onEmpty = () => {
            clearTimeout(timer);
            resolve(true);
          };
          const timer = setTimeout(() => {
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
