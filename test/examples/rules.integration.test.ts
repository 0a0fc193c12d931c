/**
 * The rule-driven Lambdas through the local shadow service: its IoT rules (the template's SQL, via
 * `referenceRules`) invoke illegal-state-alert, telemetry-sink and desired-cleanup with the events AWS would
 * deliver, triggered by a real mqtt.js device and app writes over the real AWS SDK.
 */
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { memoryAlertStore } from '../../examples/lambdas/alert-store.js';
import {
  createIllegalStateAlertHandler,
  SEED_ILLEGAL_STATE_RULE_SQL,
} from '../../examples/lambdas/illegal-state-alert.js';
import { REFERENCE_RULE_NAMES, referenceRules } from '../../examples/lambdas/local-rules.js';
import { directoryRecordSink } from '../../examples/lambdas/record-sink.js';
import { createSetDesiredHandler } from '../../examples/lambdas/set-desired.js';
import { type ShadowService, startShadowService } from '../../src/emulator/index.js';
import { awsTransport } from '../../src/transports/aws.js';
import { connectMqtt } from '../transports/connect-mqtt.js';
import { ownerClaims, putDesiredEvent, silentLogger } from './lambda-events.js';
import { type LocalSdk, localSdk } from './local-clients.js';

let service: ShadowService;
let sdk: LocalSdk;
let device: MqttClient;
let directory: string;
const alerts = memoryAlertStore();
const seedAlerts = memoryAlertStore();

beforeAll(async () => {
  directory = await mkdtemp(join(tmpdir(), 'rules-integration-'));
  // desired-cleanup writes through the service's HTTP endpoint, which exists only once the service runs: its
  // shadow client is created lazily on first use.
  let cleanupShadows: ReturnType<LocalSdk['shadows']> | undefined;
  const lazyShadows = {
    shadow: (...args: Parameters<ReturnType<LocalSdk['shadows']>['shadow']>) => {
      cleanupShadows ??= sdk.shadows();
      return cleanupShadows.shadow(...args);
    },
  } as ReturnType<LocalSdk['shadows']>;
  const seedHandler = createIllegalStateAlertHandler({ store: seedAlerts, logger: silentLogger() });
  service = await startShadowService({
    rules: [
      ...referenceRules({
        alertStore: alerts,
        recordSink: directoryRecordSink(directory),
        cleanupShadows: lazyShadows,
        logger: silentLogger(),
      }),
      // The seed's original rule on the update request, beside the template's rule on update/documents.
      {
        name: 'SeedIllegalStateRule',
        sql: SEED_ILLEGAL_STATE_RULE_SQL,
        actions: [{ type: 'lambda', handler: (e) => seedHandler(e) }],
      },
    ],
  });
  sdk = localSdk(service.httpEndpoint);
  device = await connectMqtt(service.mqttUrl, 'dev-1');
  await device.subscribeAsync('$aws/things/+/shadow/update/accepted', { qos: 1 });
});

afterAll(async () => {
  await device.endAsync();
  sdk.close();
  await service.close();
  await rm(directory, { recursive: true, force: true });
});

/** A device report over MQTT; resolves once the service accepted it and every rule action it caused finished. */
async function report(thing: string, reported: object, clientToken?: string): Promise<void> {
  const accepted = new Promise<void>((resolve) => {
    const onMessage = (topic: string) => {
      if (topic !== `$aws/things/${thing}/shadow/update/accepted`) return;
      device.off('message', onMessage);
      resolve();
    };
    device.on('message', onMessage);
  });
  const body = { state: { reported }, ...(clientToken === undefined ? {} : { clientToken }) };
  await device.publishAsync(`$aws/things/${thing}/shadow/update`, JSON.stringify(body), { qos: 1 });
  await accepted;
  await settle();
}

/**
 * Waits until every rule action finished, including the ones an action's own writes triggered: every action
 * here is a Lambda whose writes go through the HTTP data plane and are awaited, and the service hands the
 * resulting messages to the rules before it answers the write, so those actions start before the one that
 * caused them ends, and `idle()` waits for them as well.
 */
async function settle(): Promise<void> {
  await service.rules.idle();
}

describe('illegal-state rule -> illegal-state-alert', () => {
  it('records one alert per entry into the illegal state, keyed by the committed version', async () => {
    await report('dev-1', { power: 'on' }); // v1
    await report('dev-1', { someIllegalState: true }, 'c2'); // v2: entered
    await report('dev-1', { temperature: 21 }, 'c3'); // v3: still illegal
    await report('dev-1', { someIllegalState: false }, 'c4'); // v4: legal
    await report('dev-1', { someIllegalState: true }, 'c5'); // v5: entered again
    expect(alerts.alerts.filter((a) => a.deviceId === 'dev-1').map((a) => a.alertKey)).toEqual(['v2', 'v5']);
    expect(alerts.alerts[0]?.reported).toMatchObject({ power: 'on', someIllegalState: true });
    const stats = service.rules.stats()[REFERENCE_RULE_NAMES.illegalState];
    expect(stats).toMatchObject({ matched: 3, actionsFailed: 0 }); // v2, v3 and v5 match the WHERE clause
  });

  it("the seed's rule on the update request reaches the same handler, keyed by clientToken", () => {
    expect(seedAlerts.alerts.map((a) => [a.deviceId, a.alertKey])).toEqual([
      ['dev-1', 'token:c2'],
      ['dev-1', 'token:c5'],
    ]);
  });
});

describe('telemetry rule -> telemetry-sink', () => {
  it('writes the split telemetry topic as partitioned NDJSON in the directory', async () => {
    const before = Date.now();
    for (const temperature of [22.5, 22.7]) {
      await device.publishAsync(
        'my/things/dev-1/state',
        JSON.stringify({ state: { temperature, humidity: 40 }, timestamp: Date.now() }),
        {
          qos: 1,
        },
      );
    }
    const deadline = Date.now() + 5000;
    let files: string[] = [];
    while (Date.now() < deadline) {
      await settle();
      files = await readdir(join(directory, 'thing=dev-1'), { recursive: true }).catch(() => []);
      if (files.filter((f) => f.endsWith('.ndjson')).length >= 2) break;
    }
    const records = files.filter((f) => f.endsWith('.ndjson'));
    expect(records).toHaveLength(2);
    const at = new Date(before);
    const partition = `date=${at.toISOString().slice(0, 10)}`;
    for (const file of records) {
      expect(file).toMatch(/^date=\d{4}-\d{2}-\d{2}\/hour=\d{2}\/[0-9a-f-]{36}\.ndjson$/);
      const record = JSON.parse(await readFile(join(directory, 'thing=dev-1', file), 'utf8'));
      expect(record).toMatchObject({ thingName: 'dev-1', state: { humidity: 40 } });
      expect(record.receivedAt).toBeGreaterThanOrEqual(before);
    }
    // The record crossed midnight only if the test did: compare with the receive time's own partition.
    expect(records.some((f) => f.startsWith(partition)) || new Date().getUTCDate() !== at.getUTCDate()).toBe(
      true,
    );
  });
});

describe('documents rule -> desired-cleanup', () => {
  it('removes desired values once the device reports them, so the delta stops', async () => {
    await report('dev-2', { power: 'off', targetTemp: 26 });
    const setDesired = createSetDesiredHandler({ shadows: sdk.shadows(), logger: silentLogger() });
    const response = await setDesired(
      putDesiredEvent('dev-2', '{"power":"on","targetTemp":22}', ownerClaims('dev-2')),
    );
    expect(response.statusCode).toBe(200);
    await settle();
    const pending = await awsTransport(sdk.client).get({ thingName: 'dev-2' });
    expect(pending?.state.delta).toEqual({ power: 'on', targetTemp: 22 });

    await report('dev-2', { power: 'on' }); // the device applied half of it
    const half = await awsTransport(sdk.client).get({ thingName: 'dev-2' });
    expect(half?.state.desired).toEqual({ targetTemp: 22 });
    expect(half?.state.delta).toEqual({ targetTemp: 22 });

    await report('dev-2', { targetTemp: 22 });
    const done = await awsTransport(sdk.client).get({ thingName: 'dev-2' });
    expect(done?.state.desired).toBeUndefined();
    expect(done?.state.delta).toBeUndefined();
    expect(done?.state.reported).toMatchObject({ power: 'on', targetTemp: 22 });
    expect(service.rules.stats()[REFERENCE_RULE_NAMES.documents]).toMatchObject({ actionsFailed: 0 });
  });

  it('leaves a desired value equal to an unchanged report until a report delivers it (no lost update)', async () => {
    // dev-3 is off; the app turns it on, then off again before the unit reports: the new 'off' equals the
    // stale report, but no report delivered it, so it stays.
    await report('dev-3', { power: 'off' });
    const setDesired = createSetDesiredHandler({ shadows: sdk.shadows(), logger: silentLogger() });
    for (const power of ['on', 'off']) {
      const response = await setDesired(
        putDesiredEvent('dev-3', JSON.stringify({ power }), ownerClaims('dev-3')),
      );
      expect(response.statusCode).toBe(200);
    }
    await settle();
    const waiting = await awsTransport(sdk.client).get({ thingName: 'dev-3' });
    expect(waiting?.state.desired).toEqual({ power: 'off' });
    expect(waiting?.state.delta).toBeUndefined(); // equal to reported: the unit is not disturbed

    await report('dev-3', { power: 'on' }); // the unit finishes applying 'on'
    const behind = await awsTransport(sdk.client).get({ thingName: 'dev-3' });
    expect(behind?.state.delta).toEqual({ power: 'off' }); // the last wish is still there to correct it

    await report('dev-3', { power: 'off' }); // it follows the delta: this report delivers the wish
    const done = await awsTransport(sdk.client).get({ thingName: 'dev-3' });
    expect(done?.state.desired).toBeUndefined();
    expect(done?.state.delta).toBeUndefined();
    expect(service.rules.stats()[REFERENCE_RULE_NAMES.documents]).toMatchObject({ actionsFailed: 0 });
  });
});
