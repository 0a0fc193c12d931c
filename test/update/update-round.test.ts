import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { applyUpdate } from '../../src/core/apply-update.js';
import type { JsonObject, JsonValue, ShadowRecord, UpdateState } from '../../src/core/document.js';
import { ShadowError } from '../../src/errors.js';
import { fullJitterDelay, newRoundTally, retryReason, withRetries } from '../../src/update/retry-policy.js';
import { composePatches, planRound } from '../../src/update/update-round.js';
import { instantClock } from './in-memory-service-double.js';

const target = { thingName: 'lamp' };
const now = 1_700_000_000_000;

// Small key space so that patches collide on keys often.
const key = fc.constantFrom('a', 'b', 'c');
const leaf: fc.Arbitrary<JsonValue> = fc.oneof(
  fc.integer({ min: 0, max: 3 }),
  fc.constant('s'),
  fc.constant<JsonValue>([1, 2]),
);
const { patchObject } = fc.letrec<{ patchObject: JsonObject; value: JsonValue | null }>((tie) => ({
  patchObject: fc.dictionary(key, tie('value'), { maxKeys: 3 }) as fc.Arbitrary<JsonObject>,
  value: fc.oneof({ depthSize: 'small', maxDepth: 3 }, leaf, fc.constant(null), tie('patchObject')),
}));
const section = fc.oneof({ weight: 4, arbitrary: patchObject }, { weight: 1, arbitrary: fc.constant(null) });
const patch: fc.Arbitrary<UpdateState> = fc.record(
  { desired: section, reported: section },
  { requiredKeys: [] },
);

function apply(record: ShadowRecord | undefined, state: UpdateState): ShadowRecord | undefined {
  const result = applyUpdate(record, { state }, { target, now });
  if (!result.ok) throw new Error(result.rejection.message);
  return result.shadow;
}
const stateOf = (record: ShadowRecord | undefined) =>
  record && 'state' in record ? record.state : undefined;

describe('composePatches', () => {
  it('a composed patch has the same effect as sending both in order, on any stored document', () => {
    fc.assert(
      fc.property(fc.option(patch, { nil: undefined }), patch, patch, (initial, first, second) => {
        const stored = initial === undefined ? undefined : apply(undefined, initial);
        const composed = composePatches(first, second);
        fc.pre(composed !== undefined);
        expect(stateOf(apply(stored, composed as UpdateState))).toEqual(
          stateOf(apply(apply(stored, first), second)),
        );
      }),
      { numRuns: 500 },
    );
  });

  it('refuses the compositions no single request can express', () => {
    expect(composePatches({ desired: { a: null } }, { desired: { a: { x: 1 } } })).toBeUndefined();
    expect(composePatches({ desired: { a: 5 } }, { desired: { a: {} } })).toBeUndefined();
    expect(composePatches({ desired: null }, { desired: { a: 1 } })).toBeUndefined();
    expect(
      composePatches({ desired: { a: { x: 1 } } }, { desired: { a: { y: 2 } }, reported: null }),
    ).toEqual({
      desired: { a: { x: 1, y: 2 } },
      reported: null,
    });
  });
});

describe('planRound', () => {
  it('runs intents in call order, each seeing the state left by the ones before', () => {
    const seen: unknown[] = [];
    const plan = planRound(
      { exists: false, version: 0 },
      [
        {
          kind: 'update',
          intent: (c) => {
            seen.push(c);
            return { desired: { n: 1 } };
          },
          validator: undefined,
        },
        { kind: 'merge', patch: { reported: { r: true } }, validator: undefined },
        {
          kind: 'update',
          intent: (c) => {
            seen.push(c?.state);
            return { desired: { n: Number(c?.state.desired?.n) + 1 } };
          },
          validator: undefined,
        },
      ],
      { target, now, limits: {} },
    );
    expect(seen[0]).toBeUndefined();
    expect(seen[1]).toEqual({ desired: { n: 1 }, reported: { r: true }, delta: { n: 1 } });
    expect(plan.patch).toEqual({ desired: { n: 2 }, reported: { r: true } });
    expect(plan.outcomes).toEqual([
      { ok: true, skipped: false },
      { ok: true, skipped: false },
      { ok: true, skipped: false },
    ]);
  });
});

describe('retry policy', () => {
  it('full jitter stays between 0 and min(cap, base * 2^(n-1))', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 30 }),
        fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }),
        (n, r) => {
          const delay = fullJitterDelay(n, { baseDelayMs: 20, maxDelayMs: 1000, random: () => r });
          expect(delay).toBeGreaterThanOrEqual(0);
          expect(delay).toBeLessThan(Math.max(1, Math.min(1000, 20 * 2 ** (n - 1))));
        },
      ),
    );
  });

  it('classifies errors: conflict, throttled, 5xx retried; other 4xx and foreign errors not', () => {
    class Fake extends ShadowError {
      override readonly name = 'Fake';
      constructor(
        readonly code: ShadowError['code'],
        statusCode?: number,
      ) {
        super('fake', statusCode === undefined ? {} : { statusCode });
      }
    }
    expect(retryReason(new Fake('CONFLICT'))).toBe('conflict');
    expect(retryReason(new Fake('THROTTLED'))).toBe('throttled');
    expect(retryReason(new Fake('REJECTED', 503))).toBe('server-error');
    expect(retryReason(new Fake('REJECTED', 400))).toBeUndefined();
    expect(retryReason(new Fake('TIMEOUT'))).toBeUndefined();
    expect(retryReason(new Error('x'))).toBeUndefined();
  });

  it('stops after maxAttempts conflicts and rethrows the last error unchanged, with the tally filled in', async () => {
    class Conflict extends ShadowError {
      override readonly name = 'Conflict';
      readonly code = 'CONFLICT' as const;
    }
    let calls = 0;
    const last = new Conflict('conflict');
    const clock = instantClock();
    const tally = newRoundTally(clock);
    await expect(
      withRetries(
        async () => {
          calls++;
          throw last;
        },
        { maxAttempts: 4, maxElapsedMs: 10_000, baseDelayMs: 10, maxDelayMs: 100, clock, random: () => 0.5 },
        {},
        tally,
      ),
    ).rejects.toBe(last);
    expect(calls).toBe(4);
    expect(clock.slept).toEqual([5, 10, 20]);
    expect(tally).toMatchObject({ attempts: 4, conflicts: 4, throttles: 0, elapsedMs: 35 });
  });

  it('429s spend no attempts, only time: they stop when maxElapsedMs would be exceeded', async () => {
    class Throttled extends ShadowError {
      override readonly name = 'Throttled';
      readonly code = 'THROTTLED' as const;
    }
    let calls = 0;
    const clock = instantClock();
    const tally = newRoundTally(clock);
    await expect(
      withRetries(
        async () => {
          calls++;
          throw new Throttled('throttled');
        },
        { maxAttempts: 2, maxElapsedMs: 1_000, baseDelayMs: 10, maxDelayMs: 100, clock, random: () => 0.5 },
        {},
        tally,
      ),
    ).rejects.toBeInstanceOf(Throttled);
    // waits 5, 10, 20, 40, then 50 each: far more attempts than maxAttempts, within the time budget
    expect(calls).toBeGreaterThan(10);
    expect(clock.now()).toBeLessThanOrEqual(1_000);
    expect(tally).toMatchObject({ attempts: calls, conflicts: 0, throttles: calls });
  });
});
