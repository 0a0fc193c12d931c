import { describe, expect, it } from 'vitest';
import type { ShadowTombstone, StoredShadow } from '../../src/core/document.js';
import { getDocument } from '../../src/core/get-document.js';
import { notFoundRejection } from '../../src/core/live-shadow.js';
import { isShadowError } from '../../src/errors.js';

const target = { thingName: 'lamp' };

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null) {
    for (const child of Object.values(value)) deepFreeze(child);
    Object.freeze(value);
  }
  return value;
}

const stored: StoredShadow = deepFreeze({
  state: { desired: { on: true, level: 3, rgb: [1, 2] }, reported: { on: false, level: 3, fw: '1.2' } },
  metadata: {
    desired: { on: { timestamp: 20 }, level: { timestamp: 10 }, rgb: [{ timestamp: 20 }, { timestamp: 20 }] },
    reported: { on: { timestamp: 30 }, level: { timestamp: 30 }, fw: { timestamp: 5 } },
  },
  version: 7,
});

describe('getDocument', () => {
  it('returns desired, reported, the computed delta, metadata, version and the response time in epoch seconds', () => {
    const result = getDocument(stored, { target, now: 1591143269456 });
    expect(result).toEqual({
      ok: true,
      body: {
        state: { ...stored.state, delta: { on: true, rgb: [1, 2] } },
        metadata: stored.metadata,
        version: 7,
        timestamp: 1591143269,
      },
    });
  });

  it('adds metadata.delta (desired-side metadata of the delta leaves) only when asked', () => {
    const result = getDocument(stored, { target, now: 0, includeDeltaMetadata: true });
    expect(result.ok && result.body.metadata.delta).toEqual({
      on: { timestamp: 20 },
      rgb: [{ timestamp: 20 }, { timestamp: 20 }],
    });
    const plain = getDocument(stored, { target, now: 0 });
    expect(plain.ok && 'delta' in plain.body.metadata).toBe(false);
  });

  it('has no delta key when desired matches reported, and answers an empty shadow with {} state and metadata', () => {
    const synced: StoredShadow = {
      state: { desired: { a: 1 }, reported: { a: 1, b: 2 } },
      metadata: {},
      version: 2,
    };
    const result = getDocument(synced, { target, now: 0, includeDeltaMetadata: true });
    expect(result.ok && result.body.state).toEqual({ desired: { a: 1 }, reported: { a: 1, b: 2 } });
    expect(getDocument({ state: {}, metadata: {}, version: 3 }, { target, now: 0 })).toEqual({
      ok: true,
      body: { state: {}, metadata: {}, version: 3, timestamp: 0 },
    });
  });

  it('echoes the clientToken of the request', () => {
    const result = getDocument(stored, { target, now: 0, clientToken: 'get-1' });
    expect(result.ok && result.body.clientToken).toBe('get-1');
  });

  it("answers 404 No shadow exists with name: '<name>' for no record and for a tombstone", () => {
    const tombstone: ShadowTombstone = { deleted: true, version: 8, deletedAt: 0 };
    for (const record of [undefined, tombstone]) {
      expect(getDocument(record, { target, now: 0, clientToken: 'c' })).toEqual({
        ok: false,
        rejection: {
          code: 404,
          message: "No shadow exists with name: 'lamp'",
          errorType: 'ResourceNotFoundException',
          clientToken: 'c',
        },
      });
    }
    expect(notFoundRejection({ thingName: 'lamp', shadowName: 'simShadow1' }).message).toBe(
      "No shadow exists with name: 'simShadow1'",
    );
  });

  it('rejects bad names with 400, honouring configured name limits', () => {
    const result = getDocument(stored, {
      target: { thingName: 'lamp', shadowName: 'abcdef' },
      now: 0,
      limits: { maxShadowNameLength: 5 },
    });
    expect(!result.ok && result.rejection.message).toBe(
      "1 validation error detected: Value 'abcdef' at 'shadowName' failed to satisfy constraint: Member must have length less than or equal to 5",
    );
    const token = getDocument(stored, { target: { thingName: '' }, now: 0, clientToken: 'z' });
    expect(!token.ok && token.rejection.clientToken).toBe('z');
  });

  it('does not modify the stored (deeply frozen) shadow', () => {
    const result = getDocument(stored, { target, now: 0, includeDeltaMetadata: true });
    expect(result.ok).toBe(true);
    expect('delta' in stored.state).toBe(false);
  });

  it('throws ShadowOptionsError for a clock that is not finite', () => {
    try {
      getDocument(stored, { target, now: Number.POSITIVE_INFINITY });
      expect.unreachable();
    } catch (error) {
      expect(isShadowError(error) && error.code).toBe('OPTIONS');
    }
  });
});
