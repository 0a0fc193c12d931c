import { connect as netConnect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type MqttFront, startMqttFront } from '../../src/emulator/mqtt-front.js';
import { createShadowEngine, type ShadowEngine } from '../../src/emulator/shadow-engine.js';
import { makeTestPki, type TestPem } from '../support/test-pki.js';
import { buildMqttClient, connectTestClient } from './mqtt-test-client.js';

const SERVICE = { username: 'svc', password: 'tls-service-pass' };

/** The shared test PKI, with the certificates this file uses by name ("rogue" is CN lamp from another CA). */
function makePki() {
  const made = makeTestPki(['lamp', 'fan', 'ops console']);
  const client = (cn: string) => made.clients[cn] as TestPem;
  return {
    ca: made.ca,
    server: made.server,
    lamp: client('lamp'),
    fan: client('fan'),
    ops: client('ops console'),
    rogue: made.rogue,
  };
}

/** Connects and returns 'connected', the CONNACK refusal code, or 'tls-error'. */
async function attempt(
  url: string,
  options: Parameters<typeof buildMqttClient>[1],
): Promise<string | number> {
  const client = buildMqttClient(url, options);
  return new Promise((resolve) => {
    client.once('connect', () => {
      client.end(true);
      resolve('connected');
    });
    client.once('error', (error: Error & { code?: number | string }) => {
      client.end(true);
      resolve(typeof error.code === 'number' ? error.code : 'tls-error');
    });
    client.once('close', () => resolve('tls-error'));
  });
}

describe('MQTT over TLS with client certificates (CN = thing name)', () => {
  let pki: ReturnType<typeof makePki>;
  let engine: ShadowEngine;
  let front: MqttFront;
  const warnings: string[] = [];

  beforeAll(async () => {
    pki = makePki();
    engine = createShadowEngine({
      limits: { requestsPerSecondPerThing: 10_000, maxInFlightPerThing: 10_000 },
    });
    front = await startMqttFront(engine, {
      tls: { key: pki.server.key, cert: pki.server.cert, ca: pki.ca, requestCert: true },
      auth: { serviceCredentials: SERVICE },
      logger: { warn: (message) => warnings.push(message) },
    });
  });
  afterAll(async () => {
    await front.close();
    await engine.close();
  });

  it('serves mqtts:// and lets a device whose certificate CN matches its client id use its shadow', async () => {
    expect(front.mqttUrl).toMatch(/^mqtts:\/\/127\.0\.0\.1:\d+$/);
    const lamp = await connectTestClient(front.mqttUrl, {
      clientId: 'lamp',
      tls: { ca: pki.ca, ...pki.lamp },
    });
    expect(
      await lamp.subscribe([
        '$aws/things/lamp/shadow/update/accepted',
        '$aws/things/fan/shadow/update/accepted',
      ]),
    ).toEqual([1, 128]);
    await lamp.publish('$aws/things/lamp/shadow/update', {
      state: { reported: { secure: true } },
      clientToken: 'tls',
    });
    expect((await lamp.take('$aws/things/lamp/shadow/update/accepted')).json).toMatchObject({
      state: { reported: { secure: true } },
      version: 1,
      clientToken: 'tls',
    });
    await lamp.close();
  });

  it('refuses a client id that differs from the certificate CN (CONNACK 5)', async () => {
    const before = front.stats().broker?.rejectedConnections ?? 0;
    expect(await attempt(front.mqttUrl, { clientId: 'fan', tls: { ca: pki.ca, ...pki.lamp } })).toBe(5);
    expect(front.stats().broker?.rejectedConnections).toBe(before + 1);
    expect(warnings.some((w) => w.includes("does not match certificate CN 'lamp'"))).toBe(true);
  });

  it('a device certificate cannot reach another thing even with that thing as client id', async () => {
    const fan = await connectTestClient(front.mqttUrl, { clientId: 'fan', tls: { ca: pki.ca, ...pki.fan } });
    expect(await fan.subscribe('$aws/things/lamp/shadow/update/accepted')).toEqual([128]);
    await fan.close();
  });

  it('refuses the handshake without a client certificate or with one from another CA', async () => {
    expect(await attempt(front.mqttUrl, { clientId: 'lamp', tls: { ca: pki.ca } })).toBe('tls-error');
    expect(await attempt(front.mqttUrl, { clientId: 'lamp', tls: { ca: pki.ca, ...pki.rogue } })).toBe(
      'tls-error',
    );
  });

  it('a service client over TLS (certificate + service credentials) may use every topic', async () => {
    const ops = await connectTestClient(front.mqttUrl, {
      clientId: 'ops-1',
      ...SERVICE,
      tls: { ca: pki.ca, ...pki.ops },
    });
    expect(await ops.subscribe(['$aws/things/+/shadow/update/accepted'])).toEqual([1]);
    await ops.publish('$aws/things/fan/shadow/update', { state: { desired: { speed: 2 } } });
    expect((await ops.take('$aws/things/fan/shadow/update/accepted')).json).toMatchObject({ version: 1 });
    await ops.close();
  });

  it('closing ends a connection still in its TLS handshake at once, not after the 120 s handshake timeout', async () => {
    const tlsEngine = createShadowEngine();
    const tlsFront = await startMqttFront(tlsEngine, {
      tls: { key: pki.server.key, cert: pki.server.cert, ca: pki.ca, requestCert: true },
      auth: {},
    });
    const socket = netConnect(Number(new URL(tlsFront.mqttUrl).port), '127.0.0.1');
    socket.setNoDelay(true);
    socket.on('error', () => {});
    await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
    const ended = new Promise<void>((resolve) => socket.once('close', () => resolve()));
    await tlsFront.close();
    await ended;
    await tlsEngine.close();
  }, 10_000);

  it('without requestCert, TLS only encrypts and devices are named by their client id', async () => {
    const plainEngine = createShadowEngine();
    const plain = await startMqttFront(plainEngine, {
      tls: { key: pki.server.key, cert: pki.server.cert },
      auth: {},
    });
    try {
      const d = await connectTestClient(plain.mqttUrl, { clientId: 'fan', tls: { ca: pki.ca } });
      expect(
        await d.subscribe(['$aws/things/fan/shadow/get/rejected', '$aws/things/lamp/shadow/get/rejected']),
      ).toEqual([1, 128]);
      await d.publish('$aws/things/fan/shadow/get', '');
      expect((await d.take('$aws/things/fan/shadow/get/rejected')).json).toMatchObject({ code: 404 });
      await d.close();
    } finally {
      await plain.close();
      await plainEngine.close();
    }
  });
});
