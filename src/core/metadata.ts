/**
 * Metadata trees: the per-leaf timestamps the service keeps beside `desired` and `reported` (spec 1.1, 2.9).
 * A metadata tree mirrors its state tree: objects stay objects, arrays get one entry per element, every
 * scalar leaf becomes `{ timestamp }` (epoch seconds of the update that last wrote it).
 */
import type { JsonObject, JsonValue, LeafMetadata, MetadataNode, MetadataObject } from './document.js';
import { isJsonObject, mapLeaves, setOwn } from './json-value.js';
import { mergeSectionWith } from './merge.js';

/**
 * Metadata of a value written at `timestamp`: a scalar (or `null`) becomes `{ timestamp }`, an array one
 * node per element, an object an object of nodes (an empty object gets `{}`). Used for stored values and
 * for the `update/accepted` echo, where a `null` leaf or section is stamped too (spec 1.3).
 * Object properties whose value is `undefined` are skipped, as `JSON.stringify` would.
 *
 * @param value - the value written
 * @param timestamp - epoch seconds
 * @example metadataFor({ on: true, rgb: [1, 2] }, 7) // { on: { timestamp: 7 }, rgb: [{ timestamp: 7 }, { timestamp: 7 }] }
 */
export function metadataFor(value: JsonValue, timestamp: number): MetadataNode {
  return mapLeaves(value, () => ({ timestamp }));
}

/**
 * Metadata that mirrors `value` exactly: the entries of `metadata` where they match the value's shape, and
 * `{ timestamp: fallbackTimestamp }` for every leaf they miss. Documents from outside the service (hand-made,
 * a custom transport, an older store) may lack metadata; predicting a merge on them must not lose state.
 *
 * @param value - the state value
 * @param metadata - its metadata as received, possibly partial or missing
 * @param fallbackTimestamp - the timestamp given to leaves without metadata
 */
export function completeMetadata(
  value: JsonValue,
  metadata: MetadataNode | undefined,
  fallbackTimestamp: number,
): MetadataNode {
  if (Array.isArray(value)) {
    const elements = Array.isArray(metadata) ? metadata : [];
    return value.map((element, index) => completeMetadata(element, elements[index], fallbackTimestamp));
  }
  if (isJsonObject(value)) {
    const children = isObjectMetadata(metadata) ? metadata : undefined;
    const out: MetadataObject = {};
    for (const key of Object.keys(value)) {
      const child = value[key];
      if (child !== undefined) {
        setOwn(
          out,
          key,
          completeMetadata(
            child,
            children && Object.hasOwn(children, key) ? children[key] : undefined,
            fallbackTimestamp,
          ),
        );
      }
    }
    return out;
  }
  return isLeafMetadata(metadata) ? metadata : { timestamp: fallbackTimestamp };
}

/**
 * True when `node` is the metadata of a scalar leaf (`{ timestamp: number }`), as opposed to the metadata of
 * an object (which may itself have a key named `timestamp`, but then its value is a node, never a number).
 *
 * @param node - any metadata node
 */
export function isLeafMetadata(node: MetadataNode | undefined): node is LeafMetadata {
  return (
    typeof node === 'object' &&
    node !== null &&
    !Array.isArray(node) &&
    typeof (node as { timestamp?: unknown }).timestamp === 'number'
  );
}

/** True when `node` is the metadata of an object (not of a leaf, not of an array). */
function isObjectMetadata(node: MetadataNode | undefined): node is MetadataObject {
  return typeof node === 'object' && node !== null && !Array.isArray(node) && !isLeafMetadata(node);
}

/**
 * The metadata of a section after an update, following the same rules as the state merge
 * ({@link mergeSection}): every leaf the patch writes gets `timestamp`, untouched leaves keep theirs, a key
 * set to `null` loses its metadata, a value whose type changes (scalar, array, object) gets a fresh subtree,
 * and an object patched into an object is merged key by key. Inputs are never mutated; unchanged subtrees
 * are shared with `stored`.
 *
 * @param stored - the section's current metadata, if any
 * @param patch - the section of the update request; `null` removes the section
 * @param timestamp - epoch seconds of the update
 * @returns the new metadata, or `undefined` when the section ends up empty (it is then not stored)
 */
export function mergeSectionMetadata(
  stored: MetadataObject | undefined,
  patch: JsonObject | null,
  timestamp: number,
): MetadataObject | undefined {
  return mergeSectionWith<MetadataNode>(stored, patch, {
    isObject: isObjectMetadata,
    leaf: (value) => metadataFor(value, timestamp),
  });
}
