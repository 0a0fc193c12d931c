/**
 * Rolling per-thing and fleet-wide counters for the web console: new shadow versions split by who wrote them,
 * and the 409s and 429s the service answered, in fixed time buckets on the service's clock.
 *
 * Counters live in a ring of `buckets` slots per series; a slot remembers which bucket it holds, so a series that
 * was idle for a while reads as zeros without any timer clearing it. Things idle for longer than the window are
 * forgotten, so memory follows the active things, not every thing ever seen.
 */

/** What one counted event was. */
export type ConsoleStatKind = 'app' | 'device' | 'other' | 'conflict' | 'throttled';

/** Column order of a {@link ConsoleSeries} row. */
export const CONSOLE_STAT_KINDS: readonly ConsoleStatKind[] = Object.freeze([
  'app',
  'device',
  'other',
  'conflict',
  'throttled',
]);

/** Counts over the window, oldest bucket first. */
export interface ConsoleSeries {
  /** Bucket length in milliseconds. */
  bucketMs: number;
  /** Index (time / bucketMs) of the newest bucket, the one `rows` ends with. */
  last: number;
  /** One row per bucket, oldest first; columns follow {@link CONSOLE_STAT_KINDS}. */
  rows: number[][];
}

/** The counters behind the console's charts. */
export interface ConsoleStats {
  /** Counts one event of `thing` at clock time `at`. */
  record(thingName: string, kind: ConsoleStatKind, at: number): void;
  /** The fleet-wide series ending at clock time `now`. */
  fleet(now: number): ConsoleSeries;
  /** One thing's series ending at `now` (zeros when it was idle). */
  thing(thingName: string, now: number): ConsoleSeries;
  /** Number of things with counters held. */
  size(): number;
}

interface Ring {
  /** Bucket index held by each slot. */
  stamps: Float64Array;
  /** `buckets * kinds` counters. */
  counts: Uint32Array;
  newest: number;
}

const KINDS = CONSOLE_STAT_KINDS.length;

/**
 * Creates the counters.
 *
 * @param bucketMs - length of one bucket in clock milliseconds
 * @param buckets - buckets kept (the window is `bucketMs * buckets`)
 */
export function createConsoleStats(bucketMs: number, buckets: number): ConsoleStats {
  const column = new Map<ConsoleStatKind, number>(CONSOLE_STAT_KINDS.map((kind, i) => [kind, i]));
  const newRing = (): Ring => ({
    stamps: new Float64Array(buckets).fill(-1),
    counts: new Uint32Array(buckets * KINDS),
    newest: -1,
  });
  const fleet = newRing();
  const things = new Map<string, Ring>();
  let nextPruneAt = 0;

  function add(ring: Ring, bucket: number, col: number): void {
    const slot = bucket % buckets;
    if (ring.stamps[slot] !== bucket) {
      ring.stamps[slot] = bucket;
      ring.counts.fill(0, slot * KINDS, slot * KINDS + KINDS);
    }
    ring.counts[slot * KINDS + col] = (ring.counts[slot * KINDS + col] ?? 0) + 1;
    if (bucket > ring.newest) ring.newest = bucket;
  }

  function series(ring: Ring | undefined, now: number): ConsoleSeries {
    const last = Math.floor(now / bucketMs);
    const rows: number[][] = [];
    for (let bucket = last - buckets + 1; bucket <= last; bucket++) {
      const slot = ((bucket % buckets) + buckets) % buckets;
      const row = new Array<number>(KINDS).fill(0);
      if (ring !== undefined && ring.stamps[slot] === bucket)
        for (let i = 0; i < KINDS; i++) row[i] = ring.counts[slot * KINDS + i] ?? 0;
      rows.push(row);
    }
    return { bucketMs, last, rows };
  }

  function prune(bucket: number): void {
    for (const [thing, ring] of things) if (ring.newest <= bucket - buckets) things.delete(thing);
  }

  return {
    record(thingName, kind, at) {
      const col = column.get(kind);
      if (col === undefined) return;
      const bucket = Math.floor(at / bucketMs);
      if (bucket >= nextPruneAt) {
        prune(bucket);
        nextPruneAt = bucket + buckets;
      }
      add(fleet, bucket, col);
      let ring = things.get(thingName);
      if (ring === undefined) {
        ring = newRing();
        things.set(thingName, ring);
      }
      add(ring, bucket, col);
    },
    fleet: (now) => series(fleet, now),
    thing: (thingName, now) => series(things.get(thingName), now),
    size: () => things.size,
  };
}
