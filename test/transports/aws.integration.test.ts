/** The AWS transport and the engine over real HTTP: the real AWS SDK client against the local shadow service. */
import { Agent } from 'node:http';
import { IoTDataPlaneClient } from '@aws-sdk/client-iot-data-plane';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ShadowService, startShadowService } from '../../src/emulator/index.js';
import {
  ShadowConflictError,
  ShadowNotFoundError,
  ShadowRejectedError,
  ShadowThrottledError,
} from '../../src/errors.js';
import { awsTransport } from '../../src/transports/aws.js';
import { createShadowClient } from '../../src/update/shadow-client.js';
import type { ShadowEvent } from '../../src/update/shadow-events.js';

let service: ShadowService;
let agent: Agent;
let client: IoTDataPlaneClient;

beforeAll(async () => {
  // AWS's default quotas (20 requests/s, 10 in flight per thing): the throttling tests rely on them.
  service = await startShadowService();
  agent = new Agent({ keepAlive: true, noDelay: true } as ConstructorParameters<typeof Agent>[0]);
  client = new IoTDataPlaneClient({
    endpoint: service.httpEndpoint,
    region: 'us-east-1',
    credentials: { accessKeyId: 'x', secretAccessKey: 'y' },
    requestHandler: { httpAgent: agent },
    maxAttempts: 1, // the SDK's own retries off: these tests observe single requests
  });
});

afterAll(async () => {
  client.destroy();
  agent.destroy();
  await service.close();
});

describe('awsTransport against the local service', () => {
  it('get / update / delete with the real SDK, classic and named', async () => {
    const transport = awsTransport(client);
    for (const target of [{ thingName: 'http-crud' }, { thingName: 'http-crud', shadowName: 'cfg' }]) {
      await expect(transport.get(target)).resolves.toBeUndefined();
      await expect(
        transport.update(target, { state: { desired: { on: true } }, version: 0 }),
      ).resolves.toMatchObject({
        version: 1,
      });
      await expect(transport.get(target)).resolves.toMatchObject({
        state: { delta: { on: true } },
        version: 1,
      });
      await expect(transport.delete(target)).resolves.toMatchObject({ version: 1 });
      await expect(transport.delete(target)).rejects.toBeInstanceOf(ShadowNotFoundError);
    }
  });

  it("rejects an aborted request with the signal's reason, as the transport contract says", async () => {
    const transport = awsTransport(client);
    const target = { thingName: 'http-abort' };
    const reason = new Error('caller gave up');
    await expect(transport.get(target, { signal: AbortSignal.abort(reason) })).rejects.toBe(reason);
    await expect(
      transport.update(target, { state: { desired: { on: true } } }, { signal: AbortSignal.abort(reason) }),
    ).rejects.toBe(reason);
    await expect(transport.delete(target, { signal: AbortSignal.abort(reason) })).rejects.toBe(reason);
    // Nothing was sent: the shadow still does not exist.
    await expect(transport.get(target)).resolves.toBeUndefined();
  });

  it('maps the service errors: 409, 400 and 413 with their AWS codes and messages', async () => {
    const transport = awsTransport(client);
    const target = { thingName: 'http-errors' };
    await transport.update(target, { state: { reported: { a: 1 } } });
    await expect(
      transport.update(target, { state: { reported: { a: 2 } }, version: 9 }),
    ).rejects.toMatchObject({
      name: 'ShadowConflictError',
      awsCode: 'ConflictException',
      awsMessage: 'Version conflict',
      expectedVersion: 9,
    });
    const invalid = await transport
      .update(target, { state: { delta: {} } } as never)
      .catch((e: unknown) => e);
    expect(invalid).toBeInstanceOf(ShadowRejectedError);
    expect(invalid).toMatchObject({ statusCode: 400, awsCode: 'InvalidRequestException' });
    const tooBig = await transport
      .update(target, { state: { reported: { blob: 'x'.repeat(9000) } } })
      .catch((e: unknown) => e);
    expect(tooBig).toMatchObject({ statusCode: 413, awsCode: 'RequestEntityTooLargeException' });
  });

  it('maps 429 to ShadowThrottledError when a thing exceeds its quota', async () => {
    const transport = awsTransport(client);
    const target = { thingName: 'http-flood' };
    const outcomes = await Promise.allSettled(
      Array.from({ length: 40 }, (_, i) => transport.update(target, { state: { reported: { i } } })),
    );
    const throttled = outcomes.filter(
      (o) => o.status === 'rejected' && o.reason instanceof ShadowThrottledError,
    );
    expect(throttled.length).toBeGreaterThan(0);
    expect((throttled[0] as PromiseRejectedResult).reason).toMatchObject({
      statusCode: 429,
      awsCode: 'ThrottlingException',
    });
  });
});

describe('the engine over HTTP', () => {
  it('retries 429s from the service until every write lands', async () => {
    const events: ShadowEvent[] = [];
    const shadows = createShadowClient({
      transport: awsTransport(client),
      requestsPerSecondPerThing: Number.POSITIVE_INFINITY,
      maxInFlightPerThing: Number.POSITIVE_INFINITY,
      coalesce: false,
      maxAttempts: 20,
      onEvent: (event) => events.push(event),
    });
    const lamp = shadows.shadow('http-retry');
    await Promise.all(Array.from({ length: 30 }, (_, i) => lamp.merge({ reported: { [`k${i}`]: i } })));
    expect(
      Object.keys(
        (service.engine.read({ thingName: 'http-retry' }) as { state: { reported: object } }).state.reported,
      ),
    ).toHaveLength(30);
    expect(events.some((e) => e.type === 'throttled' && e.source === 'service')).toBe(true);
  });

  it('stays under the quota with its own limiter: every write lands, hardly a 429', async () => {
    const events: ShadowEvent[] = [];
    const shadows = createShadowClient({
      transport: awsTransport(client),
      coalesce: false,
      onEvent: (event) => events.push(event),
    });
    const lamp = shadows.shadow('http-limited');
    await Promise.all(Array.from({ length: 30 }, (_, i) => lamp.merge({ reported: { [`k${i}`]: i } })));
    // On a loaded machine a request can reach the service later than the next one, so the one token of
    // slack the limiter keeps does not always absorb the jitter: a 429 or two may happen, each cutting the
    // adaptive rate so that the next requests pass (without a limiter: 10 or more of the 30).
    expect(events.filter((e) => e.type === 'throttled' && e.source === 'service').length).toBeLessThanOrEqual(
      3,
    );
    expect(
      Object.keys(
        (service.engine.read({ thingName: 'http-limited' }) as { state: { reported: object } }).state
          .reported,
      ),
    ).toHaveLength(30);
    expect(events.some((e) => e.type === 'throttled' && e.source === 'limiter')).toBe(true);
  });

  it('resolves a conflict with a device writing in between, and gives up when out of attempts', async () => {
    const device = awsTransport(client);
    const target = { thingName: 'http-aircon' };
    const bases: string[] = [];
    const aircon = createShadowClient({
      transport: awsTransport(client),
      onEvent: (event) => {
        if (event.type === 'base') bases.push(`${event.source}:${event.reason}`);
      },
    }).shadow('http-aircon');
    await aircon.update(() => ({ desired: { temp: 20 } }));
    await device.update(target, { state: { reported: { temp: 19 } } }); // the app's view (version 1) is now stale
    // The app's write left a delta, which the device answered: by default the next round reads first.
    const fresh = await aircon.update((current) => ({
      desired: { temp: Number(current?.state.desired?.temp) + 1 },
    }));
    expect(fresh).toMatchObject({ version: 3, attempts: 1, skipped: false });
    expect(bases).toEqual(['read:unknown', 'read:delta-pending']);
    // Told to write on what it remembers, it meets the 409, reads and retries.
    const trusting = createShadowClient({ transport: awsTransport(client), useKnownDocuments: true }).shadow(
      'http-aircon',
    );
    await trusting.get();
    await device.update(target, { state: { reported: { temp: 19.5 } } });
    const result = await trusting.update(() => ({ desired: { mode: 'cool' } }));
    expect(result).toMatchObject({ version: 5, attempts: 2, skipped: false });
    expect(service.engine.read(target)).toMatchObject({
      state: { desired: { temp: 21 }, reported: { temp: 19.5 } },
    });

    const impatient = createShadowClient({ transport: awsTransport(client), maxAttempts: 1 }).shadow(
      'http-aircon',
    );
    await impatient.get();
    await device.update(target, { state: { reported: { temp: 18 } } });
    const error = await impatient.update(() => ({ desired: { temp: 30 } })).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ShadowConflictError);
    expect(error).toMatchObject({ attempts: 1, thingName: 'http-aircon', lastDocument: { version: 5 } });
    expect(service.engine.read(target)).toMatchObject({
      state: { desired: { temp: 21, mode: 'cool' } },
      version: 6,
    });
  });
});
