/**
 * Smaller findings: a retained request is processed but never stored or replayed, QoS 2 publishes and
 * subscriptions are refused the way AWS IoT refuses them (no PUBREC or SUBACK; the connection is closed), an empty client id is refused under the
 * device policy, and malformed HTTP framing gets AWS's error shape instead of Node's bare 400/431.
 */
import { connect } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { type ShadowService, startShadowService } from '../../../src/emulator/index.js';
import { connectTestClient } from '../mqtt-test-client.js';
import { connectPacket, publishPacket, rawConnect, subscribePacket } from './raw-mqtt.js';

const CONNACK_OK = Buffer.from([0x20, 2, 0, 0]);
let service: ShadowService | undefined;
afterEach(async () => {
  await service?.close();
  service = undefined;
});

async function version(thingName: string): Promise<number | undefined> {
  const result = await (service as ShadowService).engine.handle({
    operation: 'get',
    target: { thingName },
    payload: new Uint8Array(0),
    origin: 'http',
  });
  return result.ok ? (result.body as { version: number }).version : undefined;
}

describe('retained requests', () => {
  it('a retained publish to /update is applied once and never stored nor replayed to later subscribers', async () => {
    service = await startShadowService({});
    const device = await connectTestClient(service.mqttUrl, { clientId: 'lamp' });
    try {
      await device.subscribe('$aws/things/lamp/shadow/update/accepted', 1);
      await device.publish('$aws/things/lamp/shadow/update', { state: { reported: { on: true } } }, 1, true);
      await device.take('$aws/things/lamp/shadow/update/accepted');
      const late = await connectTestClient(service.mqttUrl, { clientId: 'late' });
      try {
        await late.subscribe(['$aws/things/lamp/shadow/update', 'my/things/lamp/end'], 1);
        await device.publish('my/things/lamp/end', 'end', 1);
        await late.take('my/things/lamp/end');
        expect(late.received.map((m) => m.topic)).toEqual(['my/things/lamp/end']);
      } finally {
        await late.close();
      }
      expect(await version('lamp')).toBe(1);
    } finally {
      await device.close();
    }
  });
});

describe('QoS 2', () => {
  it('a QoS 2 publish to /update gets no PUBREC, closes the connection and is not applied', async () => {
    service = await startShadowService({});
    const port = Number(new URL(service.mqttUrl).port);
    const connection = await rawConnect(port);
    await connection.write(connectPacket('lamp'));
    expect((await connection.bytes(4)).subarray(0, 4)).toEqual(CONNACK_OK);
    await connection.write(
      publishPacket('$aws/things/lamp/shadow/update', '{"state":{"reported":{"on":true}}}', {
        qos: 2,
        packetId: 7,
      }),
    );
    await connection.closed;
    expect(connection.received()).toEqual(CONNACK_OK); // no PUBREC (0x50) after the CONNACK
    expect(await version('lamp')).toBeUndefined();
  });

  it('a QoS 2 SUBSCRIBE gets no SUBACK and closes the connection; the same filter at QoS 1 is granted', async () => {
    service = await startShadowService({});
    const port = Number(new URL(service.mqttUrl).port);
    const filter = '$aws/things/lamp/shadow/update/accepted';
    const refused = await rawConnect(port);
    await refused.write(connectPacket('lamp'));
    expect((await refused.bytes(4)).subarray(0, 4)).toEqual(CONNACK_OK);
    await refused.write(subscribePacket(filter, 2, 9));
    await refused.closed;
    expect(refused.received()).toEqual(CONNACK_OK); // no SUBACK (0x90) after the CONNACK

    const granted = await rawConnect(port);
    await granted.write(connectPacket('lamp'));
    expect((await granted.bytes(4)).subarray(0, 4)).toEqual(CONNACK_OK);
    await granted.write(subscribePacket(filter, 1, 9));
    expect((await granted.bytes(9)).subarray(4, 9)).toEqual(Buffer.from([0x90, 3, 0, 9, 1]));
    granted.destroy();
  });
});

describe('client ids under the device policy', () => {
  it('an empty client id is refused (identifier rejected), not turned into a generated thing', async () => {
    service = await startShadowService({ auth: {} });
    const port = Number(new URL(service.mqttUrl).port);
    const connection = await rawConnect(port);
    await connection.write(connectPacket(''));
    const answer = await connection.bytes(4);
    expect(answer.subarray(0, 4)).toEqual(Buffer.from([0x20, 2, 0, 2]));
    connection.destroy();
  });

  it('an empty client id with the service credentials is still accepted', async () => {
    service = await startShadowService({ auth: { serviceCredentials: { username: 'svc', password: 'pw' } } });
    const port = Number(new URL(service.mqttUrl).port);
    const connection = await rawConnect(port);
    await connection.write(connectPacket('', { username: 'svc', password: 'pw' }));
    expect((await connection.bytes(4)).subarray(0, 4)).toEqual(CONNACK_OK);
    connection.destroy();
  });
});

/** Sends raw bytes to the HTTP front and returns the raw answer. */
function rawHttp(port: number, bytes: string | Buffer): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect({ port, host: '127.0.0.1' });
    const chunks: Buffer[] = [];
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.on('close', () => resolve(Buffer.concat(chunks).toString('latin1')));
    socket.on('error', reject);
    socket.write(bytes);
  });
}

function parseAnswer(raw: string): { status: number; headers: Record<string, string>; body: string } {
  const [head = '', body = ''] = raw.split('\r\n\r\n');
  const [statusLine = '', ...lines] = head.split('\r\n');
  const headers = Object.fromEntries(
    lines.map((line) => [
      line.slice(0, line.indexOf(':')).toLowerCase(),
      line.slice(line.indexOf(':') + 1).trim(),
    ]),
  );
  return { status: Number(statusLine.split(' ')[1]), headers, body };
}

describe('malformed HTTP framing', () => {
  it('answers a request line that is not HTTP with 400 and the AWS error shape', async () => {
    service = await startShadowService({});
    const port = Number(new URL(service.httpEndpoint).port);
    const answer = parseAnswer(await rawHttp(port, 'THIS IS NOT HTTP\r\n\r\n'));
    expect(answer.status).toBe(400);
    expect(answer.headers['x-amzn-errortype']).toBe('InvalidRequestException');
    expect(JSON.parse(answer.body)).toMatchObject({ __type: 'InvalidRequestException' });
  });

  it('answers headers that are too large with 431 and the AWS error shape', async () => {
    service = await startShadowService({});
    const port = Number(new URL(service.httpEndpoint).port);
    const answer = parseAnswer(
      await rawHttp(port, `GET /things/a/shadow HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`),
    );
    expect(answer.status).toBe(431);
    expect(answer.headers['x-amzn-errortype']).toBe('InvalidRequestException');
    expect(JSON.parse(answer.body).message).toMatch(/headers/i);
  });

  it('answers a bad Content-Length with 400 and the AWS error shape', async () => {
    service = await startShadowService({});
    const port = Number(new URL(service.httpEndpoint).port);
    const answer = parseAnswer(
      await rawHttp(port, 'POST /things/a/shadow HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n'),
    );
    expect(answer.status).toBe(400);
    expect(answer.headers['x-amzn-errortype']).toBe('InvalidRequestException');
  });
});
