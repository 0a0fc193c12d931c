/**
 * The local service's in-memory shadow store: one record (live document or tombstone) per (thing, shadow name).
 *
 * Records are immutable values produced by the pure core (`applyUpdate` / `applyDelete` never mutate their
 * inputs), so the store hands out the stored objects themselves; callers must not mutate them.
 * Things are indexed separately so that ListNamedShadowsForThing needs no scan of the whole store.
 */
import type { ShadowRecord, ShadowTarget } from '../core/document.js';

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
  /** Names of the thing's named shadows holding a live document (tombstones excluded), sorted by code unit. */
  namedShadowNames(thingName: string): string[];
  /** Every record, classic shadows first within a thing. */
  entries(): StoredRecord[];
  /** Number of records (live and tombstones). */
  readonly size: number;
}

/** True when the record is a tombstone left by a delete. */
export function isTombstone(
  record: ShadowRecord | undefined,
): record is Extract<ShadowRecord, { deleted: true }> {
  return record !== undefined && 'deleted' in record && record.deleted === true;
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
  let size = 0;

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
