/**
 * set-desired through the local shadow service with the real AWS SDK, while a device (a real mqtt.js client)
 * keeps reporting telemetry into the same shadow: the seed's failure (409s on the app's versioned writes) does not
 * reach the app, and no desired change is lost.
 */
import type { MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSetDesiredHandler } from '../../examples/lambdas/set-desired.js';
import { type ShadowService, startShadowService } from '../../src/emulator/index.js';
import { createShadowClient, type ShadowEvent, type ShadowTransport } from '../../src/index.js';
import { awsTransport } from '../../src/transports/aws.js';
import { connectMqtt } from '../transports/connect-mqtt.js';
import { ownerClaims, putDesiredEvent, silentLogger } from './lambda-events.js';
import { type LocalSdk, localSdk } from './local-clients.js';

let service: ShadowService;
let sdk: LocalSdk;
let device: MqttClient;

beforeAll(async () => {
  // The churning device below reports about 100 times a second, above AWS's 20 requests/s per thing, so that the
  // app's writes conflict within a short test; the quota is raised so that it is conflicts, not throttling, the
  // handler has to resolve (the 429 test uses the real quota).
  service = await startShadowService({
    limits: { requestsPerSecondPerThing: 10_000, maxInFlightPerThing: 100 },
  });
  sdk = localSdk(service.httpEndpoint);
  device = await connectMqtt(service.mqttUrl, 'aircon-1');
  await device.subscribeAsync('$aws/things/+/shadow/update/accepted', { qos: 1 });
  await device.publishAsync(
    '$aws/things/aircon-1/shadow/update',
    JSON.stringify({ state: { reported: { power: 'off' } } }),
    {
      qos: 1,
    },
  );
});

afterAll(async () => {
  await device.endAsync();
  sdk.close();
  await service.close();
});

const body = (response: { body?: string | undefined }) => JSON.parse(response.body ?? 'null');

/** Reports telemetry into the shadow every few milliseconds (the seed's device) until stopped. */
function churn(thing: string) {
  let stopped = false;
  let reports = 0;
  const done = (async () => {
    while (!stopped) {
      await device.publishAsync(
        `$aws/things/${thing}/shadow/update`,
        JSON.stringify({ state: { reported: { temperature: 20 + (reports++ % 10) / 10 } } }),
        { qos: 1 },
      );
      // Real pacing on purpose: a device reporting on its own wall-clock schedule while the Lambda runs
      // against the live service is the scenario (end to end); it only shapes the load.
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  })();
  return async () => {
    stopped = true;
    await done;
    return reports;
  };
}

/** A device report over MQTT, resolved once the service accepted it. */
async function deviceReport(thing: string, reported: object): Promise<void> {
  const accepted = new Promise<void>((resolve) => {
    const onMessage = (topic: string) => {
      if (topic !== `$aws/things/${thing}/shadow/update/accepted`) return;
      device.off('message', onMessage);
      resolve();
    };
    device.on('message', onMessage);
  });
  await device.publishAsync(`$aws/things/${thing}/shadow/update`, JSON.stringify({ state: { reported } }), {
    qos: 1,
  });
  await accepted;
}

/**
 * A transport whose next read, once armed, is followed by a device report: the app's write that follows names a
 * stale version, deterministically, like the seed's race.
 */
function racedByDevice(thing: string): ShadowTransport & { arm(): void } {
  const inner = awsTransport(sdk.client);
  let armed = false;
  let reports = 0;
  return {
    ...inner,
    arm() {
      armed = true;
    },
    async get(target, call) {
      const document = await inner.get(target, call);
      if (armed) {
        armed = false;
        await deviceReport(thing, { temperature: 19.5 + reports++ / 10 });
      }
      return document;
    },
  };
}

describe('set-desired on the local service', () => {
  it('resolves the conflict a device report causes between the read and the write, every time', async () => {
    const events: ShadowEvent[] = [];
    const transport = racedByDevice('aircon-1');
    const handler = createSetDesiredHandler({
      // As lambdaShadowClient configures it (every invocation reads first), over the racing transport.
      shadows: createShadowClient({
        transport,
        useKnownDocuments: false,
        onEvent: (event) => events.push(event),
      }),
      logger: silentLogger(),
    });
    const temps = [17, 19, 21, 23, 25];
    const versions: number[] = [];
    for (const targetTemp of temps) {
      transport.arm();
      const response = await handler(
        putDesiredEvent('aircon-1', JSON.stringify({ targetTemp }), ownerClaims('aircon-1')),
      );
      expect(response.statusCode, response.body).toBe(200);
      versions.push(body(response).version);
    }
    // Every change lost its first write to the device and committed on the next attempt.
    expect(events.filter((event) => event.type === 'conflict')).toHaveLength(temps.length);
    expect(versions).toEqual([...versions].sort((a, b) => a - b));
    const document = await awsTransport(sdk.client).get({ thingName: 'aircon-1' });
    expect(document?.version).toBe(versions.at(-1));
    expect(document?.state.desired).toEqual({ targetTemp: 25 });
    expect(document?.state.reported?.temperature).toBeTypeOf('number');
  });

  it('commits concurrent changes from separate Lambda instances while the device churns the version', async () => {
    // One shadow client per invocation, as concurrent invocations run in separate Lambda instances.
    const invoke = (change: object) =>
      createSetDesiredHandler({ shadows: sdk.shadows(), logger: silentLogger() })(
        putDesiredEvent('aircon-2', JSON.stringify(change), ownerClaims('aircon-2')),
      );
    await device.publishAsync(
      '$aws/things/aircon-2/shadow/update',
      JSON.stringify({ state: { reported: { power: 'off' } } }),
      {
        qos: 1,
      },
    );
    const stop = churn('aircon-2');
    let responses: Awaited<ReturnType<typeof invoke>>[];
    try {
      responses = await Promise.all([{ power: 'on' }, { mode: 'heat' }, { targetTemp: 27 }].map(invoke));
    } finally {
      await stop();
    }
    expect(responses.map((response) => response.statusCode)).toEqual([200, 200, 200]);
    const document = await awsTransport(sdk.client).get({ thingName: 'aircon-2' });
    expect(document?.state.desired).toEqual({ power: 'on', mode: 'heat', targetTemp: 27 });
  });

  it('never answers "already set" from a warm instance\'s stale memory (no lost update across instances)', async () => {
    await deviceReport('aircon-3', { power: 'off' });
    const instance = () => createSetDesiredHandler({ shadows: sdk.shadows(), logger: silentLogger() });
    const [a, b] = [instance(), instance()];
    const put = (handler: typeof a, power: string) =>
      handler(putDesiredEvent('aircon-3', JSON.stringify({ power }), ownerClaims('aircon-3')));
    expect((await put(a, 'on')).statusCode).toBe(200);
    expect((await put(b, 'off')).statusCode).toBe(200);
    const again = await put(a, 'on');
    expect(body(again)).toMatchObject({ skipped: false });
    const document = await awsTransport(sdk.client).get({ thingName: 'aircon-3' });
    expect(document?.state.desired).toEqual({ power: 'on' });
  });

  it('answers 404 for a thing without a shadow and does not create one', async () => {
    const handler = createSetDesiredHandler({ shadows: sdk.shadows(), logger: silentLogger() });
    const response = await handler(
      putDesiredEvent('aircon-404', '{"power":"on"}', ownerClaims('aircon-404')),
    );
    expect(response.statusCode).toBe(404);
    await expect(awsTransport(sdk.client).get({ thingName: 'aircon-404' })).resolves.toBeUndefined();
  });

  it('answers 429 with Retry-After when the service keeps throttling the thing', async () => {
    const throttled = await startShadowService({ limits: { requestsPerSecondPerThing: 1 } });
    const local = localSdk(throttled.httpEndpoint);
    try {
      await awsTransport(local.client).update(
        { thingName: 'busy' },
        { state: { reported: { power: 'off' } } },
      );
      const handler = createSetDesiredHandler({
        // The client's own limiter off and no retry budget: the service's 429 reaches the handler.
        shadows: local.shadows({ requestsPerSecondPerThing: Number.POSITIVE_INFINITY, maxAttempts: 1 }),
        logger: silentLogger(),
      });
      const response = await handler(putDesiredEvent('busy', '{"power":"on"}', ownerClaims('busy')));
      expect(response.statusCode).toBe(429);
      expect(response.headers?.['retry-after']).toBe('1');
    } finally {
      local.close();
      await throttled.close();
    }
  });
});
