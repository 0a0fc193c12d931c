/**
 * The air-conditioner simulator against the real local service: the real AWS SDK over HTTP plays the app,
 * a real mqtt.js client watches the telemetry topic.
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import {
  GetThingShadowCommand,
  IoTDataPlaneClient,
  UpdateThingShadowCommand,
} from '@aws-sdk/client-iot-data-plane';
import { connect, type MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type AirconSimulator,
  airconSplitPolicy,
  resolveAirconOptions,
  seededRandom,
  startAircon,
} from '../../examples/device/aircon.js';
import { type ShadowService, startShadowService } from '../../src/emulator/index.js';
import { isShadowError, type JsonObject } from '../../src/index.js';

let service: ShadowService;
let iot: IoTDataPlaneClient;
let watcher: MqttClient;
const units: AirconSimulator[] = [];
const telemetry: { topic: string; body: { state: JsonObject; timestamp: number } }[] = [];

beforeAll(async () => {
  service = await startShadowService();
  iot = new IoTDataPlaneClient({
    endpoint: service.httpEndpoint,
    region: 'us-east-1',
    credentials: { accessKeyId: 'x', secretAccessKey: 'y' },
    maxAttempts: 1,
  });
  watcher = connect(service.mqttUrl, { clientId: 'telemetry-watcher', reconnectPeriod: 0 });
  await new Promise<void>((resolve, reject) => {
    watcher.once('connect', () => resolve());
    watcher.once('error', reject);
  });
  (watcher.stream as { setNoDelay?: (on: boolean) => void }).setNoDelay?.(true);
  watcher.on('message', (topic, payload) => {
    telemetry.push({ topic, body: JSON.parse(payload.toString('utf8')) });
  });
  await watcher.subscribeAsync('my/things/+/state', { qos: 0 });
});

afterAll(async () => {
  await Promise.allSettled(units.map((unit) => unit.close()));
  await watcher?.endAsync();
  iot?.destroy();
  await service?.close();
});

async function start(options: Omit<Parameters<typeof startAircon>[0], 'mqtt'>): Promise<AirconSimulator> {
  const unit = await startAircon({
    ...options,
    mqtt: { url: service.mqttUrl, options: { reconnectPeriod: 100 } },
  });
  units.push(unit);
  await unit.agent.whenSynced();
  return unit;
}

async function readShadow(thingName: string) {
  const answer = await iot.send(new GetThingShadowCommand({ thingName }));
  return JSON.parse(new TextDecoder().decode(answer.payload)) as {
    state: { desired?: JsonObject; reported?: JsonObject; delta?: JsonObject };
    version: number;
  };
}

async function setDesired(thingName: string, desired: JsonObject): Promise<void> {
  await iot.send(
    new UpdateThingShadowCommand({
      thingName,
      payload: new TextEncoder().encode(JSON.stringify({ state: { desired } })),
    }),
  );
}

async function until(
  check: () => boolean | Promise<boolean>,
  what: string,
  timeoutMs = 5_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

describe('air-conditioner simulator', () => {
  it('creates its shadow with the settings only and sends the readings to the telemetry topic', async () => {
    const unit = await start({ thingName: 'ac-split', sampleIntervalMs: 60_000, illegalStateProbability: 0 });
    const shadow = await readShadow('ac-split');
    expect(shadow.state.reported).toEqual({ power: 'off', mode: 'cool', targetTemp: 24 });
    unit.sample();
    await until(
      () => telemetry.filter((m) => m.topic === 'my/things/ac-split/state').length >= 2,
      'telemetry',
    );
    const last = telemetry.filter((m) => m.topic === 'my/things/ac-split/state').at(-1);
    expect(Object.keys(last?.body.state ?? {}).sort()).toEqual(['humidity', 'temperature']);
    expect(last?.body.state.temperature).toBe(unit.readings().temperature);
    // Samples never touch the shadow: its version stays where the first report put it.
    expect((await readShadow('ac-split')).version).toBe(shadow.version);
  });

  it('follows desired changes and reports what it applied, with the delta version', async () => {
    const applied: { values: JsonObject; version: number }[] = [];
    const unit = await start({
      thingName: 'ac-follow',
      sampleIntervalMs: 60_000,
      illegalStateProbability: 0,
      onApplied: (values, _at, version) => applied.push({ values: { ...values }, version }),
    });
    await setDesired('ac-follow', { power: 'on', mode: 'heat', targetTemp: 27 });
    await until(async () => (await readShadow('ac-follow')).state.delta === undefined, 'no delta');
    const shadow = await readShadow('ac-follow');
    expect(shadow.state.reported).toEqual({ power: 'on', mode: 'heat', targetTemp: 27 });
    expect(unit.settings()).toEqual({ power: 'on', mode: 'heat', targetTemp: 27 });
    expect(applied).toEqual([{ values: { power: 'on', mode: 'heat', targetTemp: 27 }, version: 2 }]);
    expect(unit.stats().deltasApplied).toBe(1);
  });

  it('refuses values it cannot run and keeps reporting its own', async () => {
    const unit = await start({
      thingName: 'ac-refuse',
      sampleIntervalMs: 60_000,
      illegalStateProbability: 0,
      initial: { targetTemp: 22 },
    });
    const conflicts: unknown[] = [];
    unit.agent.on('conflict', (event) => conflicts.push(event));
    await setDesired('ac-refuse', { targetTemp: 45, mode: 'turbo' });
    await until(() => unit.stats().valuesRefused === 2, 'the refusal');
    await until(() => !unit.agent.status().pending, 'the report');
    expect(unit.settings()).toMatchObject({ targetTemp: 22, mode: 'cool' });
    const shadow = await readShadow('ac-refuse');
    expect(shadow.state.reported).toMatchObject({ targetTemp: 22, mode: 'cool' });
    // The delta stays (the app sees the unit did not take it) and the agent flags the disagreement.
    expect(shadow.state.delta).toEqual({ targetTemp: 45, mode: 'turbo' });
    expect(conflicts.length).toBeGreaterThan(0);
  });

  it('without the split, every sample is a shadow version (the seed failure)', async () => {
    const unit = await start({
      thingName: 'ac-nosplit',
      split: false,
      sampleIntervalMs: 60_000,
      illegalStateProbability: 0,
    });
    const before = await readShadow('ac-nosplit');
    expect(Object.keys(before.state.reported ?? {}).sort()).toEqual([
      'humidity',
      'mode',
      'power',
      'targetTemp',
      'temperature',
    ]);
    const samples = 3;
    for (let i = 0; i < samples; i++) {
      unit.sample();
      // One update at a time: let each sample's report land before the next.
      await until(() => !unit.agent.status().pending, 'the report');
    }
    const after = await readShadow('ac-nosplit');
    // Humidity and temperature may repeat a value by chance; the unit reports only what changed.
    expect(after.version - before.version).toBeGreaterThanOrEqual(1);
    expect(after.version - before.version).toBeLessThanOrEqual(samples);
    expect(after.state.reported?.temperature).toBe(unit.readings().temperature);
    expect(telemetry.some((m) => m.topic === 'my/things/ac-nosplit/state')).toBe(false);
  });

  it('enters the illegal state now and then and reports it cleared after the configured samples', async () => {
    const unit = await start({
      thingName: 'ac-illegal',
      sampleIntervalMs: 60_000,
      illegalStateProbability: 1,
      illegalStateSamples: 2,
    });
    unit.sample();
    expect(unit.illegal()).toBe(true);
    await until(
      async () => (await readShadow('ac-illegal')).state.reported?.someIllegalState === true,
      'illegal',
    );
    unit.sample();
    expect(unit.illegal()).toBe(true);
    unit.sample();
    expect(unit.illegal()).toBe(false);
    await until(
      async () => (await readShadow('ac-illegal')).state.reported?.someIllegalState === false,
      'cleared',
    );
    expect(unit.stats().illegalStates).toBe(1);
  });

  it('drifts toward the target when cooling and toward the room when off', async () => {
    let now = Date.UTC(2026, 10, 29, 9);
    const unit = await start({
      thingName: 'ac-drift',
      sampleIntervalMs: 60_000,
      illegalStateProbability: 0,
      ambientTemp: 30,
      initial: { power: 'on', mode: 'cool', targetTemp: 18 },
      clock: () => now,
    });
    const start0 = unit.readings().temperature;
    for (let i = 0; i < 30; i++) {
      now += 10_000;
      unit.sample();
    }
    const cooled = unit.readings().temperature;
    expect(cooled).toBeLessThan(start0 - 5);
    expect(cooled).toBeGreaterThan(17);
    await setDesired('ac-drift', { power: 'off' });
    await until(() => unit.settings().power === 'off', 'power off');
    for (let i = 0; i < 60; i++) {
      now += 10_000;
      unit.sample();
    }
    expect(unit.readings().temperature).toBeGreaterThan(cooled + 5);
  });

  it('runs alone against a service URL and stops on SIGINT', async () => {
    const root = fileURLToPath(new URL('../../', import.meta.url));
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', 'examples/device/aircon.ts', service.mqttUrl, 'ac-alone'],
      { cwd: root, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, NODE_NO_WARNINGS: '1' } },
    );
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      out += chunk;
    });
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
      out += chunk;
    });
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    try {
      await until(() => out.includes('ac-alone: running against'), 'the start line', 15_000);
      await until(async () => {
        try {
          return (await readShadow('ac-alone')).state.reported?.power === 'off';
        } catch {
          return false; // not created yet
        }
      }, 'its shadow');
      await setDesired('ac-alone', { power: 'on' });
      await until(() => out.includes('ac-alone: applied {"power":"on"}'), 'the applied line');
    } finally {
      child.kill('SIGINT');
    }
    expect(await exited).toBe(0);
  });

  it('is repeatable for a seed', () => {
    const a = seededRandom(42);
    const b = seededRandom(42);
    const c = seededRandom(43);
    const first = Array.from({ length: 5 }, a);
    expect(Array.from({ length: 5 }, b)).toEqual(first);
    expect(Array.from({ length: 5 }, c)).not.toEqual(first);
    for (const value of first) expect(value >= 0 && value < 1).toBe(true);
  });

  it('routes temperature and humidity to telemetry only with the split', () => {
    expect(airconSplitPolicy(true).routeOf('temperature')).toBe('telemetry');
    expect(airconSplitPolicy(true).routeOf('power')).toBe('shadow');
    expect(airconSplitPolicy(false).routeOf('humidity')).toBe('shadow');
    expect(airconSplitPolicy(true).telemetryTopicFor('ac-9')).toBe('my/things/ac-9/state');
  });

  it('rejects bad options with a clear typed error', () => {
    const base = { thingName: 'ac-x', mqtt: 'mqtt://127.0.0.1:1' };
    const message = (options: object) => {
      try {
        resolveAirconOptions(options as Parameters<typeof resolveAirconOptions>[0]);
      } catch (error) {
        expect(isShadowError(error) && error.code === 'OPTIONS').toBe(true);
        return (error as Error).message;
      }
      return 'no error';
    };
    expect(message({ ...base, color: 'red' })).toMatch(/unknown option color/);
    expect(message({ ...base, sampleIntervalMs: 0 })).toMatch(/sampleIntervalMs/);
    expect(message({ ...base, illegalStateProbability: 2 })).toMatch(/illegalStateProbability/);
    expect(message({ ...base, initial: { targetTemp: 40 } })).toMatch(/initial.targetTemp/);
    expect(message({ ...base, agent: { qos: 2 } })).toMatch(/agent.qos/);
    expect(message(base)).toBe('no error');
  });
});
