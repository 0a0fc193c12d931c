/**
 * The reminder flow on the local service: a DynamoDB stream record starts the state machine (run by a local ASL
 * runner on the real definition), whose Task is the iterator Lambda writing through the real AWS SDK; a device
 * (a real mqtt.js client) receives each reminder as a delta.
 */
import { readFileSync } from 'node:fs';
import type { MqttClient } from 'mqtt';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createReminderIteratorHandler } from '../../examples/lambdas/reminder-iterator.js';
import { createReminderStreamHandler, type Reminder } from '../../examples/lambdas/reminder-stream.js';
import { type ShadowService, startShadowService } from '../../src/emulator/index.js';
import { awsTransport } from '../../src/transports/aws.js';
import { connectMqtt } from '../transports/connect-mqtt.js';
import { type AslDefinition, runAsl } from './asl-runner.js';
import { reminderImage, silentLogger, streamRecord } from './lambda-events.js';
import { type LocalSdk, localSdk } from './local-clients.js';

let service: ShadowService;
let sdk: LocalSdk;
let device: MqttClient;

beforeAll(async () => {
  service = await startShadowService();
  sdk = localSdk(service.httpEndpoint);
  device = await connectMqtt(service.mqttUrl, 'aircon-r');
  await device.subscribeAsync('$aws/things/aircon-r/shadow/update/delta', { qos: 1 });
});

afterAll(async () => {
  await device.endAsync();
  sdk.close();
  await service.close();
});

it('a new reminder item delivers each reminder to the device, one Wait apart', async () => {
  const definition = JSON.parse(
    readFileSync(new URL('../../examples/state-machine/reminder.asl.json', import.meta.url), 'utf8'),
  ) as AslDefinition;
  const iterator = createReminderIteratorHandler({ shadows: sdk.shadows(), logger: silentLogger() });
  const waits: number[] = [];
  const runs: Promise<{ output: unknown; path: string[] }>[] = [];
  const started = new Set<string>();
  const stream = createReminderStreamHandler({
    logger: silentLogger(),
    starter: {
      async start(name: string, input: Reminder) {
        if (started.has(name)) return false;
        started.add(name);
        runs.push(
          runAsl(definition, input, {
            tasks: { '${ReminderIteratorFunctionArn}': iterator },
            sleep: async (seconds) => {
              waits.push(seconds);
            },
          }),
        );
        return true;
      },
    },
  });
  const deltas: { sequence: number }[] = [];
  let thirdDelta: () => void = () => {};
  const threeDeltas = new Promise<void>((resolve) => {
    thirdDelta = resolve;
  });
  device.on('message', (_topic, payload) => {
    const reminder = JSON.parse(payload.toString()).state?.reminder;
    if (reminder !== undefined) deltas.push(reminder);
    if (deltas.length === 3) thirdDelta();
  });

  const record = streamRecord('INSERT', reminderImage('filter-1', 'aircon-r', 3, 45), '1');
  // Delivered twice, as streams may: one execution.
  await expect(stream({ Records: [record, record] })).resolves.toEqual({ batchItemFailures: [] });
  expect(runs).toHaveLength(1);
  const { output, path } = await (runs[0] as Promise<{ output: unknown; path: string[] }>);

  expect(output).toMatchObject({ reminderId: 'filter-1', remaining: 0, sent: 3, done: true });
  expect(path).toEqual([
    'Init',
    ...Array.from({ length: 3 }, () => ['WaitInterval', 'DeliverReminder', 'MoreToSend']).flat(),
    'AllDelivered',
  ]);
  expect(waits).toEqual([45, 45, 45]);
  const document = await awsTransport(sdk.client).get({ thingName: 'aircon-r' });
  expect(document?.state.desired?.reminder).toMatchObject({
    id: 'filter-1',
    message: 'clean the filter',
    sequence: 3,
  });
  await threeDeltas;
  expect(deltas.map((reminder) => reminder.sequence)).toEqual([1, 2, 3]);
});
