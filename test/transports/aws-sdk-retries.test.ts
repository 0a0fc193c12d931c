/**
 * awsTransport and the SDK's own retries: a client that retries on its own (the SDK's default is 3 attempts)
 * is refused at the first request with a ShadowOptionsError saying how to create it, before any request is
 * sent; `maxAttempts: 1` and an explicit `allowSdkRetries` pass.
 */
import { GetThingShadowCommand, IoTDataPlaneClient } from '@aws-sdk/client-iot-data-plane';
import { mockClient } from 'aws-sdk-client-mock';
import { describe, expect, it } from 'vitest';
import { ShadowOptionsError } from '../../src/errors.js';
import { awsTransport, resolveAwsTransportOptions, sdkMaxAttempts } from '../../src/transports/aws.js';

const base = { region: 'us-east-1', credentials: { accessKeyId: 'x', secretAccessKey: 'y' } };
const body = { state: {}, metadata: {}, version: 1, timestamp: 1 };

function mocked(client: IoTDataPlaneClient) {
  const mock = mockClient(client);
  const text = JSON.stringify(body);
  mock
    .on(GetThingShadowCommand)
    .resolves({ payload: Object.assign(new TextEncoder().encode(text), { transformToString: () => text }) });
  return mock;
}

describe('awsTransport and SDK retries', () => {
  it('reads the attempts of the client: default 3, maxAttempts, a custom retry strategy', async () => {
    expect(await sdkMaxAttempts(new IoTDataPlaneClient(base))).toBe(3);
    expect(await sdkMaxAttempts(new IoTDataPlaneClient({ ...base, maxAttempts: 1 }))).toBe(1);
    // A custom strategy carries its own attempts (as the SDK's strategies do, through maxAttemptsProvider).
    const strategy = { mode: 'standard', maxAttemptsProvider: async () => 5 };
    const custom = new IoTDataPlaneClient({ ...base, retryStrategy: strategy as never });
    expect(await sdkMaxAttempts(custom)).toBe(5);
    expect(await sdkMaxAttempts({})).toBeUndefined();
  });

  it('refuses a client with retries of its own at the first request, sending nothing', async () => {
    const client = new IoTDataPlaneClient(base);
    const mock = mocked(client);
    const transport = awsTransport(client);
    const error = await transport.get({ thingName: 'lamp' }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ShadowOptionsError);
    expect((error as Error).message).toContain('3 attempts per request');
    expect((error as Error).message).toContain('maxAttempts: 1');
    expect(mock.calls()).toHaveLength(0);
    await expect(transport.delete({ thingName: 'lamp' })).rejects.toBeInstanceOf(ShadowOptionsError);
  });

  it('accepts maxAttempts: 1, and SDK retries when asked to', async () => {
    const single = new IoTDataPlaneClient({ ...base, maxAttempts: 1 });
    mocked(single);
    expect(await awsTransport(single).get({ thingName: 'lamp' })).toMatchObject({ version: 1 });
    const retrying = new IoTDataPlaneClient(base);
    mocked(retrying);
    expect(await awsTransport(retrying, { allowSdkRetries: true }).get({ thingName: 'lamp' })).toMatchObject({
      version: 1,
    });
    expect(() => resolveAwsTransportOptions({ allowSdkRetries: 'yes' as never })).toThrow(ShadowOptionsError);
  });
});
