/**
 * Race tests of the update engine: fast-check's scheduler decides, at every request arrival and every
 * response delivery, which client moves next, so the interleavings explored are chosen and shrunk by
 * fast-check rather than by timing. The service is the in-memory test double built on the real core.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { applyUpdate } from '../../src/core/apply-update.js';
import type { JsonObject, ShadowRecord, ShadowTarget } from '../../src/core/document.js';
import {
  createShadowClient,
  type ShadowClient,
  type ShadowWriteResult,
} from '../../src/update/shadow-client.js';
import { InMemoryShadowServiceDouble, instantClock } from './in-memory-service-double.js';

const target: ShadowTarget = { thingName: 'aircon-1' };

function clientOn(
  service: InMemoryShadowServiceDouble,
  name: string,
  s: fc.Scheduler,
  options: { broadcast?: boolean; coalesce?: boolean } = {},
): ShadowClient {
  return createShadowClient({
    transport: service.transport(name, {
      yieldTo: (label) => s.schedule(Promise.resolve(), label).then(() => undefined),
      ...(options.broadcast === undefined ? {} : { broadcast: options.broadcast }),
    }),
    clock: instantClock(),
    random: () => 0.5,
    maxAttempts: 100,
    requestsPerSecondPerThing: Number.POSITIVE_INFINITY,
    maxInFlightPerThing: Number.POSITIVE_INFINITY,
    ...(options.coalesce === undefined ? {} : { coalesce: options.coalesce }),
  });
}

/** Replays the committed writes in version order with the core, from nothing. */
function replay(
  service: InMemoryShadowServiceDouble,
  upTo = Number.POSITIVE_INFINITY,
): ShadowRecord | undefined {
  let record: ShadowRecord | undefined;
  const writes = [...service.committed]
    .sort((a, b) => a.version - b.version)
    .filter((w) => w.version <= upTo);
  for (const write of writes) {
    const { version: _version, ...request } = write.request;
    const result = applyUpdate(record, request, { target, now: service.now });
    if (!result.ok) throw new Error(`replay refused version ${write.version}: ${result.rejection.message}`);
    record = result.shadow;
  }
  return record;
}

const count = (current: { state: { desired?: JsonObject } } | undefined) =>
  Number(current?.state.desired?.count ?? 0);

describe('update engine under scheduled races', () => {
  it('N independent clients x K read-modify-write increments: counter = N x K, versions distinct', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.scheduler(),
        fc.integer({ min: 2, max: 4 }),
        fc.integer({ min: 1, max: 3 }),
        fc.boolean(),
        async (s, writers, increments, broadcast) => {
          const service = new InMemoryShadowServiceDouble();
          const runs = Array.from({ length: writers }, async (_, w) => {
            const aircon = clientOn(service, `w${w}`, s, { broadcast }).shadow('aircon-1');
            const results: ShadowWriteResult[] = [];
            for (let k = 0; k < increments; k++) {
              results.push(await aircon.update((current) => ({ desired: { count: count(current) + 1 } })));
            }
            return results;
          });
          const results = (await s.waitFor(Promise.all(runs))).flat();
          expect(service.read(target)?.state.desired?.count).toBe(writers * increments);
          const versions = service.committed.map((c) => c.version);
          expect(new Set(versions).size).toBe(versions.length);
          expect(versions).toHaveLength(writers * increments);
          const resultVersions = results.map((r) => r.version);
          expect(new Set(resultVersions).size).toBe(resultVersions.length);
        },
      ),
      { numRuns: 60 },
    );
  });

  it('callers sharing one client coalesce and still lose nothing', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.scheduler(),
        fc.integer({ min: 1, max: 6 }),
        fc.integer({ min: 1, max: 3 }),
        async (s, callers, rivals) => {
          const service = new InMemoryShadowServiceDouble();
          const shared = clientOn(service, 'shared', s).shadow('aircon-1');
          const sharedCalls = Array.from({ length: callers }, () =>
            shared.update((current) => ({ desired: { count: count(current) + 1 } })),
          );
          const rivalCalls = Array.from({ length: rivals }, (_, r) =>
            clientOn(service, `rival${r}`, s)
              .shadow('aircon-1')
              .update((current) => ({ desired: { count: count(current) + 1 } })),
          );
          await s.waitFor(Promise.all([...sharedCalls, ...rivalCalls]));
          expect(service.read(target)?.state.desired?.count).toBe(callers + rivals);
          // The shared client's callers were combined: never more successful writes than callers.
          expect(service.committed.filter((c) => c.client === 'shared').length).toBeLessThanOrEqual(callers);
        },
      ),
      { numRuns: 60 },
    );
  });

  it('blind merges and versioned updates from several clients: the final document is the committed patches applied in version order, and nothing is lost', async () => {
    type Op = { kind: 'update' | 'merge'; client: number };
    await fc.assert(
      fc.asyncProperty(
        fc.scheduler(),
        fc.array(
          fc.record({
            kind: fc.constantFrom<'update' | 'merge'>('update', 'merge'),
            client: fc.integer({ min: 0, max: 2 }),
          }),
          {
            minLength: 1,
            maxLength: 8,
          },
        ),
        fc.boolean(),
        async (s, ops: Op[], coalesce) => {
          const service = new InMemoryShadowServiceDouble();
          const clients = [0, 1, 2].map((c) =>
            clientOn(service, `c${c}`, s, { coalesce }).shadow('aircon-1'),
          );
          const calls = ops.map((op, i) => {
            const handle = clients[op.client]!;
            return op.kind === 'update'
              ? handle.update((current) => ({
                  desired: {
                    log: [...((current?.state.desired?.log as string[] | undefined) ?? []), `u${i}`],
                  },
                }))
              : handle.merge({ reported: { [`m${i}`]: i } });
          });
          const results = await s.waitFor(Promise.all(calls));

          const stored = service.records.get('aircon-1') as ShadowRecord;
          const replayed = replay(service);
          expect(replayed).toBeDefined();
          expect(stored).toMatchObject({
            state: (replayed as { state: unknown }).state,
            version: replayed!.version,
          });

          // Every versioned update's intent landed exactly once; every merge landed.
          const log = (stored as { state: { desired?: { log?: string[] } } }).state.desired?.log ?? [];
          const expectedLog = ops.flatMap((op, i) => (op.kind === 'update' ? [`u${i}`] : []));
          expect([...log].sort()).toEqual([...expectedLog].sort());
          ops.forEach((op, i) => {
            if (op.kind === 'merge')
              expect((stored as { state: { reported?: JsonObject } }).state.reported?.[`m${i}`]).toBe(i);
          });

          // The document each caller got is the committed document at its version.
          results.forEach((result) => {
            if (result.document === undefined) return;
            const atVersion = replay(service, result.version);
            expect(result.document.version).toBe(result.version);
            const { delta: _delta, ...state } = result.document.state;
            expect(state).toEqual((atVersion as { state: unknown }).state);
          });
        },
      ),
      { numRuns: 80 },
    );
  });
});
