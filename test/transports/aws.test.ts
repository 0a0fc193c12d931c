/** Unit tests of the AWS transport with aws-sdk-client-mock (no network). */
import {
  ConflictException,
  DeleteThingShadowCommand,
  GetThingShadowCommand,
  InternalFailureException,
  InvalidRequestException,
  IoTDataPlaneClient,
  IoTDataPlaneServiceException,
  ResourceNotFoundException,
  ThrottlingException,
  UpdateThingShadowCommand,
} from '@aws-sdk/client-iot-data-plane';
import { mockClient } from 'aws-sdk-client-mock';
import { afterEach, describe, expect, it } from 'vitest';
import {
  ShadowConflictError,
  ShadowNotFoundError,
  ShadowOptionsError,
  ShadowRejectedError,
  ShadowThrottledError,
  ShadowTransportError,
  ShadowValidationError,
} from '../../src/errors.js';
import { awsTransport, mapAwsError } from '../../src/transports/aws.js';

const client = new IoTDataPlaneClient({
  region: 'us-east-1',
  credentials: { accessKeyId: 'x', secretAccessKey: 'y' },
  maxAttempts: 1,
});
const mock = mockClient(client);
afterEach(() => mock.reset());

/** A response blob as the SDK hands it out (bytes with a string view). */
const blob = (text: string) =>
  Object.assign(new TextEncoder().encode(text), { transformToString: () => text });
const bytes = (value: unknown) => blob(JSON.stringify(value));
const meta = (httpStatusCode: number) => ({ $metadata: { httpStatusCode }, message: 'x' });
const named = { thingName: 'lamp', shadowName: 'cfg' };

describe('awsTransport', () => {
  it('reads a shadow and decodes its blob payload', async () => {
    const body = {
      state: { desired: { on: true } },
      metadata: { desired: { on: { timestamp: 1 } } },
      version: 3,
      timestamp: 2,
    };
    mock
      .on(GetThingShadowCommand, { thingName: 'lamp', shadowName: 'cfg' })
      .resolves({ payload: bytes(body) });
    await expect(awsTransport(client).get(named)).resolves.toEqual(body);
  });

  it('omits shadowName for the classic shadow', async () => {
    mock
      .on(GetThingShadowCommand)
      .resolves({ payload: bytes({ state: {}, metadata: {}, version: 1, timestamp: 1 }) });
    await awsTransport(client).get({ thingName: 'lamp' });
    expect(mock.commandCalls(GetThingShadowCommand)[0]?.args[0].input).toEqual({ thingName: 'lamp' });
  });

  it('answers undefined for a 404 on get', async () => {
    mock
      .on(GetThingShadowCommand)
      .rejects(new ResourceNotFoundException({ ...meta(404), message: "No shadow exists with name: 'cfg'" }));
    await expect(awsTransport(client).get(named)).resolves.toBeUndefined();
  });

  it('sends the update request as JSON bytes and returns the accepted body', async () => {
    const accepted = {
      state: { desired: { on: true } },
      metadata: { desired: { on: { timestamp: 5 } } },
      version: 4,
      timestamp: 5,
    };
    mock.on(UpdateThingShadowCommand).resolves({ payload: bytes(accepted) });
    const request = { state: { desired: { on: true } }, version: 3, clientToken: 'abc' };
    await expect(awsTransport(client).update(named, request)).resolves.toEqual(accepted);
    const input = mock.commandCalls(UpdateThingShadowCommand)[0]?.args[0].input;
    expect(input?.thingName).toBe('lamp');
    expect(input?.shadowName).toBe('cfg');
    expect(JSON.parse(new TextDecoder().decode(input?.payload as Uint8Array))).toEqual(request);
  });

  it('maps ConflictException to ShadowConflictError with the AWS code, message and expected version', async () => {
    mock
      .on(UpdateThingShadowCommand)
      .rejects(new ConflictException({ ...meta(409), message: 'Version conflict' }));
    const error = await awsTransport(client)
      .update(named, { state: { desired: { on: true } }, version: 7 })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ShadowConflictError);
    expect(error).toMatchObject({
      thingName: 'lamp',
      shadowName: 'cfg',
      awsCode: 'ConflictException',
      awsMessage: 'Version conflict',
      statusCode: 409,
      expectedVersion: 7,
    });
  });

  it.each([
    [new ThrottlingException({ ...meta(429), message: 'Rate exceeded' }), ShadowThrottledError, 429],
    [new InvalidRequestException({ ...meta(400), message: 'Invalid JSON' }), ShadowRejectedError, 400],
    [
      new InternalFailureException({ ...meta(500), message: 'Internal service failure' }),
      ShadowRejectedError,
      500,
    ],
  ])('maps %s by name', async (sdkError, type, status) => {
    mock.on(UpdateThingShadowCommand).rejects(sdkError);
    const error = await awsTransport(client)
      .update(named, { state: {} })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(type);
    expect((error as ShadowRejectedError).statusCode).toBe(status);
  });

  it('keeps the status of an unmodelled error, and treats an error without one as a transport error', () => {
    const gateway = new IoTDataPlaneServiceException({
      name: 'GatewayTimeoutException',
      $fault: 'server',
      $metadata: { httpStatusCode: 504 },
      message: 'Gateway timeout',
    });
    const mapped = mapAwsError(gateway, named);
    expect(mapped).toBeInstanceOf(ShadowRejectedError);
    expect(mapped).toMatchObject({ statusCode: 504, awsCode: 'GatewayTimeoutException' });
    const reset = Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' });
    expect(mapAwsError(reset, named)).toBeInstanceOf(ShadowTransportError);
  });

  it('throws ShadowNotFoundError when deleting a missing shadow, and returns the deleted version', async () => {
    mock
      .on(DeleteThingShadowCommand)
      .rejectsOnce(
        new ResourceNotFoundException({ ...meta(404), message: "No shadow exists with name: 'cfg'" }),
      );
    await expect(awsTransport(client).delete(named)).rejects.toBeInstanceOf(ShadowNotFoundError);
    mock.on(DeleteThingShadowCommand).resolves({ payload: bytes({ version: 9, timestamp: 1 }) });
    await expect(awsTransport(client).delete(named)).resolves.toEqual({ version: 9, timestamp: 1 });
  });

  it('validates response bodies and names the shadow', async () => {
    mock
      .on(GetThingShadowCommand)
      .resolves({ payload: bytes({ state: {}, metadata: {}, version: 'three' }) });
    const error = await awsTransport(client)
      .get(named)
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ShadowValidationError);
    expect((error as Error).message).toContain("shadow 'cfg' of thing 'lamp'");
    expect((error as ShadowValidationError).issues.some((issue) => issue.path.includes('version'))).toBe(
      true,
    );
  });

  it('skips validation when validateResponses is false', async () => {
    mock.on(GetThingShadowCommand).resolves({ payload: bytes({ odd: true }) });
    await expect(awsTransport(client, { validateResponses: false }).get(named)).resolves.toEqual({
      odd: true,
    });
  });

  it('fails clearly on a body that is not JSON', async () => {
    mock.on(GetThingShadowCommand).resolves({ payload: blob('<html>') });
    await expect(awsTransport(client).get(named)).rejects.toBeInstanceOf(ShadowTransportError);
  });

  it('rejects unknown options', () => {
    expect(() => awsTransport(client, { retries: 2 } as never)).toThrow(ShadowOptionsError);
    expect(() => awsTransport(client, { validateResponses: 'no' } as never)).toThrow(/boolean/);
  });
});
