import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { applyDelete } from '../../src/core/apply-delete.js';
import { applyUpdate } from '../../src/core/apply-update.js';
import type { ShadowRecord, ShadowTarget, ShadowTombstone, StoredShadow } from '../../src/core/document.js';
import { getDocument } from '../../src/core/get-document.js';
import type { ShadowRequest } from '../../src/emulator/engine-api.js';
import { openJournal } from '../../src/emulator/journal.js';
import { createShadowEngine, type ShadowEngineOptions } from '../../src/emulator/shadow-engine.js';
import { createShadowStore } from '../../src/emulator/shadow-store.js';
import { isShadowError } from '../../src/errors.js';

const T0 = Date.UTC(2026, 0, 1, 12, 0, 0);
const RETENTION = 10_000;
const HIGH_QUOTA = { requestsPerSecondPerThing: 100_000, maxInFlightPerThing: 100_000 };

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'shadow-expiry-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const shadow = (version: number): StoredShadow => ({
  state: { reported: { n: version } },
  metadata: { reported: { n: { timestamp: 1 } } },
  version,
});
const tombstone = (version: number, deletedAt: number): ShadowTombstone => ({
  deleted: true,
  version,
  deletedAt,
});

/** An engine on a hand-driven clock, with a deleted-version retention of {@link RETENTION} ms. */
function setup(options: ShadowEngineOptions = {}, clock = { now: T0 }) {
  const engine = createShadowEngine({
    clock: () => clock.now,
    limits: { ...HIGH_QUOTA, deletedVersionRetentionMs: RETENTION },
    ...options,
  });
  const request = (operation: ShadowRequest['operation'], target: ShadowTarget, payload: unknown = '') =>
    engine.handle({
      operation,
      target,
      payload: new TextEncoder().encode(typeof payload === 'string' ? payload : JSON.stringify(payload)),
      origin: 'http',
    });
  const update = async (target: ShadowTarget) => {
    const result = await request('update', target, { state: { reported: { on: true } } });
    if (!result.ok) throw new Error(`update refused: ${result.rejection.message}`);
    return (result.body as { version: number }).version;
  };
  return { clock, engine, request, update };
}

describe('shadow store: tombstone index', () => {
  it('indexes tombstones through set and delete, and deletes only the record the caller saw', () => {
    const store = createShadowStore();
    const lamp = { thingName: 'lamp' };
    const cfg = { thingName: 'lamp', shadowName: 'cfg' };
    const gone = tombstone(3, 5);
    store.set(lamp, shadow(2));
    store.set(cfg, gone);
    expect(store.tombstones()).toEqual([{ target: cfg, record: gone }]);
    expect(store.size).toBe(2);
    // A stale decision (made on another record) removes nothing.
    expect(store.delete(cfg, tombstone(3, 5))).toBe(false);
    expect(store.delete(lamp, gone)).toBe(false);
    expect(store.delete(cfg, gone)).toBe(true);
    expect(store.get(cfg)).toBeUndefined();
    expect(store.tombstones()).toEqual([]);
    expect(store.size).toBe(1);
    // Overwriting a tombstone with a document takes it out of the index.
    const classicGone = tombstone(3, 6);
    store.set(lamp, classicGone);
    expect(store.tombstones()).toHaveLength(1);
    store.set(lamp, shadow(3));
    expect(store.tombstones()).toEqual([]);
    expect(store.delete(lamp, store.get(lamp) as StoredShadow)).toBe(true);
    expect(store.size).toBe(0);
    expect(store.entries()).toEqual([]);
  });
});

describe('shadow engine: tombstone expiry', () => {
  it('drops a tombstone on access once it is deletedVersionRetentionMs old; a re-created shadow then starts at 1', async () => {
    const { clock, engine, request, update } = setup();
    const lamp = { thingName: 'lamp' };
    const fan = { thingName: 'fan', shadowName: 'cfg' };
    await update(lamp);
    await update(lamp);
    await request('delete', lamp);
    await update(fan);
    await request('delete', fan);

    // One millisecond before the end of the window the tombstone still counts.
    clock.now = T0 + RETENTION - 1;
    expect(engine.read(lamp)).toEqual({ deleted: true, version: 3, deletedAt: T0 });
    expect(await update(lamp)).toBe(4);

    // The window is half-open: at deletedAt + retention the tombstone is gone.
    clock.now = T0 + RETENTION;
    expect(engine.read(fan)).toBeUndefined();
    expect(engine.stats().expiredTombstones).toBe(1);
    expect(await update(fan)).toBe(1);

    // Access through a request drops it too (get and delete answer 404 as for a never-created shadow).
    await request('delete', lamp);
    clock.now += RETENTION;
    const got = await request('get', lamp);
    expect(got).toMatchObject({ ok: false, rejection: { code: 404 } });
    expect(engine.snapshot().map((entry) => entry.target)).toEqual([fan]);
    expect(engine.stats().expiredTombstones).toBe(2);
  });

  it('sweeps every expired tombstone on the injected clock once tombstoneSweepIntervalMs has passed', async () => {
    const { clock, engine, request, update } = setup({ tombstoneSweepIntervalMs: 5_000 });
    for (const thingName of ['a', 'b', 'c']) {
      await update({ thingName });
      await request('delete', { thingName });
    }
    clock.now = T0 + 2_000;
    await request('delete', { thingName: 'c' }); // 404, but refreshes nothing: c's tombstone stays from T0
    await update({ thingName: 'd' });
    await request('delete', { thingName: 'd' }); // d is deleted at T0 + 2000

    // Past the retention of a, b, c and past the sweep interval: a request on another thing sweeps them.
    clock.now = T0 + RETENTION + 1;
    await update({ thingName: 'other' });
    expect(engine.stats().expiredTombstones).toBe(3);
    // d, deleted later, is still inside its window and kept.
    expect(
      engine
        .snapshot()
        .map((entry) => entry.target.thingName)
        .sort(),
    ).toEqual(['d', 'other']);
  });

  it('does not sweep before the interval, and expireTombstones() sweeps on demand', async () => {
    const { clock, engine, request, update } = setup({ tombstoneSweepIntervalMs: 1_000_000 });
    await update({ thingName: 'a' });
    await request('delete', { thingName: 'a' });
    clock.now = T0 + RETENTION;
    await update({ thingName: 'other' });
    expect(engine.stats().expiredTombstones).toBe(0);
    expect(engine.expireTombstones()).toBe(1);
    expect(engine.expireTombstones()).toBe(0);
    expect(engine.read({ thingName: 'a' })).toBeUndefined();
  });

  it('rejects an invalid tombstoneSweepIntervalMs', () => {
    for (const value of [0, -1, 1.5, Number.NaN])
      expect(() => createShadowEngine({ tombstoneSweepIntervalMs: value })).toThrow(
        /tombstoneSweepIntervalMs must be a positive integer/,
      );
    try {
      createShadowEngine({ tombstoneSweepIntervalMs: 0 });
    } catch (error) {
      expect(isShadowError(error) && error.code).toBe('OPTIONS');
    }
  });

  it('property: whatever the operations and clock steps, the engine answers as the core does with every tombstone kept', async () => {
    // The model keeps every record the core returns, expired tombstones included, and lets the core decide;
    // the engine (sweeping at every request, dropping on access) must give the same answer to every request.
    const op = fc.record({
      operation: fc.constantFrom<ShadowRequest['operation']>('get', 'update', 'update', 'delete'),
      thing: fc.constantFrom('a', 'b'),
      advance: fc.integer({ min: 0, max: RETENTION }),
    });
    await fc.assert(
      fc.asyncProperty(fc.array(op, { maxLength: 30 }), async (ops) => {
        const clock = { now: T0 };
        const { engine, request } = setup({ tombstoneSweepIntervalMs: 1 }, clock);
        const limits = engine.limits;
        const model = new Map<string, ShadowRecord>();
        for (const { operation, thing, advance } of ops) {
          clock.now += advance;
          const target = { thingName: thing };
          const body = { state: { reported: { at: clock.now } } };
          const prior = model.get(thing);
          const options = { target, now: clock.now, limits };
          let expected: unknown;
          if (operation === 'update') {
            const result = applyUpdate(prior, body, options);
            if (result.ok) model.set(thing, result.shadow);
            expected = result.ok ? { ok: true, body: result.accepted } : result;
          } else if (operation === 'delete') {
            const result = applyDelete(prior, options);
            if (result.ok) model.set(thing, result.tombstone);
            expected = result.ok ? { ok: true, body: result.accepted } : result;
          } else {
            const result = getDocument(prior, options);
            expected = result.ok ? { ok: true, body: result.body } : result;
          }
          expect(await request(operation, target, operation === 'update' ? body : '')).toEqual(expected);
        }
        // The engine holds exactly the model's records minus the expired tombstones.
        const kept = [...model].filter(
          ([, record]) => !('deleted' in record) || clock.now < record.deletedAt + RETENTION,
        );
        expect(engine.snapshot()).toEqual(
          expect.arrayContaining(kept.map(([thingName, record]) => ({ target: { thingName }, record }))),
        );
        expect(engine.snapshot()).toHaveLength(kept.length);
      }),
      { numRuns: 80 },
    );
  });
});

describe('journal: expired tombstones', () => {
  it('leaves expired tombstones out of the recovered state and of every snapshot', async () => {
    let now = 100;
    const isExpired = (t: ShadowTombstone) => now >= t.deletedAt + 50;
    const journal = openJournal({ dataDir: dir, isExpired });
    await journal.append({ thingName: 'a' }, shadow(1));
    await journal.compact(); // the snapshot holds a's document
    await journal.append({ thingName: 'a' }, tombstone(2, 100));
    await journal.append({ thingName: 'b' }, tombstone(5, 120));
    await journal.append({ thingName: 'c' }, shadow(1));
    await journal.close();

    // Reopened after a's tombstone expired (before any compaction): a is absent, not its old document.
    now = 160;
    const reopened = openJournal({ dataDir: dir, isExpired });
    expect(reopened.recovered.map((r) => r.target.thingName).sort()).toEqual(['b', 'c']);
    expect(reopened.stats().expiredTombstones).toBe(1);
    // b expires too; the compaction writes neither tombstone into the snapshot.
    now = 170;
    await reopened.compact();
    expect(reopened.stats().expiredTombstones).toBe(2);
    await reopened.close();

    // A journal that never expires anything still finds neither: they are not on disk any more.
    const plain = openJournal({ dataDir: dir });
    expect(plain.recovered).toEqual([{ target: { thingName: 'c' }, record: shadow(1) }]);
    await plain.close();
    expect(existsSync(join(dir, 'snapshot.ssj'))).toBe(true);
  });

  it('rejects an isExpired that is not a function', () => {
    expect(() => openJournal({ dataDir: dir, isExpired: 5 as never })).toThrow(
      'Journal option isExpired must be a function',
    );
  });
});

describe('engine persistence: tombstone expiry across restarts', () => {
  it('forgets a deleted version that expired while the service was down; keeps one still inside the window', async () => {
    const clock = { now: T0 };
    const first = setup({ dataDir: dir }, clock);
    await first.update({ thingName: 'old' });
    await first.update({ thingName: 'old' });
    await first.request('delete', { thingName: 'old' }); // tombstone version 3 at T0
    clock.now = T0 + RETENTION / 2;
    await first.update({ thingName: 'recent' });
    await first.request('delete', { thingName: 'recent' }); // tombstone version 2 at T0 + RETENTION/2
    await first.engine.close();

    clock.now = T0 + RETENTION; // old has expired, recent has not
    const second = setup({ dataDir: dir }, clock);
    expect(second.engine.stats().journal?.expiredTombstones).toBe(1);
    expect(second.engine.snapshot()).toEqual([
      {
        target: { thingName: 'recent' },
        record: { deleted: true, version: 2, deletedAt: T0 + RETENTION / 2 },
      },
    ]);
    expect(await second.update({ thingName: 'old' })).toBe(1);
    expect(await second.update({ thingName: 'recent' })).toBe(3);
    await second.request('delete', { thingName: 'recent' }); // tombstone version 4 at T0 + RETENTION
    await second.engine.close();

    // With a tiny compaction threshold every batch compacts; once the tombstone expired it is not rewritten.
    clock.now = T0 + 2 * RETENTION;
    const third = setup({ dataDir: dir, compactThresholdBytes: 1 }, clock);
    await third.update({ thingName: 'x' });
    await third.engine.close(); // the compaction runs after the batch is acknowledged; close waits for it
    expect(third.engine.stats().journal?.compactions).toBeGreaterThan(0);
    clock.now = T0; // even a clock that has gone back cannot bring it back: it is not on disk
    const fourth = setup({ dataDir: dir }, clock);
    expect(
      fourth.engine
        .snapshot()
        .map((entry) => entry.target.thingName)
        .sort(),
    ).toEqual(['old', 'x']);
    await fourth.engine.close();
  });
});
