/**
 * Independent writers under AWS's DEFAULT per-thing quotas (20 requests/s, 10 in flight; NOT raised), as
 * real users run them: each writer has its own AWS SDK client and its own shadow-sync client (as Lambda
 * invocations do), all on one thing of the local service, with default engine options. Every update must
 * land and the counter must be exact.
 *
 * Sizes (chosen to keep each test's real time modest on 2 shared cores: the quota admits at most about 10
 * read + write commits per second, so N x K increments need at least N x K / 10 seconds):
 * - 5 writers x 20 increments (100 commits, ~10-16 s);
 * - 16 writers x 6 increments (96 commits, ~10-20 s; the 16 x 10 takes ~16-26 s, see the quota bench).
 */
import { Agent } from 'node:http';
import { IoTDataPlaneClient } from '@aws-sdk/client-iot-data-plane';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { JsonObject } from '../../src/core/document.js';
import { DEFAULT_LIMITS } from '../../src/core/limits.js';
import { type ShadowService, startShadowService } from '../../src/emulator/index.js';
import { isShadowThrottledError } from '../../src/errors.js';
import { awsTransport } from '../../src/transports/aws.js';
import { createShadowClient } from '../../src/update/shadow-client.js';
import type { ShadowEvent } from '../../src/update/shadow-events.js';

let service: ShadowService;
const cleanups: Array<() => void> = [];

beforeAll(async () => {
  service = await startShadowService(); // default limits: AWS's quotas
  expect(service.engine.limits).toMatchObject({
    requestsPerSecondPerThing: DEFAULT_LIMITS.requestsPerSecondPerThing,
    maxInFlightPerThing: DEFAULT_LIMITS.maxInFlightPerThing,
  });
  expect(DEFAULT_LIMITS).toMatchObject({ requestsPerSecondPerThing: 20, maxInFlightPerThing: 10 });
});

afterAll(async () => {
  for (const cleanup of cleanups) cleanup();
  await service.close();
});

/** A writer's own SDK client, configured as the README says (shadow-sync retries, the SDK does not). */
function ownSdkClient(): IoTDataPlaneClient {
  const agent = new Agent({ keepAlive: true, noDelay: true } as ConstructorParameters<typeof Agent>[0]);
  const client = new IoTDataPlaneClient({
    endpoint: service.httpEndpoint,
    region: 'us-east-1',
    credentials: { accessKeyId: 'x', secretAccessKey: 'y' },
    requestHandler: { httpAgent: agent },
    maxAttempts: 1,
  });
  cleanups.push(() => {
    client.destroy();
    agent.destroy();
  });
  return client;
}

const countOf = (document: { state: { desired?: JsonObject } } | undefined) =>
  Number(document?.state.desired?.count ?? 0);

async function independentWriters(thingName: string, writers: number, increments: number) {
  const failures: unknown[] = [];
  const events: ShadowEvent[] = [];
  await Promise.all(
    Array.from({ length: writers }, async () => {
      const counter = createShadowClient({
        transport: awsTransport(ownSdkClient()),
        onEvent: (event) => events.push(event),
      }).shadow(thingName);
      for (let k = 0; k < increments; k++) {
        await counter
          .update((current) => ({ desired: { count: countOf(current) + 1 } }))
          .catch((error: unknown) => failures.push(error));
      }
    }),
  );
  const stored = service.engine.read({ thingName });
  return {
    failures,
    events,
    count: stored !== undefined && 'state' in stored ? stored.state.desired?.count : undefined,
    version: stored !== undefined && 'version' in stored ? stored.version : undefined,
  };
}

describe('independent writers under the default (AWS) quotas, default options', () => {
  it('5 writers x 20 increments: no failure, exact counter', async () => {
    const { failures, count, version, events } = await independentWriters('quota-5', 5, 20);
    expect(failures).toEqual([]);
    expect(count).toBe(100);
    expect(version).toBe(100);
    // The quota was met (429s happened) and the rate adapted to it.
    expect(events.some((e) => e.type === 'throttled' && e.source === 'service')).toBe(true);
  }, 90_000);

  it('16 writers x 6 increments: no failure, exact counter', async () => {
    const { failures, count, version } = await independentWriters('quota-16', 16, 6);
    expect(failures).toEqual([]);
    expect(count).toBe(96);
    expect(version).toBe(96);
  }, 90_000);
});

/** Runs a device request again after 100 ms for as long as the service throttles it. */
async function throttledRetry<T>(request: () => Promise<T>): Promise<T> {
  for (;;) {
    try {
      return await request();
    } catch (error) {
      if (!isShadowThrottledError(error)) throw error;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
}

describe("the seed's scenario over HTTP, default options", () => {
  it('a device acknowledging each desired change: 2 requests and no 409 per change', async () => {
    const thingName = 'seed-aircon';
    const target = { thingName };
    const device = awsTransport(ownSdkClient());
    let requests = 0;
    let conflicts = 0;
    const app = createShadowClient({
      transport: awsTransport(ownSdkClient()),
      onEvent: (event) => {
        if (event.type === 'attempt') requests++;
        if (event.type === 'conflict') conflicts++;
      },
    }).shadow(thingName);
    const changes = 10;
    for (let change = 1; change <= changes; change++) {
      await app.update(() => ({ desired: { targetTemp: 18 + change } }));
      // The device applies the change and reports it (the split policy keeps its telemetry elsewhere).
      // Four requests per change every ~100 ms run near the thing's 20/s quota: the device backs off on a 429
      // as a real one does (its requests are not the app's and are not counted).
      const seen = await throttledRetry(() => device.get(target));
      await throttledRetry(() =>
        device.update(target, {
          state: { reported: { targetTemp: seen?.state.delta?.targetTemp ?? null } },
        }),
      );
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    // The first change reads a shadow it knows nothing about; every later one reads because its last write
    // left a delta the device answered (writing on the remembered document would cost a 409 and a read).
    expect(requests / changes).toBeLessThanOrEqual(2);
    expect(conflicts).toBe(0);
    expect(service.engine.read(target)).toMatchObject({ state: { desired: { targetTemp: 28 } } });
  }, 60_000);
});
