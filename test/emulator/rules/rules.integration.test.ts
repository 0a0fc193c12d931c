/**
 * Rules in the running local service: real mqtt.js clients, the real AWS SDK over HTTP, the embedded broker.
 */
import {
  GetThingShadowCommand,
  IoTDataPlaneClient,
  PublishCommand,
  UpdateThingShadowCommand,
} from '@aws-sdk/client-iot-data-plane';
import type { Context } from 'aws-lambda';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  RuleSqlError,
  type RuleStats,
  resolveShadowServiceOptions,
  type ShadowRule,
  type ShadowService,
  startShadowService,
} from '../../../src/emulator/index.js';
import { isShadowError, ShadowOptionsError } from '../../../src/errors.js';
import { connectTestClient, type TestClient } from '../mqtt-test-client.js';

const SEED_SQL =
  "SELECT *, topic(3) as device_id FROM '$aws/things/+/shadow/update' WHERE state.reported.someIllegalState = True";

interface Invocation {
  event: unknown;
  context: Context;
}

/**
 * Checks `check` once every rule action started so far finished. Callers first make sure the message reached
 * the rules: a QoS 1 publish is handed to them before the broker acknowledges it, an HTTP Publish before the
 * answer, the service's own messages as they are sent, and a republish (through the embedded broker) while
 * the action that made it still runs.
 */
async function eventually<T>(check: () => T | undefined, what: string): Promise<T> {
  await service.rules.idle();
  const result = check();
  if (result === undefined || result === false) throw new Error(`not done once the rules were idle: ${what}`);
  return result;
}

const illegal: Invocation[] = [];
const documents: Invocation[] = [];
const binary: Invocation[] = [];
const warnings: string[] = [];
let callbackStyle = 0;

const rules: ShadowRule[] = [
  {
    name: 'illegalState',
    sql: SEED_SQL,
    actions: [
      {
        type: 'lambda',
        handler: async (event: unknown, context: Context) => {
          illegal.push({ event, context });
          return { ok: true };
        },
      },
      // biome-ignore lint/suspicious/noTemplateCurlyInString: an AWS IoT substitution template
      { type: 'republish', topic: 'alerts/${topic(3)}', qos: 1 },
    ],
  },
  {
    name: 'documents',
    sql: "SELECT *, topic(3) AS thing FROM '$aws/things/+/shadow/update/documents'",
    actions: [
      {
        type: 'lambda',
        handler: async (event: unknown, context: Context) => {
          documents.push({ event, context });
        },
      },
    ],
  },
  {
    name: 'thrower',
    sql: "SELECT *, clientid() AS who FROM 'throw/+'",
    actions: [
      {
        type: 'lambda',
        handler: async () => {
          throw new Error('boom');
        },
      },
      // biome-ignore lint/suspicious/noTemplateCurlyInString: an AWS IoT substitution template
      { type: 'republish', topic: 'echo/${topic(2)}' },
    ],
    // biome-ignore lint/suspicious/noTemplateCurlyInString: an AWS IoT substitution template
    errorAction: { type: 'republish', topic: 'errors/${topic(1)}' },
  },
  {
    name: 'relay',
    sql: "SELECT * FROM 'relay/+' WHERE state.desired.power <> 'forbidden'",
    // biome-ignore lint/suspicious/noTemplateCurlyInString: an AWS IoT substitution template
    actions: [{ type: 'republish', topic: '$$aws/things/${topic(2)}/shadow/update' }],
  },
  {
    name: 'binaryLambda',
    sql: "SELECT * FROM 'bin/+'",
    actions: [
      {
        type: 'lambda',
        handler: async (event: unknown, context: Context) => {
          binary.push({ event, context });
        },
      },
    ],
  },
  {
    name: 'callbackStyle',
    sql: "SELECT * FROM 'cb/+'",
    actions: [
      {
        type: 'lambda',
        handler: (_event: unknown, _context: Context, callback: (error?: Error | null) => void) => {
          // Called back later, as such handlers do (a turn of the event loop is later enough).
          setImmediate(() => {
            callbackStyle++;
            callback(null);
          });
        },
      },
    ],
  },
  {
    name: 'hangs',
    sql: "SELECT * FROM 'hang/+'",
    actions: [{ type: 'lambda', timeoutMs: 50, handler: () => new Promise(() => {}) }],
  },
  {
    name: 'loop',
    sql: "SELECT * FROM 'loop/a'",
    actions: [{ type: 'republish', topic: 'loop/a' }],
  },
  {
    name: 'who',
    sql: "SELECT clientid() AS who, timestamp() AS ts, topic() AS t FROM 'who/+'",
    actions: [{ type: 'republish', topic: 'whoami' }],
  },
  {
    name: 'disabled',
    sql: "SELECT * FROM '#'",
    enabled: false,
    actions: [{ type: 'republish', topic: 'never' }],
  },
];

let service: ShadowService;
let sdk: IoTDataPlaneClient;
let device: TestClient;
let watcher: TestClient;

beforeAll(async () => {
  service = await startShadowService({
    limits: { requestsPerSecondPerThing: 10_000, maxInFlightPerThing: 1000 },
    rules,
    rulesEngine: { logger: { warn: (message) => warnings.push(message) }, maxRepublishDepth: 3 },
  });
  sdk = new IoTDataPlaneClient({
    endpoint: service.httpEndpoint,
    region: 'us-east-1',
    credentials: { accessKeyId: 'x', secretAccessKey: 'y' },
    maxAttempts: 1,
  });
  device = await connectTestClient(service.mqttUrl, { clientId: 'ac-7' });
  await device.subscribe(['$aws/things/ac-7/shadow/update/accepted']);
  watcher = await connectTestClient(service.mqttUrl, { clientId: 'watcher' });
  await watcher.subscribe(['alerts/+', 'echo/+', 'errors/+', 'loop/a', 'never', 'whoami'], 1);
});

afterAll(async () => {
  await device?.close();
  await watcher?.close();
  sdk?.destroy();
  await service?.close();
});

const stats = (name: string): RuleStats => service.rules.stats()[name] as RuleStats;

/**
 * Publishes a probe the watcher receives after everything the service published before it (the broker keeps
 * one publisher's order to each subscriber): once it is here, a message that was not is never coming.
 */
async function probe(): Promise<void> {
  await service.mqtt.publish('alerts/probe', '{}', { qos: 1 });
  await watcher.take('alerts/probe');
}

describe("the seed's illegal-state rule", () => {
  it('fires on a real mqtt.js publish with someIllegalState true, with the event AWS delivers', async () => {
    const update = { state: { reported: { someIllegalState: true, power: 'on' } } };
    await device.publish('$aws/things/ac-7/shadow/update', update, 1);
    const [invocation] = await eventually(() => (illegal.length > 0 ? illegal : undefined), 'the Lambda');
    expect(invocation?.event).toEqual({ ...update, device_id: 'ac-7' });
    const context = invocation?.context as Context;
    expect(context.functionName).toBe('illegalState');
    expect(context.awsRequestId).toMatch(/^[0-9a-f-]{36}$/);
    expect(context.invokedFunctionArn).toMatch(/:function:illegalState$/);
    const remaining = context.getRemainingTimeInMillis();
    expect(remaining).toBeGreaterThan(0);
    expect(remaining).toBeLessThanOrEqual(3000);

    const alert = await watcher.take('alerts/ac-7');
    expect(alert.json).toEqual({ ...update, device_id: 'ac-7' });
    expect(alert.qos).toBe(1);
    // The shadow service itself applied the update as usual.
    expect((await device.take('$aws/things/ac-7/shadow/update/accepted')).json).toMatchObject({
      state: { reported: update.state.reported },
    });
  });

  it('does not fire when the flag is false or missing', async () => {
    const before = illegal.length;
    const matchedBefore = stats('illegalState').matched;
    const messagesBefore = stats('illegalState').messages;
    await device.publish(
      '$aws/things/ac-7/shadow/update',
      { state: { reported: { someIllegalState: false } } },
      1,
    );
    await device.publish('$aws/things/ac-7/shadow/update', { state: { reported: { temp: 21 } } }, 1);
    await device.takeMany('$aws/things/ac-7/shadow/update/accepted', 2);
    await eventually(() => stats('illegalState').messages === messagesBefore + 2, 'both messages evaluated');
    await service.rules.idle();
    expect(illegal.length).toBe(before);
    expect(stats('illegalState').matched).toBe(matchedBefore);
    await probe();
    expect(watcher.unread('alerts/ac-7')).toEqual([]);
  });

  it('fires for an HTTP Publish to the update topic', async () => {
    const before = illegal.length;
    const payload = { state: { reported: { someIllegalState: true } } };
    await sdk.send(
      new PublishCommand({
        topic: '$aws/things/ac-8/shadow/update',
        payload: Buffer.from(JSON.stringify(payload)),
      }),
    );
    await eventually(() => illegal.length > before, 'the Lambda');
    expect(illegal[before]?.event).toEqual({ ...payload, device_id: 'ac-8' });
    expect((await watcher.take('alerts/ac-8')).json).toEqual({ ...payload, device_id: 'ac-8' });
  });
});

describe('last will messages', () => {
  it('a will sent to a shadow update topic reaches the rules but not the shadow service (AWS DG)', async () => {
    const before = illegal.length;
    const will = { state: { reported: { someIllegalState: true } } };
    const dying = await connectTestClient(service.mqttUrl, {
      clientId: 'ac-lwt',
      extra: {
        will: {
          topic: '$aws/things/ac-lwt/shadow/update',
          payload: Buffer.from(JSON.stringify(will)),
          qos: 1,
          retain: false,
        },
      },
    });
    // An ungraceful disconnect makes the broker publish the will; the rules' listener was added first.
    const willSeen = new Promise<void>((resolve) => {
      const stop = service.mqtt.onClientPublish((publish) => {
        if (!publish.will) return;
        stop();
        resolve();
      });
    });
    dying.client.stream.destroy();
    await willSeen;
    await eventually(() => illegal.length > before, 'the rule on the will');
    expect(illegal[before]?.event).toEqual({ ...will, device_id: 'ac-lwt' });
    await dying.client.endAsync(true);
    const error = await sdk.send(new GetThingShadowCommand({ thingName: 'ac-lwt' })).catch((e: unknown) => e);
    expect((error as { name?: string }).name).toBe('ResourceNotFoundException');
  });
});

describe('functions of the message', () => {
  it('clientid() is the MQTT client id, or n/a for HTTP Publish; timestamp() is the engine clock', async () => {
    const before = Date.now();
    await device.client.publishAsync('who/1', '{}', { qos: 1 });
    const fromDevice = (await watcher.take('whoami')).json as { who: string; ts: number; t: string };
    expect(fromDevice).toMatchObject({ who: 'ac-7', t: 'who/1' });
    expect(fromDevice.ts).toBeGreaterThanOrEqual(before);
    expect(fromDevice.ts).toBeLessThanOrEqual(Date.now());
    await sdk.send(new PublishCommand({ topic: 'who/2', payload: Buffer.from('{}') }));
    expect((await watcher.take('whoami')).json).toMatchObject({ who: 'n/a', t: 'who/2' });
  });
});

describe('rules on the shadow service own messages', () => {
  it('a rule on update/documents sees HTTP-originated updates; /update rules do not', async () => {
    const illegalBefore = illegal.length;
    const documentsBefore = documents.length;
    await sdk.send(
      new UpdateThingShadowCommand({
        thingName: 'ac-http',
        payload: Buffer.from(
          JSON.stringify({ state: { desired: { mode: 'cool' }, reported: { someIllegalState: true } } }),
        ),
      }),
    );
    const invocation = await eventually(
      () => documents.slice(documentsBefore).find((i) => (i.event as { thing?: string }).thing === 'ac-http'),
      'the documents Lambda',
    );
    expect(invocation.event).toMatchObject({
      thing: 'ac-http',
      current: { state: { desired: { mode: 'cool' }, reported: { someIllegalState: true } }, version: 1 },
    });
    expect(invocation.context.functionName).toBe('documents');
    await service.rules.idle();
    // UpdateThingShadow over HTTP is not a message on $aws/things/ac-http/shadow/update.
    expect(
      illegal.slice(illegalBefore).some((i) => (i.event as { device_id?: string }).device_id === 'ac-http'),
    ).toBe(false);
  });
});

describe('actions', () => {
  it('a throwing Lambda is counted and logged, runs the error action, and disturbs nothing else', async () => {
    const sent = { reading: 7 };
    await device.client.publishAsync('throw/1', JSON.stringify(sent), { qos: 1 });
    // The other action of the same rule still ran.
    expect((await watcher.take('echo/1')).json).toEqual({ ...sent, who: 'ac-7' });
    const error = await watcher.take('errors/throw');
    expect(error.json).toMatchObject({
      ruleName: 'thrower',
      topic: 'throw/1',
      clientId: 'ac-7',
      failures: [{ failedAction: 'LambdaAction', failedResource: 'thrower', errorMessage: 'boom' }],
    });
    const base64 = (error.json as { base64OriginalPayload: string }).base64OriginalPayload;
    expect(JSON.parse(Buffer.from(base64, 'base64').toString('utf8'))).toEqual(sent);
    await service.rules.idle();
    expect(stats('thrower')).toMatchObject({
      matched: 1,
      actionsSucceeded: 1,
      actionsFailed: 1,
      errorActionsSucceeded: 1,
      lastError: 'lambda action: boom',
    });
    expect(warnings.some((w) => w.includes("rule 'thrower'") && w.includes('boom'))).toBe(true);

    // The service and the other rules carry on.
    const before = illegal.length;
    await device.publish(
      '$aws/things/ac-7/shadow/update',
      { state: { reported: { someIllegalState: true } } },
      1,
    );
    await eventually(() => illegal.length > before, 'the illegal-state Lambda after the failure');
    expect(stats('illegalState').actionsFailed).toBe(0);
  });

  it('a republish to $$aws/things/<t>/shadow/update updates the shadow like a device publish', async () => {
    await watcher.subscribe('$aws/things/ac-9/shadow/update/accepted', 1);
    await device.client.publishAsync('relay/ac-9', JSON.stringify({ state: { desired: { power: 'on' } } }), {
      qos: 1,
    });
    expect((await watcher.take('$aws/things/ac-9/shadow/update/accepted')).json).toMatchObject({
      state: { desired: { power: 'on' } },
      version: 1,
    });
    const out = await sdk.send(new GetThingShadowCommand({ thingName: 'ac-9' }));
    const document = JSON.parse(Buffer.from(out.payload as Uint8Array).toString('utf8')) as unknown;
    expect(document).toMatchObject({ state: { desired: { power: 'on' } }, version: 1 });
    expect(stats('relay').actionsSucceeded).toBe(1);
  });

  it('a Lambda action on a non-JSON payload fails without calling the handler', async () => {
    await device.client.publishAsync('bin/1', Buffer.from([0xff, 0xfe, 0x00]), { qos: 1 });
    await eventually(() => stats('binaryLambda').actionsFailed === 1, 'the failed action');
    expect(binary).toHaveLength(0);
    expect(stats('binaryLambda').lastError).toMatch(/needs a JSON payload/);
  });

  it('callback-style handlers and timeouts', async () => {
    await device.client.publishAsync('cb/1', '{}', { qos: 1 });
    await eventually(() => stats('callbackStyle').actionsSucceeded === 1, 'the callback handler');
    expect(callbackStyle).toBe(1);
    await device.client.publishAsync('hang/1', '{}', { qos: 1 });
    await eventually(() => stats('hangs').actionsFailed === 1, 'the timeout');
    expect(stats('hangs').lastError).toMatch(/Task timed out after 0\.05 seconds/);
  });

  it('stops a republish loop after maxRepublishDepth hops', async () => {
    await device.client.publishAsync('loop/a', '{"n":1}', { qos: 1 });
    await eventually(() => stats('loop').loopsStopped === 1, 'the loop guard');
    // The device's publish plus three republishes reached subscribers; the third republish was not evaluated.
    const seen = await watcher.takeMany('loop/a', 4);
    expect(seen).toHaveLength(4);
    await probe();
    expect(watcher.unread('loop/a')).toEqual([]);
    expect(stats('loop')).toMatchObject({ messages: 4, matched: 3, actionsSucceeded: 3 });
    expect(stats('disabled')).toMatchObject({ messages: 0, matched: 0 });
    expect(watcher.unread('never')).toEqual([]);
  });
});

describe('rules configuration', () => {
  const action = { type: 'republish' as const, topic: 'x' };

  it('refuses SQL outside the subset at start, naming the rule and the unsupported part', async () => {
    const start = startShadowService({
      rules: [{ name: 'bad', sql: "SELECT * FROM 't' WHERE a IN (1, 2)", actions: [action] }],
    });
    await expect(start).rejects.toThrow(RuleSqlError);
    const error = (await start.catch((e: unknown) => e)) as RuleSqlError;
    expect(error.message).toMatch(/^rule 'bad': Unsupported keyword IN at offset 26/);
    expect(error.unsupported).toBe('IN');
    expect(isShadowError(error) && error.code).toBe('OPTIONS');
  });

  it('refuses an unsupported substitution template', () => {
    expect(() =>
      resolveShadowServiceOptions({
        rules: [
          // biome-ignore lint/suspicious/noTemplateCurlyInString: an AWS IoT substitution template
          { name: 'r', sql: "SELECT * FROM 't'", actions: [{ type: 'republish', topic: 'a/${upper(x)}' }] },
        ],
      }),
    ).toThrow(
      /rule 'r' actions\[0\]: substitution template \$\{upper\(x\)\}: Unsupported function upper\(\)/,
    );
  });

  const invalid: [string, unknown][] = [
    ['rules must be an array', { rules: 'nope' }],
    [
      'twice',
      {
        rules: [
          { name: 'a', sql: "SELECT * FROM 't'", actions: [] },
          { name: 'a', sql: "SELECT * FROM 't'", actions: [] },
        ],
      },
    ],
    ['name must be 1-128 letters', { rules: [{ name: 'has-dash', sql: "SELECT * FROM 't'", actions: [] }] }],
    [
      "unknown rule option 'sqlVersion'",
      { rules: [{ name: 'a', sql: "SELECT * FROM 't'", actions: [], sqlVersion: '2016-03-23' }] },
    ],
    [
      'unsupported type "s3"',
      { rules: [{ name: 'a', sql: "SELECT * FROM 't'", actions: [{ type: 's3' }] }] },
    ],
    [
      'handler must be a function',
      { rules: [{ name: 'a', sql: "SELECT * FROM 't'", actions: [{ type: 'lambda' }] }] },
    ],
    [
      'qos must be 0 or 1',
      {
        rules: [
          { name: 'a', sql: "SELECT * FROM 't'", actions: [{ type: 'republish', topic: 't', qos: 2 }] },
        ],
      },
    ],
    [
      'at most 10 actions',
      { rules: [{ name: 'a', sql: "SELECT * FROM 't'", actions: Array(11).fill(action) }] },
    ],
    ["unknown rules engine option 'verbose'", { rulesEngine: { verbose: true } }],
    ['maxRepublishDepth must be a non-negative integer', { rulesEngine: { maxRepublishDepth: -1 } }],
  ];
  for (const [message, options] of invalid) {
    it(`refuses options: ${message}`, () => {
      expect(() => resolveShadowServiceOptions(options as never)).toThrow(ShadowOptionsError);
      expect(() => resolveShadowServiceOptions(options as never)).toThrow(
        new RegExp(message.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'), 'i'),
      );
    });
  }

  it('a service without rules reports no stats', async () => {
    const plain = await startShadowService();
    try {
      expect(plain.rules.stats()).toEqual({});
      await plain.rules.idle();
    } finally {
      await plain.close();
    }
  });
});
