/**
 * What a device wants its shadow's `reported` section to hold, and which leaves of it the service has not
 * confirmed yet. Pure (no I/O, no timers): the device agent drives it.
 *
 * Why leaves and not a copy of the last confirmed document: an answer can be lost (a timed-out update may
 * still have been applied) and a read can overtake an update, so "what the service holds" is never certain.
 * The device's own changes are: a leaf stays dirty until an accepted update carried its current value. A
 * read rebases the intent on the document read by re-applying exactly the dirty leaves, so an unconfirmed
 * change is never lost and a confirmed one is never sent again.
 */
import { diffSection } from '../core/diff.js';
import type { JsonObject, JsonValue } from '../core/document.js';
import { jsonEqual } from '../core/json-equal.js';
import { isJsonObject } from '../core/json-value.js';
import { mergeSection } from '../core/merge.js';

/** The leaves an update carried, to acknowledge once it is accepted. */
export type SentLeaves = readonly { key: string; path: readonly string[]; value: JsonValue }[];

/** The device's intended `reported` section and its unconfirmed leaves. */
export interface ReportedIntent {
  /** The section the device wants the shadow to hold. */
  readonly wanted: JsonObject | undefined;
  /** True while some leaf is not confirmed. */
  readonly dirty: boolean;
  /**
   * Applies a change (an update section: `null` deletes) and marks the leaves it really changes as dirty.
   * @returns the minimal patch of the change against what was wanted before, or `undefined` if it changes nothing
   */
  change(patch: JsonObject): JsonObject | undefined;
  /**
   * The update to send now: every dirty leaf with its wanted value (`null` for a deleted one).
   * @param maxLeaves - at most this many leaves (to find which one the service refuses)
   */
  pending(maxLeaves?: number): { patch: JsonObject; sent: SentLeaves } | undefined;
  /** An update carrying `sent` was accepted: its leaves are confirmed unless the device changed them since. */
  acknowledge(sent: SentLeaves): void;
  /**
   * An update got no answer: it may or may not have been applied, so the knowledge of what the service holds
   * is unsure until the next read. Meanwhile an acknowledged object leaf (whose patch depends on that
   * knowledge) is not trusted: the next read checks it and marks it dirty again if it is wrong.
   */
  unsure(): void;
  /**
   * A read returned `reported`: the intent becomes that section with the dirty leaves re-applied. With
   * `confirm` (the caller knows the read is current: no update in flight, none unanswered, no newer version
   * seen), dirty leaves the section already holds are confirmed, so a device that reports its state on boot
   * does not bump the version when nothing changed.
   */
  rebase(reported: JsonObject | undefined, options?: { confirm?: boolean }): void;
  /** Gives up every unconfirmed change (the service refuses them): the intent becomes `reported`. */
  discard(reported: JsonObject | undefined): void;
  /**
   * Gives up the leaves of a refused update (those the device has not changed since): each becomes what
   * `reported` holds there. Other unconfirmed changes stay.
   */
  discardLeaves(sent: SentLeaves, reported: JsonObject | undefined): void;
}

function getPath(root: JsonObject | undefined, path: readonly string[]): JsonValue | undefined {
  let node: JsonValue | undefined = root;
  for (const segment of path) {
    if (!isJsonObject(node) || !Object.hasOwn(node, segment)) return undefined;
    node = node[segment];
  }
  return node;
}

function setPath(root: JsonObject, path: readonly string[], value: JsonValue): void {
  let node = root;
  for (let i = 0; i < path.length - 1; i++) {
    const segment = path[i] as string;
    let next = Object.hasOwn(node, segment) ? node[segment] : undefined;
    if (!isJsonObject(next)) {
      next = {};
      define(node, segment, next);
    }
    node = next;
  }
  define(node, path[path.length - 1] as string, value);
}

function define(object: JsonObject, key: string, value: JsonValue): void {
  Object.defineProperty(object, key, { value, enumerable: true, writable: true, configurable: true });
}

/** Paths of the leaves of an update section: scalars, arrays, `null`s and empty objects. */
function leafPaths(patch: JsonObject, prefix: string[], out: string[][]): string[][] {
  for (const key of Object.keys(patch)) {
    const value = patch[key];
    const path = [...prefix, key];
    if (isJsonObject(value) && Object.keys(value).length > 0) leafPaths(value, path, out);
    else out.push(path);
  }
  return out;
}

const keyOf = (path: readonly string[]) => JSON.stringify(path);

function nest(path: readonly string[], value: JsonValue): JsonObject {
  let out: JsonValue = value;
  for (let i = path.length - 1; i >= 0; i--) {
    const wrapper: JsonObject = {};
    define(wrapper, path[i] as string, out);
    out = wrapper;
  }
  return out as JsonObject;
}

/**
 * The value to send for a leaf: an object merges into a stored object instead of replacing it, so when the
 * service is believed to hold an object there, send the diff to the wanted one (nulls for the old keys).
 */
function replacing(stored: JsonValue | undefined, value: JsonValue): JsonValue {
  if (!isJsonObject(value) || !isJsonObject(stored)) return value;
  const diff = diffSection(stored, value);
  if (diff === undefined) return value;
  if (diff !== null) return diff;
  const removals: JsonObject = {};
  for (const key of Object.keys(stored)) define(removals, key, null);
  return removals;
}

/**
 * Creates an empty intent (nothing wanted, nothing dirty).
 *
 * @example
 * const intent = createReportedIntent();
 * intent.change({ power: 'on' });
 * const update = intent.pending(); // { patch: { power: 'on' }, sent: [...] }
 * intent.acknowledge(update.sent); // intent.dirty === false
 */
export function createReportedIntent(): ReportedIntent {
  let wanted: JsonObject | undefined;
  // The section as last read, plus every acknowledged update: the best knowledge of what the service holds,
  // used only to turn an object that replaces another into a patch that also removes the old object's keys.
  let base: JsonObject | undefined;
  // Dirty leaf paths keyed by their JSON text. No entry is a prefix of another: marking a path drops the
  // entries below it, and a path below a dirty one is covered by it (its value is read whole).
  const dirty = new Map<string, readonly string[]>();
  // Object leaves acknowledged while unsure, with the value sent: verified against the next read.
  const unverified = new Map<string, { path: readonly string[]; value: JsonValue }>();
  let unsure = false;

  function mark(path: readonly string[]): void {
    for (let length = 1; length < path.length; length++) {
      if (dirty.has(keyOf(path.slice(0, length)))) return;
    }
    const below = (other: readonly string[]) =>
      other.length >= path.length && path.every((segment, i) => other[i] === segment);
    for (const [key, other] of dirty) if (below(other)) dirty.delete(key);
    for (const [key, entry] of unverified) if (below(entry.path)) unverified.delete(key);
    dirty.set(keyOf(path), path);
  }

  function extract(maxLeaves = Number.POSITIVE_INFINITY): { patch: JsonObject; sent: SentLeaves } {
    const patch: JsonObject = {};
    const sent: { key: string; path: readonly string[]; value: JsonValue }[] = [];
    for (const [key, path] of dirty) {
      if (sent.length >= maxLeaves) break;
      const value = getPath(wanted, path) ?? null;
      setPath(patch, path, replacing(getPath(base, path), value));
      sent.push({ key, path, value });
    }
    return { patch, sent };
  }

  return {
    get wanted() {
      return wanted;
    },
    get dirty() {
      return dirty.size > 0;
    },
    change(patch) {
      const next = mergeSection(wanted, patch);
      const minimal = diffSection(wanted, next);
      if (minimal === undefined) return undefined;
      // A null section means every key goes: spell it out key by key.
      const spelled: JsonObject = {};
      if (minimal === null) for (const key of Object.keys(wanted ?? {})) spelled[key] = null;
      const changes = minimal ?? spelled;
      wanted = next;
      for (const path of leafPaths(changes, [], [])) mark(path);
      return changes;
    },
    pending(maxLeaves) {
      return dirty.size === 0 ? undefined : extract(maxLeaves);
    },
    acknowledge(sent) {
      for (const { path, value } of sent)
        base = mergeSection(base, nest(path, replacing(getPath(base, path), value)));
      for (const { key, path, value } of sent) {
        if (!dirty.has(key) || !jsonEqual(getPath(wanted, path) ?? null, value)) continue;
        dirty.delete(key);
        if (unsure && isJsonObject(value)) unverified.set(key, { path, value });
      }
    },
    unsure() {
      unsure = true;
    },
    rebase(reported, options = {}) {
      const confirm = options.confirm === true && !unsure;
      for (const entry of [...unverified.values()]) {
        if (!jsonEqual(getPath(reported, entry.path) ?? null, entry.value)) mark(entry.path);
      }
      unverified.clear();
      unsure = false;
      base = reported;
      wanted = dirty.size === 0 ? reported : mergeSection(reported, extract().patch);
      if (confirm) {
        for (const [key, path] of dirty) {
          if (jsonEqual(getPath(reported, path) ?? null, getPath(wanted, path) ?? null)) dirty.delete(key);
        }
      }
    },
    discardLeaves(sent, reported) {
      for (const { key, path, value } of sent) {
        if (!dirty.has(key) || !jsonEqual(getPath(wanted, path) ?? null, value)) continue;
        dirty.delete(key);
        const restored = getPath(reported, path) ?? null;
        wanted = mergeSection(wanted, nest(path, replacing(getPath(wanted, path), restored)));
      }
    },
    discard(reported) {
      unverified.clear();
      unsure = false;
      base = reported;
      wanted = reported;
      dirty.clear();
    },
  };
}
