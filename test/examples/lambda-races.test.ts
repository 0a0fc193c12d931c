/**
 * Race properties of the shadow-writing Lambdas: set-desired instances, desired-cleanup invocations and a device
 * interleaved by fast-check's scheduler (at every request arrival and response delivery) against the in-memory
 * service double built on the real core. The cleanup gets the `update/documents` event of each device report
 * (`previous` and `current`, rebuilt from the committed writes). It removes a desired value only on the version
 * of the report that changed the reported value to it, and the app's last desired value is never lost: it is
 * still desired at the end, or a device report after it delivered it.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { createDesiredCleanupHandler } from '../../examples/lambdas/desired-cleanup.js';
import { createSetDesiredHandler } from '../../examples/lambdas/set-desired.js';
import { LAMBDA_SHADOW_CLIENT_OPTIONS } from '../../examples/lambdas/shadows-from-environment.js';
import { applyUpdate } from '../../src/core/apply-update.js';
import {
  createShadowClient,
  type JsonObject,
  type ShadowClient,
  type ShadowRecord,
  type ShadowTarget,
  type StoredShadow,
} from '../../src/index.js';
import {
  type CommittedWrite,
  InMemoryShadowServiceDouble,
  instantClock,
} from '../update/in-memory-service-double.js';
import { ownerClaims, putDesiredEvent, silentLogger } from './lambda-events.js';

const target: ShadowTarget = { thingName: 'aircon-1' };

/** A client configured like the Lambdas' (reads first), over a scheduled transport of the double. */
function lambdaClient(service: InMemoryShadowServiceDouble, name: string, s: fc.Scheduler): ShadowClient {
  return createShadowClient({
    transport: service.transport(name, {
      yieldTo: (label) => s.schedule(Promise.resolve(), label).then(() => undefined),
    }),
    ...LAMBDA_SHADOW_CLIENT_OPTIONS,
    clock: instantClock(),
    random: () => 0.5,
    maxAttempts: 100,
    requestsPerSecondPerThing: Number.POSITIVE_INFINITY,
    maxInFlightPerThing: Number.POSITIVE_INFINITY,
  });
}

const power = fc.constantFrom('on', 'off');

/** Every committed write with the document it produced, by version (replayed through the real core). */
function replay(
  committed: readonly CommittedWrite[],
): Map<number, { write: CommittedWrite; record: StoredShadow }> {
  const history = new Map<number, { write: CommittedWrite; record: StoredShadow }>();
  let record: ShadowRecord | undefined;
  for (const write of [...committed].sort((a, b) => a.version - b.version)) {
    const { version: _version, ...request } = write.request;
    const result = applyUpdate(record, request, { target, now: 0 });
    if (!result.ok) throw new Error(result.rejection.message);
    record = result.shadow;
    if (!('deleted' in record)) history.set(write.version, { write, record });
  }
  return history;
}

describe('set-desired, desired-cleanup and a device under scheduled races', () => {
  it('cleanup removes only values a report delivered, on that report version; the last desired value survives', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.scheduler(),
        fc.array(power, { minLength: 1, maxLength: 4 }),
        fc.array(power, { minLength: 1, maxLength: 3 }),
        async (s, appValues, deviceValues) => {
          const service = new InMemoryShadowServiceDouble();
          service.write(
            target,
            { state: { desired: { power: 'off' }, reported: { power: 'off' } } },
            'setup',
          );
          let cleanups = 0;
          // The update/documents message of a committed version, as the rule delivers it.
          const documentsEvent = (version: number) => {
            const snapshot = (record: StoredShadow | undefined) =>
              record === undefined
                ? null
                : { state: record.state, metadata: record.metadata, version: record.version };
            const history = replay(service.committed);
            return {
              previous: snapshot(history.get(version - 1)?.record),
              current: snapshot(history.get(version)?.record),
              timestamp: 1_795_000_000,
              thing_name: target.thingName,
            };
          };
          const cleanupAfter = (version: number) =>
            createDesiredCleanupHandler({
              shadows: lambdaClient(service, `cleanup${cleanups++}`, s),
              logger: silentLogger(),
            })(documentsEvent(version));
          // Two warm set-desired instances (each keeps its client between invocations), taking turns.
          const instances = [0, 1].map((i) =>
            createSetDesiredHandler({ shadows: lambdaClient(service, `app${i}`, s), logger: silentLogger() }),
          );
          const app = (async () => {
            for (const [i, value] of appValues.entries()) {
              const handler = instances[i % 2] as (typeof instances)[number];
              const response = await handler(
                putDesiredEvent(
                  target.thingName,
                  JSON.stringify({ power: value }),
                  ownerClaims(target.thingName),
                ),
              );
              expect(response.statusCode).toBe(200);
            }
          })();
          const device = (async () => {
            const client = lambdaClient(service, 'device', s);
            for (const value of deviceValues) {
              const { version } = await client.shadow(target.thingName).merge({ reported: { power: value } });
              if (version === undefined) throw new Error('a merge always leaves a shadow');
              await cleanupAfter(version); // the documents rule fires after each report
            }
          })();
          await s.waitFor(Promise.all([app, device]));

          // Safety: every cleanup write is versioned on the version of a device report, and nulls only desired
          // values that this report changed the reported value to.
          const history = replay(service.committed);
          for (const { write, record } of history.values()) {
            if (!write.client.startsWith('cleanup')) continue;
            const base = history.get(write.version - 1);
            expect(write.request.version, `v${write.version} is versioned on its base`).toBe(
              write.version - 1,
            );
            expect(base?.write.client, `v${write.version} cleans up after a device report`).toBe('device');
            const baseState = base?.record.state ?? {};
            const beforeBase = history.get(write.version - 2)?.record.state ?? {};
            // The minimal patch removes the whole section (`desired: null`) when every key goes.
            const desired = write.request.state?.desired;
            const nulled =
              desired === null
                ? Object.keys(baseState.desired ?? {})
                : Object.entries((desired ?? {}) as JsonObject)
                    .filter(([, v]) => v === null)
                    .map(([k]) => k);
            expect(nulled.length).toBeGreaterThan(0);
            for (const key of nulled) {
              expect(baseState.desired?.[key], `v${write.version} ${key}`).toEqual(baseState.reported?.[key]);
              expect(beforeBase.reported?.[key], `v${write.version} ${key} changed`).not.toEqual(
                baseState.reported?.[key],
              );
            }
            expect(record.state.desired?.power).toBeUndefined();
          }

          // No lost update: the app's last value is still desired, or a device report after the app's last
          // write changed the reported value to it (and a cleanup then removed it as delivered).
          const last = appValues.at(-1);
          const final = service.read(target);
          const lastApp = Math.max(
            0,
            ...service.committed.filter((w) => w.client.startsWith('app')).map((w) => w.version),
          );
          if (final?.state.desired?.power === undefined) {
            const delivered = [...history.values()].some(
              ({ write, record }) =>
                write.client === 'device' &&
                write.version > lastApp &&
                record.state.reported?.power === last &&
                history.get(write.version - 1)?.record.state.reported?.power !== last,
            );
            expect(delivered, `${last} was removed from desired without a report delivering it`).toBe(true);
          } else {
            expect(final.state.desired.power).toBe(last);
          }
        },
      ),
      { numRuns: 500 },
    );
  });
});
