/**
 * Diff suite: the service's delta (`computeDelta`) and the minimal update (`diffState`) against the general
 * JSON diff libraries users would otherwise reach for, on seeded shadow-shaped documents with 3 changed leaves.
 */
import jsonPatch from 'fast-json-patch';
import microdiff from 'microdiff';
import { computeDelta } from '../../src/core/delta.js';
import { diffState } from '../../src/core/diff.js';
import type { JsonObject, JsonValue, ShadowState } from '../../src/core/document.js';
import { mergeSection } from '../../src/core/merge.js';
import { type DiffFixture, diffFixtures } from '../fixtures/shadow-documents.js';
import type { BenchGroup, BenchSuite, GroupResult } from '../measure.js';
import { formatRatio } from '../svg-chart.js';

const CHANGES = 3;
const DOCUMENTS = 16;
const SIZES = [
  { label: '2 KB', bytes: 2048, seed: 2048 },
  { label: '8 KB', bytes: 8192, seed: 8192 },
] as const;
const COMPARE = 'fast-json-patch compare';
const MICRODIFF = 'microdiff';

function leafCount(value: JsonValue): number {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return 1;
  let count = 0;
  for (const key in value) count += leafCount(value[key] as JsonValue);
  return count;
}

/** Refuses to time functions that give wrong answers on these inputs. */
function check(fixtures: DiffFixture[], label: string): void {
  for (const [index, fixture] of fixtures.entries()) {
    const where = `${label} fixture ${index}`;
    if (jsonPatch.compare(fixture.desired, fixture.reported).length !== CHANGES) {
      throw new Error(`${where}: desired and reported should differ in ${CHANGES} leaves`);
    }
    const delta = computeDelta(fixture.desired, fixture.reported);
    if (delta === undefined || leafCount(delta.state) !== CHANGES) throw new Error(`${where}: wrong delta`);
    const update = diffState(fixture.from, fixture.to);
    const apply = (section: 'desired' | 'reported') => {
      const patch = update?.[section];
      return patch === undefined ? fixture.from[section] : mergeSection(fixture.from[section], patch);
    };
    const merged: ShadowState = {
      desired: apply('desired') as JsonObject,
      reported: apply('reported') as JsonObject,
    };
    if (
      JSON.stringify(merged) !== JSON.stringify(fixture.to) ||
      jsonPatch.compare(fixture.from, fixture.to).length !== CHANGES
    ) {
      throw new Error(`${where}: diffState does not reproduce the target state`);
    }
  }
}

function groupsFor(label: string, fixtures: DiffFixture[]): BenchGroup[] {
  const mean = (bytes: (fixture: DiffFixture) => number) =>
    Math.round(fixtures.reduce((sum, fixture) => sum + bytes(fixture), 0) / fixtures.length);
  const input = (what: string, bytes: number) =>
    `${what}: ${fixtures.length} seeded documents of about ${label} (mean ${bytes} bytes of compact JSON), ${CHANGES} changed leaves each; one call diffs all of them.`;
  const goals = (task: string) => [{ task, on: 'ratio' as const, atLeast: 3 }];
  return [
    {
      name: `computeDelta, ${label}`,
      baseline: COMPARE,
      opsPerCall: fixtures.length,
      input: input(
        'desired vs reported',
        mean((fixture) => fixture.sectionBytes),
      ),
      goals: goals('computeDelta'),
      tasks: [
        {
          name: 'computeDelta',
          fn: () => {
            let found = 0;
            for (const fixture of fixtures)
              if (computeDelta(fixture.desired, fixture.reported) !== undefined) found++;
            return found;
          },
        },
        {
          name: COMPARE,
          fn: () => {
            let found = 0;
            for (const fixture of fixtures)
              found += jsonPatch.compare(fixture.desired, fixture.reported).length;
            return found;
          },
        },
        {
          name: MICRODIFF,
          fn: () => {
            let found = 0;
            for (const fixture of fixtures) found += microdiff(fixture.desired, fixture.reported).length;
            return found;
          },
        },
      ],
    },
    {
      name: `diffState, ${label}`,
      baseline: COMPARE,
      opsPerCall: fixtures.length,
      input: input(
        'stored state (desired + reported, about half each) vs the wanted state',
        mean((fixture) => fixture.stateBytes),
      ),
      goals: goals('diffState'),
      tasks: [
        {
          name: 'diffState',
          fn: () => {
            let found = 0;
            for (const fixture of fixtures) if (diffState(fixture.from, fixture.to) !== undefined) found++;
            return found;
          },
        },
        {
          name: COMPARE,
          fn: () => {
            let found = 0;
            for (const fixture of fixtures) found += jsonPatch.compare(fixture.from, fixture.to).length;
            return found;
          },
        },
        {
          name: MICRODIFF,
          fn: () => {
            let found = 0;
            for (const fixture of fixtures) found += microdiff(fixture.from, fixture.to).length;
            return found;
          },
        },
      ],
    },
  ];
}

/** The diff suite. */
export const suite: BenchSuite = {
  name: 'diff',
  order: 1,
  title: 'Diff: computeDelta and diffState vs fast-json-patch compare and microdiff',
  description:
    'Shadow-shaped documents (about three levels, some arrays) from a seeded generator (`bench/fixtures/shadow-documents.ts`), parsed with `JSON.parse` like service responses. Peers run with their default options. `computeDelta` is timed without metadata; `compare` and `microdiff` diff both ways, the shadow functions follow the service rules (delta: desired keys only; diffState: merge update). ' +
    'The figures depend on V8 type feedback: a fresh process runs diffState about 4.4x compare, one whose lookups went generic after seeing many document shapes (what a long-running service can expect, and what the correctness check of this suite causes) about 3.2-3.6x; the per-fork ratios under the table show each fork.',
  quickNote: '1 fork × 3 rounds of 80 ms per task instead of 3 forks × 4 rounds of 250 ms.',
  headline: (groups: GroupResult[]) =>
    groups.map((group) => {
      const own = group.tasks.find((task) => task.name === group.name.split(',')[0]);
      const ratio = own?.metrics.ops?.ratio;
      return `${group.name}: ${formatRatio(ratio?.median ?? Number.NaN)} the speed of ${group.baseline} (${formatRatio(ratio?.min ?? Number.NaN)}–${formatRatio(ratio?.max ?? Number.NaN)})`;
    }),
  groups() {
    const sized = SIZES.map(({ label, bytes, seed }) => ({
      label,
      fixtures: diffFixtures(bytes, DOCUMENTS, CHANGES, seed),
    }));
    for (const { label, fixtures } of sized) check(fixtures, label);
    return sized.flatMap(({ label, fixtures }) => groupsFor(label, fixtures));
  },
};
