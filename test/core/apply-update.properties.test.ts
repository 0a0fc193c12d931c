/**
 * Properties of the pure update rules over random request sequences (fast-check).
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { applyDelete } from '../../src/core/apply-delete.js';
import { applyUpdate } from '../../src/core/apply-update.js';
import { computeDelta } from '../../src/core/delta.js';
import type {
  JsonValue,
  MetadataNode,
  MetadataObject,
  ShadowRecord,
  StoredShadow,
} from '../../src/core/document.js';
import { isLeafMetadata } from '../../src/core/metadata.js';

const target = { thingName: 'lamp' };
const HOUR = 3_600_000;

const key = fc.constantFrom('a', 'b', 'c', 'on', 'timestamp');
const scalar = fc.oneof(fc.integer({ min: -3, max: 3 }), fc.boolean(), fc.constantFrom('x', 'y', ''));
const { object } = fc.letrec<{ value: JsonValue; object: Record<string, JsonValue> }>((tie) => ({
  value: fc.oneof({ depthSize: 'small' }, scalar, fc.array(tie('value'), { maxLength: 3 }), tie('object')),
  object: fc.dictionary(key, fc.oneof(tie('value'), fc.constant(null)), { maxKeys: 3 }),
}));
const section = fc.oneof({ weight: 4, arbitrary: object }, { weight: 1, arbitrary: fc.constant(null) });
const state = fc.oneof(
  { weight: 1, arbitrary: fc.constant(null) },
  { weight: 8, arbitrary: fc.record({ desired: section, reported: section }, { requiredKeys: [] }) },
);
/** Well-formed update requests without a version. */
const unversioned = fc.record(
  { state, clientToken: fc.string({ maxLength: 4 }) },
  { requiredKeys: ['state'] },
);
/** Any update request: well-formed ones, some with a version, and arbitrary JSON. */
const anyRequest = fc.oneof(
  { weight: 5, arbitrary: unversioned },
  { weight: 2, arbitrary: fc.record({ state, version: fc.nat(8) }) },
  { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 4 }) },
  { weight: 1, arbitrary: fc.record({ state: fc.jsonValue({ maxDepth: 3 }) }) },
);
const operation = fc.oneof(
  {
    weight: 6,
    arbitrary: fc.record({
      kind: fc.constant('update' as const),
      request: anyRequest,
      elapsed: fc.nat(2 * HOUR),
    }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('delete' as const), elapsed: fc.nat(72 * HOUR) }) },
);

function deepFreeze<T>(input: T): T {
  if (typeof input === 'object' && input !== null && !Object.isFrozen(input)) {
    Object.freeze(input);
    for (const child of Object.values(input)) deepFreeze(child);
  }
  return input;
}

function mirrors(state: JsonValue, metadata: MetadataNode | undefined): boolean {
  if (metadata === undefined) return false;
  if (Array.isArray(state)) {
    return (
      Array.isArray(metadata) &&
      metadata.length === state.length &&
      state.every((v, i) => mirrors(v, metadata[i]))
    );
  }
  if (typeof state === 'object' && state !== null) {
    if (Array.isArray(metadata) || isLeafMetadata(metadata)) return false;
    const keys = Object.keys(state);
    return (
      keys.length === Object.keys(metadata).length &&
      keys.every((k) => mirrors(state[k] as JsonValue, (metadata as MetadataObject)[k]))
    );
  }
  return isLeafMetadata(metadata);
}

/** The version the next accepted update must get, from the record before it. */
function expectedNextVersion(record: ShadowRecord | undefined, now: number): number {
  if (record === undefined) return 1;
  if ('deleted' in record) return now < record.deletedAt + 48 * HOUR ? record.version + 1 : 1;
  return record.version + 1;
}

describe('applyUpdate properties', () => {
  it('versions strictly increase: +1 per accepted update, continuing across delete within the retention window', () => {
    fc.assert(
      fc.property(fc.array(operation, { maxLength: 25 }), (operations) => {
        let record: ShadowRecord | undefined;
        let now = 1_700_000_000_000;
        let lastVersion = 0;
        for (const op of operations) {
          now += op.elapsed;
          if (op.kind === 'delete') {
            const result = applyDelete(record, { target, now });
            if (result.ok) {
              expect(result.accepted.version).toBe(lastVersion);
              record = result.tombstone;
            }
            continue;
          }
          const result = applyUpdate(record, op.request, { target, now });
          if (!result.ok) continue;
          const expected = expectedNextVersion(record, now);
          expect(result.shadow.version).toBe(expected);
          if (expected !== 1) expect(result.shadow.version).toBeGreaterThan(lastVersion);
          expect(result.accepted.version).toBe(expected);
          expect(result.documents.current.version).toBe(expected);
          lastVersion = expected;
          record = result.shadow;
        }
      }),
    );
  });

  it('never changes the stored document: a rejected request leaves it as it was, an accepted one returns new objects', () => {
    let rejected = 0;
    fc.assert(
      fc.property(fc.array(unversioned, { maxLength: 5 }), anyRequest, (setup, request) => {
        let prior: StoredShadow | undefined;
        for (const step of setup) {
          const result = applyUpdate(prior, step, { target, now: 1_700_000_000_000 });
          if (result.ok) prior = result.shadow;
        }
        const snapshot = structuredClone(prior);
        deepFreeze(prior);
        const frozenRequest = deepFreeze(structuredClone(request));
        const result = applyUpdate(prior, frozenRequest, { target, now: 1_700_000_050_000 });
        expect(prior).toEqual(snapshot);
        if (result.ok) {
          expect(result.shadow).not.toBe(prior);
          expect(result.shadow.version).toBe((prior?.version ?? 0) + 1);
        } else {
          expect(result.rejection.code).toBeGreaterThanOrEqual(400);
          rejected++;
        }
      }),
      { numRuns: 300 },
    );
    // The generators must exercise rejections, not only acceptances.
    expect(rejected).toBeGreaterThan(20);
  });

  it('an update without version applied twice gives the same state as applied once (only version and timestamps differ)', () => {
    fc.assert(
      fc.property(fc.array(unversioned, { maxLength: 4 }), unversioned, (setup, request) => {
        let prior: StoredShadow | undefined;
        for (const step of setup) {
          const result = applyUpdate(prior, step, { target, now: 1_000_000 });
          if (result.ok) prior = result.shadow;
        }
        const once = applyUpdate(prior, request, { target, now: 2_000_000 });
        if (!once.ok) return;
        const twice = applyUpdate(once.shadow, request, { target, now: 3_000_000 });
        expect(twice.ok).toBe(true);
        if (!twice.ok) return;
        expect(twice.shadow.state).toEqual(once.shadow.state);
        expect(twice.shadow.version).toBe(once.shadow.version + 1);
        expect(twice.delta?.state).toEqual(once.delta?.state);
        for (const side of ['desired', 'reported'] as const) {
          const sectionState = twice.shadow.state[side];
          if (sectionState !== undefined)
            expect(mirrors(sectionState, twice.shadow.metadata[side])).toBe(true);
        }
      }),
    );
  });

  it('the metadata tree always mirrors the state tree, section by section', () => {
    fc.assert(
      fc.property(fc.array(operation, { maxLength: 20 }), (operations) => {
        let record: ShadowRecord | undefined;
        let now = 0;
        for (const op of operations) {
          now += op.elapsed;
          const result =
            op.kind === 'delete'
              ? applyDelete(record, { target, now })
              : applyUpdate(record, op.request, { target, now });
          if (!result.ok) continue;
          if ('tombstone' in result) {
            record = result.tombstone;
            continue;
          }
          const { state, metadata } = result.shadow;
          expect(Object.keys(metadata).sort()).toEqual(Object.keys(state).sort());
          for (const side of ['desired', 'reported'] as const) {
            const sectionState = state[side];
            if (sectionState !== undefined) {
              expect(Object.keys(sectionState).length).toBeGreaterThan(0);
              expect(mirrors(sectionState, metadata[side])).toBe(true);
            }
          }
          record = result.shadow;
        }
      }),
    );
  });

  it("the accepted body echoes the request's state verbatim, with metadata for each of its leaves (nulls included)", () => {
    fc.assert(
      fc.property(unversioned, (request) => {
        const result = applyUpdate(undefined, request, { target, now: 5_000 });
        if (!result.ok) return;
        expect(result.accepted.state).toEqual(request.state);
        expect(JSON.stringify(result.accepted.state)).toBe(JSON.stringify(request.state));
        if (request.state === null) expect(result.accepted.metadata).toEqual({ timestamp: 5 });
        else expect(mirrors(request.state as JsonValue, result.accepted.metadata as MetadataNode)).toBe(true);
        expect(result.accepted.clientToken).toBe(request.clientToken);
      }),
    );
  });

  it('the delta body equals computeDelta of the resulting document, present exactly when it is non-empty', () => {
    fc.assert(
      fc.property(fc.array(unversioned, { minLength: 1, maxLength: 6 }), (requests) => {
        let record: StoredShadow | undefined;
        let now = 0;
        for (const request of requests) {
          now += 1000;
          const result = applyUpdate(record, request, { target, now });
          if (!result.ok) continue;
          record = result.shadow;
          const expected = computeDelta(record.state.desired, record.state.reported, record.metadata.desired);
          if (expected === undefined) expect(result.delta).toBeUndefined();
          else {
            expect(result.delta).toEqual({
              version: record.version,
              timestamp: now / 1000,
              state: expected.state,
              metadata: expected.metadata,
              ...(request.clientToken === undefined ? {} : { clientToken: request.clientToken }),
            });
          }
        }
      }),
    );
  });
});
