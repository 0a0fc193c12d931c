import { mkdirSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  GetThingShadowCommand,
  IoTDataPlaneClient,
  UpdateThingShadowCommand,
} from '@aws-sdk/client-iot-data-plane';
import fc from 'fast-check';
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { ShadowRecord, StoredShadow } from '../../src/core/document.js';
import { startHttpFront } from '../../src/emulator/http-front.js';
import { type JournalFileOps, NODE_JOURNAL_FILE_OPS, openJournal } from '../../src/emulator/journal.js';
import { createShadowEngine, INTERNAL_FAILURE_MESSAGE } from '../../src/emulator/shadow-engine.js';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'shadow-journal-fail-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));
const roots: string[] = [];
afterAll(() => {
  for (const root of roots) rmSync(root, { recursive: true, force: true });
});

const shadow = (version: number): StoredShadow => ({
  state: { reported: { n: version } },
  metadata: { reported: { n: { timestamp: 1 } } },
  version,
});

const ioError = (syscall: string, code = 'EIO') =>
  Object.assign(new Error(`${code}: i/o error, ${syscall}`), { code, syscall });

/** The next fault the file operations inject; each fires once and is then cleared. */
type Fault = 'write' | 'torn' | 'sync' | 'torn+truncate';

/** Real node:fs file operations with one-shot faults: a failed write, a torn write, a failed sync or rollback. */
function faultyOps() {
  let next: Fault | undefined;
  let failTruncate = false;
  const ops: JournalFileOps = {
    async write(fd, data, offset, length) {
      if (next === 'write') {
        next = undefined;
        throw ioError('write', 'ENOSPC');
      }
      if (next === 'torn' || next === 'torn+truncate') {
        // Half the batch reaches the file, then the disk fills up (and, with +truncate, the rollback fails too).
        failTruncate = next === 'torn+truncate';
        next = undefined;
        await NODE_JOURNAL_FILE_OPS.write(fd, data, offset, Math.max(1, Math.floor(length / 2)));
        throw ioError('write', 'ENOSPC');
      }
      return NODE_JOURNAL_FILE_OPS.write(fd, data, offset, length);
    },
    async datasync(fd) {
      if (next === 'sync') {
        next = undefined;
        throw ioError('fdatasync');
      }
      return NODE_JOURNAL_FILE_OPS.datasync(fd);
    },
    async truncate(fd, length) {
      if (failTruncate) {
        failTruncate = false;
        throw ioError('ftruncate');
      }
      return NODE_JOURNAL_FILE_OPS.truncate(fd, length);
    },
  };
  return {
    ops,
    fail(fault: Fault) {
      next = fault;
    },
  };
}

/** What a fresh open of the directory recovers (closed again, so the directory lock is released). */
async function recoveredMap(dataDir: string): Promise<Record<string, ShadowRecord>> {
  const journal = openJournal({ dataDir });
  await journal.close();
  return Object.fromEntries(journal.recovered.map(({ target, record }) => [target.thingName, record]));
}

describe('journal: a failed write is never acknowledged and never corrupts the stored state', () => {
  for (const fault of ['write', 'torn', 'sync'] as const)
    it(`${fault}: rejects the batch, rolls the file back, and keeps working once the fault is gone`, async () => {
      const faults = faultyOps();
      const journal = openJournal({ dataDir: dir, fileOps: faults.ops });
      await journal.append({ thingName: 'a' }, shadow(1));
      const size = statSync(join(dir, 'journal.ssj')).size;
      faults.fail(fault);
      const refused = [
        journal.append({ thingName: 'a' }, shadow(2)),
        journal.append({ thingName: 'b' }, shadow(1)),
      ];
      for (const result of await Promise.allSettled(refused))
        expect(result).toMatchObject({
          status: 'rejected',
          reason: { code: expect.stringMatching(/EIO|ENOSPC/) },
        });
      expect(statSync(join(dir, 'journal.ssj')).size).toBe(size);
      expect(journal.stats()).toMatchObject({ failedBatches: 1, journalBytes: size });
      await journal.append({ thingName: 'c' }, shadow(1));
      await journal.close();
      const reopened = openJournal({ dataDir: dir });
      expect(reopened.stats().truncatedBytes).toBe(0);
      await reopened.close();
      expect(await recoveredMap(dir)).toEqual({ a: shadow(1), c: shadow(1) });
    });

  it('refuses every later append when the rollback fails too; the next open drops the torn tail', async () => {
    const faults = faultyOps();
    const journal = openJournal({ dataDir: dir, fileOps: faults.ops });
    await journal.append({ thingName: 'a' }, shadow(1));
    faults.fail('torn+truncate');
    await expect(journal.append({ thingName: 'a' }, shadow(2))).rejects.toMatchObject({ code: 'ENOSPC' });
    // The fault is gone, but the file's tail is unknown: nothing more is accepted.
    await expect(journal.append({ thingName: 'b' }, shadow(1))).rejects.toMatchObject({ code: 'ENOSPC' });
    expect(journal.stats().failedBatches).toBe(1);
    await journal.close();
    const reopened = openJournal({ dataDir: dir });
    expect(reopened.stats().truncatedBytes).toBeGreaterThan(0);
    await reopened.close();
    expect(await recoveredMap(dir)).toEqual({ a: shadow(1) });
  });

  it('rejects fileOps without the needed functions', () => {
    expect(() =>
      openJournal({
        dataDir: dir,
        fileOps: { write: NODE_JOURNAL_FILE_OPS.write } as unknown as JournalFileOps,
      }),
    ).toThrow('Journal option fileOps must have a datasync function');
  });

  it('property: under random write, torn-write and sync failures, reopening recovers exactly the acknowledged records', async () => {
    const root = mkdtempSync(join(tmpdir(), 'shadow-journal-prop-'));
    roots.push(root);
    let run = 0;
    const step = fc.record({
      fault: fc.option(fc.constantFrom<Fault>('write', 'torn', 'sync'), { freq: 3 }),
      // Several appends in one step share a batch (group commit), so a fault hits them all.
      appends: fc.array(fc.record({ thing: fc.constantFrom('a', 'b', 'c'), version: fc.nat(99) }), {
        minLength: 1,
        maxLength: 3,
      }),
    });
    await fc.assert(
      fc.asyncProperty(
        fc.array(step, { minLength: 1, maxLength: 8 }),
        fc.boolean(),
        async (steps, compact) => {
          const dataDir = join(root, String(run++));
          mkdirSync(dataDir);
          const faults = faultyOps();
          const journal = openJournal({
            dataDir,
            fileOps: faults.ops,
            ...(compact ? { compactThresholdBytes: 200 } : {}),
          });
          const acknowledged = new Map<string, ShadowRecord>();
          for (const { fault, appends } of steps) {
            if (fault !== null) faults.fail(fault);
            const results = await Promise.allSettled(
              appends.map(({ thing, version }) => journal.append({ thingName: thing }, shadow(version))),
            );
            results.forEach((result, i) => {
              const { thing, version } = appends[i] as { thing: string; version: number };
              if (result.status === 'fulfilled') acknowledged.set(thing, shadow(version));
            });
          }
          await journal.close();
          expect(await recoveredMap(dataDir)).toEqual(Object.fromEntries(acknowledged));
        },
      ),
      { numRuns: 40 },
    );
  });
});

describe('engine: a failed journal write answers 500 and applies nothing', () => {
  const encode = (value: unknown) => new TextEncoder().encode(JSON.stringify(value));

  it('MQTT: update/rejected 500 with the clientToken, no accepted, delta or documents; the store is unchanged', async () => {
    const faults = faultyOps();
    const engine = createShadowEngine({ dataDir: dir, journalFileOps: faults.ops });
    const topics: string[] = [];
    const bodies: unknown[] = [];
    engine.onMessage((m) => {
      topics.push(m.topic);
      bodies.push(JSON.parse(new TextDecoder().decode(m.payload)));
    });
    const update = (body: unknown) =>
      engine.handle({
        operation: 'update',
        target: { thingName: 'lamp' },
        payload: encode(body),
        origin: 'mqtt',
      });
    expect(await update({ state: { desired: { on: true } } })).toMatchObject({ ok: true });
    const before = engine.read({ thingName: 'lamp' });
    topics.length = 0;
    bodies.length = 0;

    faults.fail('sync');
    const failed = await update({ state: { desired: { on: false } }, clientToken: 'tok-1' });
    expect(failed).toEqual({
      ok: false,
      rejection: {
        code: 500,
        message: INTERNAL_FAILURE_MESSAGE,
        errorType: 'InternalFailureException',
        clientToken: 'tok-1',
      },
    });
    expect(topics).toEqual(['$aws/things/lamp/shadow/update/rejected']);
    expect(bodies[0]).toMatchObject({ code: 500, message: 'Internal service failure', clientToken: 'tok-1' });
    expect(engine.read({ thingName: 'lamp' })).toBe(before);
    expect(engine.stats().journal).toMatchObject({ failedBatches: 1 });

    // The journal rolled back and goes on: the next update is version 2, not 3.
    expect(await update({ state: { desired: { on: false } } })).toMatchObject({
      ok: true,
      body: { version: 2 },
    });
    await engine.close();
    const restarted = createShadowEngine({ dataDir: dir });
    expect(restarted.read({ thingName: 'lamp' })).toMatchObject({
      version: 2,
      state: { desired: { on: false } },
    });
    await restarted.close();
  });

  it('HTTP: the AWS SDK raises InternalFailureException and a GET still shows the last acknowledged state', async () => {
    const faults = faultyOps();
    const engine = createShadowEngine({ dataDir: dir, journalFileOps: faults.ops });
    const http = await startHttpFront(engine, { port: 0 });
    const sdk = new IoTDataPlaneClient({
      endpoint: http.endpoint,
      region: 'us-east-1',
      credentials: { accessKeyId: 'x', secretAccessKey: 'y' },
      maxAttempts: 1,
    });
    try {
      await sdk.send(
        new UpdateThingShadowCommand({
          thingName: 'lamp',
          payload: encode({ state: { reported: { t: 1 } } }),
        }),
      );
      faults.fail('torn');
      await expect(
        sdk.send(
          new UpdateThingShadowCommand({
            thingName: 'lamp',
            payload: encode({ state: { reported: { t: 2 } } }),
          }),
        ),
      ).rejects.toMatchObject({ name: 'InternalFailureException', message: 'Internal service failure' });
      const got = await sdk.send(new GetThingShadowCommand({ thingName: 'lamp' }));
      expect(JSON.parse(new TextDecoder().decode(got.payload))).toMatchObject({
        version: 1,
        state: { reported: { t: 1 } },
      });
    } finally {
      sdk.destroy();
      await http.close();
      await engine.close();
    }
  });
});
