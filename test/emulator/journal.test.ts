import { spawnSync } from 'node:child_process';
import {
  appendFileSync,
  copyFileSync,
  existsSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
  truncateSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { ShadowRecord, StoredShadow } from '../../src/core/document.js';
import { openJournal } from '../../src/emulator/journal.js';
import { createShadowEngine } from '../../src/emulator/shadow-engine.js';
import { isShadowError } from '../../src/errors.js';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'shadow-journal-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const shadow = (version: number, reported: Record<string, number> = { n: version }): StoredShadow => ({
  state: { reported },
  metadata: { reported: Object.fromEntries(Object.keys(reported).map((k) => [k, { timestamp: 1 }])) },
  version,
});

function recoveredMap(
  records: readonly { target: { thingName: string; shadowName?: string }; record: ShadowRecord }[],
) {
  return Object.fromEntries(
    records.map(({ target, record }) => [`${target.thingName}/${target.shadowName ?? ''}`, record]),
  );
}

/** What a fresh open of the directory recovers (the journal is closed again, releasing the directory lock). */
async function reopen(dataDir: string) {
  const journal = openJournal({ dataDir });
  await journal.close();
  return recoveredMap(journal.recovered);
}

describe('journal', () => {
  it('recovers every acknowledged record after reopening, the newest per shadow', async () => {
    const journal = openJournal({ dataDir: dir });
    expect(journal.recovered).toEqual([]);
    await journal.append({ thingName: 'a' }, shadow(1));
    await journal.append({ thingName: 'a' }, shadow(2));
    await journal.append({ thingName: 'a', shadowName: 'n' }, shadow(1));
    await journal.append({ thingName: 'b' }, { deleted: true, version: 4, deletedAt: 10 });
    await journal.close();
    const reopened = openJournal({ dataDir: dir });
    expect(recoveredMap(reopened.recovered)).toEqual({
      'a/': shadow(2),
      'a/n': shadow(1),
      'b/': { deleted: true, version: 4, deletedAt: 10 },
    });
    await reopened.close();
  });

  it('group-commits concurrent appends: many records share one fsync', async () => {
    const journal = openJournal({ dataDir: dir });
    await Promise.all(
      Array.from({ length: 200 }, (_, i) => journal.append({ thingName: `t${i}` }, shadow(1))),
    );
    const stats = journal.stats();
    expect(stats.appended).toBe(200);
    expect(stats.batches).toBeLessThanOrEqual(2);
    await journal.close();
    expect(Object.keys(await reopen(dir))).toHaveLength(200);
  });

  it('drops a torn last record at open, truncates it, and keeps appending after the good ones', async () => {
    const journal = openJournal({ dataDir: dir });
    await journal.append({ thingName: 'a' }, shadow(1));
    await journal.append({ thingName: 'a' }, shadow(2));
    await journal.close();
    const path = join(dir, 'journal.ssj');
    const full = statSync(path).size;
    truncateSync(path, full - 5); // a crash in the middle of writing the second record
    const reopened = openJournal({ dataDir: dir });
    expect(recoveredMap(reopened.recovered)).toEqual({ 'a/': shadow(1) });
    expect(reopened.stats().truncatedBytes).toBeGreaterThan(0);
    await reopened.append({ thingName: 'a' }, shadow(7));
    await reopened.close();
    expect(await reopen(dir)).toEqual({ 'a/': shadow(7) });
  });

  it('refuses a complete last record whose checksum does not match, and drops a torn header after the last record', async () => {
    const journal = openJournal({ dataDir: dir });
    await journal.append({ thingName: 'a' }, shadow(1));
    await journal.append({ thingName: 'a' }, shadow(2));
    await journal.close();
    const path = join(dir, 'journal.ssj');
    const bytes = readFileSync(path);
    const original = Buffer.from(bytes);
    bytes[bytes.length - 3] = (bytes[bytes.length - 3] as number) ^ 0xff; // flip a byte of the last payload
    writeFileSync(path, bytes);
    // A write cut short never leaves a whole record with a wrong checksum: this record was acknowledged.
    expect(() => openJournal({ dataDir: dir })).toThrow(
      /is damaged at byte \d+ of \d+ \(the last record is complete/,
    );
    writeFileSync(path, original);
    // Garbage whose declared length runs past the end: the shape of a write cut short.
    appendFileSync(path, Buffer.from([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]));
    const again = openJournal({ dataDir: dir });
    expect(recoveredMap(again.recovered)).toEqual({ 'a/': shadow(2) });
    await again.close();
  });

  it('compacts into a snapshot once the journal passes the threshold, losing nothing', async () => {
    const journal = openJournal({ dataDir: dir, compactThresholdBytes: 2000 });
    for (let i = 1; i <= 60; i++) await journal.append({ thingName: `t${i % 3}` }, shadow(i));
    const stats = journal.stats();
    expect(stats.compactions).toBeGreaterThan(0);
    expect(stats.journalBytes).toBeLessThan(2000 + 200);
    expect(existsSync(join(dir, 'snapshot.ssj'))).toBe(true);
    await journal.close();
    expect(await reopen(dir)).toEqual({
      't0/': shadow(60),
      't1/': shadow(58),
      't2/': shadow(59),
    });
  });

  it('replays to the same state after a crash between writing the snapshot and truncating the journal', async () => {
    const journal = openJournal({ dataDir: dir });
    for (let i = 1; i <= 5; i++) await journal.append({ thingName: 'a' }, shadow(i));
    await journal.append({ thingName: 'b' }, shadow(1));
    copyFileSync(join(dir, 'journal.ssj'), join(dir, 'journal.before'));
    await journal.compact();
    await journal.close();
    expect(statSync(join(dir, 'journal.ssj')).size).toBe(8);
    // The crash: the snapshot is in place but the journal still holds everything.
    copyFileSync(join(dir, 'journal.before'), join(dir, 'journal.ssj'));
    expect(await reopen(dir)).toEqual({
      'a/': shadow(5),
      'b/': shadow(1),
    });
  });

  it('refuses to open a damaged snapshot instead of silently losing acknowledged updates', async () => {
    const journal = openJournal({ dataDir: dir });
    await journal.append({ thingName: 'a' }, shadow(1));
    await journal.compact();
    await journal.close();
    const path = join(dir, 'snapshot.ssj');
    const bytes = readFileSync(path);
    bytes[bytes.length - 2] = 0;
    writeFileSync(path, bytes);
    expect(() => openJournal({ dataDir: dir })).toThrow(/snapshot\.ssj is damaged/);
    // A failed open releases the directory: after a repair (here: removing the snapshot) it opens again.
    rmSync(path);
    expect(await reopen(dir)).toEqual({});
  });

  it('refuses a file that is not a journal, and invalid options', () => {
    writeFileSync(join(dir, 'journal.ssj'), 'hello world, not a journal');
    expect(() => openJournal({ dataDir: dir })).toThrow(/not a shadow-sync journal/);
    for (const options of [
      { dataDir: '' },
      { dataDir: dir, compactThresholdBytes: 0 },
      { dataDir: dir, extra: 1 },
    ]) {
      let caught: unknown;
      try {
        openJournal(options as never);
      } catch (error) {
        caught = error;
      }
      expect(isShadowError(caught) && caught.code).toBe('OPTIONS');
    }
  });

  it('locks the data directory against a second open, and takes over the lock of a dead process', async () => {
    const journal = openJournal({ dataDir: dir });
    expect(() => openJournal({ dataDir: dir })).toThrow(/already open in this process/);
    await journal.close();
    const dead = spawnSync(process.execPath, ['-e', '0']).pid as number;
    writeFileSync(join(dir, 'LOCK'), String(dead));
    const after = openJournal({ dataDir: dir });
    expect(readFileSync(join(dir, 'LOCK'), 'utf8')).toBe(String(process.pid));
    await after.close();
    expect(existsSync(join(dir, 'LOCK'))).toBe(false);
    writeFileSync(join(dir, 'LOCK'), String(process.ppid));
    expect(() => openJournal({ dataDir: dir })).toThrow(`is held by running process ${process.ppid}`);
  });

  it('takes over a lock that carries its own pid but that it does not hold (a container restarted after kill -9)', async () => {
    const journal = openJournal({ dataDir: dir });
    await journal.append({ thingName: 'a' }, shadow(1));
    // What `kill -9` leaves behind, as seen by the next process when it happens to get the same pid: its own pid,
    // written before it started.
    await journal.close();
    writeFileSync(join(dir, 'LOCK'), String(process.pid));
    const beforeStart = new Date(Date.now() - process.uptime() * 1000 - 60_000);
    utimesSync(join(dir, 'LOCK'), beforeStart, beforeStart);
    const restarted = openJournal({ dataDir: dir });
    expect(recoveredMap(restarted.recovered)).toEqual({ 'a/': shadow(1) });
    // While it is open here, a second open in this process is still refused.
    expect(() => openJournal({ dataDir: dir })).toThrow(/already open in this process/);
    await restarted.close();
  });

  it('rejects appends after close', async () => {
    const journal = openJournal({ dataDir: dir });
    await journal.close();
    await expect(journal.append({ thingName: 'a' }, shadow(1))).rejects.toThrow(/closed/);
  });

  it('a second close() resolves only after the file is closed and the directory released', async () => {
    const journal = openJournal({ dataDir: dir });
    const appended = journal.append({ thingName: 'a' }, shadow(1));
    const first = journal.close();
    await journal.close();
    // The directory is free as soon as any close() resolved, and it holds the acknowledged record.
    expect(await reopen(dir)).toEqual({ 'a/': shadow(1) });
    await first;
    await appended;
  });
});

describe('engine persistence', () => {
  it('restores documents, tombstones and version numbering after a restart on the same directory', async () => {
    const clock = () => Date.UTC(2026, 0, 1);
    const first = createShadowEngine({ dataDir: dir, clock });
    const update = (
      engine: typeof first,
      target: { thingName: string; shadowName?: string },
      body: unknown,
    ) =>
      engine.handle({
        operation: 'update',
        target,
        payload: new TextEncoder().encode(JSON.stringify(body)),
        origin: 'http',
      });
    await update(first, { thingName: 'lamp' }, { state: { desired: { on: true } } });
    await update(first, { thingName: 'lamp' }, { state: { reported: { on: true } } });
    await update(first, { thingName: 'lamp', shadowName: 'cfg' }, { state: { desired: { mode: 'eco' } } });
    await first.handle({
      operation: 'delete',
      target: { thingName: 'lamp', shadowName: 'cfg' },
      payload: new Uint8Array(),
      origin: 'http',
    });
    const before = first.snapshot();
    await first.close();

    const second = createShadowEngine({ dataDir: dir, clock });
    expect(second.snapshot()).toEqual(expect.arrayContaining(before));
    expect(second.snapshot()).toHaveLength(before.length);
    expect(second.read({ thingName: 'lamp' })).toMatchObject({
      version: 2,
      state: { desired: { on: true }, reported: { on: true } },
    });
    // The deleted shadow continues its numbering (deleted version 1 -> re-created as 3).
    expect(await update(second, { thingName: 'lamp', shadowName: 'cfg' }, { state: {} })).toMatchObject({
      ok: true,
      body: { version: 3 },
    });
    expect(second.stats().journal).toMatchObject({ appended: 1, batches: 1 });
    await second.close();
  });

  it('compacts under concurrent load without losing or reordering anything', async () => {
    const limits = { requestsPerSecondPerThing: 1_000_000, maxInFlightPerThing: 1_000_000 };
    const engine = createShadowEngine({ dataDir: dir, compactThresholdBytes: 4096, limits });
    await Promise.all(
      Array.from({ length: 400 }, (_, i) =>
        engine.handle({
          operation: 'update',
          target: { thingName: `t${i % 10}` },
          payload: new TextEncoder().encode(JSON.stringify({ state: { reported: { i } } })),
          origin: 'http',
        }),
      ),
    );
    const stats = engine.stats().journal;
    expect(stats?.compactions).toBeGreaterThan(0);
    const before = engine.snapshot();
    await engine.close();
    const after = createShadowEngine({ dataDir: dir, limits });
    expect(after.snapshot()).toEqual(expect.arrayContaining(before));
    expect(after.snapshot()).toHaveLength(10);
    // Every thing got its 40 updates in call order: the last one wins.
    for (let t = 0; t < 10; t++)
      expect(after.read({ thingName: `t${t}` })).toMatchObject({
        version: 40,
        state: { reported: { i: 390 + t } },
      });
    await after.close();
  });
});
