/**
 * What the web console knows about the service, kept up to date from the engine's own events (answered requests
 * and reserved-topic messages) instead of polling: one summary per shadow, each shadow's recent versions and
 * reserved-topic messages, and the counters behind the charts.
 */
import { computeDelta } from '../../core/delta.js';
import type { MetadataNode, ShadowRecord, ShadowTarget, UpdateAcceptedBody } from '../../core/document.js';
import { parseShadowTopic, shadowTopic } from '../../core/topics.js';
import type { OutgoingMessage } from '../engine-api.js';
import type { ShadowEngine, ShadowResultEvent } from '../shadow-engine.js';
import { type ConsoleStatKind, type ConsoleStats, createConsoleStats } from './console-stats.js';

/** The MQTT client id the console's own edits carry, so they show as `console` rather than a plain HTTP write. */
export const CONSOLE_CLIENT_ID = 'shadow-sync-console';

/** One shadow in the console's list. */
export interface ShadowSummary {
  thing: string;
  /** The shadow's name; `''` for the classic shadow (a named shadow's name is never empty). */
  shadow: string;
  version: number;
  /** Clock time of the last accepted write, in epoch milliseconds (0 when unknown). */
  updatedAt: number;
  /** Whether desired differs from reported (a delta is pending). */
  delta: boolean;
  /** Whether the shadow is deleted (a tombstone). */
  deleted: boolean;
}

/** Who wrote a version: an app (HTTP), a device report (MQTT, reported only), anything else, or a delete. */
export type VersionKind = 'app' | 'device' | 'other' | 'delete';

/** One accepted write in a shadow's timeline. */
export interface TimelineEntry {
  version: number;
  at: number;
  kind: VersionKind;
  /** `http`, `console`, `mqtt` or `mqtt:<client id>`. */
  source: string;
}

/** One message on a shadow's reserved topics. */
export interface MessageEntry {
  /** Order of the messages of one shadow (a device's request is placed before the answers it caused). */
  seq: number;
  at: number;
  topic: string;
  /** `in`: a device's request; `out`: published by the service. */
  direction: 'in' | 'out';
  /** The payload as text (cut at {@link MAX_PAYLOAD_CHARS} characters). */
  payload: string;
}

/** A change the tracker tells its listeners about. */
export type TrackerChange =
  | { type: 'shadow'; key: string; entry: TimelineEntry }
  | { type: 'message'; key: string; entry: StoredMessage }
  | { type: 'count'; thing: string; kind: ConsoleStatKind; at: number; key: string };

/** The tracker the console server reads from. */
export interface ShadowTracker {
  /** Every shadow's summary, in no particular order. */
  summaries(): ShadowSummary[];
  /** One shadow's current summary, or `undefined` when the console never saw it. */
  summary(key: string): ShadowSummary | undefined;
  /** The recent versions of one shadow, oldest first. */
  timeline(key: string): TimelineEntry[];
  /** The recent reserved-topic messages of one shadow, in `seq` order. */
  messages(key: string): MessageEntry[];
  /** A message as the page gets it (payload decoded and cut). */
  entryOf(message: StoredMessage): MessageEntry;
  /** Counters behind the charts. */
  readonly stats: ConsoleStats;
  /** Subscribes to changes; returns the unsubscribe function. */
  subscribe(listener: (change: TrackerChange) => void): () => void;
  /** Stops listening to the engine. */
  close(): void;
}

/** Payloads longer than this are cut in the message list. */
export const MAX_PAYLOAD_CHARS = 2048;
/** Versions kept per shadow for its timeline. */
const TIMELINE_LENGTH = 60;
/** Messages kept per shadow. */
/**
 * Reserved-topic messages kept, fleet-wide (a shadow opened on the page shows its share of them, then its own live).
 * One ring for the fleet rather than one per shadow: each payload is its own buffer, and holding thousands of them
 * per shadow made the garbage collector, not the console, the main cost of a busy service.
 */
const RECENT_MESSAGES = 1000;
/** Messages of one shadow sent with its snapshot. */
const MESSAGES_PER_SHADOW = 50;
/** Shadows whose timeline is kept (least recently active forgotten first). */
const DETAILED_SHADOWS = 5000;

/** The key of a shadow in the console: thing name and shadow name (empty for classic) joined by NUL. */
export function shadowKey(target: ShadowTarget): string {
  return `${target.thingName}\u0000${target.shadowName ?? ''}`;
}

/** The target a {@link shadowKey} names. */
export function targetOfKey(key: string): ShadowTarget {
  const cut = key.indexOf('\u0000');
  const thingName = key.slice(0, cut);
  const shadowName = key.slice(cut + 1);
  return shadowName === '' ? { thingName } : { thingName, shadowName };
}

/** A message as kept: the payload stays bytes until a page asks for it, so an unwatched service pays no decoding. */
export interface StoredMessage extends Omit<MessageEntry, 'payload'> {
  bytes: Uint8Array;
}

/** What the tracker holds per shadow for its summary, computed only when asked for. */
interface SummarySource {
  target: ShadowTarget;
  updatedAt: number;
  /** The record the cached summary was made from (records are immutable: a new write is a new object). */
  record: ShadowRecord | undefined;
  summary: ShadowSummary | undefined;
}

interface Detail {
  timeline: TimelineEntry[];
}

/** A kept message with the shadow it belongs to. */
interface KeptMessage {
  key: string;
  message: StoredMessage;
}

const decoder = new TextDecoder();

function textOf(payload: Uint8Array): string {
  const text = decoder.decode(payload);
  return text.length > MAX_PAYLOAD_CHARS ? `${text.slice(0, MAX_PAYLOAD_CHARS)}…` : text;
}

/** Latest metadata timestamp (seconds) anywhere below `node`. */
function latestTimestamp(node: MetadataNode | undefined): number {
  if (node === undefined || node === null || typeof node !== 'object') return 0;
  if (Array.isArray(node)) return node.reduce<number>((max, item) => Math.max(max, latestTimestamp(item)), 0);
  if (typeof (node as { timestamp?: unknown }).timestamp === 'number')
    return (node as { timestamp: number }).timestamp;
  let max = 0;
  for (const value of Object.values(node)) max = Math.max(max, latestTimestamp(value));
  return max;
}

function summaryOf(target: ShadowTarget, record: ShadowRecord, updatedAt: number): ShadowSummary {
  const base = { thing: target.thingName, shadow: target.shadowName ?? '' };
  if ('deleted' in record)
    // A tombstone holds the version a re-created shadow continues from; the deleted document's was one less.
    return { ...base, version: record.version - 1, updatedAt: record.deletedAt, delta: false, deleted: true };
  return {
    ...base,
    version: record.version,
    updatedAt,
    delta: computeDelta(record.state.desired, record.state.reported) !== undefined,
    deleted: false,
  };
}

function kindOf(event: ShadowResultEvent): VersionKind {
  const { request, result } = event;
  if (request.operation === 'delete') return 'delete';
  if (request.origin === 'http') return 'app';
  const state = result.ok ? (result.body as UpdateAcceptedBody).state : undefined;
  if (state !== undefined && state !== null && state.reported !== undefined && state.desired === undefined)
    return 'device';
  return 'other';
}

function sourceOf(event: ShadowResultEvent): string {
  const { origin, clientId } = event.request;
  if (clientId === CONSOLE_CLIENT_ID) return 'console';
  if (origin === 'http') return 'http';
  return clientId === undefined ? 'mqtt' : `mqtt:${clientId}`;
}

/**
 * Starts tracking an engine: reads its current records once, then follows its events.
 *
 * @param engine - the service's engine
 * @param bucketMs - length of one chart bucket in clock milliseconds
 * @param buckets - buckets kept per series
 */
export function createShadowTracker(engine: ShadowEngine, bucketMs: number, buckets: number): ShadowTracker {
  const stats = createConsoleStats(bucketMs, buckets);
  const summaries = new Map<string, SummarySource>();
  const details = new Map<string, Detail>();
  const listeners = new Set<(change: TrackerChange) => void>();
  let seq = 0;

  for (const { target, record } of engine.snapshot()) {
    const updatedAt =
      'deleted' in record
        ? record.deletedAt
        : Math.max(latestTimestamp(record.metadata.desired), latestTimestamp(record.metadata.reported)) *
          1000;
    summaries.set(shadowKey(target), { target, updatedAt, record: undefined, summary: undefined });
  }

  function summaryFrom(source: SummarySource): ShadowSummary {
    const record = engine.read(source.target);
    if (record === undefined) {
      // An expired tombstone (or a record never stored): shown as deleted at the last version the console saw.
      const version = source.summary?.version ?? 0;
      return {
        thing: source.target.thingName,
        shadow: source.target.shadowName ?? '',
        version,
        updatedAt: source.updatedAt,
        delta: false,
        deleted: true,
      };
    }
    if (record !== source.record || source.summary === undefined) {
      source.record = record;
      source.summary = summaryOf(source.target, record, source.updatedAt);
    }
    return source.summary;
  }

  function tell(change: TrackerChange): void {
    for (const listener of listeners) {
      try {
        listener(change);
      } catch {
        // One broken connection must not stop the others.
      }
    }
  }

  /** The detail of a shadow, created on first use and marked most recently active. */
  function detailOf(key: string): Detail {
    let detail = details.get(key);
    if (detail === undefined) {
      detail = { timeline: [] };
      if (details.size >= DETAILED_SHADOWS) {
        const oldest = details.keys().next().value;
        if (oldest !== undefined) details.delete(oldest);
      }
    } else details.delete(key);
    details.set(key, detail);
    return detail;
  }

  /** The ring of recent messages: `recent[(start + i) % RECENT_MESSAGES]`, oldest first. */
  const recent: KeptMessage[] = [];
  let start = 0;
  /** Per shadow, the `seq` of the first service message since its last answered request. */
  const unclaimed = new Map<string, number>();

  function pushMessage(key: string, entry: StoredMessage): void {
    if (recent.length < RECENT_MESSAGES) recent.push({ key, message: entry });
    else {
      recent[start] = { key, message: entry };
      start = (start + 1) % RECENT_MESSAGES;
    }
    tell({ type: 'message', key, entry });
  }

  function messagesOf(key: string): StoredMessage[] {
    const mine: StoredMessage[] = [];
    for (let i = 0; i < recent.length; i++) {
      const kept = recent[(start + i) % recent.length] as KeptMessage;
      if (kept.key === key) mine.push(kept.message);
    }
    return mine.sort((a, b) => a.seq - b.seq).slice(-MESSAGES_PER_SHADOW);
  }

  function entryOf(message: StoredMessage): MessageEntry {
    const { bytes, ...rest } = message;
    return { ...rest, payload: textOf(bytes) };
  }

  const stopMessages = engine.onMessage((message: OutgoingMessage) => {
    const parsed = parseShadowTopic(message.topic);
    if (parsed === undefined) return;
    const key = shadowKey(parsed.target);
    const entry: StoredMessage = {
      seq: ++seq,
      at: Date.now(),
      topic: message.topic,
      direction: 'out',
      bytes: message.payload,
    };
    if (!unclaimed.has(key)) unclaimed.set(key, entry.seq);
    pushMessage(key, entry);
  });

  const stopResults = engine.onResult((event) => {
    const { request, result, at } = event;
    const key = shadowKey(request.target);
    if (request.origin === 'mqtt') {
      // The service's answers to this request were published before the engine returned it; the request goes
      // before them.
      const before = unclaimed.get(key);
      pushMessage(key, {
        seq: before === undefined ? ++seq : before - 0.5,
        at: Date.now(),
        topic: shadowTopic(request.target, request.operation),
        direction: 'in',
        bytes: request.payload,
      });
    }
    unclaimed.delete(key);
    const thing = request.target.thingName;
    if (!result.ok) {
      const code = result.rejection.code;
      const kind = code === 409 ? 'conflict' : code === 429 ? 'throttled' : undefined;
      if (kind !== undefined) {
        stats.record(thing, kind, at);
        tell({ type: 'count', thing, kind, at, key });
      }
      return;
    }
    if (request.operation === 'get') return;
    const source = summaries.get(key);
    if (source === undefined)
      summaries.set(key, { target: request.target, updatedAt: at, record: undefined, summary: undefined });
    else source.updatedAt = at;
    const kind = kindOf(event);
    const version = (result.body as { version: number }).version;
    const entry: TimelineEntry = { version, at, kind, source: sourceOf(event) };
    const detail = detailOf(key);
    detail.timeline.push(entry);
    if (detail.timeline.length > TIMELINE_LENGTH) detail.timeline.shift();
    const statKind: ConsoleStatKind = kind === 'delete' ? 'other' : kind;
    stats.record(thing, statKind, at);
    tell({ type: 'shadow', key, entry });
    tell({ type: 'count', thing, kind: statKind, at, key });
  });

  return {
    summaries: () => [...summaries.values()].map(summaryFrom),
    summary(key) {
      const source = summaries.get(key);
      return source === undefined ? undefined : summaryFrom(source);
    },
    timeline: (key) => [...(details.get(key)?.timeline ?? [])],
    messages: (key) => messagesOf(key).map(entryOf),
    entryOf,
    stats,
    subscribe(listener) {
      listeners.add(listener);
      return () => {
        listeners.delete(listener);
      };
    },
    close() {
      stopMessages();
      stopResults();
      listeners.clear();
    },
  };
}
