import { request as httpRequest } from 'node:http';
import { connect } from 'node:net';
import {
  DeleteThingShadowCommand,
  GetThingShadowCommand,
  IoTDataPlaneClient,
  type IoTDataPlaneClientConfig,
  ListNamedShadowsForThingCommand,
  PublishCommand,
  UpdateThingShadowCommand,
} from '@aws-sdk/client-iot-data-plane';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createShadowEngine,
  resolveHttpFrontOptions,
  resolveShadowServiceOptions,
  type ShadowEngineApi,
  type ShadowService,
  SIGV4_MESSAGES,
  startHttpFront,
  startShadowService,
} from '../../src/emulator/index.js';
import { ShadowOptionsError } from '../../src/errors.js';
import { freePort } from '../support/mosquitto.js';
import { connectTestClient, type TestClient } from './mqtt-test-client.js';

const encoder = new TextEncoder();
const json = (value: unknown): Uint8Array => encoder.encode(JSON.stringify(value));
const parse = (payload: Uint8Array | undefined): unknown => JSON.parse(new TextDecoder().decode(payload));

function sdk(service: ShadowService, extra: Partial<IoTDataPlaneClientConfig> = {}): IoTDataPlaneClient {
  return new IoTDataPlaneClient({
    endpoint: service.httpEndpoint,
    region: 'us-east-1',
    credentials: { accessKeyId: 'x', secretAccessKey: 'y' },
    maxAttempts: 1,
    ...extra,
  });
}

/** The SDK error a call throws (name, message, status), or fails the test when it succeeds. */
async function sdkError(
  call: Promise<unknown>,
): Promise<{ name: string; message: string; status: number | undefined }> {
  try {
    await call;
  } catch (error) {
    const e = error as { name: string; message: string; $metadata?: { httpStatusCode?: number } };
    return { name: e.name, message: e.message, status: e.$metadata?.httpStatusCode };
  }
  throw new Error('expected the SDK call to fail');
}

let service: ShadowService;
let client: IoTDataPlaneClient;
let device: TestClient;

beforeAll(async () => {
  service = await startShadowService({
    limits: { requestsPerSecondPerThing: 10_000, maxInFlightPerThing: 1000 },
  });
  client = sdk(service);
  device = await connectTestClient(service.mqttUrl, { clientId: 'observer' });
  await device.subscribe(['$aws/things/+/shadow/#', '$aws/things/+/shadow/name/+/#', 'my/things/#'], 1);
});

afterAll(async () => {
  client.destroy();
  await device.close();
  await service.close();
});

describe('data plane over HTTP with the real AWS SDK', () => {
  it('GetThingShadow of a missing shadow: ResourceNotFoundException naming the shadow (classic: the thing)', async () => {
    expect(await sdkError(client.send(new GetThingShadowCommand({ thingName: 'ghost' })))).toEqual({
      name: 'ResourceNotFoundException',
      message: "No shadow exists with name: 'ghost'",
      status: 404,
    });
    expect(
      await sdkError(client.send(new GetThingShadowCommand({ thingName: 'ghost', shadowName: 'cfg' }))),
    ).toMatchObject({
      name: 'ResourceNotFoundException',
      message: "No shadow exists with name: 'cfg'",
    });
  });

  it('UpdateThingShadow answers the accepted document; GetThingShadow returns state, delta, metadata and version', async () => {
    const updated = await client.send(
      new UpdateThingShadowCommand({
        thingName: 'lamp',
        payload: json({ state: { desired: { on: true, level: 3 } }, clientToken: 'tok-1' }),
      }),
    );
    expect(updated.$metadata.httpStatusCode).toBe(200);
    expect(updated.$metadata.requestId).toMatch(/^[0-9a-f-]{36}$/);
    const accepted = parse(updated.payload) as { version: number; timestamp: number; clientToken: string };
    expect(accepted).toMatchObject({
      state: { desired: { on: true, level: 3 } },
      version: 1,
      clientToken: 'tok-1',
    });
    await client.send(
      new UpdateThingShadowCommand({
        thingName: 'lamp',
        payload: json({ state: { reported: { on: true, level: 1 } } }),
      }),
    );
    const got = parse((await client.send(new GetThingShadowCommand({ thingName: 'lamp' }))).payload);
    expect(got).toEqual({
      state: { desired: { on: true, level: 3 }, reported: { on: true, level: 1 }, delta: { level: 3 } },
      metadata: {
        desired: { on: { timestamp: accepted.timestamp }, level: { timestamp: accepted.timestamp } },
        reported: { on: { timestamp: expect.any(Number) }, level: { timestamp: expect.any(Number) } },
      },
      version: 2,
      timestamp: expect.any(Number),
    });
  });

  it('accepts every character of the name patterns, which the SDK percent-encodes in the path and query', async () => {
    const target = { thingName: 'my:Thing_1-x', shadowName: '$cfg:v_2-b' };
    await client.send(
      new UpdateThingShadowCommand({ ...target, payload: json({ state: { reported: { ok: true } } }) }),
    );
    expect(parse((await client.send(new GetThingShadowCommand(target))).payload)).toMatchObject({
      version: 1,
    });
    expect(service.engine.read(target)).toMatchObject({ state: { reported: { ok: true } } });
    const listed = await client.send(new ListNamedShadowsForThingCommand({ thingName: target.thingName }));
    expect(listed.results).toEqual([target.shadowName]);
  });

  it('an HTTP update publishes update/accepted, update/delta and update/documents to MQTT subscribers', async () => {
    await client.send(
      new UpdateThingShadowCommand({
        thingName: 'fan',
        shadowName: 'speed',
        payload: json({ state: { desired: { rpm: 900 } }, clientToken: 'h1' }),
      }),
    );
    const prefix = '$aws/things/fan/shadow/name/speed';
    expect((await device.take(`${prefix}/update/accepted`)).json).toMatchObject({
      version: 1,
      clientToken: 'h1',
    });
    expect((await device.take(`${prefix}/update/delta`)).json).toMatchObject({
      version: 1,
      state: { rpm: 900 },
    });
    expect((await device.take(`${prefix}/update/documents`)).json).toMatchObject({
      previous: null,
      current: { state: { desired: { rpm: 900 } }, version: 1 },
    });
  });

  it('409 ConflictException "Version conflict" for a stale version, and no MQTT rejected for HTTP errors', async () => {
    await client.send(
      new UpdateThingShadowCommand({
        thingName: 'door',
        payload: json({ state: { reported: { open: false } } }),
      }),
    );
    expect(
      await sdkError(
        client.send(
          new UpdateThingShadowCommand({
            thingName: 'door',
            payload: json({ state: { reported: { open: true } }, version: 7 }),
          }),
        ),
      ),
    ).toEqual({ name: 'ConflictException', message: 'Version conflict', status: 409 });
    const versioned = await client.send(
      new UpdateThingShadowCommand({
        thingName: 'door',
        payload: json({ state: { reported: { open: true } }, version: 1 }),
      }),
    );
    expect(parse(versioned.payload)).toMatchObject({ version: 2 });
    // The observer gets one thing's messages in the order the service published them: a rejected message for
    // the 409 would have come before the accepted message of the later update.
    const accepted = await device.takeMany('$aws/things/door/shadow/update/accepted', 2);
    expect(accepted.map((m) => (m.json as { version: number }).version)).toEqual([1, 2]);
    expect(device.unread('$aws/things/door/shadow/update/rejected')).toEqual([]);
  });

  it.each([
    ['not JSON', encoder.encode('{"state":'), 'Invalid JSON'],
    ['an empty body', new Uint8Array(0), 'Invalid JSON'],
    ['no state', json({ desired: {} }), 'Missing required node: state'],
    ['a non-object state', json({ state: 5 }), 'State node must be an object'],
    ['a delta node', json({ state: { delta: { a: 1 } } }), "State contains an invalid node: 'delta'"],
    ['a non-object desired', json({ state: { desired: [1] } }), 'Desired node must be an object'],
    ['a non-object reported', json({ state: { reported: 'x' } }), 'Reported node must be an object'],
    [
      'too deep a document',
      json({ state: { desired: { a: { b: { c: { d: { e: { f: { g: 1 } } } } } } } } }),
      'JSON contains too many levels of nesting; maximum is 6',
    ],
    ['a 65-byte clientToken', json({ state: {}, clientToken: 'x'.repeat(65) }), 'Invalid clientToken'],
    ['a malformed version', json({ state: {}, version: 'one' }), 'Invalid version'],
  ])('400 InvalidRequestException for %s', async (_, payload, message) => {
    expect(await sdkError(client.send(new UpdateThingShadowCommand({ thingName: 'bad', payload })))).toEqual({
      name: 'InvalidRequestException',
      message,
      status: 400,
    });
  });

  it('400 InvalidRequestException for bad thing and shadow names, on every operation', async () => {
    const thingError = await sdkError(client.send(new GetThingShadowCommand({ thingName: 'no spaces' })));
    expect(thingError).toMatchObject({ name: 'InvalidRequestException', status: 400 });
    expect(thingError.message).toContain("Value 'no spaces' at 'thingName' failed to satisfy constraint");
    const shadowError = await sdkError(
      client.send(
        new UpdateThingShadowCommand({
          thingName: 'ok',
          shadowName: 'x'.repeat(65),
          payload: json({ state: {} }),
        }),
      ),
    );
    expect(shadowError.message).toContain(
      "at 'shadowName' failed to satisfy constraint: Member must have length less than or equal to 64",
    );
    expect(await sdkError(client.send(new DeleteThingShadowCommand({ thingName: 'a/b' })))).toMatchObject({
      name: 'InvalidRequestException',
    });
  });

  it('413 RequestEntityTooLargeException when the resulting state passes 8 KB, and for a body over 128 KB', async () => {
    await client.send(
      new UpdateThingShadowCommand({
        thingName: 'big',
        payload: json({ state: { reported: { a: 'x'.repeat(5000) } } }),
      }),
    );
    expect(
      await sdkError(
        client.send(
          new UpdateThingShadowCommand({
            thingName: 'big',
            payload: json({ state: { desired: { b: 'y'.repeat(4000) } } }),
          }),
        ),
      ),
    ).toEqual({
      name: 'RequestEntityTooLargeException',
      message: 'The payload exceeds the maximum size allowed',
      status: 413,
    });
    expect(
      await sdkError(
        client.send(
          new UpdateThingShadowCommand({
            thingName: 'big',
            payload: json({ state: { desired: { b: 'z'.repeat(140_000) } } }),
          }),
        ),
      ),
    ).toMatchObject({ name: 'RequestEntityTooLargeException', status: 413 });
    const stored = parse((await client.send(new GetThingShadowCommand({ thingName: 'big' }))).payload);
    expect(stored).toMatchObject({ version: 1, state: { reported: { a: 'x'.repeat(5000) } } });
  });

  it('415 UnsupportedDocumentEncodingException for a body that is not UTF-8', async () => {
    expect(
      await sdkError(
        client.send(
          new UpdateThingShadowCommand({
            thingName: 'enc',
            payload: Uint8Array.from([0x7b, 0xff, 0xfe, 0x7d]),
          }),
        ),
      ),
    ).toEqual({
      name: 'UnsupportedDocumentEncodingException',
      message: 'Unsupported documented encoding; supported encoding is UTF-8',
      status: 415,
    });
  });

  it('405 MethodNotAllowedException for a wrong method on a known path', async () => {
    const wrong = sdk(service);
    wrong.middlewareStack.add(
      (next) => async (args) => {
        (args.request as { method: string }).method = 'PUT';
        return next(args);
      },
      { step: 'finalizeRequest', name: 'wrongMethod' },
    );
    expect(await sdkError(wrong.send(new GetThingShadowCommand({ thingName: 'lamp' })))).toEqual({
      name: 'MethodNotAllowedException',
      message: 'Method PUT is not allowed on this resource',
      status: 405,
    });
    wrong.destroy();
    const raw = await fetch(`${service.httpEndpoint}/api/things/shadow/ListNamedShadowsForThing/lamp`, {
      method: 'POST',
    });
    expect(raw.status).toBe(405);
    expect(raw.headers.get('x-amzn-errortype')).toBe('MethodNotAllowedException');
    expect(await raw.json()).toEqual({
      __type: 'MethodNotAllowedException',
      message: 'Method POST is not allowed on this resource',
    });
  });

  it('answers errors with content-type, x-amzn-requestid, x-amzn-errortype and a {__type, message} body', async () => {
    const response = await fetch(`${service.httpEndpoint}/things/ghost/shadow`);
    expect(response.status).toBe(404);
    expect(response.headers.get('content-type')).toBe('application/json');
    expect(response.headers.get('x-amzn-requestid')).toMatch(/^[0-9a-f-]{36}$/);
    expect(response.headers.get('x-amzn-errortype')).toBe('ResourceNotFoundException');
    expect(await response.json()).toEqual({
      __type: 'ResourceNotFoundException',
      message: "No shadow exists with name: 'ghost'",
    });
    const unknown = await fetch(`${service.httpEndpoint}/nothing/here`);
    expect(unknown.status).toBe(404);
    expect(unknown.headers.get('x-amzn-errortype')).toBe('UnknownOperationException');
  });

  it('DeleteThingShadow answers the deleted version; the shadow is then gone and re-created with the next numbering', async () => {
    await client.send(
      new UpdateThingShadowCommand({
        thingName: 'temp',
        shadowName: 'x',
        payload: json({ state: { reported: { v: 1 } } }),
      }),
    );
    await client.send(
      new UpdateThingShadowCommand({
        thingName: 'temp',
        shadowName: 'x',
        payload: json({ state: { reported: { v: 2 } } }),
      }),
    );
    const deleted = await client.send(new DeleteThingShadowCommand({ thingName: 'temp', shadowName: 'x' }));
    expect(parse(deleted.payload)).toEqual({ version: 2, timestamp: expect.any(Number) });
    expect((await device.take('$aws/things/temp/shadow/name/x/delete/accepted')).json).toMatchObject({
      version: 2,
    });
    expect(
      await sdkError(client.send(new GetThingShadowCommand({ thingName: 'temp', shadowName: 'x' }))),
    ).toMatchObject({
      name: 'ResourceNotFoundException',
      message: "No shadow exists with name: 'x'",
    });
    expect(
      await sdkError(client.send(new DeleteThingShadowCommand({ thingName: 'temp', shadowName: 'x' }))),
    ).toMatchObject({
      name: 'ResourceNotFoundException',
    });
    const recreated = await client.send(
      new UpdateThingShadowCommand({
        thingName: 'temp',
        shadowName: 'x',
        payload: json({ state: { reported: { v: 3 } } }),
      }),
    );
    expect(parse(recreated.payload)).toMatchObject({ version: 4 });
  });

  it('ListNamedShadowsForThing pages with pageSize and nextToken, skipping classic and deleted shadows', async () => {
    const names = ['n01', 'n02', 'n03', 'n04', 'n05'];
    for (const shadowName of names)
      await client.send(
        new UpdateThingShadowCommand({
          thingName: 'multi',
          shadowName,
          payload: json({ state: { reported: { shadowName } } }),
        }),
      );
    await client.send(
      new UpdateThingShadowCommand({
        thingName: 'multi',
        payload: json({ state: { reported: { classic: 1 } } }),
      }),
    );
    await client.send(new DeleteThingShadowCommand({ thingName: 'multi', shadowName: 'n03' }));
    const seen: string[][] = [];
    let nextToken: string | undefined;
    do {
      const page = await client.send(
        new ListNamedShadowsForThingCommand({ thingName: 'multi', pageSize: 2, nextToken }),
      );
      expect(page.timestamp).toBeTypeOf('number');
      seen.push(page.results ?? []);
      nextToken = page.nextToken;
    } while (nextToken !== undefined);
    expect(seen).toEqual([
      ['n01', 'n02'],
      ['n04', 'n05'],
    ]);
    const empty = await client.send(new ListNamedShadowsForThingCommand({ thingName: 'nobody' }));
    expect(empty.results).toEqual([]);
    expect(empty.nextToken).toBeUndefined();
    const tooBig = await sdkError(
      client.send(new ListNamedShadowsForThingCommand({ thingName: 'multi', pageSize: 101 })),
    );
    expect(tooBig).toMatchObject({ name: 'InvalidRequestException', status: 400 });
    expect(tooBig.message).toContain("at 'pageSize' failed to satisfy constraint");
    expect(
      await sdkError(
        client.send(new ListNamedShadowsForThingCommand({ thingName: 'multi', nextToken: 'garbage' })),
      ),
    ).toEqual({ name: 'InvalidRequestException', message: 'Invalid nextToken', status: 400 });
  });

  it('Publish to a plain topic reaches MQTT subscribers with its QoS; the SDK percent-encodes the slashes', async () => {
    await client.send(
      new PublishCommand({ topic: 'my/things/lamp/state', qos: 1, payload: json({ temperature: 21.5 }) }),
    );
    const message = await device.take('my/things/lamp/state');
    expect(message.json).toEqual({ temperature: 21.5 });
    expect(message.qos).toBe(1);
    expect(
      await sdkError(client.send(new PublishCommand({ topic: 'my/+/x', payload: json({}) }))),
    ).toMatchObject({
      name: 'InvalidRequestException',
      status: 400,
    });
    expect(
      await sdkError(client.send(new PublishCommand({ topic: 'my/x', qos: 2, payload: json({}) }))),
    ).toMatchObject({
      name: 'InvalidRequestException',
    });
  });

  it('Publish to a shadow request topic is processed like a device publish: answers go to MQTT, errors too', async () => {
    const published = await client.send(
      new PublishCommand({
        topic: '$aws/things/relay/shadow/update',
        payload: json({ state: { reported: { on: 1 } }, clientToken: 'p1' }),
      }),
    );
    expect(published.$metadata.httpStatusCode).toBe(200);
    expect((await device.take('$aws/things/relay/shadow/update/accepted')).json).toMatchObject({
      version: 1,
      clientToken: 'p1',
    });
    expect(service.engine.read({ thingName: 'relay' })).toMatchObject({
      version: 1,
      state: { reported: { on: 1 } },
    });
    await client.send(
      new PublishCommand({
        topic: '$aws/things/relay/shadow/update',
        payload: json({ state: {}, version: 9, clientToken: 'p2' }),
      }),
    );
    expect((await device.take('$aws/things/relay/shadow/update/rejected')).json).toEqual({
      code: 409,
      message: 'Version conflict',
      timestamp: expect.any(Number),
      clientToken: 'p2',
    });
    await client.send(
      new PublishCommand({ topic: '$aws/things/relay/shadow/get', payload: json({ clientToken: 'p3' }) }),
    );
    expect((await device.take('$aws/things/relay/shadow/get/accepted')).json).toMatchObject({
      version: 1,
      clientToken: 'p3',
    });
  });
});

describe('quotas over HTTP', () => {
  it('429 ThrottlingException "Rate exceeded" beyond the per-thing request rate', async () => {
    const limited = await startShadowService({ limits: { requestsPerSecondPerThing: 3 } });
    const c = sdk(limited);
    try {
      for (let i = 0; i < 3; i++)
        await c.send(
          new UpdateThingShadowCommand({ thingName: 'busy', payload: json({ state: { reported: { i } } }) }),
        );
      expect(await sdkError(c.send(new GetThingShadowCommand({ thingName: 'busy' })))).toEqual({
        name: 'ThrottlingException',
        message: 'Rate exceeded',
        status: 429,
      });
      // Other things are not affected.
      expect(
        (await c.send(new UpdateThingShadowCommand({ thingName: 'calm', payload: json({ state: {} }) })))
          .$metadata.httpStatusCode,
      ).toBe(200);
    } finally {
      c.destroy();
      await limited.close();
    }
  });
});

describe('SigV4 verification', () => {
  it('accepts requests signed with the configured key and answers 403 ForbiddenException otherwise', async () => {
    const credentials = { accessKeyId: 'AKIDLOCAL', secretAccessKey: 'local-secret' };
    const signed = await startShadowService({ requireSigV4: credentials });
    const good = sdk(signed, { credentials });
    const badSecret = sdk(signed, { credentials: { accessKeyId: 'AKIDLOCAL', secretAccessKey: 'wrong' } });
    const badKey = sdk(signed, { credentials: { accessKeyId: 'OTHER', secretAccessKey: 'local-secret' } });
    try {
      await good.send(
        new UpdateThingShadowCommand({
          thingName: 'sig',
          shadowName: 'a$b',
          payload: json({ state: { reported: { x: 1 } } }),
        }),
      );
      expect(
        parse((await good.send(new GetThingShadowCommand({ thingName: 'sig', shadowName: 'a$b' }))).payload),
      ).toMatchObject({ version: 1 });
      await good.send(new ListNamedShadowsForThingCommand({ thingName: 'sig', pageSize: 5 }));
      await good.send(
        new PublishCommand({ topic: 'my/things/sig/state (1)', qos: 1, payload: json({ t: 1 }) }),
      );
      expect(
        await sdkError(badSecret.send(new GetThingShadowCommand({ thingName: 'sig', shadowName: 'a$b' }))),
      ).toEqual({
        name: 'ForbiddenException',
        message: SIGV4_MESSAGES.mismatch,
        status: 403,
      });
      expect(await sdkError(badKey.send(new GetThingShadowCommand({ thingName: 'sig' })))).toMatchObject({
        name: 'ForbiddenException',
        message: SIGV4_MESSAGES.unknownKey,
      });
      const unsigned = await fetch(`${signed.httpEndpoint}/things/sig/shadow?name=a%24b`);
      expect(unsigned.status).toBe(403);
      expect(await unsigned.json()).toEqual({
        __type: 'ForbiddenException',
        message: 'Missing Authentication Token',
      });
    } finally {
      for (const c of [good, badSecret, badKey]) c.destroy();
      await signed.close();
    }
  });
});

describe('edge cases of the HTTP front', () => {
  it('400 for a path label that is not valid percent-encoding', async () => {
    const response = await fetch(`${service.httpEndpoint}/things/bad%E0%A4/shadow`);
    expect(response.status).toBe(400);
    expect(await response.json()).toEqual({
      __type: 'InvalidRequestException',
      message: 'Invalid percent-encoding in thingName',
    });
  });

  it('413 for a chunked body that grows past the limit without announcing its length', async () => {
    const front = await startHttpFront(createShadowEngine(), { maxPayloadBytes: 1000 });
    try {
      const status = await new Promise<number>((resolve, reject) => {
        const req = httpRequest(`${front.endpoint}/things/big/shadow`, { method: 'POST' }, (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        });
        req.on('error', reject);
        // Two chunks, the second sent once the first left: the body passes the limit only with the second.
        req.write('x'.repeat(800), () => req.end('y'.repeat(800)));
      });
      expect(status).toBe(413);
    } finally {
      await front.close();
    }
  });

  it('close() lets a request the engine is applying get its answer, instead of cutting the connection', async () => {
    const engine = createShadowEngine();
    let entered!: () => void;
    const inside = new Promise<void>((resolve) => {
      entered = resolve;
    });
    let release!: () => void;
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    // The real engine, reached only once the test let go: close() is called while the update is in progress.
    const gated: ShadowEngineApi = {
      async handle(request) {
        entered();
        await gate;
        return engine.handle(request);
      },
      listNamedShadows: (thingName, page) => engine.listNamedShadows(thingName, page),
      onMessage: (listener) => engine.onMessage(listener),
    };
    const front = await startHttpFront(gated);
    const c = new IoTDataPlaneClient({
      endpoint: front.endpoint,
      region: 'us-east-1',
      credentials: { accessKeyId: 'x', secretAccessKey: 'y' },
      maxAttempts: 1,
    });
    const call = c.send(
      new UpdateThingShadowCommand({
        thingName: 'lamp',
        payload: json({ state: { desired: { on: true } } }),
      }),
    );
    await inside;
    const closed = front.close();
    release();
    const answer = await call.then(
      (output) => parse(output.payload),
      (error: Error) => `${error.name}: ${error.message}`,
    );
    await closed;
    c.destroy();
    await engine.close();
    expect(answer).toMatchObject({ state: { desired: { on: true } }, version: 1 });
  });

  it('400 for a pageSize that is not an integer, naming the value as sent', async () => {
    for (const raw of ['1.5', 'ten']) {
      const response = await fetch(
        `${service.httpEndpoint}/api/things/shadow/ListNamedShadowsForThing/multi?pageSize=${raw}`,
      );
      expect(response.status).toBe(400);
      expect(response.headers.get('x-amzn-errortype')).toBe('InvalidRequestException');
      expect(await response.json()).toEqual({
        __type: 'InvalidRequestException',
        message: `1 validation error detected: Value '${raw}' at 'pageSize' failed to satisfy constraint: Member must be an integer`,
      });
    }
  });

  it('close() does not wait for a request whose body never finishes arriving', async () => {
    // The console hook sees every request first (and declines this one): it tells when the server started it.
    let started: (url: string | undefined) => void = () => {};
    const requestStarted = new Promise<string | undefined>((resolve) => {
      started = resolve;
    });
    const front = await startHttpFront(createShadowEngine(), {
      console: (req) => {
        started(req.url);
        return false;
      },
    });
    const socket = connect(front.port, '127.0.0.1');
    socket.setNoDelay(true);
    await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
    socket.write('POST /things/lamp/shadow HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{"state"');
    const ended = new Promise<void>((resolve) => socket.once('close', () => resolve()));
    expect(await requestStarted).toBe('/things/lamp/shadow');
    await front.close();
    await ended;
  });

  it('accepts and drops a Publish to a plain topic when no broker is attached', async () => {
    const engine = createShadowEngine();
    const front = await startHttpFront(engine);
    const c = new IoTDataPlaneClient({
      endpoint: front.endpoint,
      region: 'us-east-1',
      credentials: { accessKeyId: 'x', secretAccessKey: 'y' },
    });
    try {
      const published = await c.send(new PublishCommand({ topic: 'plain/topic', payload: json({ a: 1 }) }));
      expect(published.$metadata.httpStatusCode).toBe(200);
    } finally {
      c.destroy();
      await front.close();
    }
  });

  it('rejects unknown and invalid options of the HTTP front and of the service with ShadowOptionsError', async () => {
    const invalidFront: unknown[] = [
      { colour: 1 },
      { host: '' },
      { port: 70000 },
      { maxPayloadBytes: 0 },
      { publish: 'broker' },
      { requireSigV4: { accessKeyId: '', secretAccessKey: 's' } },
    ];
    for (const options of invalidFront)
      expect(() => resolveHttpFrontOptions(options as never), JSON.stringify(options)).toThrow(
        ShadowOptionsError,
      );
    const invalidService: unknown[] = [{ colour: 1 }, { httpPort: -1 }, { mqttPort: 1.5 }, { host: '' }];
    for (const options of invalidService)
      expect(() => resolveShadowServiceOptions(options as never), JSON.stringify(options)).toThrow(
        ShadowOptionsError,
      );
    await expect(startShadowService({ limits: { maxDepth: 0 } })).rejects.toThrow(ShadowOptionsError);
  });

  it('fails to start on an HTTP port in use, releasing the MQTT port it had already bound', async () => {
    const busy = await startShadowService();
    const mqttPort = await freePort();
    try {
      await expect(
        startShadowService({ httpPort: Number(new URL(busy.httpEndpoint).port), mqttPort }),
      ).rejects.toThrow(/EADDRINUSE/);
      // The MQTT port is free again: a new service can take it.
      const again = await startShadowService({ mqttPort });
      expect(again.mqttUrl).toBe(`mqtt://127.0.0.1:${mqttPort}`);
      await again.close();
    } finally {
      await busy.close();
    }
  });
});

describe('lifecycle', () => {
  it('close() releases the HTTP and MQTT ports', async () => {
    const temporary = await startShadowService();
    const ports = [new URL(temporary.httpEndpoint).port, new URL(temporary.mqttUrl).port].map(Number);
    const c = sdk(temporary);
    await c.send(new UpdateThingShadowCommand({ thingName: 'x', payload: json({ state: {} }) }));
    await temporary.close();
    c.destroy();
    for (const port of ports) {
      const refused = await new Promise<boolean>((resolve) => {
        const socket = connect(port, '127.0.0.1');
        socket.once('connect', () => {
          socket.destroy();
          resolve(false);
        });
        socket.once('error', () => resolve(true));
      });
      expect(refused).toBe(true);
    }
  });
});
