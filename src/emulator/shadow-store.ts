/**
 * The local service's in-memory shadow store: one record (live document or tombstone) per (thing, shadow name).
 *
 * Records are immutable values produced by the pure core (`applyUpdate` / `applyDelete` never mutate their
 * inputs), so the store hands out the stored objects themselves; callers must not mutate them.
 * Things are indexed separately so that ListNamedShadowsForThing needs no scan of the whole store, and
 * tombstones are indexed too, so that dropping expired ones needs no scan of the live documents.
 */
import type { ShadowRecord, ShadowTarget, ShadowTombstone } from '../core/document.js';

/** One stored record with the shadow it belongs to. */
export interface StoredRecord {
  target: ShadowTarget;
  record: ShadowRecord;
}

interface ThingRecords {
  classic: ShadowRecord | undefined;
  named: Map<string, ShadowRecord>;
}

/** An in-memory map from shadow to its current record. */
export interface ShadowStore {
  /** The record of a shadow, or `undefined` when it was never written. */
  get(target: ShadowTarget): ShadowRecord | undefined;
  /** Replaces the record of a shadow. */
  set(target: ShadowTarget, record: ShadowRecord): void;
  /**
   * Forgets a shadow's record, but only while it is still `expected` (compared by identity), so a caller that
   * decided on an older record never removes a newer one.
   * @returns true when the record was removed
   */
  delete(target: ShadowTarget, expected: ShadowRecord): boolean;
  /** Every stored tombstone with its shadow, in no particular order. */
  tombstones(): { target: ShadowTarget; record: ShadowTombstone }[];
  /** Names of the thing's named shadows holding a live document (tombstones excluded), sorted by code unit. */
  namedShadowNames(thingName: string): string[];
  /** Every record, classic shadows first within a thing. */
  entries(): StoredRecord[];
  /** Number of records (live and tombstones). */
  readonly size: number;
}

/** True when the record is a tombstone left by a delete. */
export function isTombstone(record: ShadowRecord | undefined): record is ShadowTombstone {
  return record !== undefined && 'deleted' in record && record.deleted === true;
}

function keyOf(target: ShadowTarget): string {
  return target.shadowName === undefined
    ? `${target.thingName}\u0000`
    : `${target.thingName}\u0001${target.shadowName}`;
}

/**
 * Creates an empty store.
 *
 * @example
 * const store = createShadowStore();
 * store.set({ thingName: 'lamp' }, shadow);
 */
export function createShadowStore(): ShadowStore {
  const things = new Map<string, ThingRecords>();
  const tombstones = new Map<string, { target: ShadowTarget; record: ShadowTombstone }>();
  let size = 0;

  function index(target: ShadowTarget, record: ShadowRecord | undefined): void {
    const key = keyOf(target);
    if (record !== undefined && isTombstone(record)) tombstones.set(key, { target, record });
    else tombstones.delete(key);
  }

  return {
    get(target) {
      const thing = things.get(target.thingName);
      if (thing === undefined) return undefined;
      return target.shadowName === undefined ? thing.classic : thing.named.get(target.shadowName);
    },
    set(target, record) {
      let thing = things.get(target.thingName);
      if (thing === undefined) {
        thing = { classic: undefined, named: new Map() };
        things.set(target.thingName, thing);
      }
      if (target.shadowName === undefined) {
        if (thing.classic === undefined) size++;
        thing.classic = record;
      } else {
        if (!thing.named.has(target.shadowName)) size++;
        thing.named.set(target.shadowName, record);
      }
      index(target, record);
    },
    delete(target, expected) {
      const thing = things.get(target.thingName);
      if (thing === undefined) return false;
      if (target.shadowName === undefined) {
        if (thing.classic !== expected) return false;
        thing.classic = undefined;
      } else {
        if (thing.named.get(target.shadowName) !== expected) return false;
        thing.named.delete(target.shadowName);
      }
      size--;
      index(target, undefined);
      if (thing.classic === undefined && thing.named.size === 0) things.delete(target.thingName);
      return true;
    },
    tombstones() {
      return [...tombstones.values()];
    },
    namedShadowNames(thingName) {
      const thing = things.get(thingName);
      if (thing === undefined) return [];
      const names: string[] = [];
      for (const [name, record] of thing.named) if (!isTombstone(record)) names.push(name);
      // Code-unit order: deterministic, and the page token can be "the last name returned".
      return names.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    },
    entries() {
      const out: StoredRecord[] = [];
      for (const [thingName, thing] of things) {
        if (thing.classic !== undefined) out.push({ target: { thingName }, record: thing.classic });
        for (const [shadowName, record] of thing.named)
          out.push({ target: { thingName, shadowName }, record });
      }
      return out;
    },
    get size() {
      return size;
    },
  };
}
