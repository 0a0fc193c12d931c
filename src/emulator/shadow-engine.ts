/**
 * The local service's shadow engine: the one place that owns the store, applies the pure core's rules,
 * enforces per-thing quotas, serialises requests per shadow, makes accepted writes durable before answering,
 * and emits the messages AWS publishes on the reserved topics.
 *
 * Every service rule (validation, merge, versions, delta, 404s, limits) is the pure core's: this module only
 * sequences calls to `applyUpdate`, `applyDelete` and `getDocument`.
 */
import { applyDelete } from '../core/apply-delete.js';
import { applyUpdate, isLiveTombstone } from '../core/apply-update.js';
import { decodeRequestPayload } from '../core/decode-payload.js';
import { computeDelta } from '../core/delta.js';
import type {
  DeleteAcceptedBody,
  GetAcceptedBody,
  NamedShadowListBody,
  RejectedBody,
  Rejection,
  ShadowRecord,
  ShadowTarget,
  UpdateAcceptedBody,
} from '../core/document.js';
import { getDocument } from '../core/get-document.js';
import { jsonEqual } from '../core/json-equal.js';
import { checkThingName, resolveLimits, type ShadowLimits } from '../core/limits.js';
import { type ShadowTopicSuffix, shadowTopic } from '../core/topics.js';
import { readClientToken } from '../core/validate-request.js';
import { ShadowOptionsError } from '../errors.js';
import type { OutgoingMessage, ShadowEngineApi, ShadowRequest, ShadowResult } from './engine-api.js';
import { type Journal, type JournalFileOps, type JournalStats, openJournal } from './journal.js';
import { createShadowStore, isTombstone, type StoredRecord } from './shadow-store.js';

/** Options of {@link createShadowEngine}. */
export interface ShadowEngineOptions {
  /**
   * Limits and quotas; unspecified ones take AWS's defaults.
   * @defaultValue DEFAULT_LIMITS (8 KB state, depth 6, 20 requests/s and 10 in flight per thing, ...)
   */
  limits?: Partial<ShadowLimits>;
  /**
   * The clock, in epoch milliseconds. Timestamps in bodies, deleted-version retention and the per-thing
   * request rate all read it, so tests can drive time.
   * @defaultValue Date.now
   */
  clock?: () => number;
  /**
   * Directory for the journal and snapshot; without it the store lives in memory only.
   * @defaultValue undefined (in memory)
   */
  dataDir?: string;
  /**
   * Compact the journal once it exceeds this many bytes (and twice the live data).
   * @defaultValue 67108864 (64 MiB)
   */
  compactThresholdBytes?: number;
  /**
   * Publish `update/delta` after every accepted update whose resulting delta is non-empty, even when the
   * delta is the same as before the update. AWS does not document this (spec 3.3, open question 2); the
   * AWS-authored Greengrass ShadowManager publishes every time, so that is the default. `false` publishes
   * only when the delta's content changed.
   * @defaultValue true
   */
  publishUnchangedDelta?: boolean;
  /**
   * How often, in clock milliseconds, the engine drops every tombstone older than `deletedVersionRetentionMs`
   * from the store. The sweep runs on the injected clock when a request arrives at least this long after the
   * previous sweep (no timer: an idle engine changes nothing). Independently of it, an expired tombstone is
   * dropped whenever its shadow is accessed, and the journal leaves expired tombstones out of every snapshot and
   * of the state recovered at start.
   * @defaultValue 60000 (one minute)
   */
  tombstoneSweepIntervalMs?: number;
  /**
   * The journal's file operations (with `dataDir`). For tests: inject failing ones to see the engine answer
   * 500 `Internal service failure` without acknowledging or applying the update.
   * @defaultValue NODE_JOURNAL_FILE_OPS (node:fs)
   */
  journalFileOps?: JournalFileOps;
}

/** Counters of what the engine did. */
export interface ShadowEngineStats {
  /** Requests received by {@link ShadowEngineApi.handle}. */
  requests: number;
  /** Requests answered with 429. */
  throttled: number;
  /** Requests answered with a rejection (including 429). */
  rejected: number;
  /** Messages emitted to `onMessage` listeners. */
  messages: number;
  /** Tombstones dropped from the store because they outlived `deletedVersionRetentionMs`. */
  expiredTombstones: number;
  /** Journal counters when a data directory is used. */
  journal: JournalStats | undefined;
}

/**
 * One request the engine answered, as observers see it: what was asked, what was answered and when (on the
 * engine's clock). Accepted writes are observed after they are durable and in the store, so `read()` inside a
 * listener already returns the new record.
 */
export interface ShadowResultEvent {
  request: ShadowRequest;
  result: ShadowResult;
  /** Engine clock time at which the answer was decided. */
  at: number;
}

/** The engine: the front contract plus read access for tests, demos and tools. */
export interface ShadowEngine extends ShadowEngineApi {
  /** The limits in force. */
  readonly limits: Readonly<ShadowLimits>;
  /** The stored record of a shadow (document or tombstone), or `undefined`. Do not mutate it. */
  read(target: ShadowTarget): ShadowRecord | undefined;
  /** Every stored record (documents and unexpired tombstones). */
  snapshot(): StoredRecord[];
  /**
   * Drops every tombstone older than `deletedVersionRetentionMs` (on the engine's clock) from the store now,
   * instead of waiting for the periodic sweep.
   * @returns how many were dropped
   */
  expireTombstones(): number;
  /** What the engine did so far. */
  stats(): ShadowEngineStats;
  /**
   * Observes every answered request (accepted and rejected, 409s and 429s included, over HTTP and MQTT), for
   * tools such as the web console; the reserved-topic messages alone do not show HTTP rejections. A throwing
   * listener never affects the answer.
   * @returns the unsubscribe function
   */
  onResult(listener: (event: ShadowResultEvent) => void): () => void;
  /** Waits for requests in progress, then closes the journal. Later requests are answered with 503. */
  close(): Promise<void>;
}

/** Defaults of {@link ShadowEngineOptions}. */
export const SHADOW_ENGINE_DEFAULTS = Object.freeze({
  clock: Date.now,
  dataDir: undefined,
  compactThresholdBytes: 64 * 1024 * 1024,
  publishUnchangedDelta: true,
  tombstoneSweepIntervalMs: 60_000,
});

/** {@link ShadowEngineOptions} with every default applied and every value validated. */
export interface ResolvedShadowEngineOptions {
  limits: Readonly<ShadowLimits>;
  clock: () => number;
  dataDir: string | undefined;
  compactThresholdBytes: number;
  publishUnchangedDelta: boolean;
  tombstoneSweepIntervalMs: number;
  journalFileOps: JournalFileOps | undefined;
}

const ENGINE_OPTION_KEYS = [
  'limits',
  'clock',
  'dataDir',
  'compactThresholdBytes',
  'publishUnchangedDelta',
  'tombstoneSweepIntervalMs',
  'journalFileOps',
];

/**
 * Validates engine options and applies the defaults.
 *
 * @param options - the caller's options
 * @throws {@link ShadowOptionsError} for an unknown key or an invalid value
 */
export function resolveShadowEngineOptions(options: ShadowEngineOptions = {}): ResolvedShadowEngineOptions {
  if (typeof options !== 'object' || options === null)
    throw new ShadowOptionsError('Shadow engine options must be an object');
  for (const key of Object.keys(options))
    if (!ENGINE_OPTION_KEYS.includes(key))
      throw new ShadowOptionsError(
        `Unknown shadow engine option '${key}'; known options: ${ENGINE_OPTION_KEYS.join(', ')}`,
      );
  const clock = options.clock ?? SHADOW_ENGINE_DEFAULTS.clock;
  if (typeof clock !== 'function')
    throw new ShadowOptionsError('Shadow engine option clock must be a function');
  const dataDir = options.dataDir;
  if (dataDir !== undefined && (typeof dataDir !== 'string' || dataDir === ''))
    throw new ShadowOptionsError('Shadow engine option dataDir must be a non-empty path');
  const compactThresholdBytes = options.compactThresholdBytes ?? SHADOW_ENGINE_DEFAULTS.compactThresholdBytes;
  if (!Number.isSafeInteger(compactThresholdBytes) || compactThresholdBytes < 1)
    throw new ShadowOptionsError(
      `Shadow engine option compactThresholdBytes must be a positive integer, got ${String(compactThresholdBytes)}`,
    );
  const publishUnchangedDelta = options.publishUnchangedDelta ?? SHADOW_ENGINE_DEFAULTS.publishUnchangedDelta;
  if (typeof publishUnchangedDelta !== 'boolean')
    throw new ShadowOptionsError('Shadow engine option publishUnchangedDelta must be a boolean');
  const tombstoneSweepIntervalMs =
    options.tombstoneSweepIntervalMs ?? SHADOW_ENGINE_DEFAULTS.tombstoneSweepIntervalMs;
  if (!Number.isSafeInteger(tombstoneSweepIntervalMs) || tombstoneSweepIntervalMs < 1)
    throw new ShadowOptionsError(
      `Shadow engine option tombstoneSweepIntervalMs must be a positive integer, got ${String(tombstoneSweepIntervalMs)}`,
    );
  return {
    limits: resolveLimits(options.limits),
    clock,
    dataDir,
    compactThresholdBytes,
    publishUnchangedDelta,
    tombstoneSweepIntervalMs,
    // Checked by the journal when it opens.
    journalFileOps: options.journalFileOps,
  };
}

/**
 * The message and type of a throttled request. AWS documents the 429 condition but no text (spec 5.1);
 * `Rate exceeded` is the text AWS APIs commonly send with ThrottlingException.
 */
export const THROTTLED_MESSAGE = 'Rate exceeded';

/** Text of a 500 (a journal write failed): AWS's documented text. */
export const INTERNAL_FAILURE_MESSAGE = 'Internal service failure';

/** The default and maximum ListNamedShadowsForThing page size (the API's range is 1-100; no default documented). */
export const MAX_LIST_PAGE_SIZE = 100;

interface ThingQuota {
  tokens: number;
  refilledAt: number;
  inFlight: number;
}

interface ShadowQueue {
  running: boolean;
  jobs: (() => Promise<void>)[];
}

const encoder = new TextEncoder();

function targetKey(target: ShadowTarget): string {
  return target.shadowName === undefined
    ? `${target.thingName}\u0000`
    : `${target.thingName}\u0001${target.shadowName}`;
}

/** The clientToken of a payload (get/delete content is otherwise ignored, spec 7), read by the core's rule. */
function clientTokenOf(payload: Uint8Array, limits: Readonly<ShadowLimits>): string | undefined {
  if (payload.length === 0) return undefined;
  const decoded = decodeRequestPayload(payload);
  return decoded.ok ? readClientToken(decoded.value, limits.maxClientTokenBytes) : undefined;
}

function invalidRequest(message: string): Rejection {
  return { code: 400, message, errorType: 'InvalidRequestException' };
}

/**
 * Creates the engine. With `dataDir`, the journal is opened and replayed synchronously before this returns.
 *
 * @param options - limits, clock, data directory; see {@link ShadowEngineOptions}
 * @throws {@link ShadowOptionsError} for invalid options; Error when the data directory cannot be used
 * @example
 * const engine = createShadowEngine({ limits: { requestsPerSecondPerThing: 1000 } });
 * const result = await engine.handle({
 *   operation: 'update', target: { thingName: 'lamp' }, origin: 'http',
 *   payload: new TextEncoder().encode('{"state":{"desired":{"on":true}}}'),
 * });
 */
export function createShadowEngine(options: ShadowEngineOptions = {}): ShadowEngine {
  const resolved = resolveShadowEngineOptions(options);
  const { limits, clock, publishUnchangedDelta, tombstoneSweepIntervalMs } = resolved;
  const retentionMs = limits.deletedVersionRetentionMs;
  const store = createShadowStore();
  const journal: Journal | undefined =
    resolved.dataDir === undefined
      ? undefined
      : openJournal({
          dataDir: resolved.dataDir,
          compactThresholdBytes: resolved.compactThresholdBytes,
          ...(resolved.journalFileOps === undefined ? {} : { fileOps: resolved.journalFileOps }),
          // The core's own window test, so the store and the core agree on which tombstones still count.
          isExpired: (tombstone) => !isLiveTombstone(tombstone, clock(), retentionMs),
        });
  if (journal !== undefined) for (const { target, record } of journal.recovered) store.set(target, record);

  const listeners = new Set<(message: OutgoingMessage) => void>();
  const resultListeners = new Set<(event: ShadowResultEvent) => void>();
  const quotas = new Map<string, ThingQuota>();
  const queues = new Map<string, ShadowQueue>();
  const counters = { requests: 0, throttled: 0, rejected: 0, messages: 0, expiredTombstones: 0 };
  let nextSweepAt = clock() + tombstoneSweepIntervalMs;

  /**
   * The shadow's record, with an expired tombstone dropped on the way. Dropping is safe at any moment, even
   * while a request of that shadow is in progress: the core treats an expired tombstone like no record, and
   * `store.delete` only removes the very tombstone that was found expired, never a newer record.
   */
  function current(target: ShadowTarget, now: number): ShadowRecord | undefined {
    const record = store.get(target);
    if (record === undefined || !isTombstone(record) || isLiveTombstone(record, now, retentionMs))
      return record;
    if (store.delete(target, record)) counters.expiredTombstones++;
    return undefined;
  }

  function sweepTombstones(now: number): number {
    nextSweepAt = now + tombstoneSweepIntervalMs;
    let dropped = 0;
    for (const { target, record } of store.tombstones())
      if (!isLiveTombstone(record, now, retentionMs) && store.delete(target, record)) dropped++;
    counters.expiredTombstones += dropped;
    return dropped;
  }
  let active = 0;
  let idle: (() => void)[] = [];
  let closing: Promise<void> | undefined;

  function emit(target: ShadowTarget, suffix: ShadowTopicSuffix, body: unknown): void {
    if (listeners.size === 0) return;
    const message: OutgoingMessage = {
      topic: shadowTopic(target, suffix),
      payload: encoder.encode(JSON.stringify(body)),
    };
    counters.messages++;
    for (const listener of listeners) {
      try {
        listener(message);
      } catch {
        // A failing front must not break the engine or the other fronts.
      }
    }
  }

  function reject(request: ShadowRequest, rejection: Rejection, now: number): ShadowResult {
    counters.rejected++;
    if (request.origin === 'mqtt') {
      const body: RejectedBody = {
        code: rejection.code,
        message: rejection.message,
        timestamp: Math.floor(now / 1000),
      };
      if (rejection.clientToken !== undefined) body.clientToken = rejection.clientToken;
      emit(request.target, `${request.operation}/rejected`, body);
    }
    return { ok: false, rejection };
  }

  /** Takes a request slot of the thing, or says why not (429). Refills the token bucket from the clock. */
  function admit(thingName: string, now: number): boolean {
    let quota = quotas.get(thingName);
    if (quota === undefined) {
      if (quotas.size >= 10_000) pruneQuotas(now);
      quota = { tokens: limits.requestsPerSecondPerThing, refilledAt: now, inFlight: 0 };
      quotas.set(thingName, quota);
    } else if (now > quota.refilledAt) {
      const refill = ((now - quota.refilledAt) / 1000) * limits.requestsPerSecondPerThing;
      quota.tokens = Math.min(limits.requestsPerSecondPerThing, quota.tokens + refill);
      quota.refilledAt = now;
    }
    if (quota.inFlight >= limits.maxInFlightPerThing || quota.tokens < 1) return false;
    quota.tokens -= 1;
    quota.inFlight++;
    return true;
  }

  /** Forgets idle things whose bucket would be full again, so the quota map stays bounded. */
  function pruneQuotas(now: number): void {
    for (const [thing, quota] of quotas)
      if (quota.inFlight === 0 && now - quota.refilledAt >= 1000) quotas.delete(thing);
  }

  function release(thingName: string): void {
    const quota = quotas.get(thingName);
    if (quota !== undefined) quota.inFlight--;
  }

  /** Runs `job` after every earlier job of the same shadow, without blocking other shadows. */
  function enqueue(target: ShadowTarget, job: () => Promise<void>): void {
    const key = targetKey(target);
    let queue = queues.get(key);
    if (queue === undefined) {
      queue = { running: false, jobs: [] };
      queues.set(key, queue);
    }
    queue.jobs.push(job);
    if (!queue.running) void drain(key, queue);
  }

  async function drain(key: string, queue: ShadowQueue): Promise<void> {
    queue.running = true;
    for (let job = queue.jobs.shift(); job !== undefined; job = queue.jobs.shift()) await job();
    queue.running = false;
    queues.delete(key);
  }

  async function persist(target: ShadowTarget, record: ShadowRecord): Promise<void> {
    if (journal !== undefined) await journal.append(target, record);
    store.set(target, record);
  }

  async function execute(request: ShadowRequest): Promise<ShadowResult> {
    const { target } = request;
    const now = clock();
    const prior = current(target, now);
    switch (request.operation) {
      case 'get': {
        const clientToken = clientTokenOf(request.payload, limits);
        const result = getDocument(
          prior,
          clientToken === undefined ? { target, now, limits } : { target, now, clientToken, limits },
        );
        if (!result.ok) return reject(request, result.rejection, now);
        if (request.origin === 'mqtt') emit(target, 'get/accepted', result.body);
        return { ok: true, body: result.body as GetAcceptedBody };
      }
      case 'update': {
        const decoded = decodeRequestPayload(request.payload);
        if (!decoded.ok) return reject(request, decoded.rejection, now);
        const result = applyUpdate(prior, decoded.value, { target, now, limits });
        if (!result.ok) return reject(request, result.rejection, now);
        await persist(target, result.shadow);
        emit(target, 'update/accepted', result.accepted);
        if (result.delta !== undefined && (publishUnchangedDelta || deltaChanged(prior, result.delta.state)))
          emit(target, 'update/delta', result.delta);
        emit(target, 'update/documents', result.documents);
        return { ok: true, body: result.accepted as UpdateAcceptedBody };
      }
      case 'delete': {
        const clientToken = clientTokenOf(request.payload, limits);
        const result = applyDelete(
          prior,
          clientToken === undefined ? { target, now, limits } : { target, now, clientToken, limits },
        );
        if (!result.ok) return reject(request, result.rejection, now);
        await persist(target, result.tombstone);
        emit(target, 'delete/accepted', result.accepted);
        return { ok: true, body: result.accepted as DeleteAcceptedBody };
      }
    }
  }

  function deltaChanged(prior: ShadowRecord | undefined, next: unknown): boolean {
    if (prior === undefined || isTombstone(prior)) return true;
    const before = computeDelta(prior.state.desired, prior.state.reported);
    return before === undefined || !jsonEqual(before.state, next as never);
  }

  function throttled(request: ShadowRequest, now: number): ShadowResult {
    counters.throttled++;
    const rejection: Rejection = { code: 429, message: THROTTLED_MESSAGE, errorType: 'ThrottlingException' };
    // Only an MQTT rejection carries the token (HTTP errors have no body field for it).
    const token = request.origin === 'mqtt' ? clientTokenOf(request.payload, limits) : undefined;
    if (token !== undefined) rejection.clientToken = token;
    return reject(request, rejection, now);
  }

  function observe(request: ShadowRequest, result: ShadowResult): ShadowResult {
    if (resultListeners.size === 0) return result;
    const event: ShadowResultEvent = { request, result, at: clock() };
    for (const listener of resultListeners) {
      try {
        listener(event);
      } catch {
        // An observer must not change what the requester is answered.
      }
    }
    return result;
  }

  function finishOne(): void {
    active--;
    if (active === 0 && idle.length > 0) {
      const waiting = idle;
      idle = [];
      for (const resolve of waiting) resolve();
    }
  }

  return {
    limits,
    handle(request) {
      counters.requests++;
      const now = clock();
      if (now >= nextSweepAt) sweepTombstones(now);
      if (closing !== undefined)
        return Promise.resolve(
          reject(
            request,
            { code: 503, message: 'Service closing', errorType: 'ServiceUnavailableException' },
            now,
          ),
        );
      if (!admit(request.target.thingName, now))
        return Promise.resolve(observe(request, throttled(request, now)));
      active++;
      return new Promise<ShadowResult>((resolve) => {
        enqueue(request.target, async () => {
          let result: ShadowResult;
          try {
            result = await execute(request);
          } catch {
            // A journal failure (disk full, I/O error): the write was not acknowledged and not applied. Like
            // every MQTT rejection it echoes the request's clientToken, so the device can match it.
            const rejection: Rejection = {
              code: 500,
              message: INTERNAL_FAILURE_MESSAGE,
              errorType: 'InternalFailureException',
            };
            const token = request.origin === 'mqtt' ? clientTokenOf(request.payload, limits) : undefined;
            if (token !== undefined) rejection.clientToken = token;
            result = reject(request, rejection, clock());
          }
          release(request.target.thingName);
          finishOne();
          resolve(observe(request, result));
        });
      });
    },
    listNamedShadows(thingName, page) {
      const now = clock();
      const badName = checkThingName(thingName, limits);
      if (badName !== undefined) return { ok: false, rejection: badName };
      const pageSize = page.pageSize ?? MAX_LIST_PAGE_SIZE;
      if (!Number.isSafeInteger(pageSize) || pageSize < 1 || pageSize > MAX_LIST_PAGE_SIZE) {
        const constraint =
          pageSize < 1
            ? 'Member must have value greater than or equal to 1'
            : 'Member must have value less than or equal to 100';
        return {
          ok: false,
          rejection: invalidRequest(
            `1 validation error detected: Value '${String(pageSize)}' at 'pageSize' failed to satisfy constraint: ${Number.isSafeInteger(pageSize) ? constraint : 'Member must be an integer'}`,
          ),
        };
      }
      let after: string | undefined;
      if (page.nextToken !== undefined) {
        after = decodeNextToken(page.nextToken, thingName);
        if (after === undefined) return { ok: false, rejection: invalidRequest('Invalid nextToken') };
      }
      const names = store.namedShadowNames(thingName);
      let start = 0;
      if (after !== undefined) {
        const from = after;
        start = names.findIndex((name) => name > from);
        if (start < 0) start = names.length;
      }
      const results = names.slice(start, start + pageSize);
      const body: NamedShadowListBody = { results, timestamp: Math.floor(now / 1000) };
      const last = results[results.length - 1];
      if (start + pageSize < names.length && last !== undefined)
        body.nextToken = encodeNextToken(last, thingName);
      return { ok: true, body };
    },
    onMessage(listener) {
      listeners.add(listener);
      return () => {
        listeners.delete(listener);
      };
    },
    onResult(listener) {
      resultListeners.add(listener);
      return () => {
        resultListeners.delete(listener);
      };
    },
    read(target) {
      return current(target, clock());
    },
    snapshot() {
      sweepTombstones(clock());
      return store.entries();
    },
    expireTombstones() {
      return sweepTombstones(clock());
    },
    stats() {
      return { ...counters, journal: journal?.stats() };
    },
    close() {
      // Every caller waits for the same close, so none resumes while the journal still holds the directory.
      closing ??= (async () => {
        if (active > 0) await new Promise<void>((resolve) => idle.push(resolve));
        await journal?.close();
        listeners.clear();
        resultListeners.clear();
      })();
      return closing;
    },
  };
}

/**
 * The opaque page token: the last name returned and the thing it belongs to, base64url-encoded. Listing
 * resumes after that name, so shadows created or deleted between pages neither repeat nor shift the pages.
 */
function encodeNextToken(lastName: string, thingName: string): string {
  return Buffer.from(JSON.stringify([thingName, lastName]), 'utf8').toString('base64url');
}

function decodeNextToken(token: string, thingName: string): string | undefined {
  try {
    const parsed = JSON.parse(Buffer.from(token, 'base64url').toString('utf8')) as unknown;
    if (
      Array.isArray(parsed) &&
      parsed.length === 2 &&
      parsed[0] === thingName &&
      typeof parsed[1] === 'string'
    )
      return parsed[1];
  } catch {
    // fall through: not one of our tokens
  }
  return undefined;
}
