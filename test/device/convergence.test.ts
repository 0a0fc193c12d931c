import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { computeDelta } from '../../src/core/delta.js';
import type { JsonObject } from '../../src/core/document.js';
import { createDeviceAgent } from '../../src/device/index.js';
import type { FaultOptions, FaultStats, ShadowService } from '../../src/emulator/index.js';
import { splitPolicy } from '../../src/split/index.js';
import {
  agentMqttOptions,
  readShadow,
  restartService,
  sdkClient,
  startService,
  waitFor,
  writeDesired,
} from './service-fixture.js';

// Real waits on purpose: an end-to-end property (real service with fault injection, a restart, the agent on
// the system clock); a slow actuator and paced writes make deltas overtake each other in wall-clock time.
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** One app write to `desired`: a few keys set, sometimes one removed. */
const desiredWrite: fc.Arbitrary<JsonObject> = fc
  .record(
    {
      power: fc.constantFrom('on', 'off'),
      mode: fc.constantFrom('cool', 'heat', 'fan', 'auto'),
      target: fc.integer({ min: 16, max: 30 }),
      fan: fc.record({ speed: fc.integer({ min: 1, max: 5 }), swing: fc.boolean() }, { requiredKeys: [] }),
      schedule: fc.oneof(fc.constant(null), fc.array(fc.integer({ min: 0, max: 23 }), { maxLength: 3 })),
    },
    { requiredKeys: [] },
  )
  .filter((write) => Object.keys(write).length > 0) as fc.Arbitrary<JsonObject>;

function addStats(total: FaultStats, more: FaultStats): FaultStats {
  return {
    submitted: total.submitted + more.submitted,
    delivered: total.delivered + more.delivered,
    dropped: total.dropped + more.dropped,
    duplicated: total.duplicated + more.duplicated,
    delayed: total.delayed + more.delayed,
    reordered: total.reordered + more.reordered,
  };
}

describe('device agent convergence (real service, real mqtt.js, injected faults)', () => {
  it('once faults stop, applied state converges to desired and reported equals desired, across a broker restart', async () => {
    let totals: FaultStats = {
      submitted: 0,
      delivered: 0,
      dropped: 0,
      duplicated: 0,
      delayed: 0,
      reordered: 0,
    };
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 1, max: 2 ** 30 }),
        fc.array(desiredWrite, { minLength: 6, maxLength: 14 }),
        fc.array(desiredWrite, { minLength: 6, maxLength: 14 }),
        async (seed, before, after) => {
          const dataDir = mkdtempSync(join(tmpdir(), 'agent-converge-'));
          const faults: FaultOptions = {
            seed,
            drop: 0.15,
            duplicate: 0.15,
            reorder: 0.15,
            delay: 0.2,
            delayMs: [1, 40],
          };
          // Quotas raised: this test is about lost and shuffled messages, not throttling.
          const options = {
            dataDir,
            faults,
            limits: { requestsPerSecondPerThing: 10_000, maxInFlightPerThing: 1_000 },
          };
          let service: ShadowService = await startService(options);
          let sdk = sdkClient(service);
          const agent = await createDeviceAgent({
            thingName: 'hvac',
            mqtt: { url: service.mqttUrl, options: agentMqttOptions },
            policy: splitPolicy({ fields: { temperature: 'telemetry' } }),
            requestTimeoutMs: 250,
            resyncIntervalMs: 300,
            handlerRetryDelayMs: 20,
            onDelta: async (delta) => {
              await sleep(delta.target === 20 ? 15 : 1); // a slow actuator now and then
              return delta;
            },
          });
          const errors: string[] = [];
          agent.on('error', (error, info) => errors.push(`${info.kind}: ${(error as Error).message}`));
          // The device keeps reporting its own values meanwhile (more versions, more races).
          let tick = 0;
          const reporter = setInterval(() => {
            tick++;
            agent.report({ uptime: tick, temperature: 20 + (tick % 7) });
          }, 40);
          try {
            for (const write of before) {
              await writeDesired(sdk, 'hvac', write);
              await sleep(15);
            }
            totals = addStats(totals, service.mqtt.faults.stats());
            sdk.destroy();
            service = await restartService(service, options, 80);
            sdk = sdkClient(service);
            for (const write of after) {
              await writeDesired(sdk, 'hvac', write);
              await sleep(15);
            }
            clearInterval(reporter);
            totals = addStats(totals, service.mqtt.faults.stats());
            service.mqtt.faults.clear();

            const desired = (await readShadow(sdk, 'hvac'))?.state.desired as JsonObject;
            await waitFor(
              async () => {
                const shadow = await readShadow(sdk, 'hvac');
                return (
                  shadow?.state.delta === undefined &&
                  computeDelta(desired, agent.applied()) === undefined &&
                  agent.status().synced
                );
              },
              'the device to converge',
              10_000,
            ).catch(async (error: Error) => {
              const shadow = await readShadow(sdk, 'hvac');
              error.message += `\nshadow: ${JSON.stringify(shadow?.state)} v${shadow?.version}\napplied: ${JSON.stringify(
                agent.applied(),
              )}\nagent: ${JSON.stringify(agent.status())}\nstats: ${JSON.stringify(agent.stats())}\nerrors: ${errors.join('\n')}`;
              throw error;
            });
            const shadow = await readShadow(sdk, 'hvac');
            expect(shadow?.state.desired).toEqual(desired);
            // Every desired value is applied on the device and reported in the shadow.
            expect(computeDelta(desired, agent.applied())).toBeUndefined();
            expect(computeDelta(desired, shadow?.state.reported)).toBeUndefined();
            // The device's own last report made it too; telemetry never reached the shadow.
            expect(shadow?.state.reported?.uptime).toBe(tick);
            expect(shadow?.state.reported?.temperature).toBeUndefined();
            expect(agent.status().reported).toEqual(shadow?.state.reported);
          } finally {
            clearInterval(reporter);
            await agent.close();
            sdk.destroy();
            await service.close();
            rmSync(dataDir, { recursive: true, force: true });
          }
        },
      ),
      { numRuns: 8, endOnFailure: true },
    );
    // The faults really happened.
    expect(totals.dropped).toBeGreaterThan(0);
    expect(totals.duplicated).toBeGreaterThan(0);
    expect(totals.reordered).toBeGreaterThan(0);
    expect(totals.delayed).toBeGreaterThan(0);
  });
});
