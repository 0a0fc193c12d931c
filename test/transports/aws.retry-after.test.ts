/**
 * Throttling signals over HTTP: a 429 whose answer carries `Retry-After` (or `x-amz-retry-after`) reaches
 * the engine as `ShadowThrottledError.retryAfterMs`, through the real AWS SDK client, and the engine waits it
 * out before the next request of that thing. The local service sends no such header (AWS IoT documents
 * none), so a bare node:http server plays a throttling front here.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { IoTDataPlaneClient } from '@aws-sdk/client-iot-data-plane';
import { afterEach, describe, expect, it } from 'vitest';
import { ShadowThrottledError } from '../../src/errors.js';
import { awsTransport, retryAfterMs } from '../../src/transports/aws.js';
import { createShadowClient } from '../../src/update/shadow-client.js';
import type { ShadowEvent } from '../../src/update/shadow-events.js';

let server: Server | undefined;
afterEach(async () => {
  await new Promise((resolve) => server?.close(resolve) ?? resolve(undefined));
  server = undefined;
});

/** A front that throttles the first `throttled` requests with the given headers, then accepts updates. */
async function throttlingFront(throttled: number, headers: Record<string, string>) {
  let seen = 0;
  const arrivals: number[] = [];
  server = createServer((request, response) => {
    request.resume();
    request.on('end', () => {
      arrivals.push(Date.now());
      if (seen++ < throttled) {
        response.writeHead(429, {
          'content-type': 'application/json',
          'x-amzn-errortype': 'ThrottlingException',
          ...headers,
        });
        response.end(JSON.stringify({ message: 'Rate exceeded' }));
        return;
      }
      response.writeHead(200, { 'content-type': 'application/json' });
      response.end(
        JSON.stringify({ state: { reported: { on: true } }, metadata: {}, version: 1, timestamp: 1 }),
      );
    });
  });
  await new Promise<void>((resolve) => server?.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  const client = new IoTDataPlaneClient({
    endpoint: `http://127.0.0.1:${port}`,
    region: 'us-east-1',
    credentials: { accessKeyId: 'x', secretAccessKey: 'y' },
    maxAttempts: 1,
  });
  return { client, arrivals };
}

describe('Retry-After over HTTP', () => {
  it('reads Retry-After (seconds or HTTP date) and x-amz-retry-after (milliseconds)', () => {
    expect(retryAfterMs({ 'Retry-After': '2' })).toBe(2000);
    expect(retryAfterMs({ 'retry-after': '0.5' })).toBe(500);
    expect(retryAfterMs({ 'x-amz-retry-after': '250' })).toBe(250);
    const now = Date.parse('Wed, 21 Oct 2026 07:28:00 GMT');
    expect(retryAfterMs({ 'Retry-After': 'Wed, 21 Oct 2026 07:28:03 GMT' }, now)).toBe(3000);
    expect(retryAfterMs({ 'Retry-After': 'soon' })).toBeUndefined();
    expect(retryAfterMs({})).toBeUndefined();
    expect(retryAfterMs(undefined)).toBeUndefined();
  });

  it('a 429 with Retry-After becomes ShadowThrottledError with retryAfterMs', async () => {
    const { client } = await throttlingFront(1, { 'retry-after': '1' });
    const error = await awsTransport(client)
      .update({ thingName: 'lamp' }, { state: { reported: { on: true } } })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ShadowThrottledError);
    expect(error).toMatchObject({ retryAfterMs: 1000, statusCode: 429, awsCode: 'ThrottlingException' });
    client.destroy();
  });

  it('the engine waits out Retry-After before its next request of the thing', async () => {
    const { client, arrivals } = await throttlingFront(1, { 'x-amz-retry-after': '300' });
    const events: ShadowEvent[] = [];
    const shadows = createShadowClient({
      transport: awsTransport(client),
      onEvent: (event) => events.push(event),
    });
    await shadows.shadow('lamp').merge({ reported: { on: true } });
    expect(arrivals).toHaveLength(2);
    // Wall-clock lower bound only (a slow machine makes the gap longer, never shorter).
    expect(arrivals[1]! - arrivals[0]!).toBeGreaterThanOrEqual(290);
    expect(events).toContainEqual(
      expect.objectContaining({ type: 'throttled', source: 'service', retryAfterMs: 300 }),
    );
    client.destroy();
  });
});
