/** Unit and property tests of desired-cleanup on the update/documents rule event, the IoT data plane mocked. */
import {
  ConflictException,
  GetThingShadowCommand,
  IoTDataPlaneClient,
  UpdateThingShadowCommand,
} from '@aws-sdk/client-iot-data-plane';
import { mockClient } from 'aws-sdk-client-mock';
import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';
import { createDesiredCleanupHandler, settledDesiredPatch } from '../../examples/lambdas/desired-cleanup.js';
import { computeDelta, createShadowClient, type JsonObject, mergeSection } from '../../src/index.js';
import { awsTransport } from '../../src/transports/aws.js';
import { documentsRuleEvent, silentLogger } from './lambda-events.js';
import { failure, getPayload, sentRequest, updatePayload } from './sdk-mock-payloads.js';

describe('settledDesiredPatch', () => {
  it('nulls equal values, recurses into objects, treats arrays as whole values', () => {
    expect(
      settledDesiredPatch(
        { power: 'on', targetTemp: 22, fan: { speed: 2, swing: true }, schedule: ['07:00'], mode: 'cool' },
        { power: 'on', targetTemp: 24, fan: { speed: 2, swing: false }, schedule: ['07:00', '08:00'] },
      ),
    ).toEqual({ power: null, fan: { speed: null } });
  });

  it('removes an object whole when every desired value in it is reported (the device may report more)', () => {
    expect(settledDesiredPatch({ fan: { speed: 2 } }, { fan: { speed: 2, rpm: 900 } })).toEqual({
      fan: null,
    });
  });

  it('answers undefined when nothing is settled', () => {
    expect(settledDesiredPatch({ a: 1 }, { a: 2 })).toBeUndefined();
    expect(settledDesiredPatch({ a: 1 }, undefined)).toBeUndefined();
    expect(settledDesiredPatch(undefined, { a: 1 })).toBeUndefined();
    expect(settledDesiredPatch({ a: [1] }, { a: 1 })).toBeUndefined();
  });

  const json = fc.letrec((tie) => ({
    value: fc.oneof(
      { depthSize: 'small' },
      fc.constantFrom(0, 1, 'on', 'off', true),
      fc.array(fc.constantFrom(1, 2), { maxLength: 2 }),
      tie('object'),
    ),
    object: fc.dictionary(fc.constantFrom('a', 'b', 'c'), tie('value'), { maxKeys: 3 }),
  }));
  const section = json.object as fc.Arbitrary<JsonObject>;

  it('property: the delta is unchanged, and a second pass finds nothing', () => {
    fc.assert(
      fc.property(section, section, (desired, reported) => {
        const patch = settledDesiredPatch(desired, reported);
        if (patch === undefined) return;
        const cleaned = mergeSection(desired, patch);
        expect(computeDelta(cleaned, reported)).toEqual(computeDelta(desired, reported));
        expect(settledDesiredPatch(cleaned, reported)).toBeUndefined();
      }),
      { numRuns: 500 },
    );
  });
});

describe('desired-cleanup handler', () => {
  const client = new IoTDataPlaneClient({
    region: 'us-east-1',
    credentials: { accessKeyId: 'x', secretAccessKey: 'y' },
  });
  const mock = mockClient(client);
  afterEach(() => mock.reset());
  const handler = () =>
    createDesiredCleanupHandler({
      shadows: createShadowClient({ transport: awsTransport(client), baseDelayMs: 1, maxDelayMs: 2 }),
      logger: silentLogger(),
    });

  it('removes settled desired values with a versioned update', async () => {
    const state = { desired: { power: 'on', targetTemp: 22 }, reported: { power: 'on', targetTemp: 25 } };
    mock.on(GetThingShadowCommand).resolves(getPayload(state, 8));
    mock.on(UpdateThingShadowCommand).resolves(updatePayload({ desired: { power: null } }, 9));
    const event = documentsRuleEvent(
      'thing_name',
      'aircon-1',
      { ...state, reported: {}, version: 7 },
      { ...state, version: 8 },
    );
    await expect(handler()(event)).resolves.toEqual({
      outcome: 'cleared',
      thingName: 'aircon-1',
      version: 9,
      keys: ['power'],
    });
    expect(sentRequest(mock.commandCalls(UpdateThingShadowCommand)[0]?.args[0].input ?? {})).toMatchObject({
      state: { desired: { power: null } },
      version: 8,
    });
  });

  it('sends nothing when the event shows nothing settled (its own write does not loop)', async () => {
    const event = documentsRuleEvent('thing_name', 'aircon-1', null, {
      desired: { targetTemp: 22 },
      reported: { targetTemp: 25 },
      version: 9,
    });
    await expect(handler()(event)).resolves.toMatchObject({ outcome: 'nothing-settled', keys: [] });
    expect(mock.calls()).toHaveLength(0);
  });

  it('keeps a newer desired value written between the event and the cleanup', async () => {
    // The event saw power settled; by the time of the write the app asked for 'off': the versioned write
    // conflicts, the intent re-runs on the new document and removes nothing.
    mock
      .on(GetThingShadowCommand)
      .resolvesOnce(getPayload({ desired: { power: 'on' }, reported: { power: 'on' } }, 4))
      .resolves(getPayload({ desired: { power: 'off' }, reported: { power: 'on' } }, 5));
    mock.on(UpdateThingShadowCommand).rejects(new ConflictException(failure(409, 'Version conflict')));
    const event = documentsRuleEvent('thing_name', 'aircon-1', null, {
      desired: { power: 'on' },
      reported: { power: 'on' },
      version: 4,
    });
    await expect(handler()(event)).resolves.toMatchObject({ outcome: 'nothing-settled', version: 5 });
    expect(mock.commandCalls(UpdateThingShadowCommand)).toHaveLength(1);
  });

  it('answers gone when the shadow was deleted meanwhile', async () => {
    mock.on(GetThingShadowCommand).rejects(
      Object.assign(new Error('No shadow exists'), {
        name: 'ResourceNotFoundException',
        $metadata: { httpStatusCode: 404 },
      }),
    );
    const event = documentsRuleEvent('thing_name', 'aircon-1', null, {
      desired: { a: 1 },
      reported: { a: 1 },
      version: 2,
    });
    await expect(handler()(event)).resolves.toMatchObject({ outcome: 'gone' });
  });

  it('refuses an event that is not an update/documents rule event', async () => {
    await expect(handler()({ thing_name: 'x' })).rejects.toThrow(/current/);
  });
});
