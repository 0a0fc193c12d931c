import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { createConsoleStats } from '../../src/emulator/console/console-stats.js';

const total = (rows: number[][], col: number) => rows.reduce((sum, row) => sum + (row[col] ?? 0), 0);

describe('console stats', () => {
  it('counts per thing and fleet-wide in time buckets, columns app/device/other/409/429', () => {
    const stats = createConsoleStats(1000, 5);
    stats.record('a', 'app', 10_000);
    stats.record('a', 'device', 10_500);
    stats.record('b', 'device', 11_200);
    stats.record('b', 'conflict', 11_300);
    stats.record('b', 'throttled', 11_400);
    stats.record('a', 'other', 12_000);
    const fleet = stats.fleet(12_999);
    expect(fleet.last).toBe(12);
    expect(fleet.rows).toEqual([
      [0, 0, 0, 0, 0],
      [0, 0, 0, 0, 0],
      [1, 1, 0, 0, 0],
      [0, 1, 0, 1, 1],
      [0, 0, 1, 0, 0],
    ]);
    expect(stats.thing('a', 12_999).rows.slice(2)).toEqual([
      [1, 1, 0, 0, 0],
      [0, 0, 0, 0, 0],
      [0, 0, 1, 0, 0],
    ]);
    expect(stats.thing('nobody', 12_999).rows.every((row) => row.every((v) => v === 0))).toBe(true);
  });

  it('reads a bucket reused after the window as fresh, without a timer clearing it', () => {
    const stats = createConsoleStats(1000, 3);
    stats.record('a', 'app', 0);
    stats.record('a', 'app', 0);
    // Bucket 3 lands in the same slot as bucket 0.
    stats.record('a', 'device', 3000);
    const rows = stats.fleet(3000).rows;
    expect(total(rows, 0)).toBe(0);
    expect(total(rows, 1)).toBe(1);
    // Long idle: everything reads as zero.
    expect(
      stats
        .fleet(60_000)
        .rows.flat()
        .every((v) => v === 0),
    ).toBe(true);
  });

  it('forgets things idle for longer than the window', () => {
    const stats = createConsoleStats(1000, 3);
    for (let i = 0; i < 100; i++) stats.record(`thing-${i}`, 'app', 0);
    expect(stats.size()).toBe(100);
    stats.record('late', 'app', 10_000);
    expect(stats.size()).toBe(1);
  });
});

describe('console stats, property', () => {
  it('every series equals a plain count of the events in its window, per bucket and kind', () => {
    const kinds = ['app', 'device', 'other', 'conflict', 'throttled'] as const;
    fc.assert(
      fc.property(
        fc.integer({ min: 2, max: 8 }),
        fc.array(
          fc.record({
            thing: fc.constantFrom('a', 'b', 'c'),
            kind: fc.constantFrom(...kinds),
            step: fc.integer({ min: 0, max: 2500 }),
          }),
          { maxLength: 60 },
        ),
        fc.integer({ min: 0, max: 20_000 }),
        (buckets, steps, lookAhead) => {
          const bucketMs = 1000;
          const stats = createConsoleStats(bucketMs, buckets);
          let at = 0;
          const events = steps.map(({ thing, kind, step }) => {
            at += step;
            stats.record(thing, kind, at);
            return { thing, kind, at };
          });
          const now = at + lookAhead;
          const last = Math.floor(now / bucketMs);
          const expected = (thing: string | undefined) =>
            Array.from({ length: buckets }, (_, i) => {
              const bucket = last - buckets + 1 + i;
              return kinds.map(
                (kind) =>
                  events.filter(
                    (e) =>
                      e.kind === kind &&
                      (thing === undefined || e.thing === thing) &&
                      Math.floor(e.at / bucketMs) === bucket,
                  ).length,
              );
            });
          expect(stats.fleet(now).rows).toEqual(expected(undefined));
          for (const thing of ['a', 'b', 'c']) expect(stats.thing(thing, now).rows).toEqual(expected(thing));
        },
      ),
      { numRuns: 300 },
    );
  });
});
