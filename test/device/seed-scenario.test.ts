/**
 * The seed's story as an integration test: a device reports temperature and humidity every 100 ms while an
 * app (Lambda-style: read, then write with the version read, small retry budget) changes `desired`.
 * Without a split policy every report bumps the shadow's version and the app meets 409s; with the policy the
 * readings go to the telemetry topic and the app's versioned updates go through.
 */
import type { IoTDataPlaneClient } from '@aws-sdk/client-iot-data-plane';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { JsonObject } from '../../src/core/document.js';
import { createDeviceAgent, type DeviceAgent } from '../../src/device/index.js';
import type { ShadowService } from '../../src/emulator/index.js';
import { isShadowConflictError } from '../../src/errors.js';
import { type SplitPolicy, splitPolicy } from '../../src/split/index.js';
import { awsTransport } from '../../src/transports/aws.js';
import type { ShadowTransport } from '../../src/transports/transport.js';
import { createShadowClient } from '../../src/update/shadow-client.js';
import {
  agentMqttOptions,
  mqttClient,
  readShadow,
  sdkClient,
  startService,
  waitFor,
} from './service-fixture.js';

// Real waits on purpose: this scenario is end to end (real service, real SDK over HTTP, real MQTT, the agent on
// the system clock); WAN latency and the app's pace are wall-clock behaviour that the races depend on.
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * The app runs in the cloud: each of its requests travels for `ms` before the service sees it (a Lambda
 * calling the IoT data plane). The requests themselves are the real AWS SDK's, over HTTP, to the service.
 */
function overWan(transport: ShadowTransport, ms: number): ShadowTransport {
  return {
    get: async (target, options) => {
      await sleep(ms);
      return transport.get(target, options);
    },
    update: async (target, request, options) => {
      await sleep(ms);
      return transport.update(target, request, options);
    },
    delete: async (target, options) => {
      await sleep(ms);
      return transport.delete(target, options);
    },
  };
}

let service: ShadowService;
let sdk: IoTDataPlaneClient;

beforeEach(async () => {
  // The per-thing quota is raised so that this test shows version conflicts (409), not throttling (429).
  service = await startService({ limits: { requestsPerSecondPerThing: 200 } });
  sdk = sdkClient(service);
});

afterEach(async () => {
  sdk.destroy();
  await service.close();
});

async function runScenario(policy: SplitPolicy | undefined) {
  const thingName = 'aircon';
  const agent: DeviceAgent = await createDeviceAgent({
    thingName,
    mqtt: { url: service.mqttUrl, options: agentMqttOptions },
    ...(policy === undefined ? {} : { policy }),
    onDelta: (delta) => delta,
  });
  const telemetry: JsonObject[] = [];
  const observer = await mqttClient(service.mqttUrl, 'telemetry-observer');
  observer.on('message', (_topic, payload) => telemetry.push(JSON.parse(payload.toString())));
  await observer.subscribeAsync(`my/things/${thingName}/state`, { qos: 1 });
  agent.report({ power: 'on', targetTemp: 20, temperature: 22, humidity: 40 });
  await agent.whenSynced();

  let tick = 0;
  const device = setInterval(() => {
    tick++;
    agent.report({ temperature: 22 + (tick % 10) / 10, humidity: 40 + (tick % 7) });
  }, 100);

  let conflicts = 0;
  let failed = 0;
  const app = createShadowClient({
    transport: overWan(awsTransport(sdk), 40),
    maxAttempts: 2,
    baseDelayMs: 10,
    maxDelayMs: 40,
    useKnownDocuments: false, // each Lambda invocation reads the shadow itself
    onEvent: (event) => {
      if (event.type === 'conflict') conflicts++;
    },
  });
  const shadow = app.shadow(thingName);
  const versionBefore = (await readShadow(sdk, thingName))?.version as number;
  const updates = 12;
  try {
    for (let i = 1; i <= updates; i++) {
      try {
        await shadow.update(() => ({ desired: { targetTemp: 20 + i } }));
      } catch (error) {
        if (!isShadowConflictError(error)) throw error;
        failed++;
      }
      await sleep(30);
    }
  } finally {
    clearInterval(device);
  }
  const finalTarget = (await readShadow(sdk, thingName))?.state.desired?.targetTemp;
  await waitFor(() => agent.applied()?.targetTemp === finalTarget, 'the device to apply the last target');
  await agent.whenSynced();
  const versionAfter = (await readShadow(sdk, thingName))?.version as number;
  await agent.close();
  await observer.endAsync(true);
  return { conflicts, failed, updates, versions: versionAfter - versionBefore, telemetry, ticks: tick };
}

describe('the seed scenario: device telemetry every 100 ms vs an app making versioned desired updates', () => {
  it('without a split policy the app meets 409s', async () => {
    const result = await runScenario(undefined);
    expect(result.conflicts).toBeGreaterThan(0);
    // Every reading became a shadow version.
    expect(result.versions).toBeGreaterThan(result.ticks / 2);
    expect(result.telemetry).toEqual([]);
  });

  it('with the split policy the readings go to telemetry and the app meets no 409', async () => {
    const policy = splitPolicy({
      telemetryTopic: 'my/things/{thingName}/state',
      fields: {
        power: 'shadow',
        mode: 'shadow',
        targetTemp: 'shadow',
        temperature: 'telemetry',
        humidity: 'telemetry',
      },
      otherFields: 'telemetry',
    });
    const result = await runScenario(policy);
    expect(result.conflicts).toBe(0);
    expect(result.failed).toBe(0);
    // The shadow only moves for the app's updates and the device's acknowledgements of them.
    expect(result.versions).toBeLessThanOrEqual(2 * result.updates);
    expect(result.telemetry.length).toBeGreaterThanOrEqual(result.ticks);
    expect(result.telemetry.at(-1)).toMatchObject({ state: { temperature: expect.any(Number) } });
  });
});
