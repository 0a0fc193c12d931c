/**
 * Conformance of the pure update rules with the service's documented behaviour: one test per rule of
 * shared/spec/shadow-service.md sections 1 to 6, using the spec's own examples and values.
 */
import { describe, expect, it } from 'vitest';
import { applyDelete } from '../../src/core/apply-delete.js';
import { type ApplyOptions, applyUpdate } from '../../src/core/apply-update.js';
import { decodeRequestPayload } from '../../src/core/decode-payload.js';
import type { Rejection, ShadowRecord, ShadowTarget, StoredShadow } from '../../src/core/document.js';
import { getDocument } from '../../src/core/get-document.js';
import type { ShadowLimits } from '../../src/core/limits.js';
import { ShadowOptionsError } from '../../src/errors.js';

const lamp: ShadowTarget = { thingName: 'mySimulatedThing' };
const HOUR = 60 * 60 * 1000;

function options(nowSeconds: number, limits?: Partial<ShadowLimits>, target = lamp): ApplyOptions {
  return limits === undefined
    ? { target, now: nowSeconds * 1000 }
    : { target, now: nowSeconds * 1000, limits };
}

/** Applies an update that must be accepted and returns the whole result. */
function accept(
  prior: ShadowRecord | undefined,
  request: unknown,
  nowSeconds = 1_700_000_000,
  limits?: Partial<ShadowLimits>,
) {
  const result = applyUpdate(prior, request, options(nowSeconds, limits));
  if (!result.ok) throw new Error(`expected acceptance, got ${JSON.stringify(result.rejection)}`);
  return result;
}

/** Applies a sequence of updates from nothing; returns the last stored shadow. */
function build(...requests: unknown[]): StoredShadow {
  let shadow: StoredShadow | undefined;
  for (const request of requests) shadow = accept(shadow, request).shadow;
  if (shadow === undefined) throw new Error('no requests');
  return shadow;
}

function reject(
  prior: ShadowRecord | undefined,
  request: unknown,
  limits?: Partial<ShadowLimits>,
  target = lamp,
): Rejection {
  const result = applyUpdate(prior, request, options(1_700_000_000, limits, target));
  if (result.ok) throw new Error(`expected a rejection, got ${JSON.stringify(result.accepted)}`);
  return result.rejection;
}

function invalid(message: string, clientToken?: string): Rejection {
  const rejection: Rejection = { code: 400, message, errorType: 'InvalidRequestException' };
  if (clientToken !== undefined) rejection.clientToken = clientToken;
  return rejection;
}

/** A section of nesting depth exactly `levels` (the section object itself is level 1). */
function nested(levels: number): Record<string, unknown> {
  let value: Record<string, unknown> = { leaf: 1 };
  for (let level = 1; level < levels; level++) value = { [`k${level}`]: value };
  return value;
}

function get(prior: ShadowRecord | undefined, nowSeconds = 1_700_000_100) {
  const result = getDocument(prior, { target: lamp, now: nowSeconds * 1000 });
  if (!result.ok) throw new Error(`expected a document, got ${JSON.stringify(result.rejection)}`);
  return result.body;
}

describe('spec 1: document structure', () => {
  // DG-sim walk-through: ID reported first, desired colour changed by the app, device reports it.
  const v1 = accept(
    undefined,
    { state: { reported: { ID: 'SmartLamp21', ColorRGB: [0, 0, 255] } } },
    1591140517,
  );
  const v2 = accept(v1.shadow, { state: { desired: { ColorRGB: [0, 0, 255] } } }, 1591140600);
  const v3 = accept(v2.shadow, { state: { desired: { ColorRGB: [0, 255, 0] } } }, 1591140700);
  const v4 = accept(
    v3.shadow,
    { state: { desired: { ColorRGB: [255, 255, 0] } }, clientToken: '21b21b21-bfd2-4279-8c65-e2f697ff4fab' },
    1591141596,
  );
  const v5 = accept(
    v4.shadow,
    { state: { reported: { ColorRGB: [255, 255, 0] } }, clientToken: 'a4dc2227-9213-4c6a-a6a5-053304f60258' },
    1591142747,
  );

  it('1.1 GET returns desired, reported, per-leaf metadata (arrays per element, untouched leaves keep their time), version and response timestamp (DG-sim SmartLamp)', () => {
    expect(get(v5.shadow, 1591143269)).toEqual({
      state: {
        desired: { ColorRGB: [255, 255, 0] },
        reported: { ID: 'SmartLamp21', ColorRGB: [255, 255, 0] },
      },
      metadata: {
        desired: {
          ColorRGB: [{ timestamp: 1591141596 }, { timestamp: 1591141596 }, { timestamp: 1591141596 }],
        },
        reported: {
          ID: { timestamp: 1591140517 },
          ColorRGB: [{ timestamp: 1591142747 }, { timestamp: 1591142747 }, { timestamp: 1591142747 }],
        },
      },
      version: 5,
      timestamp: 1591143269,
    });
  });

  it('1.1 GET includes state.delta when desired and reported differ, and no delta key when they are equal', () => {
    expect(get(v4.shadow).state.delta).toEqual({ ColorRGB: [255, 255, 0] });
    expect('delta' in get(v5.shadow).state).toBe(false);
  });

  it('1.1 an emptied shadow answers "state": {} and "metadata": {}', () => {
    const emptied = build({ state: { desired: { a: 1 }, reported: { a: 1 } } }, { state: null });
    expect(get(emptied)).toMatchObject({ state: {}, metadata: {}, version: 2 });
    const keysRemoved = build({ state: { reported: { a: 1 } } }, { state: { reported: { a: null } } });
    expect(get(keysRemoved)).toMatchObject({ state: {}, metadata: {} });
  });

  it('1.1 top-level request keys other than state, version and clientToken are ignored', () => {
    const result = accept(undefined, {
      state: { reported: { a: 1 } },
      metadata: { x: 1 },
      delta: 5,
      timestamp: 1,
    });
    expect(result.shadow).toEqual({
      state: { reported: { a: 1 } },
      metadata: { reported: { a: { timestamp: 1_700_000_000 } } },
      version: 1,
    });
  });

  it('1.1 no registered thing is needed: any valid thing name gets a shadow on first update, and 404 before it', () => {
    const target = { thingName: 'e0c7d9c2-0d2b-4c55-9a5e-3c0f5b9c2a11', shadowName: 'cfg' };
    expect(getDocument(undefined, { target, now: 0 })).toEqual({
      ok: false,
      rejection: {
        code: 404,
        message: "No shadow exists with name: 'cfg'",
        errorType: 'ResourceNotFoundException',
      },
    });
    expect(applyUpdate(undefined, { state: {} }, { target, now: 0 }).ok).toBe(true);
  });

  it('1.3 update/accepted echoes only the request, with metadata for its leaves, version, timestamp and clientToken (DG-sim)', () => {
    expect(v4.accepted).toEqual({
      state: { desired: { ColorRGB: [255, 255, 0] } },
      metadata: {
        desired: {
          ColorRGB: [{ timestamp: 1591141596 }, { timestamp: 1591141596 }, { timestamp: 1591141596 }],
        },
      },
      version: 4,
      timestamp: 1591141596,
      clientToken: '21b21b21-bfd2-4279-8c65-e2f697ff4fab',
    });
    expect('delta' in (v4.accepted.state ?? {})).toBe(false);
  });

  it('1.3 "desired": null is echoed as null with a leaf timestamp for the section (DG-2019 data flow)', () => {
    const prior = build(
      { state: { desired: { color: 'green' } } },
      { state: { reported: { color: 'red' } } },
    );
    const result = accept(prior, { state: { reported: { color: 'green' }, desired: null } }, 1469564801);
    expect(result.accepted).toEqual({
      state: { reported: { color: 'green' }, desired: null },
      metadata: { reported: { color: { timestamp: 1469564801 } }, desired: { timestamp: 1469564801 } },
      version: 3,
      timestamp: 1469564801,
    });
  });

  it('1.3 "state": null is accepted with the exact body AWS sent in moto#9237', () => {
    const prior: StoredShadow = {
      state: { reported: { a: 1 } },
      metadata: { reported: { a: { timestamp: 1 } } },
      version: 17,
    };
    const result = accept(prior, { state: null }, 1756452769);
    expect(JSON.stringify(result.accepted)).toBe(
      '{"state":null,"metadata":{"timestamp":1756452769},"version":18,"timestamp":1756452769}',
    );
  });

  it('1.3 a null leaf in the request gets a timestamp in the accepted metadata', () => {
    const prior = build({ state: { desired: { a: 1, b: 2 } } });
    const result = accept(prior, { state: { desired: { a: null, c: { d: null } } } }, 1_700_000_500);
    expect(result.accepted.metadata).toEqual({
      desired: { a: { timestamp: 1_700_000_500 }, c: { d: { timestamp: 1_700_000_500 } } },
    });
  });

  it('1.4 update/delta carries the full current delta, desired-side metadata, the new version and the clientToken (DG-sim)', () => {
    expect(v4.delta).toEqual({
      version: 4,
      timestamp: 1591141596,
      state: { ColorRGB: [255, 255, 0] },
      metadata: {
        ColorRGB: [{ timestamp: 1591141596 }, { timestamp: 1591141596 }, { timestamp: 1591141596 }],
      },
      clientToken: '21b21b21-bfd2-4279-8c65-e2f697ff4fab',
    });
    expect(v5.delta).toBeUndefined();
  });

  it('1.5 update/documents has previous and current documents without delta, timestamp and clientToken (DG-sim)', () => {
    expect(v5.documents).toEqual({
      previous: { state: v4.shadow.state, metadata: v4.shadow.metadata, version: 4 },
      current: { state: v5.shadow.state, metadata: v5.shadow.metadata, version: 5 },
      timestamp: 1591142747,
      clientToken: 'a4dc2227-9213-4c6a-a6a5-053304f60258',
    });
    expect('delta' in v4.documents.current.state).toBe(false);
  });

  it('1.5 previous is null on the update that creates the shadow (DG-2019 data flow)', () => {
    const result = accept(undefined, { state: { reported: { color: 'red' } } }, 1483467764);
    expect(result.documents).toEqual({
      previous: null,
      current: {
        state: { reported: { color: 'red' } },
        metadata: { reported: { color: { timestamp: 1483467764 } } },
        version: 1,
      },
      timestamp: 1483467764,
    });
  });

  it('1.6 a rejection carries the numeric code, the message and the request clientToken', () => {
    const prior = build({ state: {} }, { state: {} }, { state: {} });
    expect(
      reject(prior, { state: {}, version: 1, clientToken: '426bfd96-e720-46d3-95cd-014e3ef12bb6' }),
    ).toEqual({
      code: 409,
      message: 'Version conflict',
      errorType: 'ConflictException',
      clientToken: '426bfd96-e720-46d3-95cd-014e3ef12bb6',
    });
  });
});

describe('spec 2: update merge rules', () => {
  it('2.1 a null value removes the key, and is a no-op for an absent key', () => {
    const prior = build({ state: { desired: { a: 1, b: 2 } } });
    expect(accept(prior, { state: { desired: { a: null, z: null } } }).shadow.state).toEqual({
      desired: { b: 2 },
    });
  });

  it('2.1 an object over a stored object merges recursively; keys not mentioned are untouched', () => {
    const prior = build({ state: { reported: { lights: { color: { r: 1, g: 2 }, on: true }, fan: 3 } } });
    expect(
      accept(prior, { state: { reported: { lights: { color: { g: 9, b: 4 } } } } }).shadow.state,
    ).toEqual({
      reported: { lights: { color: { r: 1, g: 9, b: 4 }, on: true }, fan: 3 },
    });
  });

  it('2.1 an object over a scalar replaces it ("c": 3 -> "c": {"d": 3})', () => {
    const prior = build({ state: { desired: { a: 1, c: 3 } } });
    expect(accept(prior, { state: { desired: { c: { d: 3 } } } }).shadow.state).toEqual({
      desired: { a: 1, c: { d: 3 } },
    });
  });

  it('2.1 strings, numbers, booleans and arrays replace the stored value, whatever its type', () => {
    const prior = build({ state: { desired: { s: { x: 1 }, n: 'x', b: [1], a: 5 } } });
    expect(accept(prior, { state: { desired: { s: 'y', n: 2, b: false, a: [1, 2] } } }).shadow.state).toEqual(
      {
        desired: { s: 'y', n: 2, b: false, a: [1, 2] },
      },
    );
  });

  it('2.2 arrays are atomic: ["RED","GREEN","BLUE"] updated with ["RED"] becomes ["RED"]', () => {
    const prior = build({ state: { desired: { colors: ['RED', 'GREEN', 'BLUE'] } } });
    expect(accept(prior, { state: { desired: { colors: ['RED'] } } }).shadow.state.desired).toEqual({
      colors: ['RED'],
    });
  });

  it('2.3 arrays must not contain null: the request is rejected and nothing changes', () => {
    const prior = build({ state: { desired: { colors: ['RED'] } } });
    expect(reject(prior, { state: { desired: { colors: ['RED', null] } } })).toEqual(
      invalid('Arrays in the state must not contain null'),
    );
    expect(reject(prior, { state: { reported: { deep: { list: [[null]] } } } })).toEqual(
      invalid('Arrays in the state must not contain null'),
    );
  });

  it('2.4 an empty object is a real value: stored for a new key and shown in the delta', () => {
    const result = accept(undefined, { state: { desired: { d: {} } } });
    expect(result.shadow.state).toEqual({ desired: { d: {} } });
    expect(result.delta?.state).toEqual({ d: {} });
  });

  it('2.4 "c": {} over "c": 3 stores {}, and {} over a non-empty object changes nothing', () => {
    const prior = build({ state: { desired: { c: 3, e: { f: 1 } } } });
    expect(accept(prior, { state: { desired: { c: {}, e: {} } } }).shadow.state).toEqual({
      desired: { c: {}, e: { f: 1 } },
    });
  });

  it('2.5 "desired": null removes the whole section and its metadata', () => {
    const prior = build({ state: { desired: { a: 1 }, reported: { a: 2 } } });
    const result = accept(prior, { state: { desired: null } });
    expect(result.shadow.state).toEqual({ reported: { a: 2 } });
    expect(Object.keys(result.shadow.metadata)).toEqual(['reported']);
  });

  it('2.5 "desired": {} changes nothing and an empty section is never stored', () => {
    const prior = build({ state: { reported: { a: 1 } } });
    const result = accept(prior, { state: { desired: {}, reported: {} } });
    expect(result.shadow.state).toEqual({ reported: { a: 1 } });
    expect(accept(undefined, { state: { desired: {} } }).shadow).toEqual({
      state: {},
      metadata: {},
      version: 1,
    });
  });

  it('2.5 a section whose last key is deleted disappears; a nested object emptied the same way stays as {}', () => {
    const prior = build({ state: { desired: { a: 1 }, reported: { n: { m: 1 }, k: 2 } } });
    const result = accept(prior, { state: { desired: { a: null }, reported: { n: { m: null } } } });
    expect(result.shadow.state).toEqual({ reported: { n: {}, k: 2 } });
    expect(result.shadow.metadata).toEqual({ reported: { n: {}, k: { timestamp: 1_700_000_000 } } });
  });

  it('2.6 "state": null clears both sections, keeps the shadow and increments the version; on no shadow it creates version 1', () => {
    const prior = build({ state: { desired: { a: 1 }, reported: { a: 1 } } });
    expect(accept(prior, { state: null }).shadow).toEqual({ state: {}, metadata: {}, version: 2 });
    expect(accept(undefined, { state: null }).shadow).toEqual({ state: {}, metadata: {}, version: 1 });
  });

  it('2.7 "state": {} is accepted, creates an empty shadow when none exists and clears nothing', () => {
    expect(accept(undefined, { state: {} }).shadow).toEqual({ state: {}, metadata: {}, version: 1 });
    const prior = build({ state: { desired: { a: 1 } } });
    expect(accept(prior, { state: {} }).shadow).toEqual({ ...prior, version: 2 });
  });

  it('2.8 both sections in one request are merged into one version, echoed together, with one delta', () => {
    const result = accept(undefined, {
      state: { desired: { on: true, level: 3 }, reported: { on: false, level: 3 } },
    });
    expect(result.shadow.version).toBe(1);
    expect(result.accepted.state).toEqual({
      desired: { on: true, level: 3 },
      reported: { on: false, level: 3 },
    });
    expect(result.delta?.state).toEqual({ on: true });
  });

  it('2.9 metadata: written leaves get the request time, untouched ones keep theirs, a type change replaces the subtree', () => {
    const first = accept(
      undefined,
      { state: { reported: { keep: 1, arr: [1, 2], obj: { x: 1, y: 2 }, s: 'a' } } },
      100,
    );
    const second = accept(
      first.shadow,
      { state: { reported: { arr: { now: 'object' }, obj: { x: 5 }, s: [7] } } },
      200,
    );
    expect(second.shadow.metadata.reported).toEqual({
      keep: { timestamp: 100 },
      arr: { now: { timestamp: 200 } },
      obj: { x: { timestamp: 200 }, y: { timestamp: 100 } },
      s: [{ timestamp: 200 }],
    });
    const third = accept(second.shadow, { state: { reported: { obj: null, arr: 3 } } }, 300);
    expect(third.shadow.metadata.reported).toEqual({
      keep: { timestamp: 100 },
      arr: { timestamp: 300 },
      s: [{ timestamp: 200 }],
    });
  });

  it('2.9 array elements that are objects get object metadata', () => {
    const result = accept(undefined, { state: { desired: { zones: [{ t: 20 }, [1], 'x'] } } }, 42);
    expect(result.shadow.metadata.desired).toEqual({
      zones: [{ t: { timestamp: 42 } }, [{ timestamp: 42 }], { timestamp: 42 }],
    });
  });

  it('2.10 the size limit applies to the resulting desired + reported state, not to the request', () => {
    const big = 'x'.repeat(5000);
    const prior = build({ state: { reported: { a: big } } });
    // The request alone is small enough; together with what is stored it is not.
    expect(reject(prior, { state: { desired: { b: big } } })).toEqual({
      code: 413,
      message: 'The payload exceeds the maximum size allowed',
      errorType: 'RequestEntityTooLargeException',
    });
    // A request that removes the big value while adding another one fits.
    expect(accept(prior, { state: { reported: { a: null }, desired: { b: big } } }).shadow.version).toBe(2);
  });

  it('2.11 a null inside a new object is dropped and the object is stored as {} ({"n":{"m":null}})', () => {
    const result = accept(undefined, { state: { desired: { n: { m: null } } } });
    expect(result.shadow.state).toEqual({ desired: { n: {} } });
    expect(result.shadow.metadata).toEqual({ desired: { n: {} } });
    expect(result.delta?.state).toEqual({ n: {} });
  });

  it('2.12 desired keys stay when reported catches up; only the delta disappears', () => {
    const prior = build({ state: { desired: { on: true } } });
    const result = accept(prior, { state: { reported: { on: true } } });
    expect(result.shadow.state.desired).toEqual({ on: true });
    expect(result.delta).toBeUndefined();
  });
});

describe('spec 3: delta rules', () => {
  it('3.1 the delta walks desired keys only: reported-only keys never appear, desired-only keys appear whole', () => {
    const result = accept(undefined, {
      state: { desired: { a: 1, n: { x: 1 } }, reported: { a: 1, extra: true } },
    });
    expect(result.delta?.state).toEqual({ n: { x: 1 } });
  });

  it('3.1 nested differences keep the path to the root ({lights:{color:{g:255}}})', () => {
    const result = accept(undefined, {
      state: {
        desired: { lights: { color: { r: 255, g: 255, b: 255 } } },
        reported: { lights: { color: { r: 255, g: 0, b: 255 } } },
      },
    });
    expect(result.delta?.state).toEqual({ lights: { color: { g: 255 } } });
  });

  it('3.1 arrays are compared whole and the whole desired array is sent when they differ', () => {
    const result = accept(undefined, {
      state: { desired: { rgb: [1, 2, 3], same: [1] }, reported: { rgb: [1, 2, 4], same: [1] } },
    });
    expect(result.delta?.state).toEqual({ rgb: [1, 2, 3] });
  });

  it('3.1 a desired sub-object that is a subset of the reported one contributes nothing', () => {
    const result = accept(undefined, {
      state: { desired: { a: { x: 1 } }, reported: { a: { x: 1, y: 2 } } },
    });
    expect(result.delta).toBeUndefined();
  });

  it('3.1 a key deleted from reported but still desired is in the delta', () => {
    const prior = build({ state: { desired: { on: true }, reported: { on: true } } });
    expect(accept(prior, { state: { reported: { on: null } } }).delta?.state).toEqual({ on: true });
  });

  it('3.1 delta metadata equals the desired metadata of the same leaves', () => {
    const first = accept(undefined, { state: { desired: { a: 1, b: { c: 2, d: 3 } } } }, 10);
    const second = accept(
      first.shadow,
      { state: { desired: { b: { c: 5 } }, reported: { a: 1, b: { d: 3 } } } },
      20,
    );
    expect(second.delta).toEqual({
      version: 2,
      timestamp: 20,
      state: { b: { c: 5 } },
      metadata: { b: { c: { timestamp: 20 } } },
    });
  });

  it('3.3 a delta body is produced after every accepted update whose resulting delta is non-empty, even if unchanged', () => {
    const prior = build({ state: { desired: { on: true } } });
    const unrelated = accept(prior, { state: { reported: { rssi: -60 } } });
    expect(unrelated.delta?.state).toEqual({ on: true });
    expect(unrelated.delta?.version).toBe(2);
  });

  it('3.3 no delta body when the resulting delta is empty (after desired: null, or when reported matches)', () => {
    const prior = build({ state: { desired: { on: true } } });
    expect(accept(prior, { state: { desired: null } }).delta).toBeUndefined();
    expect(accept(prior, { state: { reported: { on: true } } }).delta).toBeUndefined();
  });
});

describe('spec 4: versioning', () => {
  it('4 the first accepted update creates version 1 and every accepted update adds exactly 1, no-ops included', () => {
    let shadow: ShadowRecord | undefined;
    const requests = [
      { state: { reported: { a: 1 } } },
      { state: {} },
      { state: { reported: { a: 1 } } },
      { state: null },
    ];
    requests.forEach((request, index) => {
      const result = accept(shadow, request);
      expect(result.shadow.version).toBe(index + 1);
      expect(result.accepted.version).toBe(index + 1);
      shadow = result.shadow;
    });
  });

  it('4 optimistic locking: current 10, request 9 -> 409 Version conflict; request 10 -> 11 (DG-flow)', () => {
    const prior: StoredShadow = { state: {}, metadata: {}, version: 10 };
    expect(reject(prior, { state: { desired: { a: 1 } }, version: 9 })).toEqual({
      code: 409,
      message: 'Version conflict',
      errorType: 'ConflictException',
    });
    expect(reject(prior, { state: {}, version: 11 }).code).toBe(409);
    expect(accept(prior, { state: { desired: { a: 1 } }, version: 10 }).shadow.version).toBe(11);
  });

  it('4 omitting version bypasses the check', () => {
    const prior: StoredShadow = { state: {}, metadata: {}, version: 10 };
    expect(accept(prior, { state: {} }).accepted.version).toBe(11);
  });

  it('4 [choice] version on an absent shadow is accepted iff it is 0 (or the retained tombstone version)', () => {
    expect(accept(undefined, { state: { desired: { a: 1 } }, version: 0 }).shadow.version).toBe(1);
    expect(reject(undefined, { state: {}, version: 1 }).code).toBe(409);
    const tombstone = { deleted: true as const, version: 8, deletedAt: 1_700_000_000_000 - HOUR };
    expect(accept(tombstone, { state: {}, version: 8 }).shadow.version).toBe(9);
    expect(reject(tombstone, { state: {}, version: 0 }).code).toBe(409);
  });

  it('4 delete reports version V; a re-create within 48 hours gets V + 2, after 48 hours version 1', () => {
    const live: StoredShadow = {
      state: { reported: { a: 1 } },
      metadata: { reported: { a: { timestamp: 1 } } },
      version: 6,
    };
    const deleted = applyDelete(live, { target: lamp, now: 1_000_000_000_000 });
    if (!deleted.ok) throw new Error('delete rejected');
    expect(deleted.accepted).toEqual({ version: 6, timestamp: 1_000_000_000 });
    const within = applyUpdate(
      deleted.tombstone,
      { state: {} },
      { target: lamp, now: 1_000_000_000_000 + 48 * HOUR - 1 },
    );
    expect(within.ok && within.shadow.version).toBe(8);
    const after = applyUpdate(
      deleted.tombstone,
      { state: {} },
      { target: lamp, now: 1_000_000_000_000 + 48 * HOUR },
    );
    expect(after.ok && after.shadow.version).toBe(1);
    expect(after.ok && after.documents.previous).toBeNull();
  });

  it('4 Invalid version (400) for a version that is not a non-negative integer', () => {
    for (const version of ['3', -1, 1.5, null, true, {}, [1], Number.MAX_SAFE_INTEGER + 1]) {
      expect(reject(undefined, { state: {}, version }), JSON.stringify(version)).toEqual(
        invalid('Invalid version'),
      );
    }
  });

  it('4 timestamps in bodies are whole epoch seconds of the receive time', () => {
    const result = applyUpdate(
      undefined,
      { state: { reported: { a: 1 } } },
      { target: lamp, now: 1591141596999 },
    );
    expect(result.ok && [result.accepted.timestamp, result.documents.timestamp]).toEqual([
      1591141596, 1591141596,
    ]);
    expect(result.ok && result.shadow.metadata.reported).toEqual({ a: { timestamp: 1591141596 } });
  });
});

describe('spec 5: errors', () => {
  it('5.1 Invalid JSON for an empty or unparsable payload, 415 for bytes that are not UTF-8', () => {
    expect(decodeRequestPayload(new Uint8Array())).toEqual({ ok: false, rejection: invalid('Invalid JSON') });
    expect(decodeRequestPayload('{"state":')).toEqual({ ok: false, rejection: invalid('Invalid JSON') });
    expect(decodeRequestPayload(new Uint8Array([0x7b, 0xff, 0x7d]))).toEqual({
      ok: false,
      rejection: {
        code: 415,
        message: 'Unsupported documented encoding; supported encoding is UTF-8',
        errorType: 'UnsupportedDocumentEncodingException',
      },
    });
  });

  it('5.1 Missing required node: state', () => {
    expect(reject(undefined, { desired: { a: 1 } })).toEqual(invalid('Missing required node: state'));
  });

  it('5.1 State node must be an object', () => {
    for (const state of [1, 'x', true, [], [{}]]) {
      expect(reject(undefined, { state })).toEqual(invalid('State node must be an object'));
    }
  });

  it("5.1 State contains an invalid node: 'delta' (any key other than desired/reported)", () => {
    expect(reject(undefined, { state: { desired: {}, delta: { a: 1 } } })).toEqual(
      invalid("State contains an invalid node: 'delta'"),
    );
    expect(reject(undefined, { state: { Desired: {} } })).toEqual(
      invalid("State contains an invalid node: 'Desired'"),
    );
  });

  it('5.1 Desired node must be an object / Reported node must be an object', () => {
    expect(reject(undefined, { state: { desired: [1] } })).toEqual(invalid('Desired node must be an object'));
    expect(reject(undefined, { state: { desired: {}, reported: 'on' } })).toEqual(
      invalid('Reported node must be an object'),
    );
  });

  it('5.1 Invalid clientToken for a token longer than 64 bytes (counted in UTF-8 bytes), not echoed', () => {
    expect(accept(undefined, { state: {}, clientToken: 'x'.repeat(64) }).accepted.clientToken).toBe(
      'x'.repeat(64),
    );
    expect(reject(undefined, { state: {}, clientToken: 'x'.repeat(65) })).toEqual(
      invalid('Invalid clientToken'),
    );
    expect(reject(undefined, { state: {}, clientToken: '€'.repeat(22) })).toEqual(
      invalid('Invalid clientToken'),
    );
    expect(reject(undefined, { state: {}, clientToken: 42 })).toEqual(invalid('Invalid clientToken'));
  });

  it('5.1 JSON contains too many levels of nesting; maximum is 6', () => {
    // desired(1) a(2) b(3) c(4) d(5) e(6): the scalar leaf adds no level.
    const six = { a: { b: { c: { d: { e: { f: 1 } } } } } };
    expect(accept(undefined, { state: { desired: six } }).shadow.version).toBe(1);
    expect(reject(undefined, { state: { reported: nested(7) } })).toEqual(
      invalid('JSON contains too many levels of nesting; maximum is 6'),
    );
  });

  it("5.1 No shadow exists with name: '<name>' (thing name for the classic shadow, shadow name for a named one)", () => {
    expect(getDocument(undefined, { target: { thingName: 'simThing' }, now: 0 })).toEqual({
      ok: false,
      rejection: {
        code: 404,
        message: "No shadow exists with name: 'simThing'",
        errorType: 'ResourceNotFoundException',
      },
    });
    const named = getDocument(undefined, {
      target: { thingName: 'simThing', shadowName: 'simShadow1' },
      now: 0,
    });
    expect(!named.ok && named.rejection.message).toBe("No shadow exists with name: 'simShadow1'");
  });

  it('5.3 validation order: names, JSON object, state present, state object, state keys, sections, arrays, depth, clientToken, version, conflict, size', () => {
    const deep = nested(7);
    const prior: StoredShadow = { state: {}, metadata: {}, version: 3 };
    const cases: [unknown, string][] = [
      [[1, 2], 'Invalid JSON'],
      [{ clientToken: 'x'.repeat(65), version: 'x' }, 'Missing required node: state'],
      [{ state: 5, version: 'x' }, 'State node must be an object'],
      [{ state: { delta: 1, desired: 5 } }, "State contains an invalid node: 'delta'"],
      [{ state: { desired: 5, reported: { a: [null] } } }, 'Desired node must be an object'],
      [{ state: { desired: deep, reported: { a: [null] } } }, 'Arrays in the state must not contain null'],
      [
        { state: { desired: deep }, clientToken: 'x'.repeat(65) },
        'JSON contains too many levels of nesting; maximum is 6',
      ],
      [{ state: {}, clientToken: 'x'.repeat(65), version: 'x' }, 'Invalid clientToken'],
      [{ state: {}, version: -1 }, 'Invalid version'],
      [{ state: { desired: { a: 'x'.repeat(9000) } }, version: 2 }, 'Version conflict'],
      [
        { state: { desired: { a: 'x'.repeat(9000) } }, version: 3 },
        'The payload exceeds the maximum size allowed',
      ],
    ];
    for (const [request, message] of cases)
      expect(reject(prior, request).message, JSON.stringify(request).slice(0, 80)).toBe(message);
    // Names come before the request itself.
    expect(reject(prior, 'not even an object', undefined, { thingName: 'bad name' }).message).toMatch(
      /thingName/,
    );
  });

  it('5.3 every rejection echoes the clientToken when it could be read', () => {
    const clientToken = 'tok-1';
    const prior: StoredShadow = { state: {}, metadata: {}, version: 3 };
    for (const request of [
      { clientToken },
      { clientToken, state: { bad: 1 } },
      { clientToken, state: { desired: { a: [null] } } },
      { clientToken, state: {}, version: 'x' },
      { clientToken, state: {}, version: 9 },
      { clientToken, state: { desired: { a: 'x'.repeat(9000) } } },
    ]) {
      expect(reject(prior, request).clientToken).toBe(clientToken);
    }
    expect(reject(prior, { clientToken, state: {} }, undefined, { thingName: 'a/b' }).clientToken).toBe(
      clientToken,
    );
  });
});

describe('spec 6: limits', () => {
  it('6 state size: compact UTF-8 JSON of desired + reported, exactly maxStateBytes accepted, one more rejected', () => {
    // {"a":"<n>"} is n + 8 bytes; desired and reported are counted separately and added.
    const fill = (bytes: number) => ({ a: 'x'.repeat(bytes - 8) });
    expect(accept(undefined, { state: { desired: fill(4096), reported: fill(4096) } }).shadow.version).toBe(
      1,
    );
    expect(reject(undefined, { state: { desired: fill(4096), reported: fill(4097) } }).code).toBe(413);
    // Multi-byte characters count by their UTF-8 length: 'é' is 2 bytes.
    expect(reject(undefined, { state: { desired: { a: 'é'.repeat(4093) } } }).code).toBe(413);
    expect(accept(undefined, { state: { desired: { a: 'é'.repeat(4092) } } }).shadow.version).toBe(1);
  });

  it('6 metadata does not count toward the size limit', () => {
    // 1000 one-byte values: state is about 6 KB, the metadata tree several times more.
    const many = Object.fromEntries(Array.from({ length: 1000 }, (_, i) => [`${i}`, 1]));
    expect(
      JSON.stringify(accept(undefined, { state: { reported: many } }).shadow.metadata).length,
    ).toBeGreaterThan(8192);
  });

  it('6 the size limit can be raised (30 KB, as AWS support does)', () => {
    const request = { state: { desired: { a: 'x'.repeat(20_000) } } };
    expect(reject(undefined, request).code).toBe(413);
    expect(accept(undefined, request, 1, { maxStateBytes: 30 * 1024 }).shadow.version).toBe(1);
  });

  it('6 nesting depth counts the section as level 1 and arrays as a level; the limit is configurable (8)', () => {
    expect(accept(undefined, { state: { desired: { a: [[[[[1]]]]] } } }).shadow.version).toBe(1);
    expect(accept(undefined, { state: { desired: { a: [{ b: [{ c: 1 }] }] } } }).shadow.version).toBe(1);
    expect(reject(undefined, { state: { desired: { a: [[[[[[1]]]]]] } } }).message).toBe(
      'JSON contains too many levels of nesting; maximum is 6',
    );
    const eight = nested(8);
    expect(reject(undefined, { state: { desired: eight } }, { maxDepth: 7 }).message).toBe(
      'JSON contains too many levels of nesting; maximum is 7',
    );
    expect(accept(undefined, { state: { desired: eight } }, 1, { maxDepth: 8 }).shadow.version).toBe(1);
  });

  it('6 thing names: 1 to 128 characters of [a-zA-Z0-9:_-]', () => {
    expect(applyUpdate(undefined, { state: {} }, { target: { thingName: 'a'.repeat(128) }, now: 0 }).ok).toBe(
      true,
    );
    expect(reject(undefined, { state: {} }, undefined, { thingName: 'a'.repeat(129) })).toEqual(
      invalid(
        `1 validation error detected: Value '${'a'.repeat(129)}' at 'thingName' failed to satisfy constraint: Member must have length less than or equal to 128`,
      ),
    );
    expect(reject(undefined, { state: {} }, undefined, { thingName: 'my thing' }).message).toBe(
      "1 validation error detected: Value 'my thing' at 'thingName' failed to satisfy constraint: Member must satisfy regular expression pattern: [a-zA-Z0-9:_-]+",
    );
  });

  it('6 shadow names: 1 to 64 characters of [$a-zA-Z0-9:_-]', () => {
    const named = (shadowName: string) => ({ thingName: 'lamp', shadowName });
    expect(applyUpdate(undefined, { state: {} }, { target: named('$cfg:v1_x-'), now: 0 }).ok).toBe(true);
    expect(applyUpdate(undefined, { state: {} }, { target: named('s'.repeat(64)), now: 0 }).ok).toBe(true);
    expect(reject(undefined, { state: {} }, undefined, named('s'.repeat(65))).message).toMatch(
      /'shadowName'.*less than or equal to 64/,
    );
    expect(reject(undefined, { state: {} }, undefined, named('')).message).toMatch(
      /greater than or equal to 1/,
    );
    expect(reject(undefined, { state: {} }, undefined, named('a/b')).message).toMatch(
      /regular expression pattern/,
    );
  });

  it('6 the deleted-version retention window is configurable', () => {
    const tombstone = { deleted: true as const, version: 5, deletedAt: 1_700_000_000_000 - 2000 };
    expect(
      accept(tombstone, { state: {} }, 1_700_000_000, { deletedVersionRetentionMs: 1000 }).shadow.version,
    ).toBe(1);
    expect(
      accept(tombstone, { state: {} }, 1_700_000_000, { deletedVersionRetentionMs: 3000 }).shadow.version,
    ).toBe(6);
  });
});

describe('applyUpdate options', () => {
  it('throws ShadowOptionsError for a clock that is not finite and for invalid limits', () => {
    expect(() => applyUpdate(undefined, { state: {} }, { target: lamp, now: Number.NaN })).toThrow(
      "applyUpdate: 'now' must be epoch milliseconds, got NaN",
    );
    expect(() =>
      applyUpdate(undefined, { state: {} }, { target: lamp, now: 0, limits: { maxDepth: -1 } }),
    ).toThrow(ShadowOptionsError);
  });

  it("echoes the request's state in its own key order", () => {
    const result = accept(undefined, { state: { reported: { color: 'green' }, desired: null } });
    expect(JSON.stringify(result.accepted.state)).toBe('{"reported":{"color":"green"},"desired":null}');
  });
});
