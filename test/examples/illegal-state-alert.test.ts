/** Unit tests of illegal-state-alert on the IoT rule events, with its DynamoDB store mocked by aws-sdk-client-mock. */
import {
  ConditionalCheckFailedException,
  DynamoDBClient,
  ProvisionedThroughputExceededException,
  PutItemCommand,
} from '@aws-sdk/client-dynamodb';
import { mockClient } from 'aws-sdk-client-mock';
import { afterEach, describe, expect, it } from 'vitest';
import { dynamoAlertStore, memoryAlertStore } from '../../examples/lambdas/alert-store.js';
import { createIllegalStateAlertHandler } from '../../examples/lambdas/illegal-state-alert.js';
import { documentsRuleEvent, silentLogger } from './lambda-events.js';

const handlerOn = (store = memoryAlertStore(), alertOnEveryVersion = false) => ({
  store,
  handler: createIllegalStateAlertHandler({
    store,
    logger: silentLogger(),
    alertOnEveryVersion,
    now: () => 1_795_000_123_000,
  }),
});

describe('illegal-state-alert on update/documents events', () => {
  it('records one alert keyed by the committed version', async () => {
    const { store, handler } = handlerOn();
    const event = documentsRuleEvent(
      'device_id',
      'aircon-7',
      { reported: { power: 'on' }, version: 11 },
      { reported: { power: 'on', someIllegalState: true }, version: 12 },
    );
    await expect(handler(event)).resolves.toEqual({
      outcome: 'recorded',
      deviceId: 'aircon-7',
      alertKey: 'v12',
    });
    expect(store.alerts).toEqual([
      {
        deviceId: 'aircon-7',
        alertKey: 'v12',
        version: 12,
        reported: { power: 'on', someIllegalState: true },
        observedAt: 1_795_000_000_000,
      },
    ]);
  });

  it('is idempotent: a redelivered event records nothing new', async () => {
    const { store, handler } = handlerOn();
    const event = documentsRuleEvent('device_id', 'aircon-7', null, {
      reported: { someIllegalState: true },
      version: 1,
    });
    await handler(event);
    await expect(handler(structuredClone(event))).resolves.toMatchObject({ outcome: 'duplicate' });
    expect(store.alerts).toHaveLength(1);
  });

  it('alerts when the illegal state is entered, not for every later version that keeps it', async () => {
    const { store, handler } = handlerOn();
    const staying = documentsRuleEvent(
      'device_id',
      'aircon-7',
      { reported: { someIllegalState: true, temperature: 20 }, version: 12 },
      { reported: { someIllegalState: true, temperature: 21 }, version: 13 },
    );
    await expect(handler(staying)).resolves.toMatchObject({ outcome: 'ignored' });
    expect(store.alerts).toHaveLength(0);
    const everyVersion = handlerOn(memoryAlertStore(), true);
    await expect(everyVersion.handler(staying)).resolves.toMatchObject({
      outcome: 'recorded',
      alertKey: 'v13',
    });
  });

  it('ignores an event whose state is legal (a rule without the WHERE clause)', async () => {
    const { store, handler } = handlerOn();
    const event = documentsRuleEvent('device_id', 'aircon-7', null, {
      reported: { someIllegalState: false },
      version: 3,
    });
    await expect(handler(event)).resolves.toMatchObject({ outcome: 'ignored' });
    expect(store.alerts).toHaveLength(0);
  });

  it('separates devices with the same version', async () => {
    const { store, handler } = handlerOn();
    for (const device of ['a', 'b']) {
      await handler(
        documentsRuleEvent('device_id', device, null, { reported: { someIllegalState: true }, version: 1 }),
      );
    }
    expect(store.alerts.map((alert) => alert.deviceId)).toEqual(['a', 'b']);
  });

  it('refuses an event of neither shape, naming what is missing', async () => {
    const { handler } = handlerOn();
    await expect(handler({ current: { state: {} } })).rejects.toThrow(/device_id/);
    await expect(handler('not json')).rejects.toThrow(
      /neither an update\/documents nor an update rule event/,
    );
  });
});

describe("illegal-state-alert on the seed's update-request events", () => {
  const request = (extra: object) => ({
    state: { reported: { someIllegalState: true } },
    device_id: 'aircon-3',
    ...extra,
  });

  it('keys by clientToken, then by the expected version, then by the content', async () => {
    const { store, handler } = handlerOn();
    await expect(handler(request({ clientToken: 'tok-1', version: 4 }))).resolves.toMatchObject({
      alertKey: 'token:tok-1',
    });
    await expect(handler(request({ version: 4 }))).resolves.toMatchObject({ alertKey: 'expected-v4' });
    const hashed = await handler(request({}));
    expect(hashed.alertKey).toMatch(/^sha256:[0-9a-f]{64}$/);
    await expect(handler(request({}))).resolves.toMatchObject({ outcome: 'duplicate' });
    expect(store.alerts.map((alert) => alert.observedAt)).toEqual([
      1_795_000_123_000, 1_795_000_123_000, 1_795_000_123_000,
    ]);
  });
});

describe('dynamoAlertStore', () => {
  const client = new DynamoDBClient({
    region: 'us-east-1',
    credentials: { accessKeyId: 'x', secretAccessKey: 'y' },
  });
  const mock = mockClient(client);
  afterEach(() => mock.reset());
  const alert = { deviceId: 'aircon-7', alertKey: 'v12', version: 12, reported: { x: 1 }, observedAt: 5 };

  it('puts the alert with a condition that keeps the first one', async () => {
    mock.on(PutItemCommand).resolves({});
    await expect(dynamoAlertStore(client, 'Table').record(alert)).resolves.toBe(true);
    expect(mock.commandCalls(PutItemCommand)[0]?.args[0].input).toEqual({
      TableName: 'Table',
      Item: {
        pk: { S: 'ALERT#aircon-7' },
        sk: { S: 'v12' },
        type: { S: 'alert' },
        deviceId: { S: 'aircon-7' },
        version: { N: '12' },
        reported: { S: '{"x":1}' },
        observedAt: { N: '5' },
      },
      ConditionExpression: 'attribute_not_exists(pk)',
    });
  });

  it('answers false when the condition fails (already recorded)', async () => {
    mock
      .on(PutItemCommand)
      .rejects(
        new ConditionalCheckFailedException({ message: 'The conditional request failed', $metadata: {} }),
      );
    await expect(dynamoAlertStore(client, 'Table').record(alert)).resolves.toBe(false);
  });

  it('rethrows other failures so the invocation is retried', async () => {
    mock
      .on(PutItemCommand)
      .rejects(new ProvisionedThroughputExceededException({ message: 'slow down', $metadata: {} }));
    const failing = createIllegalStateAlertHandler({
      store: dynamoAlertStore(client, 'Table'),
      logger: silentLogger(),
    });
    await expect(
      failing(
        documentsRuleEvent('device_id', 'x', null, { reported: { someIllegalState: true }, version: 1 }),
      ),
    ).rejects.toThrow('slow down');
  });
});
