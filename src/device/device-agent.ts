/**
 * The device side of a shadow: follows deltas in version order, reconciles after every (re)connect, reports
 * what it applied, and reports its own values through a split policy (shadow part coalesced into reported
 * updates, telemetry part published to a plain topic).
 *
 * Reports and applied deltas change the device's intended `reported` section (see `reported-intent.ts`);
 * one update at a time carries every unconfirmed leaf of it, so reports made while offline or while an
 * update is in flight collapse into one patch holding the newest value of each leaf. After a read, the
 * intent is rebased on the document read, keeping the device's unconfirmed changes.
 *
 * The decisions are three pure state machines, `(state, event) -> (state, effects)`: connection, reads and
 * ordering (`sync-machine.ts`), delta handling (`delta-machine.ts`) and the report loop (`report-machine.ts`).
 * This module is their driver: it feeds them what happens (MQTT messages, answers, timers, the handler's
 * outcome) and performs the effects they ask for with the client, the reserved-topic session and the injected
 * timer clock, so the whole agent runs on fake time in tests.
 */
import { randomBytes } from 'node:crypto';
import { connect, type MqttClient } from 'mqtt';
import type { GetAcceptedBody, JsonObject, ShadowTarget, UpdateAcceptedBody } from '../core/document.js';
import { mergeSection } from '../core/merge.js';
import { checkWithSchema } from '../core/schemas.js';
import type { ShadowTopicSuffix } from '../core/topics.js';
import { ShadowTransportError, ShadowValidationError } from '../errors.js';
import {
  createReservedTopicSession,
  type ObservedSuffix,
  type ReservedTopicSession,
} from '../mqtt-session/reserved-topic-session.js';
import type { SplitResult } from '../split/split-policy.js';
import { fullJitterDelay } from '../update/retry-policy.js';
import {
  type DeltaEffect,
  type DeltaEvent as DeltaMachineEvent,
  type DeltaRules,
  type DeltaState,
  INITIAL_DELTA_STATE,
  type QueuedDelta,
  stepDelta,
} from './delta-machine.js';
import {
  type DeltaContext,
  type DeviceAgentOptions,
  type ResolvedDeviceAgentOptions,
  resolveDeviceAgentOptions,
} from './device-agent-options.js';
import {
  INITIAL_REPORT_STATE,
  type ReportEffect,
  type ReportEvent,
  type ReportState,
  stepReport,
} from './report-machine.js';
import { createReportSplitter, type ReportSplitter } from './report-splitter.js';
import { createReportedIntent, type ReportedIntent, type SentLeaves } from './reported-intent.js';
import {
  INITIAL_SYNC_STATE,
  type SyncEffect,
  type SyncEvent,
  type SyncState,
  stepSync,
} from './sync-machine.js';
import { createTelemetryBuffer, type TelemetryBuffer } from './telemetry-buffer.js';

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

function copy<T>(value: T): T {
  return value === undefined ? value : structuredClone(value);
}

/** The update in flight: what it carried and on which connection it left. */
interface SentUpdate {
  patch: JsonObject;
  sent: SentLeaves;
  epoch: number;
}

/**
 * The runtime of one agent: holds the three machines' states (connection and reads, deltas, reports), feeds
 * them events, and performs their effects with the MQTT client, the reserved-topic session, the injected timer
 * clock and the user's handler. Every decision is a machine's; what is left here is I/O and bookkeeping.
 */
class AgentRuntime<D> {
  /** Connection, reading and ordering (see sync-machine.ts). Its `link` is what the agent knows ('connect' seen,
   * no 'close'/'offline' since), not `client.connected`: mqtt.js sets that before emitting 'connect', and
   * telemetry published then would overtake the buffer. */
  sync: SyncState = INITIAL_SYNC_STATE;
  deltas: DeltaState = INITIAL_DELTA_STATE;
  reports: ReportState = INITIAL_REPORT_STATE;
  /** `reported` as last read or acknowledged. */
  confirmed: JsonObject | undefined;
  /** The device's intended `reported` and its unconfirmed leaves. */
  readonly intent: ReportedIntent = createReportedIntent();
  readonly telemetry: TelemetryBuffer<string>;
  readonly splitter: ReportSplitter;
  readonly session: ReservedTopicSession;
  readonly target: ShadowTarget;
  readonly telemetryTopic: string;
  readonly rules: DeltaRules;
  readonly listeners: { [E in keyof DeviceAgentEvents]: Set<DeviceAgentEvents[E]> } = {
    delta: new Set(),
    synced: new Set(),
    conflict: new Set(),
    error: new Set(),
  };
  readonly counters = {
    gets: 0,
    reportsAccepted: 0,
    deltasHandled: 0,
    deltasDiscarded: 0,
    gaps: 0,
    telemetryPublished: 0,
  };
  readonly syncWaiters: { resolve: (event: SyncedEvent) => void; reject: (error: unknown) => void }[] = [];
  /** The current idle moment was announced (`synced` emitted, waiters resolved). */
  idleAnnounced = false;
  /** The update in flight, for its acknowledgement or refusal. */
  sent: SentUpdate | undefined;
  // Handles of the clock's timers, each started and cancelled only as its machine says: the read backoff (sync
  // machine), the report timer (report machine), the handler retry (delta machine); and the resync safety net.
  readTimer: unknown;
  reportTimer: unknown;
  handlerTimer: unknown;
  resyncTimer: unknown;

  constructor(
    readonly o: ResolvedDeviceAgentOptions<D>,
    readonly client: MqttClient,
  ) {
    this.target =
      o.shadowName === undefined
        ? { thingName: o.thingName }
        : { thingName: o.thingName, shadowName: o.shadowName };
    this.telemetryTopic = o.policy.telemetryTopicFor(o.thingName);
    this.rules = { errorKey: o.errorKey, maxHandlerAttempts: o.maxHandlerAttempts };
    this.telemetry = createTelemetryBuffer<string>(o.telemetryBufferSize);
    this.splitter = createReportSplitter({
      policy: o.policy,
      now: o.clock,
      timers: o.timers,
      lastReported: () => this.intent.wanted,
      onShadow: (patch) => {
        this.intent.change(patch);
        this.idleAnnounced = false;
      },
      onRechecked: () => this.pump(),
    });
    this.session = createReservedTopicSession(client, {
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
      clock: o.timers,
      owner: `the device agent of thing '${o.thingName}'`,
      onMessage: (message) => {
        if (message.kind === 'update/delta') this.dispatchSync({ type: 'delta', body: message.body });
        else if (message.kind === 'update/accepted')
          this.dispatchSync({ type: 'accepted-seen', version: message.body.version });
      },
      onInvalid: (error) => this.emit('error', error, { kind: 'message' }),
    });
  }

  emit<E extends keyof DeviceAgentEvents>(event: E, ...args: Parameters<DeviceAgentEvents[E]>): void {
    for (const listener of this.listeners[event]) {
      try {
        (listener as (...a: Parameters<DeviceAgentEvents[E]>) => void)(...args);
      } catch {
        // A listener's failure must not break the agent's state machines.
      }
    }
  }

  /** The wait before the n-th retry of a read or a report: full jitter, as the update engine's retries. */
  backoff(retry: number): number {
    const o = this.o;
    return fullJitterDelay(retry, {
      baseDelayMs: o.retryBaseDelayMs,
      maxDelayMs: o.retryMaxDelayMs,
      random: o.random,
    });
  }

  closedError(): ShadowTransportError {
    return new ShadowTransportError(`the device agent of thing '${this.o.thingName}' is closed`, this.target);
  }

  /** Connected, subscribed and read since the last connect: deltas and reports may go. */
  ready(): boolean {
    return this.sync.link === 'ready' && this.sync.synced;
  }

  isIdle(): boolean {
    const { sync, deltas } = this;
    return (
      this.ready() &&
      sync.sync === 'idle' &&
      deltas.handling === undefined &&
      deltas.queued === undefined &&
      deltas.retry === undefined &&
      !this.reports.inFlight &&
      !this.intent.dirty
    );
  }

  // ---- connection, reads and ordering ------------------------------------------------------------------------

  dispatchSync(event: SyncEvent): void {
    const step = stepSync(this.sync, event);
    this.sync = step.state;
    // Busy again (a read started, the link dropped): the next idle moment is announced again.
    if (!this.isIdle()) this.idleAnnounced = false;
    for (const effect of step.effects) this.performSync(effect);
  }

  performSync(effect: SyncEffect): void {
    switch (effect.type) {
      case 'subscribe':
        this.session.subscribe(this.target).then(
          () => this.dispatchSync({ type: 'subscribed', epoch: effect.epoch }),
          (error: unknown) => this.dispatchSync({ type: 'subscribe-failed', epoch: effect.epoch, error }),
        );
        return;
      case 'read':
        (this.session.request('get', this.target, {}) as Promise<GetAcceptedBody | undefined>).then(
          (document) =>
            this.dispatchSync({
              type: 'read-answered',
              epoch: effect.epoch,
              document,
              reportInFlight: this.reports.inFlight,
            }),
          (error: unknown) => this.dispatchSync({ type: 'read-failed', epoch: effect.epoch, error }),
        );
        return;
      case 'start-retry-timer':
        this.readTimer = this.o.timers.setTimer(() => {
          this.readTimer = undefined;
          this.dispatchSync({ type: 'retry-due' });
        }, this.backoff(effect.retry));
        return;
      case 'cancel-retry-timer':
        if (this.readTimer !== undefined) this.o.timers.clearTimer(this.readTimer);
        this.readTimer = undefined;
        return;
      case 'adopt': {
        // The read is the truth, with the device's unconfirmed changes kept on top of it. `current`: no newer
        // version was seen and no update is in flight; `keepReported`: the read is older than the device's last
        // accepted report, which knows `reported` better.
        const { document } = effect;
        if (!effect.keepReported) this.confirmed = document?.state.reported;
        this.intent.rebase(this.confirmed, { confirm: effect.current });
        if (document !== undefined)
          this.dispatchDelta({ type: 'read', version: document.version, delta: document.state.delta });
        return;
      }
      case 'queue-delta': {
        const { body } = effect;
        const item = { state: body.state, version: body.version, source: 'delta' as const };
        this.dispatchDelta({ type: 'queue', item, ifNewer: effect.ifNewer });
        return;
      }
      case 'count':
        this.counters[effect.counter]++;
        return;
      case 'error':
        this.emit('error', effect.error, { kind: effect.kind });
        return;
      case 'fail-pending':
        // The agent's clients connect with a clean session: its subscriptions went with the connection, and
        // the next connect subscribes again before reading (mqtt.js re-subscribes by itself only when it
        // reconnects on its own).
        this.session.connectionLost('the connection was lost');
        return;
      case 'flush-telemetry':
        for (const payload of this.telemetry.drain()) this.publishTelemetry(payload);
        return;
      case 'reset-outcome':
        this.dispatchDelta({ type: 'reset-outcome' }); // reconcile with the full delta on every connect
        return;
      case 'pump':
        this.pump();
        return;
    }
  }

  // ---- the work loop -----------------------------------------------------------------------------------------

  /** Lets the delta and report machines look at what changed, then announces an idle moment. */
  pump(): void {
    if (this.sync.closed) return;
    if (this.ready()) {
      this.dispatchDelta({ type: 'wake', ready: true, wanted: this.intent.wanted });
      this.dispatchReport({ type: 'wake', ready: true, dirty: this.intent.dirty });
    }
    this.announceIfIdle();
  }

  /** Callers get copies: changing them must not change the agent's state. */
  syncedEvent(): SyncedEvent {
    return { version: this.sync.version, reported: copy(this.confirmed), applied: copy(this.deltas.applied) };
  }

  announceIfIdle(): void {
    if (!this.isIdle()) {
      this.idleAnnounced = false;
      return;
    }
    if (this.idleAnnounced) return;
    this.idleAnnounced = true;
    const event = this.syncedEvent();
    for (const waiter of this.syncWaiters.splice(0)) waiter.resolve(event);
    this.emit('synced', event);
  }

  // ---- deltas ------------------------------------------------------------------------------------------------

  dispatchDelta(event: DeltaMachineEvent): void {
    const step = stepDelta(this.deltas, event, this.rules);
    this.deltas = step.state;
    for (const effect of step.effects) this.performDelta(effect);
  }

  performDelta(effect: DeltaEffect): void {
    switch (effect.type) {
      case 'handle':
        this.handle(effect.item);
        return;
      case 'set-wanted':
        this.intent.change(effect.patch);
        this.idleAnnounced = false;
        return;
      case 'conflict':
        this.emit('conflict', {
          version: effect.version,
          desired: effect.desired,
          applied: effect.applied,
          error: undefined,
        });
        return;
      case 'error':
        this.emit('error', effect.error, { kind: effect.kind, version: effect.version });
        return;
      case 'count-handled':
        this.counters.deltasHandled++;
        return;
      case 'start-retry-timer':
        this.handlerTimer = this.o.timers.setTimer(() => {
          this.handlerTimer = undefined;
          this.dispatchDelta({ type: 'retry-due' });
        }, this.o.handlerRetryDelayMs);
        return;
      case 'cancel-retry-timer':
        if (this.handlerTimer !== undefined) this.o.timers.clearTimer(this.handlerTimer);
        this.handlerTimer = undefined;
        return;
      case 'pump':
        this.pump();
        return;
    }
  }

  /** Checks the delta with the schema, then hands it to the handler; the outcome goes back to the machine. */
  handle(item: QueuedDelta): void {
    const o = this.o;
    let delta = item.state as unknown as D;
    if (o.schema !== undefined) {
      const checked = checkWithSchema(o.schema, item.state, { ...this.target, what: 'delta' });
      if (checked.issues !== undefined) {
        const error = new ShadowValidationError(
          `delta of version ${item.version} for thing '${o.thingName}' fails the schema: ${checked.issues
            .map((issue) => `${issue.path.join('.') || '(root)'}: ${issue.message}`)
            .join('; ')}`,
          { ...this.target, issues: checked.issues },
        );
        this.dispatchDelta({ type: 'schema-refused', error, message: error.message });
        return;
      }
      delta = checked.value;
    }
    this.emit('delta', { version: item.version, state: item.state, source: item.source });
    void this.callHandler(delta, item);
  }

  async callHandler(delta: D, item: QueuedDelta): Promise<void> {
    const context: DeltaContext = {
      version: item.version,
      thingName: this.o.thingName,
      shadowName: this.o.shadowName,
      applied: copy(this.deltas.applied),
      source: item.source,
    };
    let outcome: DeltaMachineEvent;
    try {
      const result = ((await this.o.onDelta(delta, context)) ?? undefined) as JsonObject | undefined;
      if (result !== undefined && (typeof result !== 'object' || result === null || Array.isArray(result))) {
        throw new TypeError(
          `onDelta must return the applied values as an object or nothing, got ${JSON.stringify(result)}`,
        );
      }
      outcome = { type: 'handler-returned', values: result };
    } catch (error) {
      outcome = { type: 'handler-threw', error };
    }
    this.dispatchDelta(outcome);
  }

  // ---- reports -----------------------------------------------------------------------------------------------

  dispatchReport(event: ReportEvent): void {
    const step = stepReport(this.reports, event);
    this.reports = step.state;
    for (const effect of step.effects) this.performReport(effect);
  }

  performReport(effect: ReportEffect): void {
    switch (effect.type) {
      case 'start-report-timer': {
        const wait = Math.max(this.o.coalesceMs, effect.retry === 0 ? 0 : this.backoff(effect.retry));
        this.reportTimer = this.o.timers.setTimer(() => {
          this.reportTimer = undefined;
          this.dispatchReport({ type: 'timer-due', ready: this.ready() });
        }, wait);
        return;
      }
      case 'cancel-report-timer':
        if (this.reportTimer !== undefined) this.o.timers.clearTimer(this.reportTimer);
        this.reportTimer = undefined;
        return;
      case 'send-report':
        this.sendReport(effect.maxLeaves);
        return;
      case 'acknowledge': {
        const sent = this.sent as SentUpdate;
        if (sent.epoch === this.sync.epoch) this.confirmed = mergeSection(this.confirmed, sent.patch);
        this.intent.acknowledge(sent.sent);
        this.counters.reportsAccepted++;
        this.dispatchSync({ type: 'report-accepted', epoch: sent.epoch, version: effect.version });
        return;
      }
      case 'unsure':
        this.intent.unsure();
        return;
      case 'discard-sent':
        // The service refuses this leaf: drop it, or it would be refused forever.
        this.intent.discardLeaves((this.sent as SentUpdate).sent, this.confirmed);
        this.emit('error', effect.error, { kind: 'report' });
        return;
      case 'conflict':
        this.emit('conflict', {
          version: this.sync.version,
          desired: undefined,
          applied: undefined,
          error: effect.error,
        });
        return;
      case 'sync-wanted':
        this.dispatchSync({ type: 'sync-wanted' });
        return;
      case 'pump':
        this.pump();
        return;
    }
  }

  /** Sends every unconfirmed leaf (at most `maxLeaves`) as one reported update, without version. */
  sendReport(maxLeaves: number | undefined): void {
    const update = this.intent.pending(maxLeaves);
    if (update === undefined) {
      this.dispatchReport({ type: 'nothing-pending' });
      return;
    }
    const sent: SentUpdate = { patch: update.patch, sent: update.sent, epoch: this.sync.epoch };
    this.sent = sent;
    (
      this.session.request('update', this.target, {
        state: { reported: update.patch },
      }) as Promise<UpdateAcceptedBody>
    ).then(
      (accepted) => this.dispatchReport({ type: 'accepted', version: accepted.version }),
      (error: unknown) => this.dispatchReport({ type: 'failed', error, leaves: sent.sent.length }),
    );
  }

  // ---- telemetry ---------------------------------------------------------------------------------------------

  publishTelemetry(payload: string): void {
    this.client.publish(this.telemetryTopic, payload, { qos: this.o.telemetryQos }, (error) => {
      if (error) this.emit('error', error, { kind: 'telemetry' });
    });
    this.counters.telemetryPublished++;
  }

  report(values: JsonObject): SplitResult {
    if (this.sync.closed) throw this.closedError();
    const now = this.o.clock();
    const result = this.splitter.split(values);
    if (result.telemetry !== undefined) {
      const payload = JSON.stringify({ state: result.telemetry, timestamp: now });
      if (this.sync.link !== 'down') this.publishTelemetry(payload);
      else this.telemetry.push(payload);
    }
    this.pump();
    return result;
  }

  // ---- resync safety net -------------------------------------------------------------------------------------

  armResync(): void {
    this.resyncTimer = this.o.timers.setTimer(() => {
      this.armResync();
      const { sync } = this;
      if (sync.link === 'ready' && sync.synced && sync.sync === 'idle')
        this.dispatchSync({ type: 'sync-wanted' });
    }, this.o.resyncIntervalMs);
    // A safety net only: with Node's timers it must not keep a process alive on its own.
    (this.resyncTimer as { unref?: () => void }).unref?.();
  }

  whenSynced(): Promise<SyncedEvent> {
    // Closed first: a closed agent follows nothing, however in sync it was when it stopped.
    if (this.sync.closed) return Promise.reject(this.closedError());
    if (this.isIdle()) return Promise.resolve(this.syncedEvent());
    // Busy now although the last idle moment was announced (a gap read started without an announcement in
    // between): the next idle moment must be announced again, or this waiter would never be resolved.
    this.idleAnnounced = false;
    return new Promise((resolve, reject) => this.syncWaiters.push({ resolve, reject }));
  }

  /** Stops the machines (they cancel their timers) and the safety net; fails the waiters. */
  stop(): void {
    this.dispatchSync({ type: 'close' });
    this.dispatchDelta({ type: 'close' });
    this.dispatchReport({ type: 'close' });
    this.splitter.close();
    if (this.resyncTimer !== undefined) this.o.timers.clearTimer(this.resyncTimer);
    const error = this.closedError();
    for (const waiter of this.syncWaiters.splice(0)) waiter.reject(error);
  }
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
  const owned = typeof o.mqtt === 'string' || !('publish' in o.mqtt);
  const client: MqttClient = owned
    ? typeof o.mqtt === 'string'
      ? connect(o.mqtt, { clientId: o.thingName })
      : connect((o.mqtt as { url: string }).url, {
          clientId: o.thingName,
          ...(o.mqtt as { options?: object }).options,
        })
    : (o.mqtt as MqttClient);
  const runtime = new AgentRuntime(o, client);

  const onConnect = () => {
    (client.stream as { setNoDelay?: (on: boolean) => void } | undefined)?.setNoDelay?.(true);
    runtime.dispatchSync({ type: 'connected' });
  };
  const onDisconnect = () => runtime.dispatchSync({ type: 'disconnected' });
  // Without an 'error' listener an EventEmitter throws; the client reconnects by itself, so only report it.
  const onClientError = (error: Error) => runtime.emit('error', error, { kind: 'connection' });
  client.on('connect', onConnect);
  client.on('close', onDisconnect);
  client.on('offline', onDisconnect);
  client.on('error', onClientError);
  if (client.connected) onConnect();
  if (o.resyncIntervalMs > 0) runtime.armResync();

  return {
    report: (values) => runtime.report(values),
    on(event, listener) {
      runtime.listeners[event].add(listener);
      return () => {
        runtime.listeners[event].delete(listener);
      };
    },
    applied: () => copy(runtime.deltas.applied),
    status: () => ({
      connected: runtime.sync.link === 'ready',
      synced: runtime.isIdle(),
      version: runtime.sync.version,
      reported: copy(runtime.confirmed),
      pending: runtime.intent.dirty,
    }),
    stats: () => ({
      ...runtime.counters,
      telemetryBuffered: runtime.telemetry.size,
      telemetryDropped: runtime.telemetry.dropped,
    }),
    whenSynced: () => runtime.whenSynced(),
    async close() {
      if (runtime.sync.closed) return;
      runtime.stop();
      client.removeListener('connect', onConnect);
      client.removeListener('close', onDisconnect);
      client.removeListener('offline', onDisconnect);
      client.removeListener('error', onClientError);
      await runtime.session.close();
      if (owned) {
        // A graceful end waits for every in-flight QoS 1 message, forever on a link that went silent: wait
        // for them at most the request timeout, then end the client by force.
        const timers = o.timers;
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
