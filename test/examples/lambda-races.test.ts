/**
 * Race properties of the shadow-writing Lambdas: set-desired instances, desired-cleanup invocations and a device
 * interleaved by fast-check's scheduler (at every request arrival and response delivery) against the in-memory
 * service double built on the real core. Cleanup never removes a desired value that was not reported equal in
 * the version it wrote against, and the app's last desired value is never lost.
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
} from '../../src/index.js';
import { InMemoryShadowServiceDouble, instantClock } from '../update/in-memory-service-double.js';
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

describe('set-desired, desired-cleanup and a device under scheduled races', () => {
  it('cleanup removes only values settled in the version it wrote against; the last desired value survives', async () => {
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
          const cleanupNow = () =>
            createDesiredCleanupHandler({
              shadows: lambdaClient(service, `cleanup${cleanups++}`, s),
              logger: silentLogger(),
            })({ thing_name: target.thingName, current: service.read(target) });
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
              await client.shadow(target.thingName).merge({ reported: { power: value } });
              await cleanupNow(); // the documents rule fires after each report
            }
          })();
          await s.waitFor(Promise.all([app, device]));

          // Safety: replay the committed writes; every cleanup write nulled only values equal to reported then.
          let record: ShadowRecord | undefined;
          for (const write of [...service.committed].sort((a, b) => a.version - b.version)) {
            if (write.client.startsWith('cleanup') && record !== undefined && !('deleted' in record)) {
              // The minimal patch removes the whole section (`desired: null`) when every key goes.
              const desired = write.request.state?.desired;
              const nulled =
                desired === null
                  ? Object.keys(record.state.desired ?? {})
                  : Object.entries((desired ?? {}) as JsonObject)
                      .filter(([, v]) => v === null)
                      .map(([k]) => k);
              for (const key of nulled) {
                expect(record.state.desired?.[key], `v${write.version} ${key}`).toEqual(
                  record.state.reported?.[key],
                );
              }
              expect(write.request.version).toBe(record.version);
            }
            const { version: _version, ...request } = write.request;
            const result = applyUpdate(record, request, { target, now: service.now });
            if (!result.ok) throw new Error(result.rejection.message);
            record = result.shadow;
          }

          // No lost update: the app's last value is desired, or a cleanup after it removed it as settled.
          const last = appValues.at(-1);
          const final = service.read(target);
          const lastApp = Math.max(
            ...service.committed.filter((w) => w.client.startsWith('app')).map((w) => w.version),
          );
          if (final?.state.desired?.power === undefined) {
            const laterCleanup = service.committed.some(
              (w) => w.client.startsWith('cleanup') && w.version > lastApp,
            );
            expect(laterCleanup).toBe(true);
          } else {
            expect(final.state.desired.power).toBe(last);
          }
        },
      ),
      { numRuns: 200 },
    );
  });
});
