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
  /**
   * The connection was lost without a persistent session: the broker dropped every filter, so each shadow is
   * subscribed again on its next acquisition.
   */
  reset(): void;
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

type PoolClient = SubscribingClient & { unsubscribeAsync(topics: string[]): Promise<unknown> };

/**
 * The pool as a class: a fleet of 10,000 device agents holds 10,000 pools, and methods on a prototype cost
 * nothing per instance where a closure per function would.
 */
class Pool implements SubscriptionPool {
  // Insertion order is recency: an acquisition moves its entry to the end, eviction starts at the front.
  private readonly entries = new Map<string, Entry>();
  private readonly waiters: Waiter[] = [];
  private used = 0;
  private closed: Error | undefined;

  constructor(
    private readonly client: PoolClient,
    private readonly settings: SubscriptionPoolSettings,
  ) {}

  private groupOf(target: ShadowTarget): { key: string; target: ShadowTarget } {
    if (this.settings.mode !== 'wildcard') return { key: shadowKey(target), target };
    return target.shadowName === undefined
      ? { key: '+', target: WILDCARD_CLASSIC }
      : { key: '+/+', target: WILDCARD_NAMED };
  }

  private touch(key: string, entry: Entry): void {
    this.entries.delete(key);
    this.entries.set(key, entry);
  }

  private forget(key: string, entry: Entry): void {
    if (this.entries.get(key) === entry) this.entries.delete(key);
    this.used -= entry.filters.length;
    this.pump();
  }

  private unsubscribe(key: string, entry: Entry): void {
    entry.state = 'unsubscribing';
    const done = () => this.forget(key, entry);
    // On failure the UNSUBSCRIBE never reached the broker (the connection ended): the broker dropped the
    // filters with the session, or keeps them in a persistent one; either way the pool stops counting on them.
    this.client.unsubscribeAsync([...entry.filters]).then(done, done);
  }

  private subscribe(key: string, target: ShadowTarget): Entry {
    const { suffixes, qos, maxFiltersPerSubscribe } = this.settings;
    const filters = suffixes.map((suffix) => shadowTopic(target, suffix));
    const entry: Entry = { target, filters, state: 'subscribing', holders: 0, ready: Promise.resolve() };
    this.used += filters.length;
    this.entries.set(key, entry);
    entry.ready = subscribeFilters(this.client, filters, qos, maxFiltersPerSubscribe).then(
      () => {
        if (entry.state === 'subscribing') entry.state = 'live';
      },
      (error: unknown) => {
        // Some filters may have been granted: release them all, so that what the broker counts stays known.
        if (entry.state === 'subscribing') this.unsubscribe(key, entry);
        throw error;
      },
    );
    // Holders see the failure through their own await; this one only keeps it from being unhandled.
    entry.ready.catch(ignore);
    return entry;
  }

  /** Starts unsubscribing idle shadows, least recently used first, when that frees `needed` filters. */
  private evictFor(needed: number): void {
    let freeing = 0;
    for (const entry of this.entries.values())
      if (entry.state === 'unsubscribing') freeing += entry.filters.length;
    if (freeing >= needed) return;
    const idle: [string, Entry][] = [];
    let idleFilters = 0;
    for (const [key, entry] of this.entries) {
      if (freeing + idleFilters >= needed) break;
      if (entry.state === 'live' && entry.holders === 0) {
        idle.push([key, entry]);
        idleFilters += entry.filters.length;
      }
    }
    if (freeing + idleFilters < needed) return; // every shadow is busy: wait for a release
    for (const [key, entry] of idle) {
      this.settings.onReleased?.(entry.target);
      this.unsubscribe(key, entry);
    }
  }

  /** Serves waiting acquisitions in order; the first that finds no room stops the others (no starvation). */
  private pump(): void {
    const { suffixes, maxSubscriptions } = this.settings;
    while (this.waiters.length > 0 && this.closed === undefined) {
      const waiter = this.waiters[0] as Waiter;
      const existing = this.entries.get(waiter.key);
      if (existing !== undefined && existing.state !== 'unsubscribing') {
        this.waiters.shift();
        this.touch(waiter.key, existing);
        attach(waiter, existing);
        continue;
      }
      if (existing !== undefined) return; // resubscribed once its UNSUBACK came
      const needed = suffixes.length - (maxSubscriptions - this.used);
      if (needed > 0) {
        this.evictFor(needed);
        return;
      }
      this.waiters.shift();
      attach(waiter, this.subscribe(waiter.key, waiter.target));
    }
  }

  acquire(target: ShadowTarget, signal?: AbortSignal): Promise<void> {
    if (this.closed !== undefined) return Promise.reject(this.closed);
    if (signal?.aborted) return Promise.reject(signal.reason);
    const group = this.groupOf(target);
    const existing = this.entries.get(group.key);
    // A shadow already subscribed is served at once, whoever waits for room.
    if (existing !== undefined && existing.state !== 'unsubscribing') {
      this.touch(group.key, existing);
      existing.holders++;
      return existing.ready;
    }
    return new Promise<void>((resolve, reject) => {
      const onAbort = () => {
        const index = this.waiters.indexOf(waiter);
        if (index < 0) return;
        this.waiters.splice(index, 1);
        reject(signal?.reason);
        this.pump();
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
      this.waiters.push(waiter);
      this.pump();
    });
  }

  release(target: ShadowTarget): void {
    const entry = this.entries.get(this.groupOf(target).key);
    if (entry === undefined || entry.holders === 0) return;
    entry.holders--;
    if (entry.holders === 0 && this.waiters.length > 0) this.pump();
  }

  covers(target: ShadowTarget): boolean {
    const entry = this.entries.get(this.groupOf(target).key);
    return entry !== undefined && entry.state !== 'unsubscribing';
  }

  filterCount(): number {
    return this.used;
  }

  reset(): void {
    this.entries.clear();
    this.used = 0;
    this.pump();
  }

  async close(reason: Error, connected: boolean): Promise<void> {
    if (this.closed !== undefined) return;
    this.closed = reason;
    for (const waiter of this.waiters.splice(0)) waiter.reject(reason);
    const filters = [...this.entries.values()]
      .filter((entry) => entry.state !== 'unsubscribing')
      .flatMap((entry) => entry.filters);
    this.entries.clear();
    this.used = 0;
    if (filters.length > 0 && connected) await this.client.unsubscribeAsync(filters).catch(ignore);
  }
}

const ignore = () => undefined;

function attach(waiter: Waiter, entry: Entry): void {
  entry.holders++;
  entry.ready.then(waiter.resolve, waiter.reject);
}

/**
 * Creates the pool over an mqtt.js client.
 *
 * @param client - the connection (only `subscribeAsync` and `unsubscribeAsync` are used)
 * @param settings - mode, suffixes, QoS and the quotas
 */
export function createSubscriptionPool(
  client: PoolClient,
  settings: SubscriptionPoolSettings,
): SubscriptionPool {
  return new Pool(client, settings);
}
