/**
 * A managed mosquitto with TLS and required client certificates: the certificate CN is the thing name (mosquitto
 * `use_identity_as_username` + `%u` ACL patterns), the client id becomes the CN, and a certificate whose CN is the
 * service user gets every topic. Needs the mosquitto and openssl binaries.
 */
import { ErrorWithReasonCode } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type MqttFront, startMqttFront } from '../../src/emulator/mqtt-front.js';
import { createShadowEngine, type ShadowEngine } from '../../src/emulator/shadow-engine.js';
import { makeTestPki, type TestPki } from '../support/test-pki.js';
import { buildMqttClient, connectTestClient } from './mqtt-test-client.js';

const V5 = { protocolVersion: 5 as const };

describe('managed mosquitto over TLS with client certificates (CN = thing name)', () => {
  let pki: TestPki;
  let engine: ShadowEngine;
  let front: MqttFront;

  beforeAll(async () => {
    pki = makeTestPki(['lamp', 'ops']);
    engine = createShadowEngine({
      limits: { requestsPerSecondPerThing: 10_000, maxInFlightPerThing: 10_000 },
    });
    front = await startMqttFront(engine, {
      broker: 'mosquitto',
      tls: { key: pki.server.key, cert: pki.server.cert, ca: pki.ca, requestCert: true },
      auth: { serviceCredentials: { username: 'ops', password: 'unused-with-certificates' } },
    });
  });
  afterAll(async () => {
    await front?.close();
    await engine?.close();
  });

  const tlsFor = (name: string) => ({ ca: pki.ca, ...(pki.clients[name] ?? pki.rogue) });

  it('serves mqtts:// and a device with its certificate uses its own shadow over MQTT 5', async () => {
    expect(front.mqttUrl).toMatch(/^mqtts:\/\/127\.0\.0\.1:\d+$/);
    const lamp = await connectTestClient(front.mqttUrl, { clientId: 'lamp', tls: tlsFor('lamp'), extra: V5 });
    try {
      await lamp.subscribe('$aws/things/lamp/shadow/update/accepted');
      await lamp.publish('$aws/things/lamp/shadow/update', {
        state: { reported: { on: 1 } },
        clientToken: 't',
      });
      expect((await lamp.take('$aws/things/lamp/shadow/update/accepted')).json).toMatchObject({
        version: 1,
        clientToken: 't',
      });
    } finally {
      await lamp.close();
    }
  });

  it("the certificate decides the thing: another client id does not give another thing's topics", async () => {
    const lamp = await connectTestClient(front.mqttUrl, { clientId: 'fan', tls: tlsFor('lamp'), extra: V5 });
    try {
      const refused = await lamp.client
        .publishAsync('$aws/things/fan/shadow/update', '{"state":{}}', { qos: 1 })
        .then(
          () => undefined,
          (e: unknown) => e,
        );
      expect(refused).toBeInstanceOf(ErrorWithReasonCode);
      expect((refused as ErrorWithReasonCode).code).toBe(0x87);
      // Its own thing (the CN) works whatever client id it gave.
      await lamp.publish('$aws/things/lamp/shadow/update', { state: { reported: { on: 2 } } });
      await expect.poll(() => engine.read({ thingName: 'lamp' })?.version).toBe(2);
    } finally {
      await lamp.close();
    }
  });

  it('a certificate whose CN is the service user may use every thing', async () => {
    const ops = await connectTestClient(front.mqttUrl, { clientId: 'ops', tls: tlsFor('ops'), extra: V5 });
    try {
      await ops.subscribe('$aws/things/+/shadow/update/accepted');
      await ops.publish('$aws/things/anything/shadow/update', { state: { desired: { x: 1 } } });
      expect((await ops.take('$aws/things/anything/shadow/update/accepted')).json).toMatchObject({
        version: 1,
      });
    } finally {
      await ops.close();
    }
  });

  it('refuses a client without a certificate and one signed by another CA', async () => {
    for (const tls of [{ ca: pki.ca }, { ca: pki.ca, ...pki.rogue }]) {
      const outcome = await new Promise<string>((resolve) => {
        const client = buildMqttClient(front.mqttUrl, { clientId: 'lamp', tls, extra: V5 });
        client.once('connect', () => {
          client.end(true);
          resolve('connected');
        });
        client.once('error', () => {
          client.end(true);
          resolve('refused');
        });
        client.once('close', () => resolve('refused'));
      });
      expect(outcome).toBe('refused');
    }
  });
});
