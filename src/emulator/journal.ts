/**
 * Durable storage for the local shadow service: an append-only journal plus a compacted snapshot.
 *
 * Why this mechanism (and not SQLite or one file per shadow):
 * - Every write is a whole record (the shadow's new document or tombstone), so replay is a sequence of
 *   idempotent "set" operations: replaying a record twice, or on top of a snapshot that already contains it,
 *   gives the same state. That makes compaction crash-safe without generation numbers.
 * - Durability before acknowledgement: {@link Journal.append} resolves only after the record's bytes were
 *   written and `fdatasync`ed. Concurrent appends are group-committed: while one batch is being synced the
 *   next ones accumulate and share the following fsync, so throughput grows with concurrency instead of being
 *   bounded by one fsync per update (the classic database group commit).
 * - No half-written document is ever exposed: each record is framed as
 *   `[u32 LE payload length][u32 LE CRC-32 of payload][payload JSON]`. A crash can only tear the last,
 *   unacknowledged write: the file then ends inside a frame (a write is cut short, never scrambled). Replay
 *   stops at the first frame that is not valid and tells the two cases apart:
 *   - **torn tail**: the bad frame is the last thing in the file and the file ends before its declared end (and
 *     the bytes present are not a whole record with a damaged length field). Only an unacknowledged write can
 *     look like that: the file is truncated there so later appends never follow garbage;
 *   - **damage**: anything else: a complete frame with a bad checksum, a bad frame followed by more bytes or by
 *     valid frames (a flipped byte in the middle). Truncating would silently drop acknowledged updates and let
 *     versions go backwards and be reused, so opening throws {@link ShadowJournalCorruptionError} naming the file
 *     and the byte offset. {@link repairJournal} (`shadow-sync journal repair <dir>`) keeps a copy of the
 *     original and keeps every valid frame, dropping only the damaged bytes.
 * - Compaction rewrites the live records into `snapshot.ssj` through a temporary file that is fsynced and then
 *   renamed over the old snapshot (rename is atomic on POSIX), the directory is fsynced, and only then is the
 *   journal truncated. A crash at any point leaves either the old snapshot with the full journal or the new
 *   snapshot with a journal whose records are already in it: both replay to the same state.
 * - No dependency: node:fs only. SQLite would bring a native module into the package for a key-value workload.
 *
 * - A failed write or sync (disk full, I/O error) rejects every append of that batch, so nothing in it is
 *   acknowledged, and the file is truncated back to the end of the last acknowledged batch and synced, so the
 *   refused records cannot reappear at the next open. When that rollback fails too, the journal refuses every
 *   later append (the file's tail is unknown); at the next open the framing drops whatever torn tail is left.
 * - Expired tombstones (see {@link JournalOptions.isExpired}) are dropped when the journal is opened and at every
 *   compaction, so neither the recovered state nor a snapshot carries them. Dropping one is safe at any moment:
 *   an expired tombstone and an absent record mean the same to the core (a re-created shadow starts at 1).
 *
 * A snapshot is only ever replaced atomically, so a snapshot frame that fails its checksum means the disk or
 * someone else damaged it: opening then throws instead of silently dropping acknowledged updates.
 */
import {
  closeSync,
  copyFileSync,
  existsSync,
  fdatasync,
  fsyncSync,
  ftruncate,
  ftruncateSync,
  mkdirSync,
  openSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  write,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { type FileHandle, open, rename } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { crc32 } from 'node:zlib';
import type { ShadowRecord, ShadowTarget, ShadowTombstone } from '../core/document.js';
import { ShadowJournalCorruptionError, ShadowOptionsError } from '../errors.js';
import { isTombstone, type StoredRecord } from './shadow-store.js';

/** Options of {@link openJournal}. */
export interface JournalOptions {
  /** The directory holding `journal.ssj` and `snapshot.ssj`; created when missing. */
  dataDir: string;
  /**
   * Compact once the journal holds more than this many bytes and more than twice the live data.
   * @defaultValue 67108864 (64 MiB)
   */
  compactThresholdBytes?: number;
  /**
   * Tells whether a tombstone is past the deleted-version retention; expired tombstones are left out of the
   * recovered records and of every snapshot. The engine passes one that reads its injected clock.
   * @defaultValue () => false (keep every tombstone)
   */
  isExpired?: (tombstone: ShadowTombstone) => boolean;
  /**
   * The file operations of the append and compaction path. Tests inject failing ones to check that a failed
   * write is never acknowledged and never corrupts the stored state.
   * @defaultValue NODE_JOURNAL_FILE_OPS (node:fs)
   */
  fileOps?: JournalFileOps;
}

/** The asynchronous file operations the journal performs on its open journal file. */
export interface JournalFileOps {
  /**
   * Writes `length` bytes of `data`, starting at `offset`, at the end of the append-mode file `fd`.
   * @returns how many bytes were written (may be fewer than `length`; the journal writes the rest)
   */
  write(fd: number, data: Buffer, offset: number, length: number): Promise<number>;
  /** Flushes the file's data (and its size) to stable storage: `fdatasync`. */
  datasync(fd: number): Promise<void>;
  /** Sets the file's length. */
  truncate(fd: number, length: number): Promise<void>;
}

/** The journal's file operations on node:fs. */
export const NODE_JOURNAL_FILE_OPS: Readonly<JournalFileOps> = Object.freeze({
  write: (fd: number, data: Buffer, offset: number, length: number) =>
    new Promise<number>((resolve, reject) =>
      write(fd, data, offset, length, null, (error, written) => (error ? reject(error) : resolve(written))),
    ),
  datasync: (fd: number) =>
    new Promise<void>((resolve, reject) => fdatasync(fd, (error) => (error ? reject(error) : resolve()))),
  truncate: (fd: number, length: number) =>
    new Promise<void>((resolve, reject) =>
      ftruncate(fd, length, (error) => (error ? reject(error) : resolve())),
    ),
});

/** Counters of what the journal did, for tests and benchmarks. */
export interface JournalStats {
  /** Records appended since open. */
  appended: number;
  /** Batches written, each followed by one fsync. */
  batches: number;
  /** Compactions completed since open. */
  compactions: number;
  /** Current size of the journal file in bytes. */
  journalBytes: number;
  /** Bytes of torn or corrupt tail dropped at open. */
  truncatedBytes: number;
  /** Expired tombstones left out at open or at a compaction. */
  expiredTombstones: number;
  /** Batches whose write or sync failed (none of their appends was acknowledged). */
  failedBatches: number;
}

/** An open journal. */
export interface Journal {
  /** The records recovered at open (snapshot, then journal), one per shadow, in no particular order. */
  readonly recovered: readonly StoredRecord[];
  /**
   * Appends a shadow's new record; resolves once it is on stable storage.
   * @throws Error when writing or syncing failed (the journal then refuses further appends)
   */
  append(target: ShadowTarget, record: ShadowRecord): Promise<void>;
  /** Rewrites the snapshot from the live records and empties the journal. */
  compact(): Promise<void>;
  /** What the journal did so far. */
  stats(): JournalStats;
  /** Waits for pending appends, then closes the file. */
  close(): Promise<void>;
}

const JOURNAL_MAGIC = Buffer.from('SSJRNL01', 'latin1');
const SNAPSHOT_MAGIC = Buffer.from('SSSNAP01', 'latin1');
const HEADER_BYTES = 8;
const JOURNAL_FILE = 'journal.ssj';
const SNAPSHOT_FILE = 'snapshot.ssj';
const SNAPSHOT_TEMP = 'snapshot.ssj.tmp';
const LOCK_FILE = 'LOCK';
const DEFAULT_COMPACT_THRESHOLD = 64 * 1024 * 1024;

interface Frame {
  key: string;
  target: ShadowTarget;
  record: ShadowRecord;
}

function keyOf(target: ShadowTarget): string {
  return target.shadowName === undefined
    ? `${target.thingName}\u0000`
    : `${target.thingName}\u0001${target.shadowName}`;
}

/** Frames one record: length, checksum, payload. */
function encodeFrame(target: ShadowTarget, record: ShadowRecord): Buffer {
  const body =
    target.shadowName === undefined
      ? { t: target.thingName, r: record }
      : { t: target.thingName, s: target.shadowName, r: record };
  const payload = Buffer.from(JSON.stringify(body), 'utf8');
  const frame = Buffer.allocUnsafe(HEADER_BYTES + payload.length);
  frame.writeUInt32LE(payload.length, 0);
  frame.writeUInt32LE(crc32(payload), 4);
  payload.copy(frame, HEADER_BYTES);
  return frame;
}

interface DecodeResult {
  frames: Frame[];
  /** Offset just past the last valid frame. */
  validEnd: number;
}

/** The valid frame starting at `at` and the offset just past it, or `undefined`. */
function frameAt(data: Buffer, at: number): { frame: Frame; end: number } | undefined {
  if (at + HEADER_BYTES > data.length) return undefined;
  const length = data.readUInt32LE(at);
  const start = at + HEADER_BYTES;
  if (start + length > data.length) return undefined;
  const payload = data.subarray(start, start + length);
  if (crc32(payload) !== data.readUInt32LE(at + 4)) return undefined;
  let parsed: { t?: unknown; s?: unknown; r?: unknown };
  try {
    parsed = JSON.parse(payload.toString('utf8')) as { t?: unknown; s?: unknown; r?: unknown };
  } catch {
    return undefined;
  }
  if (
    typeof parsed !== 'object' ||
    parsed === null ||
    typeof parsed.t !== 'string' ||
    (parsed.s !== undefined && typeof parsed.s !== 'string') ||
    typeof parsed.r !== 'object' ||
    parsed.r === null
  )
    return undefined;
  const target: ShadowTarget =
    parsed.s === undefined
      ? { thingName: parsed.t }
      : { thingName: parsed.t, shadowName: parsed.s as string };
  return { frame: { key: keyOf(target), target, record: parsed.r as ShadowRecord }, end: start + length };
}

/** Decodes frames from `offset` until the end or the first frame that is not valid. */
function decodeFrames(data: Buffer, offset: number): DecodeResult {
  const frames: Frame[] = [];
  let at = offset;
  for (let next = frameAt(data, at); next !== undefined; next = frameAt(data, at)) {
    frames.push(next.frame);
    at = next.end;
  }
  return { frames, validEnd: at };
}

/** The offset of the first valid frame at or after `from`, or `undefined`. */
function nextValidFrame(data: Buffer, from: number): number | undefined {
  for (let at = from; at + HEADER_BYTES <= data.length; at++) {
    // Cheap rejection first: most offsets declare a length that runs past the end.
    if (at + HEADER_BYTES + data.readUInt32LE(at) > data.length) continue;
    if (frameAt(data, at) !== undefined) return at;
  }
  return undefined;
}

/**
 * What follows the last valid frame: nothing, a torn tail (an unacknowledged write cut short), or damage.
 * See the module comment for why only a file that ends inside the bad frame counts as torn.
 */
function classifyTail(
  data: Buffer,
  validEnd: number,
): { kind: 'clean' } | { kind: 'torn' } | { kind: 'damaged'; reason: string } {
  if (validEnd === data.length) return { kind: 'clean' };
  const following = nextValidFrame(data, validEnd + 1);
  if (following !== undefined)
    return { kind: 'damaged', reason: `a valid record follows at byte ${following}` };
  if (validEnd + HEADER_BYTES > data.length) return { kind: 'torn' };
  const declaredEnd = validEnd + HEADER_BYTES + data.readUInt32LE(validEnd);
  if (declaredEnd <= data.length)
    return {
      kind: 'damaged',
      reason:
        declaredEnd === data.length
          ? 'the last record is complete but its checksum does not match'
          : 'a record that is not valid is followed by more bytes',
    };
  // Shorter than declared: torn, unless the bytes present are a whole record whose length field was damaged.
  const rest = data.subarray(validEnd + HEADER_BYTES);
  if (crc32(rest) === data.readUInt32LE(validEnd + 4))
    return { kind: 'damaged', reason: 'the length field of the last record is damaged' };
  return { kind: 'torn' };
}

function fsyncDirectory(dir: string): void {
  const fd = openSync(dir, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/**
 * Takes the data directory for this process: two services appending to one journal would interleave records.
 * The lock file holds the owner's pid; a lock left by a process that no longer exists (after `kill -9`) is
 * taken over.
 *
 * @returns the function that releases the lock
 * @throws Error when a live process holds the directory
 */
function acquireLock(path: string): () => void {
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      writeFileSync(path, String(process.pid), { flag: 'wx' });
      return () => rmSync(path, { force: true });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      const owner = Number(readFileSync(path, 'utf8'));
      if (Number.isSafeInteger(owner) && owner > 0 && owner !== process.pid && isAlive(owner))
        throw new Error(`shadow-sync journal: ${path} is held by running process ${owner}`);
      // Our own pid in a lock written before this process started: an earlier process that had the same pid left
      // it (a container restarted after `kill -9` usually gets the same pid again), so it is stale.
      if (owner === process.pid && !writtenBeforeThisProcess(path))
        throw new Error(`shadow-sync journal: ${path} is already open in this process`);
      rmSync(path, { force: true });
    }
  }
  throw new Error(`shadow-sync journal: could not take ${path}`);
}

function writtenBeforeThisProcess(path: string): boolean {
  return statSync(path).mtimeMs < Date.now() - process.uptime() * 1000;
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

const REPAIR_HINT = (path: string): string =>
  `; starting would lose acknowledged updates. Run 'shadow-sync journal repair ${dirname(path)}' to keep a copy of the damaged files and drop only the damaged bytes`;

/** Reads the snapshot; throws when it exists but is damaged (it is only ever replaced atomically). */
function readSnapshot(path: string): Frame[] {
  if (!existsSync(path)) return [];
  const data = readFileSync(path);
  if (data.length < HEADER_BYTES || !data.subarray(0, HEADER_BYTES).equals(SNAPSHOT_MAGIC))
    throw new ShadowJournalCorruptionError(
      `shadow-sync journal: ${path} is not a shadow-sync snapshot (bad header at byte 0)${REPAIR_HINT(path)}`,
      path,
      0,
    );
  const { frames, validEnd } = decodeFrames(data, HEADER_BYTES);
  if (validEnd !== data.length)
    throw new ShadowJournalCorruptionError(
      `shadow-sync journal: ${path} is damaged at byte ${validEnd} of ${data.length}${REPAIR_HINT(path)}`,
      path,
      validEnd,
    );
  return frames;
}

/**
 * Opens (creating if needed) the journal in `options.dataDir` and replays it. Opening is synchronous so that
 * an engine is usable as soon as it is created; it happens once per service start.
 *
 * @param options - data directory and compaction threshold
 * @throws ShadowOptionsError for an invalid option; Error when the snapshot is damaged or a file cannot be opened
 * @example
 * const journal = openJournal({ dataDir: './data' });
 * for (const { target, record } of journal.recovered) store.set(target, record);
 * await journal.append({ thingName: 'lamp' }, shadow);
 */
export function openJournal(options: JournalOptions): Journal {
  const known = new Set(['dataDir', 'compactThresholdBytes', 'isExpired', 'fileOps']);
  for (const key of Object.keys(options))
    if (!known.has(key)) throw new ShadowOptionsError(`Unknown journal option '${key}'`);
  if (typeof options.dataDir !== 'string' || options.dataDir === '')
    throw new ShadowOptionsError('Journal option dataDir must be a non-empty path');
  const threshold = options.compactThresholdBytes ?? DEFAULT_COMPACT_THRESHOLD;
  if (!Number.isSafeInteger(threshold) || threshold < 1)
    throw new ShadowOptionsError(
      `Journal option compactThresholdBytes must be a positive integer, got ${threshold}`,
    );
  const isExpired = options.isExpired ?? (() => false);
  if (typeof isExpired !== 'function')
    throw new ShadowOptionsError('Journal option isExpired must be a function');
  const ops = options.fileOps ?? NODE_JOURNAL_FILE_OPS;
  for (const name of ['write', 'datasync', 'truncate'] as const)
    if (typeof ops !== 'object' || ops === null || typeof ops[name] !== 'function')
      throw new ShadowOptionsError(`Journal option fileOps must have a ${name} function`);

  const dir = options.dataDir;
  mkdirSync(dir, { recursive: true });
  const releaseLock = acquireLock(join(dir, LOCK_FILE));
  const journalPath = join(dir, JOURNAL_FILE);
  const snapshotPath = join(dir, SNAPSHOT_FILE);

  // Live records: key -> encoded frame, so that compaction only concatenates buffers.
  const live = new Map<string, Buffer>();
  let liveBytes = 0;
  // The live records that are tombstones, so expiry needs no decoding of the live frames.
  const tombstones = new Map<string, ShadowTombstone>();
  let expiredTombstones = 0;
  const recoveredByKey = new Map<string, StoredRecord>();
  const remember = (key: string, record: ShadowRecord, encoded: Buffer): void => {
    const old = live.get(key);
    if (old !== undefined) liveBytes -= old.length;
    live.set(key, encoded);
    liveBytes += encoded.length;
    if (isTombstone(record)) tombstones.set(key, record);
    else tombstones.delete(key);
  };
  /** Forgets the live tombstones that have expired; they will be in no later snapshot. */
  const dropExpired = (): void => {
    for (const [key, tombstone] of tombstones) {
      if (!isExpired(tombstone)) continue;
      const old = live.get(key);
      if (old !== undefined) liveBytes -= old.length;
      live.delete(key);
      tombstones.delete(key);
      recoveredByKey.delete(key);
      expiredTombstones++;
    }
  };

  let fd = -1;
  let truncatedBytes = 0;
  let journalBytes = HEADER_BYTES;
  try {
    for (const frame of readSnapshot(snapshotPath)) {
      remember(frame.key, frame.record, encodeFrame(frame.target, frame.record));
      recoveredByKey.set(frame.key, { target: frame.target, record: frame.record });
    }

    const existing = existsSync(journalPath) ? readFileSync(journalPath) : undefined;
    if (
      existing !== undefined &&
      existing.length >= HEADER_BYTES &&
      !existing.subarray(0, HEADER_BYTES).equals(JOURNAL_MAGIC)
    )
      throw new ShadowJournalCorruptionError(
        `shadow-sync journal: ${journalPath} is not a shadow-sync journal (bad header at byte 0)${REPAIR_HINT(journalPath)}`,
        journalPath,
        0,
      );
    fd = openSync(journalPath, 'a');
    if (
      existing === undefined ||
      existing.length < HEADER_BYTES ||
      !existing.subarray(0, HEADER_BYTES).equals(JOURNAL_MAGIC)
    ) {
      // New journal, or one whose creation was interrupted before the magic reached the disk.
      ftruncateSync(fd, 0);
      writeAllSync(fd, JOURNAL_MAGIC);
      fsyncSync(fd);
      fsyncDirectory(dir);
      journalBytes = HEADER_BYTES;
    } else {
      const { frames, validEnd } = decodeFrames(existing, HEADER_BYTES);
      const tail = classifyTail(existing, validEnd);
      if (tail.kind === 'damaged')
        throw new ShadowJournalCorruptionError(
          `shadow-sync journal: ${journalPath} is damaged at byte ${validEnd} of ${existing.length} (${tail.reason})${REPAIR_HINT(journalPath)}`,
          journalPath,
          validEnd,
        );
      for (const frame of frames) {
        remember(frame.key, frame.record, encodeFrame(frame.target, frame.record));
        recoveredByKey.set(frame.key, { target: frame.target, record: frame.record });
      }
      if (validEnd < existing.length) {
        truncatedBytes = existing.length - validEnd;
        ftruncateSync(fd, validEnd);
        fsyncSync(fd);
      }
      journalBytes = validEnd;
    }
    dropExpired();
  } catch (error) {
    if (fd >= 0) closeSync(fd);
    releaseLock();
    throw error;
  }

  interface Pending {
    key: string;
    record: ShadowRecord;
    frame: Buffer;
    resolve: () => void;
    reject: (error: unknown) => void;
  }
  let queue: Pending[] = [];
  let flushScheduled = false;
  let failure: unknown;
  let closed = false;
  let closing: Promise<void> | undefined;
  const stats = { appended: 0, batches: 0, compactions: 0, failedBatches: 0 };
  // Every file operation (batch write + sync, compaction, close) runs on this chain, one at a time, so a
  // compaction can never truncate the journal under a batch being written.
  let ioChain: Promise<void> = Promise.resolve();
  const exclusive = (operation: () => Promise<void>): Promise<void> => {
    const run = ioChain.then(operation);
    ioChain = run.catch(() => undefined);
    return run;
  };

  async function compactNow(): Promise<void> {
    dropExpired();
    const tempPath = join(dir, SNAPSHOT_TEMP);
    const temp: FileHandle = await open(tempPath, 'w');
    try {
      await temp.writeFile(Buffer.concat([SNAPSHOT_MAGIC, ...live.values()]));
      await temp.datasync();
    } finally {
      await temp.close();
    }
    await rename(tempPath, snapshotPath);
    fsyncDirectory(dir);
    // Only now may the journal lose its records: they are all in the durable snapshot.
    await ops.truncate(fd, HEADER_BYTES);
    // The file is short now even if the sync below fails: a later rollback must not extend it with zeros.
    journalBytes = HEADER_BYTES;
    await ops.datasync(fd);
    stats.compactions++;
  }

  async function flushQueue(): Promise<void> {
    while (queue.length > 0) {
      const batch = queue;
      queue = [];
      if (failure !== undefined) {
        for (const p of batch) p.reject(failure);
        continue;
      }
      const data =
        batch.length === 1 ? (batch[0] as Pending).frame : Buffer.concat(batch.map((p) => p.frame));
      try {
        await writeAll(ops, fd, data);
        await ops.datasync(fd);
      } catch (error) {
        stats.failedBatches++;
        // Cut the refused batch off before anyone hears of the failure, so it can never be replayed.
        try {
          await ops.truncate(fd, journalBytes);
          await ops.datasync(fd);
        } catch {
          // The file's tail is unknown: refuse everything from now on.
          failure = error;
        }
        for (const p of batch) p.reject(error);
        continue;
      }
      journalBytes += data.length;
      stats.batches++;
      for (const p of batch) remember(p.key, p.record, p.frame);
      for (const p of batch) p.resolve();
      if (journalBytes > threshold && journalBytes > 2 * liveBytes) {
        // A failed compaction loses nothing (the journal still holds every record); the next batch retries it.
        await compactNow().catch(() => undefined);
      }
    }
  }

  function scheduleFlush(): void {
    if (flushScheduled) return;
    flushScheduled = true;
    // setImmediate lets every request that arrived in this event-loop turn join the first batch; later ones
    // accumulate while that batch is being synced and share the next fsync.
    setImmediate(() => {
      flushScheduled = false;
      void exclusive(flushQueue);
    });
  }

  return {
    recovered: [...recoveredByKey.values()],
    append(target, record) {
      if (closed) return Promise.reject(new Error('shadow-sync journal: closed'));
      if (failure !== undefined) return Promise.reject(failure);
      const frame = encodeFrame(target, record);
      stats.appended++;
      return new Promise<void>((resolve, reject) => {
        queue.push({ key: keyOf(target), record, frame, resolve, reject });
        scheduleFlush();
      });
    },
    compact() {
      return exclusive(async () => {
        await flushQueue();
        await compactNow();
      });
    },
    stats() {
      return { ...stats, journalBytes, truncatedBytes, expiredTombstones };
    },
    close() {
      // Every caller waits for the same close, so none resumes while the file and the lock are still held.
      closed = true;
      closing ??= exclusive(async () => {
        await flushQueue();
        closeSync(fd);
        releaseLock();
      });
      return closing;
    },
  };
}

function writeAllSync(fd: number, data: Buffer): void {
  let offset = 0;
  while (offset < data.length) offset += writeSync(fd, data, offset, data.length - offset);
}

/** Writes all of `data` at the end of the append-mode file `fd`. */
async function writeAll(ops: JournalFileOps, fd: number, data: Buffer): Promise<void> {
  let offset = 0;
  while (offset < data.length) {
    const written = await ops.write(fd, data, offset, data.length - offset);
    // A write that makes no progress would loop forever; report it like the I/O error it is.
    if (!(written > 0)) throw new Error(`shadow-sync journal: write made no progress (${written} bytes)`);
    offset += written;
  }
}

/** What {@link repairJournal} did to one file. */
export interface RepairedFile {
  /** The file repaired. */
  file: string;
  /** Valid records kept, in their order. */
  keptRecords: number;
  /** Byte ranges `[start, end)` of the original that were dropped; empty when the file was intact. */
  dropped: readonly { start: number; end: number }[];
  /** Where the original was copied before it was rewritten; `undefined` when nothing was dropped. */
  backup: string | undefined;
}

/** What {@link repairJournal} did: one entry per file present. */
export interface JournalRepairReport {
  snapshot: RepairedFile | undefined;
  journal: RepairedFile | undefined;
}

/**
 * Repairs a data directory the service refuses to open ({@link ShadowJournalCorruptionError}): keeps a copy of
 * each damaged file (`<file>.damaged-<time>`), then rewrites it with every valid record, in order, dropping only
 * the bytes that belong to no valid record. Because every record is a shadow's whole document, a record after
 * the damage still restores its shadow; only the records inside the damaged bytes are lost (their shadows fall
 * back to their previous record), which is why this is an explicit step and never done at start.
 *
 * @param dataDir - the service's data directory (must not be in use: the directory lock is taken)
 * @param now - the clock used to name the copies
 * @returns what was kept and dropped in each file
 * @throws Error when the directory is held by a running service or a file cannot be read or written
 * @example
 * const report = repairJournal('./data');
 * console.log(report.journal?.dropped); // [{ start: 1234, end: 1391 }]
 */
export function repairJournal(dataDir: string, now: () => number = Date.now): JournalRepairReport {
  if (typeof dataDir !== 'string' || dataDir === '' || !existsSync(dataDir))
    throw new ShadowOptionsError(`journal repair: data directory '${String(dataDir)}' does not exist`);
  const releaseLock = acquireLock(join(dataDir, LOCK_FILE));
  try {
    const stamp = new Date(now()).toISOString().replace(/[:.]/g, '-');
    const snapshot = salvage(join(dataDir, SNAPSHOT_FILE), SNAPSHOT_MAGIC, stamp);
    const journal = salvage(join(dataDir, JOURNAL_FILE), JOURNAL_MAGIC, stamp);
    if (snapshot?.backup !== undefined || journal?.backup !== undefined) fsyncDirectory(dataDir);
    return { snapshot, journal };
  } finally {
    releaseLock();
  }
}

function salvage(path: string, magic: Buffer, stamp: string): RepairedFile | undefined {
  if (!existsSync(path)) return undefined;
  const data = readFileSync(path);
  const kept: Buffer[] = [];
  const dropped: { start: number; end: number }[] = [];
  let at = HEADER_BYTES;
  if (data.length < HEADER_BYTES || !data.subarray(0, HEADER_BYTES).equals(magic))
    dropped.push({ start: 0, end: Math.min(HEADER_BYTES, data.length) });
  while (at < data.length) {
    const next = frameAt(data, at);
    if (next !== undefined) {
      kept.push(data.subarray(at, next.end));
      at = next.end;
      continue;
    }
    const resume = nextValidFrame(data, at + 1) ?? data.length;
    dropped.push({ start: at, end: resume });
    at = resume;
  }
  if (dropped.length === 0) return { file: path, keptRecords: kept.length, dropped, backup: undefined };
  const backup = `${path}.damaged-${stamp}`;
  copyFileSync(path, backup);
  const temp = `${path}.repair-tmp`;
  const fd = openSync(temp, 'w');
  try {
    writeAllSync(fd, Buffer.concat([magic, ...kept]));
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(temp, path);
  return { file: path, keptRecords: kept.length, dropped, backup };
}
