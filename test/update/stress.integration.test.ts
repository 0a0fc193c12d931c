/**
 * Stress tests against the local shadow service: N independent clients (each with its own transport and
 * its own connection, sharing nothing) each make K read-modify-write increments on one shadow. The final
 * counter must be exactly N x K and every committed version distinct. The service's per-thing rate limit
 * is raised so that the test measures conflict resolution, not the quota.
 */
import { Agent } from 'node:http';
import { IoTDataPlaneClient } from '@aws-sdk/client-iot-data-plane';
import type { MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { JsonObject } from '../../src/core/document.js';
import { type ShadowService, startShadowService } from '../../src/emulator/index.js';
import { awsTransport } from '../../src/transports/aws.js';
import { mqttTransport } from '../../src/transports/mqtt.js';
import type { ShadowTransport } from '../../src/transports/transport.js';
import { createShadowClient } from '../../src/update/shadow-client.js';
import type { ShadowEvent } from '../../src/update/shadow-events.js';
import { connectMqtt } from '../transports/connect-mqtt.js';

const WRITERS = 8;
const INCREMENTS = 10;

let service: ShadowService;
const committedVersions = new Map<string, number[]>();
const cleanups: Array<() => Promise<unknown> | unknown> = [];

beforeAll(async () => {
  service = await startShadowService({
    limits: { requestsPerSecondPerThing: 100_000, maxInFlightPerThing: 10_000 },
  });
  // Every version the service commits, per shadow, as an independent observer sees it on MQTT.
  const observer = await connectMqtt(service.mqttUrl, 'observer');
  cleanups.push(() => observer.endAsync());
  await observer.subscribeAsync('$aws/things/+/shadow/update/documents', { qos: 1 });
  observer.on('message', (topic, payload) => {
    const thing = topic.split('/')[2] as string;
    const body = JSON.parse(payload.toString()) as { current: { version: number } };
    const list = committedVersions.get(thing) ?? [];
    list.push(body.current.version);
    committedVersions.set(thing, list);
  });
});

afterAll(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup();
  await service.close();
});

function httpTransport(): ShadowTransport {
  const agent = new Agent({ keepAlive: true, noDelay: true } as ConstructorParameters<typeof Agent>[0]);
  const client = new IoTDataPlaneClient({
    endpoint: service.httpEndpoint,
    region: 'us-east-1',
    credentials: { accessKeyId: 'x', secretAccessKey: 'y' },
    maxAttempts: 1,
    requestHandler: { httpAgent: agent },
  });
  cleanups.push(() => {
    client.destroy();
    agent.destroy();
  });
  return awsTransport(client);
}

async function mqttTransportFor(id: string): Promise<ShadowTransport> {
  const client: MqttClient = await connectMqtt(service.mqttUrl, id);
  const transport = mqttTransport(client, { timeoutMs: 5000 });
  cleanups.push(async () => {
    await transport.close();
    await client.endAsync();
  });
  return transport;
}

async function hammer(thingName: string, transports: ShadowTransport[]) {
  const attempts: number[] = [];
  const counts = { gets: 0, updates: 0, conflicts: 0 };
  const onEvent = (event: ShadowEvent) => {
    if (event.type === 'attempt') counts[event.operation === 'get' ? 'gets' : 'updates']++;
    if (event.type === 'conflict') counts.conflicts++;
  };
  await Promise.all(
    transports.map(async (transport) => {
      const shadows = createShadowClient({
        transport,
        requestsPerSecondPerThing: 10_000,
        maxInFlightPerThing: 1_000,
        maxAttempts: 60,
        baseDelayMs: 2,
        maxDelayMs: 50,
        onEvent,
      });
      const counter = shadows.shadow(thingName);
      for (let k = 0; k < INCREMENTS; k++) {
        const result = await counter.update((current) => ({
          desired: { count: Number((current?.state.desired as JsonObject | undefined)?.count ?? 0) + 1 },
        }));
        attempts.push(result.attempts);
      }
    }),
  );
  return { attempts, counts };
}

async function expectExactCount(thingName: string, observerSeesEveryVersionOnce = true) {
  const stored = service.engine.read({ thingName });
  expect(stored && 'state' in stored ? stored.state.desired : undefined).toEqual({
    count: WRITERS * INCREMENTS,
  });
  expect(stored && 'version' in stored ? stored.version : undefined).toBe(WRITERS * INCREMENTS);
  if (!observerSeesEveryVersionOnce) return; // count N*K at version N*K: N*K commits of +1 each
  // Every committed version is distinct (and, since every write here is an increment, exactly 1..N*K).
  const deadline = Date.now() + 2000;
  while ((committedVersions.get(thingName)?.length ?? 0) < WRITERS * INCREMENTS && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  const versions = committedVersions.get(thingName) ?? [];
  expect(new Set(versions).size).toBe(versions.length);
  expect([...versions].sort((a, b) => a - b)).toEqual(
    Array.from({ length: WRITERS * INCREMENTS }, (_, i) => i + 1),
  );
}

describe(`${WRITERS} independent clients x ${INCREMENTS} increments on one shadow`, () => {
  it('over HTTP (AWS SDK client per writer): final counter is exactly N x K', async () => {
    const { attempts, counts } = await hammer(
      'counter-http',
      Array.from({ length: WRITERS }, () => httpTransport()),
    );
    expect(attempts).toHaveLength(WRITERS * INCREMENTS);
    // Every write either committed or lost a race; over HTTP each lost race costs a read as well.
    expect(counts.updates).toBe(WRITERS * INCREMENTS + counts.conflicts);
    expect(counts.gets).toBeGreaterThanOrEqual(counts.conflicts);
    await expectExactCount('counter-http');
  });

  it('over MQTT (mqtt.js connection per writer): final counter is exactly N x K', async () => {
    const transports = await Promise.all(
      Array.from({ length: WRITERS }, (_, w) => mqttTransportFor(`writer-${w}`)),
    );
    const { attempts, counts } = await hammer('counter-mqtt', transports);
    expect(attempts).toHaveLength(WRITERS * INCREMENTS);
    expect(counts.updates).toBe(WRITERS * INCREMENTS + counts.conflicts);
    // update/documents told every writer the winning document before its 409 arrived: after the first read
    // of each writer, conflicts are resolved without reading.
    expect(counts.gets).toBeLessThan(WRITERS + Math.max(1, counts.conflicts / 2));
    await expectExactCount('counter-mqtt');
  });

  it('over MQTT with the service duplicating, delaying and reordering its messages: still exactly N x K', async () => {
    const transports = await Promise.all(
      Array.from({ length: WRITERS }, (_, w) => mqttTransportFor(`faulty-writer-${w}`)),
    );
    service.mqtt.faults.set({ seed: 7, duplicate: 0.3, reorder: 0.3, delay: 0.2, delayMs: [1, 10] });
    try {
      const { attempts } = await hammer('counter-faulty', transports);
      expect(attempts).toHaveLength(WRITERS * INCREMENTS);
    } finally {
      service.mqtt.faults.clear();
    }
    const stats = service.mqtt.faults.stats();
    expect(stats.duplicated).toBeGreaterThan(0);
    expect(stats.reordered).toBeGreaterThan(0);
    // The observer's own copies were duplicated too, so check the store: count N*K at version N*K.
    await expectExactCount('counter-faulty', false);
  });
});
