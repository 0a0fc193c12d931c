/**
 * The response-topic subscriptions of one MQTT connection, kept inside AWS IoT's per-connection quotas: at
 * most `maxSubscriptions` live filters (AWS: 50) and `maxFiltersPerSubscribe` filters per SUBSCRIBE (AWS: 8).
 *
 * Two ways to address many shadows over one connection:
 * - `per-shadow` (default): each shadow's own response topics, subscribed on first use and held while it has
 *   requests in flight. When a new shadow needs room, the least recently used idle shadows are unsubscribed
 *   (and their UNSUBACK awaited, so the broker never counts more than the limit); when every subscribed shadow
 *   is busy, the request waits its turn (first come, first served).
 * - `wildcard`: one filter per response topic for every thing (`$aws/things/+/shadow/update/accepted`, and the
 *   `name/+` form for named shadows once one is used), never released. Needs a policy that allows it (AWS IoT
 *   policies can); the connection then receives every shadow's responses.
 */
import type { ShadowTarget } from '../core/document.js';
import type { ShadowTopicSuffix } from '../core/topics.js';
import { shadowTopic } from '../core/topics.js';
import { type SubscribingClient, subscribeFilters } from './subscribe-filters.js';

/** How a connection subscribes to the response topics of the shadows it addresses. */
export type SubscriptionMode = 'per-shadow' | 'wildcard';

/** Settings of a {@link SubscriptionPool}. */
export interface SubscriptionPoolSettings {
  mode: SubscriptionMode;
  /** Response suffixes subscribed for each shadow (or each wildcard group). */
  suffixes: readonly ShadowTopicSuffix[];
  qos: 0 | 1;
  maxSubscriptions: number;
  maxFiltersPerSubscribe: number;
  /** Told when a shadow's subscriptions are released to make room (its broadcasts stop arriving). */
  onReleased?: (target: ShadowTarget) => void;
}

/** The subscriptions a connection holds for the shadows it addresses. */
export interface SubscriptionPool {
  /**
   * Subscribes the shadow's response topics unless they are, and holds them until {@link SubscriptionPool.release}.
   * Resolves once the broker granted every filter.
   *
   * @throws SubscriptionRefusedError or the client's error; the signal's reason when aborted while waiting
   */
  acquire(target: ShadowTarget, signal?: AbortSignal): Promise<void>;
  /** Ends one hold taken by a resolved {@link SubscriptionPool.acquire}. */
  release(target: ShadowTarget): void;
  /** Whether the shadow's responses reach this connection through the pool's subscriptions. */
  covers(target: ShadowTarget): boolean;
  /** Filters subscribed, being subscribed or being unsubscribed (what the broker may count). */
  filterCount(): number;
  /** Refuses new acquisitions, rejects waiting ones with `reason` and unsubscribes every filter the pool holds. */
  close(reason: Error, connected: boolean): Promise<void>;
}

type EntryState = 'subscribing' | 'live' | 'unsubscribing';

interface Entry {
  target: ShadowTarget;
  filters: readonly string[];
  state: EntryState;
  holders: number;
  ready: Promise<void>;
}

interface Waiter {
  key: string;
  target: ShadowTarget;
  resolve(): void;
  reject(error: unknown): void;
}

/** Shared by the per-shadow keys: thing names and shadow names never contain '/'. */
function shadowKey(target: ShadowTarget): string {
  return target.shadowName === undefined ? target.thingName : `${target.thingName}/${target.shadowName}`;
}

const WILDCARD_CLASSIC: ShadowTarget = { thingName: '+' };
const WILDCARD_NAMED: ShadowTarget = { thingName: '+', shadowName: '+' };

/**
 * Creates the pool over an mqtt.js client.
 *
 * @param client - the connection (only `subscribeAsync` and `unsubscribeAsync` are used)
 * @param settings - mode, suffixes, QoS and the quotas
 */
export function createSubscriptionPool(
  client: SubscribingClient & { unsubscribeAsync(topics: string[]): Promise<unknown> },
  settings: SubscriptionPoolSettings,
): SubscriptionPool {
  const { mode, suffixes, qos, maxSubscriptions, maxFiltersPerSubscribe } = settings;
  // Insertion order is recency: an acquisition moves its entry to the end, eviction starts at the front.
  const entries = new Map<string, Entry>();
  const waiters: Waiter[] = [];
  let used = 0;
  let closed: Error | undefined;

  const groupOf = (target: ShadowTarget): { key: string; target: ShadowTarget } =>
    mode === 'wildcard'
      ? target.shadowName === undefined
        ? { key: '+', target: WILDCARD_CLASSIC }
        : { key: '+/+', target: WILDCARD_NAMED }
      : { key: shadowKey(target), target };

  function touch(key: string, entry: Entry): void {
    entries.delete(key);
    entries.set(key, entry);
  }

  function forget(key: string, entry: Entry): void {
    if (entries.get(key) === entry) entries.delete(key);
    used -= entry.filters.length;
    pump();
  }

  function unsubscribe(key: string, entry: Entry): void {
    entry.state = 'unsubscribing';
    client.unsubscribeAsync([...entry.filters]).then(
      () => forget(key, entry),
      // The UNSUBSCRIBE never reached the broker (the connection ended): the broker dropped the filters
      // with the session, or keeps them in a persistent one; either way the pool stops counting on them.
      () => forget(key, entry),
    );
  }

  function subscribe(key: string, target: ShadowTarget): Entry {
    const filters = suffixes.map((suffix) => shadowTopic(target, suffix));
    const entry: Entry = { target, filters, state: 'subscribing', holders: 0, ready: Promise.resolve() };
    used += filters.length;
    entries.set(key, entry);
    entry.ready = subscribeFilters(client, filters, qos, maxFiltersPerSubscribe).then(
      () => {
        if (entry.state === 'subscribing') entry.state = 'live';
      },
      (error: unknown) => {
        // Some filters may have been granted: release them all, so that what the broker counts stays known.
        if (entry.state === 'subscribing') unsubscribe(key, entry);
        throw error;
      },
    );
    // Holders see the failure through their own await; this one only keeps it from being unhandled.
    entry.ready.catch(() => undefined);
    return entry;
  }

  /** Starts unsubscribing idle shadows, least recently used first, when that frees `needed` filters. */
  function evictFor(needed: number): void {
    let freeing = 0;
    for (const entry of entries.values())
      if (entry.state === 'unsubscribing') freeing += entry.filters.length;
    if (freeing >= needed) return;
    const idle: [string, Entry][] = [];
    let idleFilters = 0;
    for (const [key, entry] of entries) {
      if (freeing + idleFilters >= needed) break;
      if (entry.state === 'live' && entry.holders === 0) {
        idle.push([key, entry]);
        idleFilters += entry.filters.length;
      }
    }
    if (freeing + idleFilters < needed) return; // every shadow is busy: wait for a release
    for (const [key, entry] of idle) {
      settings.onReleased?.(entry.target);
      unsubscribe(key, entry);
    }
  }

  function attach(waiter: Waiter, entry: Entry): void {
    entry.holders++;
    entry.ready.then(waiter.resolve, waiter.reject);
  }

  /** Serves waiting acquisitions in order; the first that finds no room stops the others (no starvation). */
  function pump(): void {
    while (waiters.length > 0 && closed === undefined) {
      const waiter = waiters[0] as Waiter;
      const existing = entries.get(waiter.key);
      if (existing !== undefined && existing.state !== 'unsubscribing') {
        waiters.shift();
        touch(waiter.key, existing);
        attach(waiter, existing);
        continue;
      }
      if (existing !== undefined) return; // resubscribed once its UNSUBACK came
      const needed = suffixes.length - (maxSubscriptions - used);
      if (needed > 0) {
        evictFor(needed);
        return;
      }
      waiters.shift();
      attach(waiter, subscribe(waiter.key, waiter.target));
    }
  }

  return {
    acquire(target, signal) {
      if (closed !== undefined) return Promise.reject(closed);
      if (signal?.aborted) return Promise.reject(signal.reason);
      const group = groupOf(target);
      const existing = entries.get(group.key);
      // A shadow already subscribed is served at once, whoever waits for room.
      if (existing !== undefined && existing.state !== 'unsubscribing') {
        touch(group.key, existing);
        existing.holders++;
        return existing.ready;
      }
      return new Promise<void>((resolve, reject) => {
        const onAbort = () => {
          const index = waiters.indexOf(waiter);
          if (index < 0) return;
          waiters.splice(index, 1);
          reject(signal?.reason);
          pump();
        };
        const waiter: Waiter = {
          ...group,
          resolve: () => {
            signal?.removeEventListener('abort', onAbort);
            resolve();
          },
          reject: (error) => {
            signal?.removeEventListener('abort', onAbort);
            reject(error);
          },
        };
        signal?.addEventListener('abort', onAbort, { once: true });
        waiters.push(waiter);
        pump();
      });
    },
    release(target) {
      const entry = entries.get(groupOf(target).key);
      if (entry === undefined || entry.holders === 0) return;
      entry.holders--;
      if (entry.holders === 0 && waiters.length > 0) pump();
    },
    covers(target) {
      const entry = entries.get(groupOf(target).key);
      return entry !== undefined && entry.state !== 'unsubscribing';
    },
    filterCount: () => used,
    async close(reason, connected) {
      if (closed !== undefined) return;
      closed = reason;
      for (const waiter of waiters.splice(0)) waiter.reject(reason);
      const filters = [...entries.values()]
        .filter((entry) => entry.state !== 'unsubscribing')
        .flatMap((entry) => entry.filters);
      entries.clear();
      used = 0;
      if (filters.length > 0 && connected) await client.unsubscribeAsync(filters).catch(() => undefined);
    },
  };
}
