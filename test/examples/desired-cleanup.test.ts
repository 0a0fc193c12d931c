/**
 * Tests of desired-cleanup on the update/documents rule event: unit and property tests of the settling rule,
 * the handler over a mocked IoT data plane, and the off -> on -> off lost-update case on the local service.
 */
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
import { startShadowService } from '../../src/emulator/index.js';
import {
  computeDelta,
  createShadowClient,
  type JsonObject,
  type JsonValue,
  mergeSection,
} from '../../src/index.js';
import { awsTransport } from '../../src/transports/aws.js';
import { documentsRuleEvent, silentLogger } from './lambda-events.js';
import { localSdk } from './local-clients.js';
import { failure, getPayload, sentRequest, updatePayload } from './sdk-mock-payloads.js';

describe('settledDesiredPatch', () => {
  it('nulls values the report changed to the desired value, recurses into objects, treats arrays as whole values', () => {
    expect(
      settledDesiredPatch(
        { power: 'on', targetTemp: 22, fan: { speed: 2, swing: true }, schedule: ['07:00'], mode: 'cool' },
        { power: 'on', targetTemp: 24, fan: { speed: 2, swing: false }, schedule: ['07:00', '08:00'] },
        undefined,
      ),
    ).toEqual({ power: null, fan: { speed: null } });
  });

  it('keeps a desired value equal to a reported value the report did not change (it may be a new wish)', () => {
    // off -> on -> off while the unit still reports the old off: the new desired off is not delivered yet.
    expect(settledDesiredPatch({ power: 'off' }, { power: 'off' }, { power: 'off' })).toBeUndefined();
    // The same report delivered one value and repeated another.
    expect(
      settledDesiredPatch(
        { power: 'on', targetTemp: 22 },
        { power: 'on', targetTemp: 22 },
        { power: 'off', targetTemp: 22 },
      ),
    ).toEqual({ power: null });
    // A value reported for the first time is new.
    expect(settledDesiredPatch({ power: 'on' }, { power: 'on' }, { mode: 'cool' })).toEqual({ power: null });
  });

  it('judges nested objects leaf by leaf, and arrays whole', () => {
    const desired = { fan: { speed: 2, swing: true }, schedule: ['07:00'] };
    const reported = { fan: { speed: 2, swing: true }, schedule: ['07:00'] };
    expect(
      settledDesiredPatch(desired, reported, { fan: { speed: 1, swing: true }, schedule: ['07:00'] }),
    ).toEqual({ fan: { speed: null } });
    expect(settledDesiredPatch(desired, reported, { fan: { speed: 1 }, schedule: ['08:00'] })).toEqual({
      fan: null,
      schedule: null,
    });
    // A scalar replaced by an object: every leaf below is new.
    expect(settledDesiredPatch(desired, reported, { fan: 3, schedule: ['07:00'] })).toEqual({ fan: null });
  });

  it('removes an object whole when every desired value in it is delivered (the device may report more)', () => {
    expect(
      settledDesiredPatch({ fan: { speed: 2 } }, { fan: { speed: 2, rpm: 900 } }, { fan: { rpm: 900 } }),
    ).toEqual({
      fan: null,
    });
  });

  it('answers undefined when nothing is settled', () => {
    expect(settledDesiredPatch({ a: 1 }, { a: 2 }, undefined)).toBeUndefined();
    expect(settledDesiredPatch({ a: 1 }, undefined, undefined)).toBeUndefined();
    expect(settledDesiredPatch(undefined, { a: 1 }, undefined)).toBeUndefined();
    expect(settledDesiredPatch({ a: [1] }, { a: 1 }, undefined)).toBeUndefined();
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
  const before = fc.option(section, { nil: undefined });

  /** The leaves of a patch that remove something, as paths. */
  const removedPaths = (patch: JsonObject, prefix: string[] = []): string[][] =>
    Object.entries(patch).flatMap(([key, value]) =>
      value === null ? [[...prefix, key]] : removedPaths(value as JsonObject, [...prefix, key]),
    );
  const at = (section: JsonObject | undefined, path: string[]): JsonValue | undefined => {
    let value: JsonValue | undefined = section;
    for (const key of path) {
      if (typeof value !== 'object' || value === null || Array.isArray(value) || !Object.hasOwn(value, key))
        return undefined;
      value = value[key];
    }
    return value;
  };
  /** The leaves of a value (arrays whole), as paths. */
  const leaves = (value: JsonValue | undefined, prefix: string[]): string[][] =>
    typeof value === 'object' && value !== null && !Array.isArray(value) && Object.keys(value).length > 0
      ? Object.entries(value).flatMap(([key, child]) => leaves(child, [...prefix, key]))
      : [prefix];

  it('property: the delta is unchanged, a second pass finds nothing, every removed leaf was delivered', () => {
    fc.assert(
      fc.property(section, section, before, (desired, reported, previous) => {
        const patch = settledDesiredPatch(desired, reported, previous);
        if (patch === undefined) return;
        const cleaned = mergeSection(desired, patch);
        expect(computeDelta(cleaned, reported)).toEqual(computeDelta(desired, reported));
        expect(settledDesiredPatch(cleaned, reported, previous)).toBeUndefined();
        for (const path of removedPaths(patch)) {
          for (const leaf of leaves(at(desired, path), path)) {
            expect(at(reported, leaf)).toEqual(at(desired, leaf));
            expect(at(previous, leaf)).not.toEqual(at(reported, leaf));
          }
        }
      }),
      { numRuns: 500 },
    );
  });

  it('property: a report that changed nothing settles nothing', () => {
    fc.assert(
      fc.property(section, section, (desired, reported) => {
        expect(settledDesiredPatch(desired, reported, reported)).toBeUndefined();
      }),
      { numRuns: 300 },
    );
  });
});

describe('desired-cleanup handler', () => {
  const client = new IoTDataPlaneClient({
    region: 'us-east-1',
    credentials: { accessKeyId: 'x', secretAccessKey: 'y' },
    maxAttempts: 1,
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

  it('ends the attempt on a conflict instead of re-deciding on the newer document', async () => {
    // The report at version 4 delivered power; before the write the app asked for 'off': the versioned write
    // conflicts, and the intent, pinned to version 4, writes nothing on version 5.
    mock
      .on(GetThingShadowCommand)
      .resolvesOnce(getPayload({ desired: { power: 'on' }, reported: { power: 'on' } }, 4))
      .resolves(getPayload({ desired: { power: 'off' }, reported: { power: 'on' } }, 5));
    mock.on(UpdateThingShadowCommand).rejects(new ConflictException(failure(409, 'Version conflict')));
    const event = documentsRuleEvent(
      'thing_name',
      'aircon-1',
      { desired: { power: 'on' }, reported: { power: 'off' }, version: 3 },
      { desired: { power: 'on' }, reported: { power: 'on' }, version: 4 },
    );
    await expect(handler()(event)).resolves.toMatchObject({ outcome: 'superseded', version: 5, keys: [] });
    expect(mock.commandCalls(UpdateThingShadowCommand)).toHaveLength(1);
    expect(mock.commandCalls(GetThingShadowCommand)).toHaveLength(2);
  });

  it('writes nothing when the shadow already moved past the event', async () => {
    // Even though power is still desired and reported 'on' at version 6: only the report of version 4 is known
    // to have delivered it, and version 5 may be a new wish for the same value.
    mock
      .on(GetThingShadowCommand)
      .resolves(getPayload({ desired: { power: 'on' }, reported: { power: 'on' } }, 6));
    const event = documentsRuleEvent(
      'thing_name',
      'aircon-1',
      { desired: { power: 'on' }, reported: { power: 'off' }, version: 3 },
      { desired: { power: 'on' }, reported: { power: 'on' }, version: 4 },
    );
    await expect(handler()(event)).resolves.toMatchObject({ outcome: 'superseded', version: 6 });
    expect(mock.commandCalls(UpdateThingShadowCommand)).toHaveLength(0);
  });

  it('sends nothing for a desired value equal to a reported value the update did not change', async () => {
    // The app's write of 'off' (version 3) while the unit still reports the 'off' it had before 'on' was asked.
    const event = documentsRuleEvent(
      'thing_name',
      'aircon-1',
      { desired: { power: 'on' }, reported: { power: 'off' }, version: 2 },
      { desired: { power: 'off' }, reported: { power: 'off' }, version: 3 },
    );
    await expect(handler()(event)).resolves.toEqual({
      outcome: 'nothing-settled',
      thingName: 'aircon-1',
      version: 3,
      keys: [],
    });
    expect(mock.calls()).toHaveLength(0);
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
    // `previous` is part of every documents message (null on creation): without it nothing can be judged.
    const { previous: _previous, ...withoutPrevious } = documentsRuleEvent('thing_name', 'aircon-1', null, {
      desired: { a: 1 },
      reported: { a: 1 },
      version: 1,
    });
    await expect(handler()(withoutPrevious)).rejects.toThrow(/previous/);
    expect(mock.calls()).toHaveLength(0);
  });
});

describe('desired-cleanup on the local shadow service', () => {
  it('off -> on -> off while the unit still applies on: the last wish survives until a report delivers it', async () => {
    const service = await startShadowService();
    const sdk = localSdk(service.httpEndpoint);
    const handler = createDesiredCleanupHandler({ shadows: sdk.shadows(), logger: silentLogger() });
    // The documents messages the service publishes, as the rule delivers them (`SELECT *, topic(3) AS thing_name`).
    const documents = new Map<number, unknown>();
    const stop = service.engine.onMessage((message) => {
      if (message.topic !== '$aws/things/aircon-1/shadow/update/documents') return;
      const body = JSON.parse(Buffer.from(message.payload).toString('utf8'));
      documents.set(body.current.version, { ...body, thing_name: 'aircon-1' });
    });
    const write = async (state: object) => {
      const answer = await service.engine.handle({
        operation: 'update',
        target: { thingName: 'aircon-1' },
        payload: new TextEncoder().encode(JSON.stringify({ state })),
        origin: 'http',
      });
      if (!answer.ok) throw new Error(answer.rejection.message);
      return answer.body.version;
    };
    const cleanup = (version: number) => handler(documents.get(version));
    const shadow = () => awsTransport(sdk.client).get({ thingName: 'aircon-1' });
    try {
      expect(await write({ reported: { power: 'off' } })).toBe(1);
      expect(await write({ desired: { power: 'on' } })).toBe(2);
      expect(await write({ desired: { power: 'off' } })).toBe(3); // equal to the stale report
      // Equal is not enough: removing 'off' here would leave the unit's coming report of 'on' uncorrected.
      await expect(cleanup(3)).resolves.toMatchObject({ outcome: 'nothing-settled' });
      expect((await shadow())?.state.desired).toEqual({ power: 'off' });
      // The unit finishes applying 'on' (v4): the delta now asks for 'off'.
      expect(await write({ reported: { power: 'on' } })).toBe(4);
      await expect(cleanup(4)).resolves.toMatchObject({ outcome: 'nothing-settled' });
      expect((await shadow())?.state.delta).toEqual({ power: 'off' });
      // It follows the delta and reports 'off' (v5): that report delivered the wish.
      expect(await write({ reported: { power: 'off' } })).toBe(5);
      await expect(cleanup(5)).resolves.toEqual({
        outcome: 'cleared',
        thingName: 'aircon-1',
        version: 6,
        keys: ['power'],
      });
      const settled = await shadow();
      expect(settled?.state.desired).toBeUndefined();
      expect(settled?.state.delta).toBeUndefined();
      // The cleanup's own documents message (v6) changed no reported value: nothing more to do.
      await expect(cleanup(6)).resolves.toMatchObject({ outcome: 'nothing-settled' });
      // A report whose version is no longer current settles nothing: the shadow moved on.
      expect(await write({ desired: { power: 'on' } })).toBe(7);
      expect(await write({ reported: { power: 'on' } })).toBe(8); // delivers power ...
      expect(await write({ desired: { mode: 'cool' } })).toBe(9); // ... but the app wrote again
      await expect(cleanup(8)).resolves.toMatchObject({ outcome: 'superseded', version: 9 });
      await expect(cleanup(9)).resolves.toMatchObject({ outcome: 'nothing-settled' });
      // What is left: power 'on' equal to an unchanged report, which makes no delta.
      const left = await shadow();
      expect(left?.state.desired).toEqual({ power: 'on', mode: 'cool' });
      expect(left?.state.delta).toEqual({ mode: 'cool' });
    } finally {
      stop();
      sdk.close();
      await service.close();
    }
  });
});
