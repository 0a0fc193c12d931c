import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { IoTDataPlaneClient } from '@aws-sdk/client-iot-data-plane';
import type { MqttClient } from 'mqtt';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import type { JsonObject } from '../../src/core/document.js';
import { shadowTopic } from '../../src/core/topics.js';
import { createDeviceAgent, type DeviceAgent, type DeviceAgentOptions } from '../../src/device/index.js';
import type { ShadowService } from '../../src/emulator/index.js';
import { isShadowValidationError } from '../../src/errors.js';
import { splitPolicy } from '../../src/split/index.js';
import {
  agentMqttOptions,
  mqttClient,
  readShadow,
  restartService,
  sdkClient,
  startService,
  waitFor,
  writeDesired,
} from './service-fixture.js';

let service: ShadowService;
let sdk: IoTDataPlaneClient;
const agents: DeviceAgent[] = [];
const clients: MqttClient[] = [];

beforeEach(async () => {
  service = await startService();
  sdk = sdkClient(service);
});

afterEach(async () => {
  for (const agent of agents.splice(0)) await agent.close();
  for (const client of clients.splice(0)) await client.endAsync(true);
  sdk.destroy();
  await service.close();
});

async function agentFor<D = JsonObject>(
  options: Partial<DeviceAgentOptions<D>> & { thingName: string },
): Promise<DeviceAgent> {
  const agent = await createDeviceAgent<D>({
    mqtt: { url: service.mqttUrl, options: agentMqttOptions },
    onDelta: () => undefined,
    ...options,
  });
  agents.push(agent);
  return agent;
}

async function observer(topic: string): Promise<{ messages: { topic: string; body: JsonObject }[] }> {
  const client = await mqttClient(service.mqttUrl, `observer-${clients.length}-${Date.now()}`);
  clients.push(client);
  const messages: { topic: string; body: JsonObject }[] = [];
  client.on('message', (t, payload) => messages.push({ topic: t, body: JSON.parse(payload.toString()) }));
  await client.subscribeAsync(topic, { qos: 1 });
  return { messages };
}

describe('device agent: reconciling and following deltas', () => {
  it('reads the shadow on connect, hands the full delta to the handler and reports what it applied', async () => {
    await writeDesired(sdk, 'lamp', { power: 'on', color: { r: 255, g: 0 } });
    const deltas: JsonObject[] = [];
    const agent = await agentFor({
      thingName: 'lamp',
      onDelta: (delta, context) => {
        deltas.push(delta);
        expect(context.source).toBe('get');
        expect(context.version).toBe(1);
      },
    });
    const events: string[] = [];
    agent.on('delta', (event) => events.push(`delta v${event.version} from ${event.source}`));
    const stop = agent.on('synced', (event) => events.push(`synced v${event.version}`));
    const synced = await agent.whenSynced();
    stop();
    expect(events).toEqual(['delta v1 from get', 'synced v2']);
    expect(deltas).toEqual([{ power: 'on', color: { r: 255, g: 0 } }]);
    expect(synced.applied).toEqual({ power: 'on', color: { r: 255, g: 0 } });
    const shadow = await readShadow(sdk, 'lamp');
    expect(shadow?.state.reported).toEqual({ power: 'on', color: { r: 255, g: 0 } });
    expect(shadow?.state.delta).toBeUndefined();
    expect(agent.stats().gets).toBe(1);
  });

  it('follows later deltas and reports only the minimal patch against what it reported before', async () => {
    const updates = await observer(shadowTopic({ thingName: 'fan' }, 'update/accepted'));
    const agent = await agentFor({ thingName: 'fan' });
    agent.report({ power: 'off', speed: 1, swing: true });
    await agent.whenSynced();
    await writeDesired(sdk, 'fan', { power: 'on', speed: 1 });
    await waitFor(
      async () => (await readShadow(sdk, 'fan'))?.state.reported?.power === 'on',
      'power on reported',
    );
    await agent.whenSynced();
    const reports = updates.messages
      .map((m) => m.body.state as JsonObject)
      .filter((s) => s.reported !== undefined);
    // speed was already reported as 1: the applied report carries only power.
    expect(reports.at(-1)).toEqual({ reported: { power: 'on' } });
    expect((await readShadow(sdk, 'fan'))?.state.reported).toEqual({ power: 'on', speed: 1, swing: true });
  });

  it('follows a named shadow on its own topics', async () => {
    const agent = await agentFor({ thingName: 'lamp', shadowName: 'config', onDelta: (delta) => delta });
    await agent.whenSynced();
    const client = sdkClient(service);
    const { UpdateThingShadowCommand } = await import('@aws-sdk/client-iot-data-plane');
    await client.send(
      new UpdateThingShadowCommand({
        thingName: 'lamp',
        shadowName: 'config',
        payload: new TextEncoder().encode(JSON.stringify({ state: { desired: { brightness: 40 } } })),
      }),
    );
    await waitFor(() => agent.applied()?.brightness === 40, 'brightness applied');
    await agent.whenSynced();
    expect(agent.status().reported).toEqual({ brightness: 40 });
    expect(await readShadow(sdk, 'lamp')).toBeUndefined(); // the classic shadow was never touched
    client.destroy();
  });
});

describe('device agent: delta ordering', () => {
  async function syncedAgent(handled: number[]) {
    await writeDesired(sdk, 'ord', { step: 0 });
    const agent = await agentFor({
      thingName: 'ord',
      onDelta: (delta, context) => {
        handled.push(context.version);
        return delta;
      },
    });
    await agent.whenSynced();
    // Published as the service: no MQTT client may publish to a response topic (publish-policy.ts).
    const publishDelta = (version: number, state: JsonObject) =>
      service.mqtt.publish(
        shadowTopic({ thingName: 'ord' }, 'update/delta'),
        JSON.stringify({ version, timestamp: 1, state, metadata: {} }),
        { qos: 1 },
      );
    return { agent, publishDelta };
  }

  it('discards a delta older than the newest version processed, and handles one of the same version (< not <=)', async () => {
    const handled: number[] = [];
    const { agent, publishDelta } = await syncedAgent(handled);
    const version = agent.status().version as number;
    await publishDelta(version - 1, { step: 'old' });
    await waitFor(() => agent.stats().deltasDiscarded === 1, 'the old delta discarded');
    await publishDelta(version, { step: 'same-version' });
    await waitFor(() => handled.includes(version), 'the same-version delta handled');
    // Handled, not discarded: the handler saw it (and the real service then restores desired with a new delta).
    expect(handled.slice(0, 2)).toEqual([1, version]);
    expect(agent.stats().deltasDiscarded).toBe(1);
  });

  it('reads the shadow when a version is skipped instead of trusting the delta', async () => {
    const handled: number[] = [];
    const { agent, publishDelta } = await syncedAgent(handled);
    const gets = agent.stats().gets;
    const version = agent.status().version as number;
    await publishDelta(version + 5, { step: 'from-the-future' });
    await waitFor(() => agent.stats().gets === gets + 1, 'a read after the gap');
    await agent.whenSynced();
    expect(agent.stats().gaps).toBe(1);
    // The read showed the shadow's real (empty) delta: the forged one was never applied.
    expect(agent.applied()?.step).toBe(0);
  });

  it('rejects a malformed delta message with an error event and keeps working', async () => {
    const handled: number[] = [];
    const { agent, publishDelta } = await syncedAgent(handled);
    const errors: unknown[] = [];
    agent.on('error', (error, info) => errors.push([info.kind, error]));
    await publishDelta(-3, { step: 1 });
    await waitFor(() => errors.length === 1, 'an error event');
    expect(errors[0]).toEqual(['message', expect.objectContaining({ name: 'ShadowValidationError' })]);
    await writeDesired(sdk, 'ord', { step: 2 });
    await waitFor(() => agent.applied()?.step === 2, 'the next real delta applied');
  });
});

describe('device agent: handler failures and schema', () => {
  it('refuses a delta that fails the schema: never applied, reported under the error key, emitted', async () => {
    const schema = z.object({ power: z.enum(['on', 'off']).optional() });
    const calls: unknown[] = [];
    const errors: unknown[] = [];
    const agent = await agentFor({
      thingName: 'strict',
      schema,
      errorKey: 'agentError',
      onDelta: (delta) => {
        calls.push(delta);
        return delta;
      },
    });
    agent.on('error', (error, info) => errors.push({ kind: info.kind, error }));
    await agent.whenSynced();
    await writeDesired(sdk, 'strict', { power: 'maybe' });
    await waitFor(
      async () => (await readShadow(sdk, 'strict'))?.state.reported?.agentError !== undefined,
      'error report',
    );
    expect(calls).toEqual([]);
    const reported = (await readShadow(sdk, 'strict'))?.state.reported as JsonObject;
    expect(reported.power).toBeUndefined();
    expect(reported.agentError).toMatchObject({ kind: 'schema', version: 1 });
    expect(String((reported.agentError as JsonObject).message)).toMatch(/power/);
    expect(errors).toHaveLength(1);
    expect(isShadowValidationError((errors[0] as { error: unknown }).error)).toBe(true);
    // A valid delta applies and clears the error.
    await writeDesired(sdk, 'strict', { power: 'on' });
    await waitFor(async () => (await readShadow(sdk, 'strict'))?.state.reported?.power === 'on', 'power on');
    await waitFor(
      async () => (await readShadow(sdk, 'strict'))?.state.reported?.agentError === undefined,
      'cleared',
    );
    expect(calls).toEqual([{ power: 'on' }]);
  });

  it('retries a failing handler a bounded number of times, then reports the failure and stops', async () => {
    let calls = 0;
    // The agent's own connection, so the test sees the deltas it receives, right after it handled them.
    const client = await mqttClient(service.mqttUrl, 'broken');
    clients.push(client);
    let newestDelta = 0;
    const deltaTopic = shadowTopic({ thingName: 'broken' }, 'update/delta');
    const agent = await agentFor({
      thingName: 'broken',
      mqtt: client,
      maxHandlerAttempts: 3,
      handlerRetryDelayMs: 20,
      onDelta: () => {
        calls++;
        throw new Error('relay stuck');
      },
    });
    // Added after the agent's listener: runs once the agent has handled the message (it does so synchronously).
    client.on('message', (topic, payload) => {
      if (topic === deltaTopic) newestDelta = Math.max(newestDelta, JSON.parse(payload.toString()).version);
    });
    await agent.whenSynced();
    await writeDesired(sdk, 'broken', { power: 'on' });
    await waitFor(
      async () => (await readShadow(sdk, 'broken'))?.state.reported?.deviceAgentError !== undefined,
      'the failure reported',
    );
    const shadow = await readShadow(sdk, 'broken');
    expect(shadow?.state.reported?.deviceAgentError).toMatchObject({
      kind: 'handler',
      attempts: 3,
      message: 'relay stuck',
    });
    // The failure report re-publishes the same delta (at the report's version); once the agent got it, it has
    // not handled it again.
    await waitFor(
      () => newestDelta >= (shadow?.version ?? 0),
      'the delta re-published by the failure report',
    );
    expect(calls).toBe(3);
    await agent.whenSynced();
  });

  it('emits a conflict when the handler applies something other than desired, and reports what it applied', async () => {
    const conflicts: unknown[] = [];
    const agent = await agentFor({
      thingName: 'clamp',
      onDelta: (delta) => ({ ...delta, target: Math.min(Number(delta.target), 30) }),
    });
    agent.on('conflict', (event) => conflicts.push(event));
    await agent.whenSynced();
    await writeDesired(sdk, 'clamp', { target: 35 });
    await waitFor(() => conflicts.length > 0, 'a conflict event');
    await agent.whenSynced();
    expect(conflicts[0]).toMatchObject({ desired: { target: 35 }, applied: { target: 30 } });
    const shadow = await readShadow(sdk, 'clamp');
    expect(shadow?.state.reported).toEqual({ target: 30 });
    expect(shadow?.state.delta).toEqual({ target: 35 });
  });
});

describe('device agent: reporting through the policy', () => {
  it('sends the shadow part as reported updates without version and publishes telemetry with a timestamp', async () => {
    const telemetry = await observer('my/things/ac/state');
    const requests = await observer(shadowTopic({ thingName: 'ac' }, 'update'));
    const policy = splitPolicy({
      fields: {
        power: 'shadow',
        temperature: { route: 'telemetry', alsoShadow: { deadband: 0.5, minIntervalMs: 60_000 } },
      },
      otherFields: 'telemetry',
    });
    let now = 1_000_000;
    const agent = await agentFor({ thingName: 'ac', policy, clock: () => now, telemetryQos: 1 });
    await agent.whenSynced();
    agent.report({ power: 'on', temperature: 22.4, humidity: 41 });
    await agent.whenSynced();
    now += 1_000;
    agent.report({ power: 'on', temperature: 25, humidity: 40 }); // beyond the deadband, inside the interval
    await waitFor(() => telemetry.messages.length === 2, 'two telemetry messages');
    await agent.whenSynced();
    expect(telemetry.messages.map((m) => m.body)).toEqual([
      { state: { temperature: 22.4, humidity: 41 }, timestamp: 1_000_000 },
      { state: { temperature: 25, humidity: 40 }, timestamp: 1_001_000 },
    ]);
    expect(requests.messages).toHaveLength(1);
    const request = requests.messages[0]?.body as JsonObject;
    expect(request.state).toEqual({ reported: { power: 'on', temperature: 22.4 } });
    expect(request.version).toBeUndefined();
    expect((await readShadow(sdk, 'ac'))?.state.reported).toEqual({ power: 'on', temperature: 22.4 });
  });

  it('drops a report the service refuses (413), emits the error, and keeps reporting', async () => {
    const errors: unknown[] = [];
    const agent = await agentFor({ thingName: 'big' });
    agent.on('error', (error, info) => errors.push({ kind: info.kind, error }));
    agent.report({ mode: 'eco' });
    await agent.whenSynced();
    agent.report({ blob: 'x'.repeat(9_000) });
    await waitFor(() => errors.length === 1, 'the refusal');
    expect(errors[0]).toMatchObject({
      kind: 'report',
      error: { name: 'ShadowRejectedError', statusCode: 413 },
    });
    await agent.whenSynced();
    expect(agent.status().reported).toEqual({ mode: 'eco' });
    agent.report({ mode: 'boost' });
    await agent.whenSynced();
    expect((await readShadow(sdk, 'big'))?.state.reported).toEqual({ mode: 'boost' });
  });

  it('does not send a report made before connecting when the shadow already holds it (no version bump on boot)', async () => {
    const { UpdateThingShadowCommand } = await import('@aws-sdk/client-iot-data-plane');
    await sdk.send(
      new UpdateThingShadowCommand({
        thingName: 'boot',
        payload: new TextEncoder().encode(
          JSON.stringify({ state: { reported: { fw: '2.1', power: 'on' } } }),
        ),
      }),
    );
    const requests = await observer(shadowTopic({ thingName: 'boot' }, 'update'));
    const agent = await agentFor({ thingName: 'boot' });
    agent.report({ fw: '2.1', power: 'on' });
    await agent.whenSynced();
    agent.report({ power: 'off' });
    await agent.whenSynced();
    await waitFor(() => requests.messages.length > 0, 'the update seen by the observer');
    expect(requests.messages.map((m) => m.body.state)).toEqual([{ reported: { power: 'off' } }]);
    expect((await readShadow(sdk, 'boot'))?.version).toBe(2);
  });

  it('coalesces reports made while an update is in flight into one update with the newest values', async () => {
    const requests = await observer(shadowTopic({ thingName: 'busy' }, 'update'));
    const agent = await agentFor({ thingName: 'busy' });
    await agent.whenSynced();
    for (let i = 0; i < 20; i++) agent.report({ counter: i, even: i % 2 === 0 });
    await agent.whenSynced();
    expect(requests.messages.length).toBeLessThanOrEqual(2);
    expect((await readShadow(sdk, 'busy'))?.state.reported).toEqual({ counter: 19, even: false });
  });

  it('re-splits a held-back value when its interval ends, even if the device reports nothing more', async () => {
    const policy = splitPolicy({ fields: { t: { route: 'telemetry', alsoShadow: { minIntervalMs: 300 } } } });
    const agent = await agentFor({ thingName: 'slow', policy });
    await agent.whenSynced();
    agent.report({ t: 1 });
    await agent.whenSynced();
    agent.report({ t: 9 }); // held back for 300 ms
    expect(agent.status().pending).toBe(false);
    await waitFor(
      async () => (await readShadow(sdk, 'slow'))?.state.reported?.t === 9,
      't = 9 in the shadow',
      3_000,
    );
  });
});

describe('device agent: offline', () => {
  it('collapses offline reports into one patch flushed on reconnect and bounds the telemetry buffer', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'agent-offline-'));
    try {
      await service.close();
      service = await startService({ dataDir });
      sdk.destroy();
      sdk = sdkClient(service);
      const policy = splitPolicy({ fields: { rssi: 'telemetry' } });
      const agent = await agentFor({ thingName: 'van', policy, telemetryBufferSize: 3 });
      agent.report({ power: 'on', gear: 1 });
      await agent.whenSynced();
      // The broker goes away; the device keeps reporting.
      const httpPort = Number(new URL(service.httpEndpoint).port);
      const mqttPort = Number(new URL(service.mqttUrl).port);
      await service.close();
      await waitFor(() => !agent.status().connected, 'the agent notices');
      for (let i = 0; i < 5; i++)
        agent.report({ gear: i + 2, rssi: -50 - i, ...(i === 2 ? { power: null } : {}) });
      agent.report({ lights: { front: true } });
      expect(agent.stats()).toMatchObject({ telemetryBuffered: 3, telemetryDropped: 2 });
      service = await startService({ dataDir, httpPort, mqttPort });
      // Seen by the service as they arrive: an observer client subscribing now could come after the agent,
      // which reconnects within 50 ms and flushes its buffer at once.
      const updates = { messages: [] as { body: JsonObject }[] };
      const telemetry = { messages: [] as { body: JsonObject }[] };
      service.mqtt.onClientPublish((publish) => {
        const body = JSON.parse(publish.payload.toString()) as JsonObject;
        if (publish.topic === shadowTopic({ thingName: 'van' }, 'update')) updates.messages.push({ body });
        if (publish.topic === 'my/things/van/state') telemetry.messages.push({ body });
      });
      sdk.destroy();
      sdk = sdkClient(service);
      await waitFor(() => agent.status().connected, 'the agent reconnects', 5_000);
      await agent.whenSynced();
      expect(updates.messages.map((m) => m.body.state)).toEqual([
        { reported: { gear: 6, power: null, lights: { front: true } } },
      ]);
      expect((await readShadow(sdk, 'van'))?.state.reported).toEqual({ gear: 6, lights: { front: true } });
      await waitFor(() => telemetry.messages.length === 3, 'the buffered telemetry');
      expect(telemetry.messages.map((m) => (m.body.state as JsonObject).rssi)).toEqual([-52, -53, -54]);
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  });

  it('re-reads the shadow after a broker restart and adopts changes made while it was away', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'agent-restart-'));
    try {
      await service.close();
      service = await startService({ dataDir });
      sdk.destroy();
      sdk = sdkClient(service);
      const agent = await agentFor({ thingName: 'gate', onDelta: (delta) => delta });
      await agent.whenSynced();
      const gets = agent.stats().gets;
      service = await restartService(service, { dataDir }, 100);
      sdk.destroy();
      sdk = sdkClient(service);
      await writeDesired(sdk, 'gate', { open: true });
      await waitFor(() => agent.applied()?.open === true, 'the change made while away applied', 5_000);
      await agent.whenSynced();
      expect(agent.stats().gets).toBeGreaterThan(gets);
      expect((await readShadow(sdk, 'gate'))?.state.delta).toBeUndefined();
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});

describe('device agent: under an AWS IoT-like policy', () => {
  it('needs no more than its own shadow topics and telemetry topic', async () => {
    await service.close();
    service = await startService({ auth: { serviceCredentials: { username: 'svc', password: 'secret' } } });
    sdk.destroy();
    sdk = sdkClient(service);
    const errors: unknown[] = [];
    const agent = await agentFor({
      thingName: 'sensor-7',
      policy: splitPolicy({ fields: { co2: 'telemetry' } }),
      onDelta: (delta) => delta,
    });
    agent.on('error', (error) => errors.push(error));
    const observer = await mqttClient(service.mqttUrl, 'observer', { username: 'svc', password: 'secret' });
    clients.push(observer);
    const telemetry: JsonObject[] = [];
    observer.on('message', (_topic, payload) => telemetry.push(JSON.parse(payload.toString())));
    await observer.subscribeAsync('my/things/sensor-7/state', { qos: 1 });
    agent.report({ mode: 'on', co2: 612 });
    await agent.whenSynced();
    await writeDesired(sdk, 'sensor-7', { mode: 'eco' });
    await waitFor(() => agent.applied()?.mode === 'eco', 'the delta applied');
    await agent.whenSynced();
    await waitFor(() => telemetry.length === 1, 'the telemetry');
    expect(telemetry[0]).toMatchObject({ state: { co2: 612 } });
    expect((await readShadow(sdk, 'sensor-7'))?.state.reported).toEqual({ mode: 'eco' });
    expect(errors).toEqual([]);
    expect(service.mqtt.stats().broker).toMatchObject({ deniedPublishes: 0, deniedSubscriptions: 0 });
  });
});

describe('device agent: options', () => {
  const base = { thingName: 'x', mqtt: 'mqtt://127.0.0.1:1', onDelta: () => undefined };
  const cases: [string, object, RegExp][] = [
    ['an unknown key', { ...base, onDelta: undefined, ondelta: () => 1 }, /unknown option ondelta/],
    ['a bad thing name', { ...base, thingName: 'a b' }, /thingName: .*failed to satisfy constraint/],
    ['a bad shadow name', { ...base, shadowName: '' }, /shadowName/],
    ['a missing handler', { ...base, onDelta: undefined }, /onDelta must be a function/],
    ['QoS 2', { ...base, telemetryQos: 2 }, /telemetryQos must be 0 or 1/],
    ['a negative buffer', { ...base, telemetryBufferSize: -1 }, /telemetryBufferSize must be an integer ≥ 0/],
    ['a bad URL', { ...base, mqtt: 'http://x' }, /mqtt URL must start with/],
    [
      'a bad mqtt entry key',
      { ...base, mqtt: { url: 'mqtt://x', option: {} } },
      /unknown option mqtt\.option/,
    ],
    ['a non-policy', { ...base, policy: {} }, /policy must be a policy/],
    ['zero attempts', { ...base, maxHandlerAttempts: 0 }, /maxHandlerAttempts must be an integer ≥ 1/],
  ];
  for (const [name, options, message] of cases) {
    it(`rejects ${name} with a ShadowOptionsError`, async () => {
      await expect(createDeviceAgent(options as DeviceAgentOptions)).rejects.toThrow(message);
      await expect(createDeviceAgent(options as DeviceAgentOptions)).rejects.toMatchObject({
        name: 'ShadowOptionsError',
      });
    });
  }

  it('uses a client the caller owns without ending it, and refuses reports after close', async () => {
    const client = await mqttClient(service.mqttUrl, 'own-client');
    clients.push(client);
    const agent = await createDeviceAgent({
      thingName: 'own-client',
      mqtt: client,
      onDelta: () => undefined,
    });
    agent.report({ a: 1 });
    await agent.whenSynced();
    await agent.close();
    expect(client.connected).toBe(true);
    expect(() => agent.report({ a: 2 })).toThrow(/closed/);
  });
});
