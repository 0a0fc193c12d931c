/**
 * The journal tells a torn tail (an unacknowledged write cut short) from damage (a flipped byte anywhere): it
 * truncates the former and refuses to start on the latter with a typed error naming the file and byte offset,
 * and the explicit repair keeps a copy and every valid record. Properties over many flip positions: an
 * acknowledged update is never silently lost and versions never go backwards.
 */
import {
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  truncateSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { runCli } from '../../../src/cli/run-cli.js';
import type { ShadowRecord, StoredShadow } from '../../../src/core/document.js';
import { openJournal, repairJournal } from '../../../src/emulator/journal.js';
import { startShadowService } from '../../../src/emulator/start-shadow-service.js';
import { isShadowJournalCorruptionError, ShadowJournalCorruptionError } from '../../../src/errors.js';

let dirs: string[] = [];
const freshDir = (): string => {
  const dir = mkdtempSync(join(tmpdir(), 'shadow-damage-'));
  dirs.push(dir);
  return dir;
};
beforeEach(() => {
  dirs = [];
});
afterEach(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

const shadow = (version: number): StoredShadow => ({
  state: { reported: { n: version } },
  metadata: { reported: { n: { timestamp: version } } },
  version,
});

/** Appends the updates (thing index per update; versions count up per thing), all acknowledged. */
async function writeUpdates(
  dir: string,
  things: readonly number[],
): Promise<{ key: string; version: number }[]> {
  const journal = openJournal({ dataDir: dir });
  const versions = new Map<string, number>();
  const written: { key: string; version: number }[] = [];
  const appends: Promise<void>[] = [];
  for (const thing of things) {
    const key = `t${thing}`;
    const version = (versions.get(key) ?? 0) + 1;
    versions.set(key, version);
    // Queued in this order and group-committed in this order; every one is acknowledged before close.
    appends.push(journal.append({ thingName: key }, shadow(version)));
    written.push({ key, version });
  }
  await Promise.all(appends);
  await journal.close();
  return written;
}

/** Start offsets of the frames of a journal file (after the 8-byte header). */
function frameStarts(bytes: Buffer): number[] {
  const starts: number[] = [];
  for (let at = 8; at < bytes.length; at += 8 + bytes.readUInt32LE(at)) starts.push(at);
  return starts;
}

function versionsOf(
  records: readonly { target: { thingName: string }; record: ShadowRecord }[],
): Map<string, number> {
  return new Map(records.map(({ target, record }) => [target.thingName, record.version]));
}

function openError(dir: string): unknown {
  try {
    const journal = openJournal({ dataDir: dir });
    void journal.close();
  } catch (error) {
    return error;
  }
  return undefined;
}

describe('damage in the middle', () => {
  it('a flipped byte in the middle of 1,000 acknowledged updates: refuses to start, naming file and offset', async () => {
    const dir = freshDir();
    await writeUpdates(
      dir,
      Array.from({ length: 1000 }, (_, i) => i % 7),
    );
    const path = join(dir, 'journal.ssj');
    const bytes = readFileSync(path);
    const starts = frameStarts(bytes);
    const damaged = starts[10] as number;
    bytes[damaged + 20] = (bytes[damaged + 20] as number) ^ 0x40;
    writeFileSync(path, bytes);
    const error = openError(dir);
    expect(error).toBeInstanceOf(ShadowJournalCorruptionError);
    expect(error).toMatchObject({ code: 'JOURNAL_CORRUPT', file: path, offset: damaged });
    expect((error as Error).message).toContain(`${path} is damaged at byte ${damaged}`);
    expect((error as Error).message).toContain(`shadow-sync journal repair ${dir}`);
    // The file was not touched by the refused open.
    expect(readFileSync(path)).toEqual(bytes);
  });

  it('repair keeps a copy of the original and every valid record: only the damaged one is lost', async () => {
    const dir = freshDir();
    const written = await writeUpdates(
      dir,
      Array.from({ length: 1000 }, (_, i) => i % 7),
    );
    const path = join(dir, 'journal.ssj');
    const bytes = readFileSync(path);
    const starts = frameStarts(bytes);
    const lengthByte = (starts[500] as number) + 3; // the length field of record 500
    bytes[lengthByte] = (bytes[lengthByte] as number) ^ 0xff;
    writeFileSync(path, bytes);
    const report = repairJournal(dir, () => Date.UTC(2026, 0, 2));
    expect(report.journal).toMatchObject({
      keptRecords: 999,
      dropped: [{ start: starts[500], end: starts[501] }],
    });
    expect(report.journal?.backup).toBe(`${path}.damaged-2026-01-02T00-00-00-000Z`);
    expect(readFileSync(report.journal?.backup as string)).toEqual(bytes);
    const journal = openJournal({ dataDir: dir });
    const recovered = versionsOf(journal.recovered);
    await journal.close();
    const latest = new Map(written.map(({ key, version }) => [key, version]));
    expect(recovered).toEqual(latest); // record 500 was superseded by a later record of its thing
    // A second repair finds nothing to do and makes no copy.
    expect(repairJournal(dir).journal).toMatchObject({ dropped: [], backup: undefined });
    expect(readdirSync(dir).filter((name) => name.includes('.damaged-'))).toHaveLength(1);
  });

  it('a damaged snapshot is refused with the typed error and repaired the same way', async () => {
    const dir = freshDir();
    const journal = openJournal({ dataDir: dir });
    for (let i = 0; i < 20; i++) await journal.append({ thingName: `t${i}` }, shadow(1));
    await journal.compact();
    await journal.close();
    const path = join(dir, 'snapshot.ssj');
    const bytes = readFileSync(path);
    bytes[bytes.length - 40] = (bytes[bytes.length - 40] as number) ^ 0x01;
    writeFileSync(path, bytes);
    expect(openError(dir)).toMatchObject({ code: 'JOURNAL_CORRUPT', file: path });
    expect(repairJournal(dir).snapshot).toMatchObject({ keptRecords: 19 });
    const reopened = openJournal({ dataDir: dir });
    expect(reopened.recovered).toHaveLength(19);
    await reopened.close();
  });

  it('repair refuses a directory a running service holds, and one that does not exist', async () => {
    const dir = freshDir();
    const journal = openJournal({ dataDir: dir });
    expect(() => repairJournal(dir)).toThrow(/held by running process|already open in this process/);
    await journal.close();
    expect(() => repairJournal(join(dir, 'missing'))).toThrow(/does not exist/);
  });
});

describe('torn tail', () => {
  it('a write cut short anywhere inside the last record: starts, keeps every acknowledged update', async () => {
    const dir = freshDir();
    const written = await writeUpdates(dir, [0, 1, 0, 2]);
    const path = join(dir, 'journal.ssj');
    const acknowledged = readFileSync(path);
    const torn = Buffer.from(`\u0080\u0001\u0000\u0000abcd{"t":"t9","r":{"state":{"rep`, 'latin1');
    for (let cut = 1; cut < torn.length; cut++) {
      writeFileSync(path, Buffer.concat([acknowledged, torn.subarray(0, cut)]));
      const journal = openJournal({ dataDir: dir });
      expect(versionsOf(journal.recovered)).toEqual(new Map(written.map((w) => [w.key, w.version])));
      expect(journal.stats().truncatedBytes).toBe(cut);
      await journal.close();
    }
  });
});

describe('properties', () => {
  const updates = fc.array(fc.integer({ min: 0, max: 4 }), { minLength: 1, maxLength: 40 });

  it('a flipped byte anywhere: open refuses naming the damaged record, or nothing acknowledged is lost; repair never makes a version go backwards', async () => {
    await fc.assert(
      fc.asyncProperty(updates, fc.nat(), fc.integer({ min: 1, max: 255 }), async (things, where, mask) => {
        const dir = freshDir();
        const written = await writeUpdates(dir, things);
        const path = join(dir, 'journal.ssj');
        const bytes = readFileSync(path);
        const starts = frameStarts(bytes); // before the flip, which may hit a length field
        const position = 8 + (where % (bytes.length - 8));
        bytes[position] = (bytes[position] as number) ^ mask;
        writeFileSync(path, bytes);
        const damagedIndex = starts.filter((start) => start <= position).length - 1;

        const error = openError(dir);
        // Every single flip is damage (a checksum or a length that no longer fits): never a silent truncation.
        expect(isShadowJournalCorruptionError(error)).toBe(true);
        expect((error as ShadowJournalCorruptionError).offset).toBe(starts[damagedIndex]);

        const report = repairJournal(dir);
        expect(existsSync(report.journal?.backup as string)).toBe(true);
        const journal = openJournal({ dataDir: dir });
        const recovered = versionsOf(journal.recovered);
        await journal.close();
        // Exactly the damaged record is gone: each thing has its newest undamaged version.
        const expected = new Map<string, number>();
        written.forEach(({ key, version }, index) => {
          if (index !== damagedIndex) expected.set(key, version);
        });
        expect(recovered).toEqual(expected);
        rmSync(dir, { recursive: true, force: true });
      }),
      { numRuns: 150 },
    );
  });

  it('a cut anywhere inside the last record never loses an earlier acknowledged update', async () => {
    await fc.assert(
      fc.asyncProperty(updates, fc.nat(), async (things, where) => {
        const dir = freshDir();
        const written = await writeUpdates(dir, things);
        const path = join(dir, 'journal.ssj');
        const bytes = readFileSync(path);
        const last = frameStarts(bytes).at(-1) as number;
        const cut = last + 1 + (where % (bytes.length - last - 1));
        truncateSync(path, cut);
        const journal = openJournal({ dataDir: dir });
        const recovered = versionsOf(journal.recovered);
        await journal.close();
        const expected = new Map<string, number>();
        for (const { key, version } of written.slice(0, -1)) expected.set(key, version);
        expect(recovered).toEqual(expected);
        rmSync(dir, { recursive: true, force: true });
      }),
      { numRuns: 100 },
    );
  });
});

describe('shadow-sync journal check|repair, and serve on a damaged directory', () => {
  it('the service refuses to start; check names the offset; repair keeps a copy; then it starts', async () => {
    const dir = freshDir();
    await writeUpdates(dir, [0, 1, 0, 1, 2]);
    const path = join(dir, 'journal.ssj');
    const bytes = readFileSync(path);
    const second = frameStarts(bytes)[1] as number;
    bytes[second + 12] = (bytes[second + 12] as number) ^ 0x08;
    writeFileSync(path, bytes);
    await expect(startShadowService({ dataDir: dir })).rejects.toMatchObject({
      code: 'JOURNAL_CORRUPT',
      offset: second,
    });

    const out: string[] = [];
    const err: string[] = [];
    const io = { stdout: (line: string) => out.push(line), stderr: (line: string) => err.push(line) };
    expect(await runCli(['journal', 'check', dir], io)).toBe(1);
    expect(err.join('\n')).toContain(`${path} is damaged at byte ${second}`);
    expect(await runCli(['journal', 'repair', dir], io)).toBe(0);
    expect(out.join('\n')).toMatch(
      /journal\.ssj: kept 4 records, dropped \d+ bytes .*original copied to .*\.damaged-/,
    );
    out.length = 0;
    expect(await runCli(['journal', 'check', dir], io)).toBe(0);
    expect(out).toEqual([`${dir}: the service can start (3 shadows)`]);
    const service = await startShadowService({ dataDir: dir });
    await service.close();

    err.length = 0;
    expect(await runCli(['journal', 'mend', dir], io)).toBe(2);
    expect(err.join('\n')).toContain("expected 'check' or 'repair', got 'mend'");
  });
});
