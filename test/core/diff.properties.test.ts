import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { computeDelta } from '../../src/core/delta.js';
import { diffSection, diffState } from '../../src/core/diff.js';
import type { JsonObject, JsonValue, ShadowState } from '../../src/core/document.js';
import { applyJsonPatch, toJsonPatch } from '../../src/core/json-patch.js';
import { mergeSection } from '../../src/core/merge.js';

const RUNS = { numRuns: 1000 };

// ---------------------------------------------------------------------------------------------------------
// Independent reference implementations, written from spec sections 2 and 3 as plainly as possible
// (Object.entries / Object.fromEntries keep `__proto__` an ordinary key).

function isObject(value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Spec 2: null deletes, object into object merges, anything else replaces; an empty section disappears. */
function referenceMerge(stored: JsonObject | undefined, update: JsonObject | null | undefined) {
  if (update === undefined) return stored;
  if (update === null) return undefined;
  const merged = referenceMergeObject(stored ?? {}, update);
  return Object.keys(merged).length === 0 ? undefined : merged;
}

function referenceMergeObject(base: JsonObject, update: JsonObject): JsonObject {
  const entries = new Map(Object.entries(base));
  for (const [key, value] of Object.entries(update)) {
    if (value === null) entries.delete(key);
    else if (isObject(value)) {
      const current = entries.get(key);
      entries.set(key, referenceMergeObject(isObject(current) ? current : {}, value));
    } else entries.set(key, value);
  }
  return Object.fromEntries(entries);
}

/** Order-independent text of a JSON value: object keys sorted, array order kept. */
function canonical(value: JsonValue): string {
  if (Array.isArray(value)) return `[${value.map(canonical).join(',')}]`;
  if (isObject(value)) {
    const keys = Object.keys(value).sort();
    return `{${keys.map((key) => `${JSON.stringify(key)}:${canonical(value[key] as JsonValue)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

/** Spec 3.1's pseudocode. */
function referenceDelta(desired: JsonObject, reported: JsonObject): JsonObject {
  const out: [string, JsonValue][] = [];
  for (const [key, d] of Object.entries(desired)) {
    if (!Object.hasOwn(reported, key)) {
      out.push([key, d]);
      continue;
    }
    const r = reported[key] as JsonValue;
    if (isObject(d) && isObject(r)) {
      const inner = referenceDelta(d, r);
      if (Object.keys(inner).length > 0) out.push([key, inner]);
    } else if (canonical(d) !== canonical(r)) out.push([key, d]);
  }
  return Object.fromEntries(out);
}

/** True when every leaf of desired (a non-object, or an empty object) has its counterpart in reported. */
function everyDesiredLeafMatches(desired: JsonObject, reported: JsonObject | undefined): boolean {
  const matches = (d: JsonValue, r: JsonValue | undefined): boolean => {
    if (r === undefined) return false;
    if (!isObject(d)) return canonical(d) === canonical(r);
    if (!isObject(r)) return false;
    return Object.entries(d).every(([key, value]) =>
      matches(value, Object.hasOwn(r, key) ? r[key] : undefined),
    );
  };
  return matches(desired, reported ?? {});
}

// ---------------------------------------------------------------------------------------------------------
// Arbitraries: shadow sections are objects of depth <= 5 (the section itself is level 1) holding strings,
// numbers, booleans, arrays without null (of scalars and small objects) and nested objects, empty ones too.
// A small key pool makes two independent sections overlap; tricky keys probe inherited names and escaping.

const keyArb = (withProto: boolean) =>
  fc.oneof(
    { weight: 8, arbitrary: fc.constantFrom('a', 'b', 'c', 'd') },
    {
      weight: 1,
      arbitrary: fc.constantFrom(
        ...(withProto ? ['__proto__'] : []),
        'constructor',
        'toString',
        'x/y',
        '~0',
        '',
      ),
    },
    { weight: 1, arbitrary: fc.string({ maxLength: 3 }) },
  );
const scalarArb = fc.oneof(
  fc.integer({ min: -2, max: 2 }),
  fc.double({ noNaN: true, noDefaultInfinity: true }),
  fc.constantFrom('x', 'y', ''),
  fc.string({ maxLength: 4 }),
  fc.boolean(),
);

function valueArb(depth: number, withNull: boolean, withProto: boolean): fc.Arbitrary<JsonValue> {
  const arrayArb = fc.array(
    depth > 1 ? fc.oneof(scalarArb, sectionArb(Math.min(depth - 1, 2), false, withProto)) : scalarArb,
    { maxLength: 3 },
  );
  const options: fc.WeightedArbitrary<JsonValue>[] = [
    { weight: 4, arbitrary: scalarArb },
    { weight: 1, arbitrary: arrayArb },
  ];
  if (depth > 1) options.push({ weight: 3, arbitrary: sectionArb(depth, withNull, withProto) });
  if (withNull) options.push({ weight: 2, arbitrary: fc.constant(null) });
  return fc.oneof(...options);
}

/** An object of depth <= `depth`; `withNull` allows null values, as update sections have. */
function sectionArb(depth: number, withNull = false, withProto = true): fc.Arbitrary<JsonObject> {
  return fc
    .dictionary(keyArb(withProto), valueArb(depth - 1, withNull, withProto), {
      maxKeys: 4,
      noNullPrototype: true,
    })
    .map((object) => JSON.parse(JSON.stringify(object)) as JsonObject);
}

const storedArb = (withProto = true) => sectionArb(5, false, withProto);
const updateArb = sectionArb(5, true);

/** A (from, to) pair of stored sections: unrelated, or `to` derived from `from` by a random update. */
const pairArb = fc
  .tuple(storedArb(), storedArb(), fc.boolean(), updateArb)
  .map(
    ([from, other, related, update]) =>
      [from, related ? (referenceMerge(from, update) ?? {}) : other] as const,
  );

const stateArb = (withProto = true) =>
  fc.record({ desired: storedArb(withProto), reported: storedArb(withProto) }, { requiredKeys: [] });

function normalise(state: ShadowState): ShadowState {
  const out: ShadowState = {};
  if (state.desired !== undefined && Object.keys(state.desired).length > 0) out.desired = state.desired;
  if (state.reported !== undefined && Object.keys(state.reported).length > 0) out.reported = state.reported;
  return out;
}

const merge = (stored: JsonObject | undefined, update: JsonObject | null | undefined) =>
  update === undefined ? stored : mergeSection(stored, update);
const emptyToUndefined = (section: JsonObject | undefined) =>
  section === undefined || Object.keys(section).length === 0 ? undefined : section;

// ---------------------------------------------------------------------------------------------------------

describe('the reference merge and the service merge (src/core/merge.ts)', () => {
  it('agree on every update section, nulls and empty objects included', () => {
    fc.assert(
      fc.property(
        fc.option(storedArb(), { nil: undefined }),
        fc.option(updateArb, { nil: null }),
        (stored, update) => {
          expect(mergeSection(stored, update)).toEqual(referenceMerge(stored, update));
        },
      ),
      RUNS,
    );
  });
});

describe('diffSection properties', () => {
  it('merging diffSection(s, t) into s yields t, with the service merge and with the reference merge', () => {
    fc.assert(
      fc.property(pairArb, ([from, to]) => {
        const update = diffSection(from, to);
        // An empty stored section stands for an absent one (the service never stores `{}`).
        expect(emptyToUndefined(merge(from, update))).toEqual(emptyToUndefined(to));
        expect(emptyToUndefined(referenceMerge(from, update))).toEqual(emptyToUndefined(to));
      }),
      RUNS,
    );
  });

  it('diffSection(s, s) and diffSection(s, copy of s) are undefined', () => {
    fc.assert(
      fc.property(storedArb(), (section) => {
        expect(diffSection(section, section)).toBeUndefined();
        expect(diffSection(section, JSON.parse(JSON.stringify(section)) as JsonObject)).toBeUndefined();
      }),
      RUNS,
    );
  });

  it('is minimal: leaving out any single entry of the update no longer yields t', () => {
    fc.assert(
      fc.property(pairArb, ([from, to]) => {
        const update = diffSection(from, to);
        if (update === undefined || update === null) return;
        for (const path of entryPaths(from, update)) {
          const smaller = withoutEntry(update, path);
          expect(referenceMerge(from, smaller)).not.toEqual(emptyToUndefined(to));
        }
      }),
      RUNS,
    );
  });

  it('diffState applies to both sections and is undefined only for equal states', () => {
    fc.assert(
      fc.property(stateArb(), stateArb(), (from, to) => {
        const update = diffState(from, to);
        const result = normalise({
          ...(merge(from.desired, update?.desired) === undefined
            ? {}
            : { desired: merge(from.desired, update?.desired) }),
          ...(merge(from.reported, update?.reported) === undefined
            ? {}
            : { reported: merge(from.reported, update?.reported) }),
        } as ShadowState);
        expect(result).toEqual(normalise(to));
        expect(update === undefined).toBe(
          canonical(normalise(from) as JsonObject) === canonical(normalise(to) as JsonObject),
        );
      }),
      RUNS,
    );
  });
});

/** Paths of the update's entries: keys whose value is not an object merged into a stored object. */
function entryPaths(stored: JsonObject, update: JsonObject, prefix: string[] = []): string[][] {
  const paths: string[][] = [];
  for (const [key, value] of Object.entries(update)) {
    const current = Object.hasOwn(stored, key) ? stored[key] : undefined;
    if (isObject(value) && isObject(current) && Object.keys(value).length > 0) {
      paths.push(...entryPaths(current, value, [...prefix, key]));
    } else paths.push([...prefix, key]);
  }
  return paths;
}

function withoutEntry(update: JsonObject, path: string[]): JsonObject {
  const [head, ...rest] = path as [string, ...string[]];
  const entries = Object.entries(update).flatMap(([key, value]): [string, JsonValue][] => {
    if (key !== head) return [[key, value]];
    return rest.length === 0 ? [] : [[key, withoutEntry(value as JsonObject, rest)]];
  });
  return Object.fromEntries(entries);
}

describe('computeDelta properties', () => {
  const deltaPairArb = fc
    .tuple(storedArb(), storedArb(), fc.boolean(), updateArb)
    .map(
      ([desired, other, related, update]) =>
        [desired, related ? referenceMerge(desired, update) : other] as const,
    );

  it('equals the spec 3.1 reference delta', () => {
    fc.assert(
      fc.property(deltaPairArb, ([desired, reported]) => {
        const expected = referenceDelta(desired, reported ?? {});
        const delta = computeDelta(desired, reported);
        expect(delta?.state).toEqual(Object.keys(expected).length === 0 ? undefined : expected);
      }),
      RUNS,
    );
  });

  it('is empty exactly when every desired leaf equals reported', () => {
    fc.assert(
      fc.property(deltaPairArb, ([desired, reported]) => {
        expect(computeDelta(desired, reported) === undefined).toBe(
          everyDesiredLeafMatches(desired, reported),
        );
      }),
      RUNS,
    );
  });

  it('is empty when reported is desired merged with anything (reported only adds)', () => {
    fc.assert(
      fc.property(storedArb(), storedArb(), (desired, extra) => {
        // Reported holds every desired leaf plus keys of its own: desired merged over extra.
        const reported = referenceMerge(extra, desired);
        fc.pre(everyDesiredLeafMatches(desired, reported));
        expect(computeDelta(desired, reported)).toBeUndefined();
      }),
      RUNS,
    );
  });
});

describe('JSON Patch views', () => {
  it('applyJsonPatch(s, toJsonPatch(s, t)) equals t for whole states and leaves s unchanged', () => {
    fc.assert(
      fc.property(stateArb(false), stateArb(false), (from, to) => {
        const before = JSON.stringify(from);
        expect(applyJsonPatch(from, toJsonPatch(from, to))).toEqual(normalise(to));
        expect(JSON.stringify(from)).toBe(before);
      }),
      RUNS,
    );
  });

  it('toJsonPatch is empty exactly when diffState is undefined (for states without empty sections)', () => {
    fc.assert(
      fc.property(stateArb(false), stateArb(false), (from, to) => {
        const a = normalise(from);
        const b = normalise(to);
        expect(toJsonPatch(a, b).length === 0).toBe(diffState(a, b) === undefined);
      }),
      RUNS,
    );
  });
});
