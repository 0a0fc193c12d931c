/** Unit tests of set-desired on its real API Gateway event, with the IoT data plane mocked by aws-sdk-client-mock. */

import { Metrics } from '@aws-lambda-powertools/metrics';
import {
  ConflictException,
  GetThingShadowCommand,
  IoTDataPlaneClient,
  ResourceNotFoundException,
  ThrottlingException,
  UpdateThingShadowCommand,
} from '@aws-sdk/client-iot-data-plane';
import { mockClient } from 'aws-sdk-client-mock';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { claimsAllowThing, createSetDesiredHandler } from '../../examples/lambdas/set-desired.js';
import { createShadowClient } from '../../src/index.js';
import { awsTransport } from '../../src/transports/aws.js';
import { ownerClaims, putDesiredEvent, silentLogger } from './lambda-events.js';
import { failure, getPayload, sentRequest, updatePayload } from './sdk-mock-payloads.js';

const client = new IoTDataPlaneClient({
  region: 'us-east-1',
  credentials: { accessKeyId: 'x', secretAccessKey: 'y' },
  maxAttempts: 1,
});
const mock = mockClient(client);
afterEach(() => mock.reset());

function makeHandler(metrics?: Metrics) {
  const shadows = createShadowClient({
    transport: awsTransport(client),
    maxAttempts: 3,
    baseDelayMs: 1,
    maxDelayMs: 2,
    requestsPerSecondPerThing: Number.POSITIVE_INFINITY,
  });
  return createSetDesiredHandler({ shadows, logger: silentLogger(), ...(metrics ? { metrics } : {}) });
}

const parse = (response: { body?: string | undefined }) => JSON.parse(response.body ?? 'null');

describe('set-desired', () => {
  it('writes the desired values with the version it read and answers the new version', async () => {
    mock.on(GetThingShadowCommand).resolves(getPayload({ reported: { power: 'off', targetTemp: 26 } }, 5));
    mock
      .on(UpdateThingShadowCommand)
      .resolves(updatePayload({ desired: { power: 'on', targetTemp: 22 } }, 6));
    const response = await makeHandler()(
      putDesiredEvent('aircon-1', '{"power":"on","targetTemp":22}', ownerClaims('aircon-1')),
    );
    expect(response.statusCode).toBe(200);
    expect(parse(response)).toEqual({ thingName: 'aircon-1', version: 6, skipped: false });
    const calls = mock.commandCalls(UpdateThingShadowCommand);
    expect(calls).toHaveLength(1);
    expect(calls[0]?.args[0].input.thingName).toBe('aircon-1');
    expect(sentRequest(calls[0]?.args[0].input ?? {})).toMatchObject({
      state: { desired: { power: 'on', targetTemp: 22 } },
      version: 5,
    });
  });

  it('re-reads and retries after a version conflict, then succeeds', async () => {
    mock
      .on(GetThingShadowCommand)
      .resolvesOnce(getPayload({ reported: { power: 'off' } }, 5))
      .resolves(getPayload({ reported: { power: 'off', temperature: 27 } }, 6));
    mock
      .on(UpdateThingShadowCommand)
      .rejectsOnce(new ConflictException(failure(409, 'Version conflict')))
      .resolves(updatePayload({ desired: { power: 'on' } }, 7));
    const response = await makeHandler()(
      putDesiredEvent('aircon-1', '{"power":"on"}', ownerClaims('aircon-1')),
    );
    expect(response.statusCode).toBe(200);
    expect(parse(response).version).toBe(7);
    const versions = mock
      .commandCalls(UpdateThingShadowCommand)
      .map((c) => sentRequest(c.args[0].input).version);
    expect(versions).toEqual([5, 6]);
  });

  it('answers 200 skipped without writing when the values are already desired', async () => {
    mock.on(GetThingShadowCommand).resolves(getPayload({ desired: { power: 'on' }, reported: {} }, 9));
    const response = await makeHandler()(
      putDesiredEvent('aircon-1', '{"power":"on"}', ownerClaims('aircon-1')),
    );
    expect(response.statusCode).toBe(200);
    expect(parse(response)).toEqual({ thingName: 'aircon-1', version: 9, skipped: true });
    expect(mock.commandCalls(UpdateThingShadowCommand)).toHaveLength(0);
  });

  it('sends null to remove a desired value', async () => {
    mock.on(GetThingShadowCommand).resolves(getPayload({ desired: { mode: 'dry', power: 'on' } }, 2));
    mock.on(UpdateThingShadowCommand).resolves(updatePayload({ desired: { mode: null } }, 3));
    const response = await makeHandler()(
      putDesiredEvent('aircon-1', '{"mode":null}', ownerClaims('aircon-1')),
    );
    expect(response.statusCode).toBe(200);
    const sent = sentRequest(mock.commandCalls(UpdateThingShadowCommand)[0]?.args[0].input ?? {});
    expect(sent.state.desired).toEqual({ mode: null });
  });

  it('reads a base64-encoded body', async () => {
    mock.on(GetThingShadowCommand).resolves(getPayload({ reported: {} }, 1));
    mock.on(UpdateThingShadowCommand).resolves(updatePayload({ desired: { mode: 'cool' } }, 2));
    const event = putDesiredEvent('aircon-1', '{"mode":"cool"}', ownerClaims('aircon-1'), { base64: true });
    expect((await makeHandler()(event)).statusCode).toBe(200);
  });

  it.each([
    ['not JSON', '{power:on}', 'the body must be a JSON object'],
    ['an unknown key', '{"power":"on","turbo":true}', 'invalid desired state'],
    ['a value out of range', '{"targetTemp":45}', 'invalid desired state'],
    ['a wrong type', '{"power":true}', 'invalid desired state'],
    ['no values', '{}', 'invalid desired state'],
    ['an array', '[1]', 'invalid desired state'],
  ])('answers 400 for %s without touching the shadow', async (_what, body, message) => {
    const response = await makeHandler()(putDesiredEvent('aircon-1', body, ownerClaims('aircon-1')));
    expect(response.statusCode).toBe(400);
    expect(parse(response).message).toBe(message);
    expect(mock.calls()).toHaveLength(0);
  });

  it('lists every issue of a bad body with its path', async () => {
    const response = await makeHandler()(
      putDesiredEvent('aircon-1', '{"targetTemp":5,"mode":"turbo"}', ownerClaims('aircon-1')),
    );
    const { issues } = parse(response) as { issues: { path: string[]; message: string }[] };
    expect(issues.map((issue) => issue.path)).toEqual(expect.arrayContaining([['targetTemp'], ['mode']]));
  });

  it('answers 400 for a missing body and for a thing name the service would refuse', async () => {
    expect(
      (await makeHandler()(putDesiredEvent('aircon-1', undefined, ownerClaims('aircon-1')))).statusCode,
    ).toBe(400);
    const bad = 'x'.repeat(129); // thing names are at most 128 characters
    const response = await makeHandler()(putDesiredEvent(bad, '{"power":"on"}', ownerClaims(bad)));
    expect(response.statusCode).toBe(400);
    expect(mock.calls()).toHaveLength(0);
  });

  it('answers 403 when the claims do not name the thing', async () => {
    const response = await makeHandler()(
      putDesiredEvent('aircon-2', '{"power":"on"}', ownerClaims('aircon-1')),
    );
    expect(response.statusCode).toBe(403);
    expect(mock.calls()).toHaveLength(0);
  });

  it('answers 404 for a thing without a shadow and never creates one', async () => {
    mock
      .on(GetThingShadowCommand)
      .rejects(new ResourceNotFoundException(failure(404, "No shadow exists with name: 'aircon-9'")));
    const response = await makeHandler()(
      putDesiredEvent('aircon-9', '{"power":"on"}', ownerClaims('aircon-9')),
    );
    expect(response.statusCode).toBe(404);
    expect(mock.commandCalls(UpdateThingShadowCommand)).toHaveLength(0);
  });

  it('answers 409 only when every retry lost to another writer', async () => {
    let version = 1;
    mock
      .on(GetThingShadowCommand)
      .callsFake(() => getPayload({ reported: { temperature: version } }, version++));
    mock.on(UpdateThingShadowCommand).rejects(new ConflictException(failure(409, 'Version conflict')));
    const response = await makeHandler()(
      putDesiredEvent('aircon-1', '{"power":"on"}', ownerClaims('aircon-1')),
    );
    expect(response.statusCode).toBe(409);
    expect(mock.commandCalls(UpdateThingShadowCommand).length).toBeGreaterThan(1);
  });

  it('answers 429 with Retry-After when the service keeps throttling', async () => {
    mock.on(GetThingShadowCommand).rejects(new ThrottlingException(failure(429, 'Rate exceeded')));
    const response = await makeHandler()(
      putDesiredEvent('aircon-1', '{"power":"on"}', ownerClaims('aircon-1')),
    );
    expect(response.statusCode).toBe(429);
    expect(response.headers?.['retry-after']).toBe('1');
  });

  it('answers 502 when the service fails otherwise', async () => {
    mock.on(GetThingShadowCommand).rejects(Object.assign(new Error('socket hang up'), { name: 'Error' }));
    const response = await makeHandler()(
      putDesiredEvent('aircon-1', '{"power":"on"}', ownerClaims('aircon-1')),
    );
    expect(response.statusCode).toBe(502);
  });

  it('publishes a committed-change metric', async () => {
    mock.on(GetThingShadowCommand).resolves(getPayload({ reported: {} }, 1));
    mock.on(UpdateThingShadowCommand).resolves(updatePayload({ desired: { power: 'on' } }, 2));
    const metrics = new Metrics({ namespace: 'Test', serviceName: 'set-desired' });
    const added = vi.spyOn(metrics, 'addMetric');
    const published = vi.spyOn(metrics, 'publishStoredMetrics').mockImplementation(() => metrics);
    await makeHandler(metrics)(putDesiredEvent('aircon-1', '{"power":"on"}', ownerClaims('aircon-1')));
    expect(added).toHaveBeenCalledWith('DesiredCommitted', 'Count', 1);
    expect(published).toHaveBeenCalledTimes(1);
  });
});

describe('claimsAllowThing', () => {
  it('accepts the thing in custom:things (comma-separated, spaces tolerated)', () => {
    expect(claimsAllowThing({ 'custom:things': 'a, aircon-1 ,b' }, 'aircon-1')).toBe(true);
    expect(claimsAllowThing({ 'custom:things': 'aircon-10' }, 'aircon-1')).toBe(false);
  });

  it("accepts the admin group in API Gateway's flattened '[a b]' form and as a list", () => {
    expect(claimsAllowThing({ 'cognito:groups': '[operators admins]' }, 'any')).toBe(true);
    expect(claimsAllowThing({ 'cognito:groups': ['admins'] }, 'any')).toBe(true);
    expect(claimsAllowThing({ 'cognito:groups': '[operators]' }, 'any')).toBe(false);
    expect(claimsAllowThing({ 'cognito:groups': '[ops]' }, 'any', 'ops')).toBe(true);
  });

  it('refuses without claims', () => {
    expect(claimsAllowThing(undefined, 'aircon-1')).toBe(false);
    expect(claimsAllowThing({}, 'aircon-1')).toBe(false);
  });
});
