/**
 * The in-process SDK request handler with the real AWS SDK client: no sockets, the same answers and errors as
 * the HTTP front (checked side by side against a running service for the same request sequence), and the
 * shadow-sync engine on top of it.
 */
import {
  DeleteThingShadowCommand,
  GetThingShadowCommand,
  IoTDataPlaneClient,
  ListNamedShadowsForThingCommand,
  PublishCommand,
  UpdateThingShadowCommand,
} from '@aws-sdk/client-iot-data-plane';
import { afterEach, describe, expect, it } from 'vitest';
import { inProcessRequestHandler } from '../../src/emulator/in-process-request-handler.js';
import { createShadowEngine } from '../../src/emulator/shadow-engine.js';
import { type ShadowService, startShadowService } from '../../src/emulator/start-shadow-service.js';
import { ShadowOptionsError } from '../../src/errors.js';
import { awsTransport } from '../../src/transports/aws.js';
import { createShadowClient } from '../../src/update/shadow-client.js';

const credentials = { accessKeyId: 'test', secretAccessKey: 'test' };
const encode = (value: unknown) => new TextEncoder().encode(JSON.stringify(value));
const decode = (payload: Uint8Array | undefined) =>
  JSON.parse(new TextDecoder().decode(payload)) as Record<string, unknown>;

const clients: IoTDataPlaneClient[] = [];
const services: ShadowService[] = [];
afterEach(async () => {
  for (const client of clients.splice(0)) client.destroy();
  for (const service of services.splice(0)) await service.close();
});

function inProcessClient(engine = createShadowEngine()) {
  const client = new IoTDataPlaneClient({
    region: 'us-east-1',
    credentials,
    maxAttempts: 1,
    requestHandler: inProcessRequestHandler(engine),
  });
  clients.push(client);
  return { client, engine };
}

/** What a test sees of an SDK outcome: the body of a success, or the modelled exception's name, status, message. */
async function outcome(run: () => Promise<object>) {
  try {
    const output = (await run()) as { payload?: Uint8Array; results?: string[] };
    const body = output.payload === undefined ? { results: output.results } : decode(output.payload);
    // Timestamps differ between two services; everything else must be equal.
    return { ok: JSON.parse(JSON.stringify(body, (key, value) => (key === 'timestamp' ? 0 : value))) };
  } catch (error) {
    const e = error as { name: string; message: string; $metadata: { httpStatusCode?: number } };
    return { error: e.name, status: e.$metadata.httpStatusCode, message: e.message };
  }
}

/** One request sequence covering success, each AWS rejection and the API layer's own refusals. */
function scenario(client: IoTDataPlaneClient) {
  const thingName = 'aircon-1';
  return [
    () => client.send(new GetThingShadowCommand({ thingName })),
    () => client.send(new DeleteThingShadowCommand({ thingName })),
    () =>
      client.send(
        new UpdateThingShadowCommand({ thingName, payload: encode({ state: { desired: { on: true } } }) }),
      ),
    () =>
      client.send(
        new UpdateThingShadowCommand({
          thingName,
          payload: encode({ state: { desired: { on: false } }, version: 9 }),
        }),
      ),
    () =>
      client.send(
        new UpdateThingShadowCommand({
          thingName,
          shadowName: 'cfg',
          payload: encode({ state: { reported: { a: 1 } } }),
        }),
      ),
    () =>
      client.send(new UpdateThingShadowCommand({ thingName, payload: encode({ state: { desired: [1] } }) })),
    () =>
      client.send(
        new UpdateThingShadowCommand({ thingName, payload: new TextEncoder().encode('{not json') }),
      ),
    () =>
      client.send(
        new UpdateThingShadowCommand({
          thingName,
          payload: encode({ state: { desired: { big: 'x'.repeat(9000) } } }),
        }),
      ),
    () => client.send(new GetThingShadowCommand({ thingName, shadowName: 'cfg' })),
    () => client.send(new GetThingShadowCommand({ thingName: 'bad name!' })),
    () => client.send(new ListNamedShadowsForThingCommand({ thingName })),
    () => client.send(new ListNamedShadowsForThingCommand({ thingName, pageSize: 0 })),
    () =>
      client.send(
        new PublishCommand({
          topic: `$aws/things/${thingName}/shadow/update`,
          payload: encode({ state: { reported: { on: true } } }),
        }),
      ),
    () => client.send(new GetThingShadowCommand({ thingName })),
    () => client.send(new DeleteThingShadowCommand({ thingName })),
    () => client.send(new GetThingShadowCommand({ thingName })),
  ];
}

describe('inProcessRequestHandler with the real AWS SDK client', () => {
  it('answers every request exactly as the HTTP front does', async () => {
    const service = await startShadowService({});
    services.push(service);
    const overHttp = new IoTDataPlaneClient({
      region: 'us-east-1',
      credentials,
      maxAttempts: 1,
      endpoint: service.httpEndpoint,
    });
    clients.push(overHttp);
    const { client: inProcess } = inProcessClient();
    const viaHttp = [];
    for (const step of scenario(overHttp)) viaHttp.push(await outcome(step));
    const viaHandler = [];
    for (const step of scenario(inProcess)) viaHandler.push(await outcome(step));
    expect(viaHandler).toEqual(viaHttp);
    // The sequence meets the errors it is meant to: not found, conflict, bad request, too large, bad name.
    expect(viaHandler.map((result) => result.error).filter(Boolean)).toEqual([
      'ResourceNotFoundException',
      'ResourceNotFoundException',
      'ConflictException',
      'InvalidRequestException',
      'InvalidRequestException',
      'RequestEntityTooLargeException',
      'InvalidRequestException',
      'InvalidRequestException',
      'ResourceNotFoundException',
    ]);
  });

  it('answers from the engine it was given, with no socket', async () => {
    const { client, engine } = inProcessClient();
    await client.send(
      new UpdateThingShadowCommand({
        thingName: 'lamp',
        payload: encode({ state: { desired: { on: true } } }),
      }),
    );
    expect(engine.read({ thingName: 'lamp' })).toMatchObject({
      state: { desired: { on: true } },
      version: 1,
    });
  });

  it('carries the shadow-sync engine: intents, conflicts resolved, typed errors', async () => {
    const { client } = inProcessClient();
    const shadows = createShadowClient({ transport: awsTransport(client) });
    const lamp = shadows.shadow('lamp');
    await Promise.all(
      Array.from({ length: 5 }, () =>
        lamp.update((current) => ({ desired: { count: Number(current?.state.desired?.count ?? 0) + 1 } })),
      ),
    );
    expect((await lamp.get()).state.desired).toEqual({ count: 5 });
    await lamp.delete();
    await expect(lamp.get()).rejects.toMatchObject({
      name: 'ShadowNotFoundError',
      awsCode: 'ResourceNotFoundException',
    });
  });

  it('refuses unknown options', () => {
    expect(() => inProcessRequestHandler(createShadowEngine(), { port: 1 } as never)).toThrow(
      ShadowOptionsError,
    );
  });

  it('rejects a request whose signal is already aborted, as the SDK expects', async () => {
    const { client } = inProcessClient();
    const controller = new AbortController();
    controller.abort();
    await expect(
      client.send(new GetThingShadowCommand({ thingName: 'lamp' }), { abortSignal: controller.signal }),
    ).rejects.toMatchObject({ name: 'AbortError' });
  });
});
