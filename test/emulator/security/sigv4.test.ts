/**
 * SigV4 as AWS checks it, attacked with requests signed by the AWS SDK's own signer and replayed (or tampered
 * with) over raw node:http: the body is covered by the signature, signatures expire after 15 minutes of clock
 * skew (on the service's injected clock), `host` must be signed, `UNSIGNED-PAYLOAD` is refused, and a request
 * without a valid signature is refused before its body size is looked at.
 */
import { createHash } from 'node:crypto';
import {
  GetThingShadowCommand,
  IoTDataPlaneClient,
  UpdateThingShadowCommand,
} from '@aws-sdk/client-iot-data-plane';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  createShadowEngine,
  type HttpFront,
  type ShadowEngine,
  SIGV4_MESSAGES,
  startHttpFront,
} from '../../../src/emulator/index.js';
import { CREDENTIALS, send, signRequest } from './signed-request.js';

const MINUTE = 60_000;
let now = Date.now();
let engine: ShadowEngine;
let front: HttpFront;

beforeEach(async () => {
  now = Date.now();
  engine = createShadowEngine({ clock: () => now });
  front = await startHttpFront(engine, { requireSigV4: CREDENTIALS, clock: () => now });
});

afterEach(async () => {
  await front.close();
  await engine.close();
});

const update = (body: string) =>
  signRequest(front.port, {
    method: 'POST',
    path: '/things/lamp/shadow',
    headers: { 'content-type': 'application/octet-stream' },
    body,
  });

async function reported(): Promise<unknown> {
  const signed = await signRequest(front.port, {
    method: 'GET',
    path: '/things/lamp/shadow',
    signingDate: new Date(now),
  });
  const answer = await send(front.port, signed);
  return answer.status === 200 ? (JSON.parse(answer.body) as { state: unknown }).state : answer.status;
}

function expectForbidden(
  answer: { status: number; headers: Record<string, unknown>; body: string },
  message: string,
) {
  expect(answer.status).toBe(403);
  expect(answer.headers['x-amzn-errortype']).toBe('ForbiddenException');
  expect(JSON.parse(answer.body)).toEqual({ __type: 'ForbiddenException', message });
}

describe('the signature covers the body', () => {
  it('applies a correctly signed update (the helper signs like the SDK)', async () => {
    const answer = await send(front.port, await update('{"state":{"reported":{"on":true}}}'));
    expect(answer.status).toBe(200);
    expect(await reported()).toEqual({ reported: { on: true } });
  });

  it('refuses a captured update replayed with another body of the same length', async () => {
    const signed = await update('{"state":{"reported":{"on":true}}}');
    const forged = '{"state":{"reported":{"on":null}}}';
    expect(forged.length).toBe(signed.body.length);
    expectForbidden(await send(front.port, signed, { body: forged }), SIGV4_MESSAGES.mismatch);
    expect(await reported()).toBe(404);
  });

  it('refuses a body that does not hash to the signed x-amz-content-sha256', async () => {
    const body = '{"state":{"reported":{"on":true}}}';
    const signed = await signRequest(front.port, {
      method: 'POST',
      path: '/things/lamp/shadow',
      headers: { 'x-amz-content-sha256': createHash('sha256').update(body).digest('hex') },
      body,
    });
    expect((await send(front.port, signed)).status).toBe(200);
    expectForbidden(
      await send(front.port, signed, { body: '{"state":{"reported":{"on":1234}}}' }),
      SIGV4_MESSAGES.mismatch,
    );
    expect(await reported()).toEqual({ reported: { on: true } });
  });

  it('refuses UNSIGNED-PAYLOAD on the data plane', async () => {
    const signed = await signRequest(front.port, {
      method: 'POST',
      path: '/things/lamp/shadow',
      headers: { 'x-amz-content-sha256': 'UNSIGNED-PAYLOAD' },
      body: '{"state":{"reported":{"on":true}}}',
    });
    expectForbidden(await send(front.port, signed), SIGV4_MESSAGES.mismatch);
    expect(await reported()).toBe(404);
  });

  it('requires host to be signed', async () => {
    const signed = await signRequest(front.port, {
      method: 'GET',
      path: '/things/lamp/shadow',
      withHost: false,
    });
    expect(signed.headers.authorization).not.toMatch(/SignedHeaders=[^,]*host/);
    expectForbidden(await send(front.port, signed), SIGV4_MESSAGES.hostNotSigned);
  });
});

describe('signatures expire (15 minutes of clock skew, on the injected clock)', () => {
  it('accepts a request signed 14 minutes ago or 14 minutes ahead', async () => {
    for (const offset of [-14 * MINUTE, 14 * MINUTE]) {
      const signed = await signRequest(front.port, {
        method: 'GET',
        path: '/things/lamp/shadow',
        signingDate: new Date(now + offset),
      });
      expect((await send(front.port, signed)).status).toBe(404);
    }
  });

  it('refuses a request signed more than 15 minutes ago with AWS\'s "Signature expired" text', async () => {
    now = Date.UTC(2026, 0, 2, 12, 0, 0);
    const signed = await signRequest(front.port, {
      method: 'GET',
      path: '/things/lamp/shadow',
      signingDate: new Date(now - 16 * MINUTE),
    });
    expectForbidden(
      await send(front.port, signed),
      'Signature expired: 20260102T114400Z is now earlier than 20260102T114500Z (20260102T120000Z - 15 min.)',
    );
  });

  it('refuses a request signed more than 15 minutes ahead with "Signature not yet current"', async () => {
    now = Date.UTC(2026, 0, 2, 12, 0, 0);
    const signed = await signRequest(front.port, {
      method: 'GET',
      path: '/things/lamp/shadow',
      signingDate: new Date(now + 20 * MINUTE),
    });
    expectForbidden(
      await send(front.port, signed),
      'Signature not yet current: 20260102T122000Z is still later than 20260102T121500Z (20260102T120000Z + 15 min.)',
    );
  });

  it('a captured request replays only within the window', async () => {
    const signed = await update('{"state":{"reported":{"n":1}}}');
    expect((await send(front.port, signed)).status).toBe(200);
    now += 10 * MINUTE;
    expect((await send(front.port, signed)).status).toBe(200);
    now += 6 * MINUTE;
    expect((await send(front.port, signed)).status).toBe(403);
    expect(
      await engine.handle({
        operation: 'get',
        target: { thingName: 'lamp' },
        payload: new Uint8Array(0),
        origin: 'http',
      }),
    ).toMatchObject({ ok: true, body: { version: 2 } });
  });

  it('the real SDK gets ForbiddenException when its clock is off, and corrects itself from the Date header', async () => {
    now = Date.now() + 40 * MINUTE;
    const client = new IoTDataPlaneClient({
      endpoint: front.endpoint,
      region: 'us-east-1',
      // A copy: the SDK marks the credentials object it is given.
      credentials: { ...CREDENTIALS },
      maxAttempts: 1,
    });
    try {
      const first = await client
        .send(new GetThingShadowCommand({ thingName: 'lamp' }))
        .catch((e: Error) => e);
      expect(first).toMatchObject({ name: 'ForbiddenException' });
      expect((first as Error).message).toMatch(/^Signature expired: /);
      // The SDK learns the service's time from the `date` header of the 403 (systemClockOffset).
      await client.send(
        new UpdateThingShadowCommand({
          thingName: 'lamp',
          payload: new TextEncoder().encode('{"state":{"reported":{"a":1}}}'),
        }),
      );
      expect(await reported()).toEqual({ reported: { a: 1 } });
    } finally {
      client.destroy();
    }
  });
});

describe('authentication before size', () => {
  it('an unsigned 200 KB body gets 403, not 413', async () => {
    const big = Buffer.alloc(200 * 1024, 0x61);
    const answer = await send(front.port, {
      method: 'POST',
      path: '/things/lamp/shadow',
      query: {},
      headers: {},
      body: big,
    });
    expectForbidden(answer, SIGV4_MESSAGES.missing);
  });

  it('a badly signed 200 KB body gets 403, a correctly signed one 413', async () => {
    const big = `{"state":{"reported":{"x":"${'a'.repeat(200 * 1024)}"}}}`;
    const bad = await signRequest(front.port, {
      method: 'POST',
      path: '/things/lamp/shadow',
      body: big,
      credentials: { accessKeyId: CREDENTIALS.accessKeyId, secretAccessKey: 'wrong' },
    });
    expectForbidden(await send(front.port, bad), SIGV4_MESSAGES.mismatch);
    const good = await update(big);
    const answer = await send(front.port, good);
    expect(answer.status).toBe(413);
    expect(answer.headers['x-amzn-errortype']).toBe('RequestEntityTooLargeException');
  });
});
