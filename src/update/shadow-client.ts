/**
 * The conflict-resolving update engine: `createShadowClient({ transport })` and its shadow handles.
 *
 * A versioned round: take the base document (one the engine or transport already knows when that is likely
 * current, see `base-chooser.ts`, else a read), run the callers' intents in call order (`planRound`), send
 * the minimal patch with `version`; on 409, take a newer known document or read again, and re-run the
 * intents. Retries use full jitter on the injected clock; 409s and 5xx are bounded by `maxAttempts`, 429s
 * only by time (`retry-policy.ts`). Every request passes the per-thing limiter, whose rate adapts to the
 * service's 429s (`thing-limiter.ts`, `rate-adapter.ts`). A blind round (only `merge` calls) sends the
 * composed patch without `version` and cannot conflict.
 *
 * Creating a shadow: a write on a shadow that does not exist names `version: 0` (or the deleted version + 1
 * when this client or its transport saw the delete), which the service accepts only if the shadow is still
 * absent, so concurrent creators cannot overwrite each other. A 404 does not tell the version a shadow
 * deleted by someone else must be re-created with: when such a create gets 409 and a re-read still finds no
 * shadow, the round falls back to an unversioned create (logged as a warning). That is the one case in
 * which a concurrent creator's first write could be merged over.
 *
 * Writes whose outcome is unknown (timeouts, connections lost) are not retried: repeating them could apply
 * an intent twice. 409 (versioned writes), 429 and 5xx are retried; other 4xx never.
 */
import { mergeUpdate } from '../core/apply-update.js';
import type {
  JsonObject,
  ShadowTarget,
  UpdateAcceptedBody,
  UpdateRequest,
  UpdateState,
} from '../core/document.js';
import { checkTarget, DEFAULT_LIMITS, resolveLimits, type ShadowLimits } from '../core/limits.js';
import {
  describeTarget,
  isShadowError,
  ShadowConflictError,
  type ShadowError,
  ShadowNotFoundError,
  ShadowOptionsError,
  ShadowThrottledError,
  targetContext,
} from '../errors.js';
import type { KnownState, ShadowDocument } from '../transports/transport.js';
import {
  type BaseHistory,
  chooseBase,
  learnFromOwnWrite,
  learnFromRead,
  learnFromWrite,
  newBaseHistory,
} from './base-chooser.js';
import {
  type ResolvedShadowClientOptions,
  resolveShadowClientOptions,
  type ShadowClientOptions,
} from './client-options.js';
import { type Coalescer, createCoalescer } from './coalescer.js';
import { RATE_ADAPTER_DEFAULTS } from './rate-adapter.js';
import { newRoundTally, type RoundTally, retryReason, withRetries } from './retry-policy.js';
import { createEventSink, type EventSink, type ShadowRequestOperation } from './shadow-events.js';
import { createThingLimiter, type ThingLimiter } from './thing-limiter.js';
import {
  createSectionValidator,
  type SectionOf,
  type SectionValidator,
  type ShadowPatch,
  type ShadowSchema,
} from './typed-schema.js';
import {
  composePatches,
  documentOf,
  type Intent,
  planRound,
  preflightError,
  preflightMerge,
  type RoundCall,
  recordOf,
  storedOf,
  versionOf,
} from './update-round.js';

/** A shadow document whose sections have the types of a typed shadow. */
export interface TypedShadowDocument<D = JsonObject, R = JsonObject> extends Omit<ShadowDocument, 'state'> {
  state: { desired?: D; reported?: R; delta?: JsonObject };
}

/** What `update` and `merge` resolve to. */
export interface ShadowWriteResult<D = JsonObject, R = JsonObject> {
  /**
   * The document after the call: the engine's prediction of the committed document (the service's own
   * merge rules applied to the base; metadata timestamps use the local clock), or the base when the round
   * was skipped. `undefined` when the shadow does not exist after a skipped round, and after a blind
   * `merge` (or the unversioned re-create described in the module documentation) when neither the engine
   * nor the transport knew the document it merged into.
   */
  document: TypedShadowDocument<D, R> | undefined;
  /** The shadow's version after the call; `undefined` when it does not exist (skipped round on no shadow). */
  version: number | undefined;
  /**
   * Attempts the call's round made: each attempt ran the intents once on a base document and sent at most
   * one write, re-sent only when throttled right behind its read (1 when the first attempt's write
   * succeeded or the round was skipped at once).
   */
  attempts: number;
  /** True when this call changed nothing (its intent returned nothing or a change already in place). */
  skipped: boolean;
}

/** A read-modify-write intent of a typed shadow. Intents may run several times: they must be pure. */
export type TypedIntent<D, R> = (
  current: TypedShadowDocument<D, R> | undefined,
  // biome-ignore lint/suspicious/noConfusingVoidType: an intent may end without a return statement to mean "no change".
) => ShadowPatch<D, R> | undefined | void;

/** Operations on one shadow. */
export interface ShadowHandle<D = JsonObject, R = JsonObject> {
  /** The shadow this handle addresses. */
  readonly target: ShadowTarget;
  /**
   * Reads the document (with its delta).
   *
   * @throws ShadowNotFoundError when the shadow does not exist
   * @throws ShadowValidationError when the document fails the shadow's schema
   */
  get(): Promise<TypedShadowDocument<D, R>>;
  /**
   * Read-modify-write: runs `intent` on the current document (or `undefined`), sends the minimal patch
   * with the version it read, and on a conflict re-reads and re-runs it. The intent may run several
   * times, so it must be pure; it returns the change (partial sections, `null` deletes), or nothing.
   *
   * @throws ShadowConflictError when the retry budget ran out (with `attempts` and the last document)
   * @throws ShadowLimitError / ShadowValidationError before any request when the change would break a
   *   limit or the schema; whatever the intent throws
   */
  update(intent: TypedIntent<D, R>): Promise<ShadowWriteResult<D, R>>;
  /**
   * Blind partial merge without a version: cannot conflict, needs no read.
   *
   * @throws ShadowLimitError / ShadowValidationError before any request
   */
  merge(patch: ShadowPatch<D, R>): Promise<ShadowWriteResult<D, R>>;
  /**
   * Deletes the shadow.
   *
   * @returns the version of the deleted document
   * @throws ShadowNotFoundError when it does not exist
   */
  delete(): Promise<{ version: number }>;
}

/** Options of {@link ShadowClient.shadow} for a named and/or typed shadow. */
export interface ShadowHandleOptions<S extends ShadowSchema = ShadowSchema> {
  /** The named shadow; omit for the classic shadow. */
  shadowName?: string;
  /** Schemas of `desired` and `reported`: any synchronous Standard Schema (zod 3.24+, zod 4, valibot, arktype ...). */
  schema?: S;
}

/** The schema of a shadow created without one: both sections are any JSON object. */
export type UncheckedSchema = Record<never, never>;

/** The client `createShadowClient` returns. */
export interface ShadowClient {
  /**
   * A handle on one shadow. Handles are cheap; handles of the same shadow share one queue, so their
   * concurrent writes coalesce.
   *
   * @throws ShadowLimitError when a name breaks the service's name rules
   */
  shadow(thingName: string, shadowName?: string): ShadowHandle;
  shadow<S extends ShadowSchema = UncheckedSchema>(
    thingName: string,
    options: ShadowHandleOptions<S>,
  ): ShadowHandle<SectionOf<S['desired']>, SectionOf<S['reported']>>;
}

interface PendingCall {
  call: RoundCall;
  resolve(result: ShadowWriteResult): void;
  reject(error: unknown): void;
}

interface ShadowEntry {
  target: ShadowTarget;
  /** What the engine itself last learned (answers to its own requests, predictions after writes). */
  knowledge: KnownState | undefined;
  /** How remembered documents of this shadow have fared (see `base-chooser.ts`). */
  history: BaseHistory;
  /** Reads and deletes running (rounds are counted by the queue). */
  busy: number;
  queue: Coalescer<PendingCall>;
}

/**
 * Times a write throttled right behind its read is sent again on the same base, each within the service's
 * next token or two (25-50 ms apart at 20 requests/s), before the round falls back to its usual retry and a
 * re-read.
 */
const WRITE_RESENDS = 10;

/** Idle shadows a client remembers before it forgets the least recently used (see `createShadowClient`). */
const MAX_IDLE_ENTRIES = 1000;

/** Limits that never refuse: used only to predict the document the service committed. */
const PREDICTION_LIMITS: Partial<ShadowLimits> = {
  maxStateBytes: Number.MAX_SAFE_INTEGER,
  maxDepth: Number.MAX_SAFE_INTEGER,
  maxClientTokenBytes: Number.MAX_SAFE_INTEGER,
};

/** Each caller gets its own copy of a shared result document, so one caller's changes never reach another. */
function copy<T>(value: T): T {
  return value === undefined ? value : structuredClone(value);
}

function targetKey(target: ShadowTarget): string {
  // A thing name cannot contain '/', so this key is unambiguous.
  return target.shadowName === undefined ? target.thingName : `${target.thingName}/${target.shadowName}`;
}

const contextOf = targetContext;

/**
 * Creates the update engine over a transport.
 *
 * @param options - the transport and the engine's settings, see {@link ShadowClientOptions}
 * @throws ShadowOptionsError for unknown keys or out-of-range values
 * @example
 * ```ts
 * const shadows = createShadowClient({ transport: awsTransport(new IoTDataPlaneClient({ endpoint, region, maxAttempts: 1 })) });
 * const aircon = shadows.shadow('aircon-1');
 * await aircon.update((current) => ({ desired: { count: Number(current?.state.desired?.count ?? 0) + 1 } }));
 * await aircon.merge({ desired: { power: 'on' } });
 * ```
 */
export function createShadowClient(options: ShadowClientOptions): ShadowClient {
  const settings = resolveShadowClientOptions(options);
  const limits = resolveLimits(settings.limits);
  const sink = createEventSink(settings.onEvent, settings.logger);
  const limiter = createThingLimiter({
    requestsPerSecond: settings.requestsPerSecondPerThing,
    maxInFlight: settings.maxInFlightPerThing,
    clock: settings.clock,
    random: settings.random,
    adaptive: settings.adaptiveRate ? RATE_ADAPTER_DEFAULTS : false,
    onWait: (thingName, waitMs) => {
      for (const entry of entries.values()) {
        if (entry.target.thingName === thingName) {
          sink.emit({ type: 'throttled', target: entry.target, source: 'limiter', waitMs });
          break;
        }
      }
    },
  });
  const entries = new Map<string, ShadowEntry>();
  const engine = createEngine(settings, limits, sink, limiter);

  let sweepAt = MAX_IDLE_ENTRIES;

  // What the client learned about a shadow (up to a whole document) would otherwise stay for every shadow
  // it ever addressed. Idle entries (nothing queued, running or reading) are forgotten least recently used
  // first once there are more than MAX_IDLE_ENTRIES; forgetting costs a read, never correctness. An entry in
  // use is never dropped, so handles of one shadow still share one queue.
  const sweep = (): void => {
    for (const [key, entry] of entries) {
      if (entries.size < MAX_IDLE_ENTRIES) break;
      if (entry.busy === 0 && entry.queue.size() === 0) entries.delete(key);
    }
    // Doubling keeps sweeping O(1) per new shadow on average when many entries are busy at once.
    sweepAt = Math.max(MAX_IDLE_ENTRIES, entries.size * 2);
  };

  const entryFor = (target: ShadowTarget): ShadowEntry => {
    const key = targetKey(target);
    let entry = entries.get(key);
    if (entry !== undefined) {
      // Most recently used last, so that a sweep forgets the least recently used first.
      entries.delete(key);
      entries.set(key, entry);
    } else {
      if (entries.size >= sweepAt) sweep();
      const created: ShadowEntry = {
        target,
        knowledge: undefined,
        history: newBaseHistory(),
        busy: 0,
        queue: createCoalescer<PendingCall>({
          coalesce: settings.coalesce,
          takeRound: (pending) => takeRound(pending),
          runRound: (calls) => engine.runRound(created, calls),
        }),
      };
      entry = created;
      entries.set(key, entry);
    }
    return entry;
  };

  function shadow(thingName: string, second?: string | ShadowHandleOptions): ShadowHandle {
    const handleOptions: ShadowHandleOptions =
      typeof second === 'string' ? { shadowName: second } : (second ?? {});
    if (typeof handleOptions !== 'object' || handleOptions === null) {
      throw new ShadowOptionsError(
        `shadow('${thingName}'): the second argument must be a shadow name or options`,
      );
    }
    for (const key of Object.keys(handleOptions)) {
      if (key !== 'shadowName' && key !== 'schema') {
        throw new ShadowOptionsError(
          `shadow('${thingName}'): unknown option '${key}' (known: shadowName, schema)`,
        );
      }
    }
    const target: ShadowTarget =
      handleOptions.shadowName === undefined
        ? { thingName }
        : { thingName, shadowName: handleOptions.shadowName };
    const badName = checkTarget(target, limits);
    if (badName !== undefined) throw preflightError(badName, target);
    entryFor(target);
    const validator = createSectionValidator(handleOptions.schema, target);
    return createHandle(engine, target, () => entryFor(target), validator);
  }

  return { shadow } as ShadowClient;
}

/** A versioned round takes every queued call when one of them is an `update`; else the composable merges. */
function takeRound(pending: PendingCall[]): PendingCall[] {
  if (pending.some((p) => p.call.kind === 'update')) return pending.splice(0, pending.length);
  const first = pending[0] as PendingCall;
  let composed = (first.call as { patch: UpdateState }).patch;
  let count = 1;
  while (count < pending.length) {
    const next = composePatches(
      composed,
      (pending[count] as PendingCall & { call: { patch: UpdateState } }).call.patch,
    );
    if (next === undefined) break;
    composed = next;
    count++;
  }
  return pending.splice(0, count);
}

/**
 * A handle looks its entry up on every call (the client may have forgotten an idle one meanwhile) and
 * marks it busy while a read or delete runs, so that it is not forgotten under the call.
 */
function createHandle(
  engine: Engine,
  target: ShadowTarget,
  entryOf: () => ShadowEntry,
  validator: SectionValidator | undefined,
): ShadowHandle {
  const enqueue = (call: RoundCall) =>
    new Promise<ShadowWriteResult>((resolve, reject) => {
      entryOf().queue.push({ call, resolve, reject });
    });
  const whileBusy = async <T>(run: (entry: ShadowEntry) => Promise<T>): Promise<T> => {
    const entry = entryOf();
    entry.busy++;
    try {
      return await run(entry);
    } finally {
      entry.busy--;
    }
  };
  return {
    target,
    get: () => whileBusy((entry) => engine.getDocument(entry, validator)),
    update(intent) {
      if (typeof intent !== 'function') {
        return Promise.reject(
          new ShadowOptionsError(`${describeTarget(contextOf(target))}: update() needs an intent function`),
        );
      }
      return enqueue({ kind: 'update', intent: intent as Intent, validator });
    },
    merge(patch) {
      try {
        engine.preflight(target, patch as UpdateState, validator);
      } catch (error) {
        return Promise.reject(error);
      }
      return enqueue({ kind: 'merge', patch: structuredClone(patch) as UpdateState, validator });
    },
    delete: () => whileBusy((entry) => engine.remove(entry)),
  };
}

/**
 * The engine behind every handle of one client. A closure rather than a class: the minifier renames its
 * locals, not a class's property names (issue #11's Lambda budget).
 */
function createEngine(
  settings: ResolvedShadowClientOptions,
  limits: Readonly<ShadowLimits>,
  sink: EventSink,
  limiter: ThingLimiter,
) {
  const { transport, clock } = settings;
  /**
   * Running mean of the service's answer time (the injected clock's milliseconds; 0 until measured). Where it
   * is short (a local service), the waits after a 409 scale with it instead of the fixed `baseDelayMs`:
   * writers on one version are spread over a few round trips, so with 4 writers the losers are not left
   * waiting 20 ms for a commit that takes 2. Against AWS (tens of milliseconds) `baseDelayMs` stays the base.
   */
  let roundTrip = 0;
  const retryPolicy = {
    ...settings,
    get baseDelayMs() {
      const base = settings.baseDelayMs;
      return roundTrip > 0 ? Math.min(base, Math.max(1, 2 * roundTrip)) : base;
    },
  };

  function onRetry(target: ShadowTarget) {
    return {
      onRetry: ({
        attempt,
        delayMs,
        reason,
      }: {
        attempt: number;
        delayMs: number;
        reason: 'conflict' | 'throttled' | 'server-error';
      }) => {
        sink.emit({ type: 'retry', target, attempt, delayMs, reason });
        sink.log('debug', 'shadow-sync: retrying', { ...contextOf(target), attempt, delayMs, reason });
      },
    };
  }

  /**
   * One request through the limiter, with attempt / latency / throttled / conflict events; tells the
   * limiter whether the service throttled it, so that the thing's rate adapts (unless `cut` is false).
   * `tokens` as in the limiter.
   */
  async function sendRequest<T>(
    entry: ShadowEntry,
    operation: ShadowRequestOperation,
    attempt: number,
    send: () => Promise<T>,
    expectedVersion?: number,
    tokens = 1,
    cut = true,
  ): Promise<T> {
    const { target } = entry;
    const thingName = target.thingName;
    return limiter.run(
      thingName,
      async ({ sentAt }) => {
        sink.emit({
          type: 'attempt',
          target,
          operation,
          attempt,
          ...(expectedVersion === undefined ? {} : { expectedVersion }),
        });
        const started = performance.now();
        const sent = clock.now();
        const answered = () => {
          const ms = clock.now() - sent;
          roundTrip = roundTrip > 0 ? roundTrip * 0.8 + ms * 0.2 : ms;
          limiter.succeeded(thingName);
        };
        try {
          const result = await send();
          answered();
          sink.emit({ type: 'latency', target, operation, ms: performance.now() - started, ok: true });
          return result;
        } catch (error) {
          sink.emit({ type: 'latency', target, operation, ms: performance.now() - started, ok: false });
          if (isShadowError(error)) {
            if (error.code === 'THROTTLED') {
              const retryAfterMs = (error as ShadowThrottledError).retryAfterMs;
              if (cut) limiter.throttled(thingName, sentAt, retryAfterMs);
              sink.emit({
                type: 'throttled',
                target,
                source: 'service',
                ratePerSecond: limiter.rate(thingName),
                ...(retryAfterMs === undefined ? {} : { retryAfterMs }),
              });
            } else if (error.statusCode !== undefined) {
              // Any other answer of the service (409, 404, 5xx...) says the quota let the request in.
              answered();
            }
            if (error.code === 'CONFLICT' && expectedVersion !== undefined) {
              sink.emit({ type: 'conflict', target, attempt, expectedVersion });
            }
          }
          throw error;
        }
      },
      { tokens },
    );
  }

  /**
   * Reads through the transport and records what it learned. `tokens: 2` when a write will follow at once
   * (the limiter then lets the write through without a second wait).
   */
  async function read(entry: ShadowEntry, attempt: number, tokens = 1): Promise<KnownState> {
    const document = await sendRequest(
      entry,
      'get',
      attempt,
      () => transport.get(entry.target),
      undefined,
      tokens,
    );
    let known: KnownState;
    if (document !== undefined) {
      known = { exists: true, document };
    } else {
      // A 404 does not tell the version of a deleted shadow; keep one this engine or the transport saw.
      const remembered = freshest(entry);
      known = {
        exists: false,
        version: remembered !== undefined && !remembered.exists ? remembered.version : 0,
      };
    }
    entry.knowledge = known;
    return known;
  }

  /** The newest of what the engine and the transport know. */
  function freshest(entry: ShadowEntry): KnownState | undefined {
    const own = entry.knowledge;
    const heard = transport.known?.(entry.target);
    if (own === undefined) return heard;
    if (heard === undefined) return own;
    return versionOf(heard) > versionOf(own) ? heard : own;
  }

  function preflight(
    target: ShadowTarget,
    patch: UpdateState,
    validator: SectionValidator | undefined,
  ): void {
    preflightMerge(patch, validator, {
      target,
      now: clock.now(),
      limits: limits,
    });
  }

  async function getDocument(
    entry: ShadowEntry,
    validator: SectionValidator | undefined,
  ): Promise<ShadowDocument> {
    const tally = newRoundTally(clock);
    let known: KnownState;
    try {
      known = await withRetries((attempt) => read(entry, attempt), retryPolicy, onRetry(entry.target), tally);
    } catch (error) {
      throw giveUpError(entry.target, tally, undefined, error);
    }
    if (!known.exists) {
      throw new ShadowNotFoundError(`${describeTarget(contextOf(entry.target))}: No shadow exists`, {
        ...contextOf(entry.target),
        statusCode: 404,
        awsCode: 'ResourceNotFoundException',
      });
    }
    validator?.state(known.document.state, 'the document read');
    // A copy: the caller may change it, the engine keeps the original as its knowledge.
    return structuredClone(known.document);
  }

  async function remove(entry: ShadowEntry): Promise<{ version: number }> {
    const tally = newRoundTally(clock);
    try {
      const accepted = await withRetries(
        (attempt) => sendRequest(entry, 'delete', attempt, () => transport.delete(entry.target)),
        retryPolicy,
        onRetry(entry.target),
        tally,
      );
      entry.knowledge = { exists: false, version: accepted.version + 1 };
      return { version: accepted.version };
    } catch (error) {
      if (isShadowError(error) && error.code === 'NOT_FOUND') entry.knowledge = undefined;
      throw giveUpError(entry.target, tally, undefined, error);
    }
  }

  /** Runs one round; settles every call it was given. */
  async function runRound(entry: ShadowEntry, calls: PendingCall[]): Promise<void> {
    if (calls.length > 1) sink.emit({ type: 'coalesced', target: entry.target, calls: calls.length });
    try {
      if (calls.some((p) => p.call.kind === 'update')) await versionedRound(entry, calls);
      else await blindRound(entry, calls);
    } catch (error) {
      // Defensive: a bug here must not leave callers hanging.
      for (const pending of calls) pending.reject(error);
    }
  }

  async function versionedRound(entry: ShadowEntry, calls: PendingCall[]): Promise<void> {
    const { target } = entry;
    let live = calls;
    let failedVersion: number | undefined;
    let lastBase: KnownState | undefined;
    let blindCreate = false;
    const tally = newRoundTally(clock);
    try {
      await withRetries(
        async (attempt) => {
          const own = entry.knowledge;
          const choice = chooseBase({
            mode: settings.useKnownDocuments,
            own,
            heard: transport.known?.(target),
            failedVersion,
            history: entry.history,
          });
          sink.emit({ type: 'base', target, attempt, source: choice.source, reason: choice.reason });
          let base: KnownState;
          let baseWasRead = false;
          // A read that a write will follow pays for both, so that the write goes out right behind it.
          let writePrepaid = false;
          if (choice.use !== undefined) {
            base = choice.use;
          } else {
            base = await read(entry, attempt, 2);
            baseWasRead = true;
            writePrepaid = true;
            if (
              own !== undefined &&
              (choice.reason === 'delta-pending' || choice.reason === 'stale-history')
            ) {
              learnFromRead(entry.history, own, base);
            }
          }
          // A 409 on a create, and the shadow still absent: it was deleted by someone else and we cannot
          // learn the version its re-creation must name. Fall back to an unversioned create (the one case
          // where a concurrent creator could be merged over; see the module documentation).
          if (
            failedVersion !== undefined &&
            !base.exists &&
            versionOf(base) === failedVersion &&
            !blindCreate
          ) {
            blindCreate = true;
            sink.log(
              'warn',
              'shadow-sync: re-creating a shadow deleted by another client without a version',
              {
                ...contextOf(target),
              },
            );
          }
          let plan = planCalls(entry, base, live);
          // A remembered document may be stale (over HTTP the engine never hears of other writers). A write
          // planned on it is safe, since its version makes a stale base fail with 409; a skip is not: it would
          // answer "already in place" for a change that is not. Nor is a failure: an intent that throws, or a
          // schema or limit the stale document breaks, may be fine on the current one. So skips and failures
          // are only ever decided on a fresh read.
          if (
            !baseWasRead &&
            (plan.failed.length > 0 || (plan.patch === undefined && plan.live.length > 0))
          ) {
            base = await read(entry, attempt);
            baseWasRead = true;
            plan = planCalls(entry, base, live);
          }
          for (const { pending, error } of plan.failed) pending.reject(error);
          lastBase = base;
          live = plan.live;
          if (live.length === 0) return;
          if (plan.patch === undefined) {
            sink.emit({
              type: 'skipped',
              target,
              version: base.exists ? base.document.version : undefined,
              calls: live.length,
            });
            const document = base.exists ? documentOf(storedOf(base.document)) : undefined;
            for (const [i, pending] of live.entries()) {
              pending.resolve({
                document: i === 0 ? document : copy(document),
                version: base.exists ? base.document.version : undefined,
                attempts: attempt,
                skipped: true,
              });
            }
            live = [];
            return;
          }
          const expected = versionOf(base);
          const request: UpdateRequest = blindCreate
            ? { state: plan.patch }
            : { state: plan.patch, version: expected };
          let accepted: UpdateAcceptedBody;
          try {
            for (let resends = 0; ; resends++) {
              try {
                accepted = await sendRequest(
                  entry,
                  'update',
                  attempt,
                  () => transport.update(target, request),
                  blindCreate ? undefined : expected,
                  writePrepaid ? 0 : 1,
                  // The re-sends' 429s are the same burst as the first one's: cutting the rate again for each
                  // would take this client to the floor rate for the rest of its rounds.
                  resends === 0,
                );
                break;
              } catch (error) {
                // A write throttled right behind its read is sent again on the same base within the service's
                // next token or two, not after a re-read: a re-read costs an admitted request, and the wait for
                // it widens the window in which another writer's commit makes this write conflict.
                if (!writePrepaid || resends >= WRITE_RESENDS || retryReason(error) !== 'throttled')
                  throw error;
                tally.throttles++;
                const delayMs = Math.ceil(
                  (500 / settings.requestsPerSecondPerThing) * (1 + settings.random()),
                );
                onRetry(target).onRetry({ attempt, delayMs, reason: 'throttled' });
                await clock.sleep(delayMs);
              }
            }
          } catch (error) {
            if (isShadowError(error) && error.code === 'CONFLICT') {
              failedVersion = expected;
              learnFromWrite(entry.history, true, baseWasRead);
            } else if (!isShadowError(error) || error.code !== 'THROTTLED') entry.knowledge = undefined;
            throw error;
          }
          learnFromWrite(entry.history, false, baseWasRead);
          let document: ShadowDocument | undefined;
          if (!blindCreate) {
            document = remember(entry, base, request, accepted);
          } else {
            // An unversioned create merges into whatever a concurrent creator wrote first, so a prediction
            // from the absent base could lack their keys while naming the right version: the next intent
            // would then run on a wrong document and its versioned write would still succeed.
            entry.knowledge = undefined;
            const heard = transport.known?.(target);
            if (heard?.exists && heard.document.version === accepted.version) {
              document = structuredClone(heard.document);
            }
          }
          learnFromOwnWrite(entry.history, document?.state.delta !== undefined);
          for (const [i, pending] of live.entries()) {
            pending.resolve({
              document: i === 0 ? document : copy(document),
              version: accepted.version,
              attempts: attempt,
              skipped: plan.skipped[i] === true,
            });
          }
          live = [];
        },
        retryPolicy,
        onRetry(target),
        tally,
      );
    } catch (error) {
      if (live.length === 0) return;
      const failure = giveUpError(target, tally, lastBase, error);
      if (isShadowError(failure) && failure.code === 'CONFLICT') {
        // Merges never conflict on their own: hand them back to run as a blind round.
        const merges = live.filter((p) => p.call.kind === 'merge');
        const updates = live.filter((p) => p.call.kind === 'update');
        if (updates.length > 0) sink.log('warn', failure.message, { ...contextOf(target), ...tally });
        for (const pending of updates) pending.reject(failure);
        if (merges.length > 0) entry.queue.requeue(merges);
        return;
      }
      if (failure !== error) sink.log('warn', (failure as Error).message, { ...contextOf(target), ...tally });
      for (const pending of live) pending.reject(failure);
    }
  }

  /**
   * Runs the calls' intents on `base` (after setting aside callers whose schema the base fails); returns
   * the combined patch, the calls still waiting for it and the calls that failed (with their errors, for
   * the caller to settle once the base is known to be current).
   */
  function planCalls(entry: ShadowEntry, base: KnownState, calls: PendingCall[]) {
    if (base.exists)
      sink.log('debug', 'shadow-sync: round base', {
        ...contextOf(entry.target),
        version: base.document.version,
      });
    const failed: Array<{ pending: PendingCall; error: unknown }> = [];
    const valid = validateBase(base, calls, failed);
    const plan = planRound(
      base,
      valid.map((p) => p.call),
      { target: entry.target, now: clock.now(), limits: limits },
    );
    const live: PendingCall[] = [];
    const skipped: boolean[] = [];
    plan.outcomes.forEach((outcome, index) => {
      const pending = valid[index] as PendingCall;
      if (outcome.ok) {
        live.push(pending);
        skipped.push(outcome.skipped);
      } else failed.push({ pending, error: outcome.error });
    });
    return { patch: plan.patch, live, skipped, failed };
  }

  /** Sets aside (in `failed`) the callers whose schema the base document fails; returns the others. */
  function validateBase(
    base: KnownState,
    live: PendingCall[],
    failed: Array<{ pending: PendingCall; error: unknown }>,
  ): PendingCall[] {
    if (!base.exists) return live;
    return live.filter((pending) => {
      try {
        pending.call.validator?.state(base.document.state, 'the document read');
        return true;
      } catch (error) {
        failed.push({ pending, error });
        return false;
      }
    });
  }

  /**
   * The error a round that ran out of budget gives up with, saying what it went through. A round that spent
   * its conflict budget (`maxAttempts`) gives up with `ShadowConflictError`; one whose time ran out with
   * whichever of conflicts and throttles it met more often (`ShadowThrottledError` on a tie with no
   * conflicts). Any other error (a 5xx, a 404, a timeout...) is returned unchanged.
   */
  function giveUpError(
    target: ShadowTarget,
    tally: RoundTally,
    lastBase: KnownState | undefined,
    error: unknown,
  ): unknown {
    if (!isShadowError(error) || (error.code !== 'CONFLICT' && error.code !== 'THROTTLED')) return error;
    const cause = error as ShadowError;
    const { attempts, conflicts, throttles, serverErrors } = tally;
    const elapsedMs = Math.round(tally.elapsedMs);
    const budgetSpent = conflicts + serverErrors >= settings.maxAttempts;
    const asConflict =
      cause.code === 'CONFLICT' ? budgetSpent || conflicts >= throttles : conflicts > throttles;
    const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? '' : 's'}`;
    const why =
      budgetSpent && cause.code === 'CONFLICT'
        ? `maxAttempts (${settings.maxAttempts}) lost`
        : `maxElapsedMs (${settings.maxElapsedMs}) spent`;
    const parts = [
      `${conflicts} lost to another writer (409 version conflict)`,
      `${throttles} throttled by the service (429)`,
      ...(serverErrors > 0 ? [`${serverErrors} met a server error (5xx)`] : []),
    ];
    const message = `${describeTarget(contextOf(target))}: gave up after ${plural(attempts, 'attempt')} in ${elapsedMs} ms (${why}): ${parts.join(', ')}; last version seen ${lastBase === undefined ? 'none' : versionOf(lastBase)}`;
    const context = {
      ...contextOf(target),
      attempts,
      conflicts,
      throttles,
      elapsedMs,
      cause,
      ...(cause.expectedVersion === undefined ? {} : { expectedVersion: cause.expectedVersion }),
    };
    if (asConflict) {
      return new ShadowConflictError(message, {
        ...context,
        lastDocument: lastBase?.exists ? lastBase.document : undefined,
        awsCode: cause.code === 'CONFLICT' ? (cause.awsCode ?? 'ConflictException') : 'ConflictException',
        awsMessage: cause.code === 'CONFLICT' ? (cause.awsMessage ?? 'Version conflict') : 'Version conflict',
        statusCode: 409,
      });
    }
    const retryAfterMs = (cause as ShadowThrottledError).retryAfterMs;
    return new ShadowThrottledError(message, {
      ...context,
      ...(retryAfterMs === undefined ? {} : { retryAfterMs }),
      awsCode: cause.code === 'THROTTLED' ? (cause.awsCode ?? 'ThrottlingException') : 'ThrottlingException',
      awsMessage: cause.code === 'THROTTLED' ? (cause.awsMessage ?? 'Rate exceeded') : 'Rate exceeded',
      statusCode: 429,
    });
  }

  /**
   * Records the document the service committed, predicted with the core's own rules on the base the
   * write named; returns it as a fresh copy for the callers.
   */
  function remember(
    entry: ShadowEntry,
    base: KnownState | undefined,
    request: UpdateRequest,
    accepted: UpdateAcceptedBody,
  ) {
    const now = clock.now();
    const prior = base === undefined ? undefined : recordOf(base, now);
    const predicted = mergeUpdate(
      prior,
      { state: request.state },
      {
        target: entry.target,
        now,
        limits: { ...PREDICTION_LIMITS, deletedVersionRetentionMs: DEFAULT_LIMITS.deletedVersionRetentionMs },
      },
    );
    if (!predicted.ok) {
      entry.knowledge = undefined;
      return undefined;
    }
    const shadow = { ...predicted.shadow, version: accepted.version };
    entry.knowledge = {
      exists: true,
      document: { state: shadow.state, metadata: shadow.metadata, version: accepted.version },
    };
    return documentOf(shadow);
  }

  async function blindRound(entry: ShadowEntry, calls: PendingCall[]): Promise<void> {
    const { target } = entry;
    let patch = (calls[0] as PendingCall & { call: { patch: UpdateState } }).call.patch;
    for (const pending of calls.slice(1)) {
      patch = composePatches(patch, (pending.call as { patch: UpdateState }).patch) as UpdateState;
    }
    // The base is known exactly only when this engine's own record is one version behind the answer.
    const own = entry.knowledge;
    const tally = newRoundTally(clock);
    try {
      const accepted = await withRetries(
        async (attempt) =>
          sendRequest(entry, 'update', attempt, () => transport.update(target, { state: patch })),
        retryPolicy,
        onRetry(target),
        tally,
      );
      const attempts = tally.attempts;
      let document: ShadowDocument | undefined;
      if (own !== undefined && versionOf(own) + 1 === accepted.version) {
        document = remember(entry, own, { state: patch }, accepted);
        learnFromOwnWrite(entry.history, document?.state.delta !== undefined);
      } else if (own === undefined || versionOf(own) < accepted.version) {
        entry.knowledge = undefined;
        const heard = transport.known?.(target);
        if (heard?.exists && heard.document.version === accepted.version)
          document = structuredClone(heard.document);
      }
      for (const [i, pending] of calls.entries()) {
        pending.resolve({
          document: i === 0 ? document : copy(document),
          version: accepted.version,
          attempts,
          skipped: false,
        });
      }
    } catch (error) {
      entry.knowledge = undefined;
      const failure = giveUpError(target, tally, undefined, error);
      for (const pending of calls) pending.reject(failure);
    }
  }
  return { runRound, getDocument, remove, preflight };
}

type Engine = ReturnType<typeof createEngine>;
