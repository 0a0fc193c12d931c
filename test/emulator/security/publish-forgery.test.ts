/**
 * Nobody but the service publishes the shadow service's answers: the data-plane Publish API and MQTT clients
 * (service clients and an open broker included) are refused on the response topics (`accepted`, `rejected`,
 * `delta`, `documents`, classic and named) and on `$SYS/`; topics with NUL are refused with 400.
 */
import { IoTDataPlaneClient, PublishCommand } from '@aws-sdk/client-iot-data-plane';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { type ShadowService, startShadowService } from '../../../src/emulator/index.js';
import { connectTestClient, type TestClient } from '../mqtt-test-client.js';

const FORGED = [
  '$aws/things/B/shadow/update/accepted',
  '$aws/things/B/shadow/update/rejected',
  '$aws/things/B/shadow/update/delta',
  '$aws/things/B/shadow/update/documents',
  '$aws/things/B/shadow/get/accepted',
  '$aws/things/B/shadow/get/rejected',
  '$aws/things/B/shadow/delete/accepted',
  '$aws/things/B/shadow/delete/rejected',
  '$aws/things/B/shadow/name/cfg/update/delta',
  '$aws/things/B/shadow/name/cfg/update/accepted',
  '$aws/things/B/shadow/name/cfg/get/accepted',
];
const SENTINEL = 'my/things/B/sentinel';
const forgedDelta = JSON.stringify({ version: 99, timestamp: 1, state: { power: 'off' } });

let service: ShadowService;
let sdk: IoTDataPlaneClient;
let deviceB: TestClient;

async function sdkError(call: Promise<unknown>): Promise<{ name: string; status: number | undefined }> {
  try {
    await call;
  } catch (error) {
    const e = error as { name: string; $metadata?: { httpStatusCode?: number } };
    return { name: e.name, status: e.$metadata?.httpStatusCode };
  }
  return { name: 'no error', status: 200 };
}

/** Everything device B received before a sentinel message sent after the attack (same path, same order). */
async function receivedBeforeSentinel(): Promise<string[]> {
  await sdk.send(new PublishCommand({ topic: SENTINEL, payload: new TextEncoder().encode('end') }));
  await deviceB.take(SENTINEL);
  // aedes announces its own events on `$SYS/<broker id>/…`; only what an attacker sent counts here.
  const attacked = new Set([...FORGED, '$SYS/broker/uptime']);
  return deviceB.received.filter((m) => attacked.has(m.topic)).map((m) => m.topic);
}

beforeEach(async () => {
  service = await startShadowService({});
  sdk = new IoTDataPlaneClient({
    endpoint: service.httpEndpoint,
    region: 'us-east-1',
    credentials: { accessKeyId: 'x', secretAccessKey: 'y' },
    maxAttempts: 1,
  });
  deviceB = await connectTestClient(service.mqttUrl, { clientId: 'B' });
  await deviceB.subscribe(['$aws/things/B/shadow/#', '$SYS/#', SENTINEL], 1);
});

afterEach(async () => {
  sdk.destroy();
  await deviceB.close();
  await service.close();
});

describe('the HTTP Publish API cannot forge the service', () => {
  it('answers 403 ForbiddenException for every shadow response topic, retained or not, and delivers nothing', async () => {
    for (const topic of FORGED) {
      for (const retain of [false, true]) {
        expect(
          await sdkError(
            sdk.send(
              new PublishCommand({ topic, retain, qos: 1, payload: new TextEncoder().encode(forgedDelta) }),
            ),
          ),
        ).toEqual({ name: 'ForbiddenException', status: 403 });
      }
    }
    expect(await receivedBeforeSentinel()).toEqual([]);
    // Nothing was retained either: a new subscriber gets nothing.
    const late = await connectTestClient(service.mqttUrl, { clientId: 'late' });
    try {
      await late.subscribe(['$aws/things/B/shadow/#', SENTINEL], 1);
      await sdk.send(new PublishCommand({ topic: SENTINEL, payload: new TextEncoder().encode('end') }));
      await late.take(SENTINEL);
      expect(late.received.filter((m) => m.topic !== SENTINEL)).toEqual([]);
    } finally {
      await late.close();
    }
  });

  it('refuses $SYS/ topics with 403 and topics containing NUL with 400', async () => {
    expect(
      await sdkError(
        sdk.send(new PublishCommand({ topic: '$SYS/broker/uptime', payload: new Uint8Array(1) })),
      ),
    ).toEqual({ name: 'ForbiddenException', status: 403 });
    expect(
      await sdkError(
        sdk.send(new PublishCommand({ topic: 'my/things/B/a\u0000b', payload: new Uint8Array(1) })),
      ),
    ).toEqual({ name: 'InvalidRequestException', status: 400 });
    expect(await receivedBeforeSentinel()).toEqual([]);
  });

  it('refuses a topic whose percent-encoding is not UTF-8 with 400 InvalidRequestException', async () => {
    const response = await fetch(`${service.httpEndpoint}/topics/my%2Fthings%2FB%2F%C3%28`, {
      method: 'POST',
    });
    expect(response.status).toBe(400);
    expect(response.headers.get('x-amzn-errortype')).toBe('InvalidRequestException');
  });

  it('still lets the Publish API reach the request topics (processed like a device publish)', async () => {
    await sdk.send(
      new PublishCommand({
        topic: '$aws/things/B/shadow/update',
        payload: new TextEncoder().encode('{"state":{"desired":{"power":"on"}}}'),
      }),
    );
    const delta = await deviceB.take('$aws/things/B/shadow/update/delta');
    expect(delta.json).toMatchObject({ state: { power: 'on' } });
  });
});

describe('MQTT clients cannot forge the service', () => {
  it('an open broker client publishing to response topics reaches nobody', async () => {
    const attacker = await connectTestClient(service.mqttUrl, { clientId: 'attacker' });
    try {
      for (const topic of FORGED) await attacker.publish(topic, forgedDelta, 1);
      await attacker.publish('$aws/things/B/shadow/update/delta', forgedDelta, 1, true);
      expect(await receivedBeforeSentinel()).toEqual([]);
    } finally {
      await attacker.close().catch(() => undefined);
    }
  });
});

describe('with service credentials', () => {
  it('a client holding the service credentials is the service: it may answer on response topics', async () => {
    // This is how a shadow-sync service that uses this broker as its external broker publishes its answers.
    await deviceB.close();
    await service.close();
    service = await startShadowService({ auth: { serviceCredentials: { username: 'svc', password: 'pw' } } });
    deviceB = await connectTestClient(service.mqttUrl, { clientId: 'B' });
    await deviceB.subscribe(['$aws/things/B/shadow/update/delta'], 1);
    const app = await connectTestClient(service.mqttUrl, {
      clientId: 'app',
      username: 'svc',
      password: 'pw',
    });
    try {
      await app.publish('$aws/things/B/shadow/update/delta', forgedDelta, 1);
      expect((await deviceB.take('$aws/things/B/shadow/update/delta')).json).toMatchObject({ version: 99 });
    } finally {
      await app.close();
    }
  });
});
