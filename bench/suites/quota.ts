/**
 * Independent writers under AWS's DEFAULT per-thing quotas (20 requests/s, 10 in flight), as real users run
 * them: N writers increment one counter in one shadow, each with its own AWS SDK client (and, for shadow-sync,
 * its own shadow-sync client), like N Lambda invocations. Peers, each in the same run on a fresh thing:
 * - (a) a naive p-retry loop around GET + versioned UPDATE, p-retry's defaults (10 retries, 1 s first wait,
 *   factor 2) with `maxRetryTime` set to shadow-sync's default time budget (20 s) so that it ends;
 * - (b) the AWS SDK's own `retryMode: 'adaptive'` (its client-side rate limiter and retries of 429s, default
 *   3 attempts) around the same GET + versioned UPDATE, re-run on a 409 (at most 10, within 20 s);
 * - (c) shadow-sync with default options (`maxAttempts: 1` on its SDK client, as the README says).
 * Each writer loops for the run's window, then finishes the update it started. Figures per run: committed
 * updates/s (from the start to the last settled update), that rate as a share of the quota ceiling
 * (20 requests/s / 2 requests a commit needs at least: a read and a versioned write = 10 updates/s), updates
 * given up, and per committed update the requests the service admitted, its 429s and its 409s (counted by the
 * service, so the SDK's hidden retries count too). A run whose final counter differs from the committed
 * updates fails the suite.
 *
 * A second group measures the seed's scenario with default options: a device agent (split policy on, so its
 * telemetry never touches the shadow) acknowledges each desired change by reporting it, and the app makes
 * its next change 100 ms after the device got the last one. Requests and 409s per change over HTTP and MQTT;
 * peer: the engine's previous default (`useKnownDocuments: true`, always writing on the remembered document).
 */
import { IoTDataPlaneClient } from '@aws-sdk/client-iot-data-plane';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import type { MqttClient } from 'mqtt';
import pRetry from 'p-retry';
import type { JsonObject } from '../../src/core/document.js';
import { createDeviceAgent } from '../../src/device/index.js';
import { type ShadowService, startShadowService } from '../../src/emulator/index.js';
import { isShadowConflictError } from '../../src/errors.js';
import { splitPolicy } from '../../src/split/index.js';
import { awsTransport } from '../../src/transports/aws.js';
import { mqttTransport } from '../../src/transports/mqtt.js';
import type { ShadowTransport } from '../../src/transports/transport.js';
import { createShadowClient } from '../../src/update/shadow-client.js';
import type { BenchSuite, GroupResult, Metric, ScenarioGroup } from '../measure.js';
import { benchAgent } from '../support/bench-http.js';
import { buildBenchClient } from '../support/bench-mqtt.js';
import { formatRatio } from '../svg-chart.js';

const WRITER_COUNTS = [4, 16, 64] as const;
const QUICK_WRITER_COUNTS = [4, 16] as const;
const NAIVE = '(a) naive p-retry GET + versioned UPDATE';
const SDK_ADAPTIVE = "(b) AWS SDK retryMode 'adaptive' + re-run on 409";
const SHADOW_SYNC = '(c) shadow-sync, default options';
/** The quota ceiling in committed updates per second: 20 requests/s, a read and a versioned write each. */
const CEILING = 20 / 2;
/** shadow-sync's default time budget of one update, given to the peers too. */
const BUDGET_MS = 20_000;

const OLD_DEFAULT = 'HTTP, previous default (useKnownDocuments: true)';
const HTTP_DEFAULT = 'HTTP, default options';
const MQTT_DEFAULT = 'MQTT, default options';
/** Pause between the device getting a change and the app's next change (the scenario). */
const NEXT_CHANGE_MS = 100;

const WRITER_METRICS: Metric[] = [
  { key: 'rate', label: 'committed updates/s', better: 'higher', digits: 2 },
  { key: 'ofCeiling', label: 'share of the quota ceiling (10 updates/s)', better: 'higher', digits: 2 },
  { key: 'failed', label: 'updates given up', better: 'lower', chart: false },
  { key: 'requests', label: 'admitted requests per update', better: 'lower', digits: 2, chart: false },
  { key: 'throttles', label: '429s per update', better: 'lower', digits: 2, chart: false },
  { key: 'conflicts', label: '409s per update', better: 'lower', digits: 2, chart: false },
  { key: 'committed', label: 'committed updates', better: 'higher', chart: false },
];

const SEED_METRICS: Metric[] = [
  { key: 'requests', label: 'app requests per change', better: 'lower', digits: 2 },
  { key: 'conflicts', label: 'app 409s per change', better: 'lower', digits: 3 },
  { key: 'changes', label: 'changes', better: 'higher', chart: false },
];

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

let service: ShadowService | undefined;
let runId = 0;
const clients: IoTDataPlaneClient[] = [];

function sdkClient(extra: Partial<ConstructorParameters<typeof IoTDataPlaneClient>[0]> = {}) {
  const client = new IoTDataPlaneClient({
    endpoint: (service as ShadowService).httpEndpoint,
    region: 'us-east-1',
    credentials: { accessKeyId: 'x', secretAccessKey: 'y' },
    requestHandler: new NodeHttpHandler({ httpAgent: benchAgent(4, true) }),
    ...extra,
  });
  clients.push(client);
  return client;
}

const countOf = (state: { desired?: JsonObject } | undefined) => Number(state?.desired?.count ?? 0);

/** One writer's increment with the given peer; resolves when committed, rejects when given up. */
function writerFor(task: string, thingName: string): () => Promise<unknown> {
  const target = { thingName };
  if (task === SHADOW_SYNC) {
    const handle = createShadowClient({ transport: awsTransport(sdkClient({ maxAttempts: 1 })) }).shadow(
      thingName,
    );
    return () => handle.update((current) => ({ desired: { count: countOf(current?.state) + 1 } }));
  }
  if (task === NAIVE) {
    const transport: ShadowTransport = awsTransport(sdkClient({ maxAttempts: 1 }));
    return () =>
      pRetry(
        async () => {
          const current = await transport.get(target);
          await transport.update(target, {
            state: { desired: { count: countOf(current?.state) + 1 } },
            version: current?.version ?? 0,
          });
        },
        { maxRetryTime: BUDGET_MS },
      );
  }
  const transport: ShadowTransport = awsTransport(sdkClient({ retryMode: 'adaptive' }));
  return async () => {
    const started = performance.now();
    for (let conflicts = 0; ; ) {
      const current = await transport.get(target);
      try {
        await transport.update(target, {
          state: { desired: { count: countOf(current?.state) + 1 } },
          version: current?.version ?? 0,
        });
        return;
      } catch (error) {
        if (!isShadowConflictError(error) || ++conflicts >= 10 || performance.now() - started > BUDGET_MS)
          throw error;
      }
    }
  };
}

async function independentRun(task: string, writers: number, windowMs: number) {
  const svc = service as ShadowService;
  const thingName = `quota-${++runId}-${writers}`;
  const increments = Array.from({ length: writers }, () => writerFor(task, thingName));
  const before = svc.engine.stats();
  let committed = 0;
  let failed = 0;
  const started = performance.now();
  await Promise.all(
    increments.map(async (increment) => {
      while (performance.now() - started < windowMs) {
        try {
          await increment();
          committed++;
        } catch {
          failed++;
        }
      }
    }),
  );
  const elapsedS = (performance.now() - started) / 1000;
  const after = svc.engine.stats();
  const stored = svc.engine.read({ thingName });
  const count = stored !== undefined && 'state' in stored ? countOf(stored.state) : 0;
  if (count !== committed)
    throw new Error(`${task}, ${writers} writers: counter ${count} after ${committed} committed updates`);
  const throttled = after.throttled - before.throttled;
  const requests = after.requests - before.requests;
  const rejected = after.rejected - before.rejected;
  const per = (n: number) => (committed === 0 ? Number.NaN : n / committed);
  return {
    rate: committed / elapsedS,
    ofCeiling: committed / elapsedS / CEILING,
    failed,
    requests: per(requests - throttled),
    throttles: per(throttled),
    conflicts: per(rejected - throttled),
    committed,
  };
}

const POLICY = splitPolicy({
  fields: { temperature: 'telemetry', humidity: 'telemetry' },
  otherFields: 'shadow',
  telemetryTopic: 'my/things/{thingName}/state',
});

async function seedRun(task: string, changes: number) {
  const svc = service as ShadowService;
  const thingName = `seed-${++runId}`;
  const arrived = new Map<number, () => void>();
  const agent = await createDeviceAgent({
    thingName,
    mqtt: buildBenchClient(svc.mqttUrl, thingName, { mqtt: { reconnectPeriod: 200 } }),
    policy: POLICY,
    onDelta: (delta) => {
      const value = delta.targetTemp;
      if (typeof value === 'number') queueMicrotask(() => arrived.get(value)?.());
      return delta;
    },
  });
  agent.report({ power: 'on', targetTemp: 0, temperature: 22, humidity: 40 });
  await agent.whenSynced();
  let appMqtt: MqttClient | undefined;
  let transport: ShadowTransport;
  if (task === MQTT_DEFAULT) {
    appMqtt = buildBenchClient(svc.mqttUrl, `${thingName}-app`, { unref: true });
    await new Promise<void>((resolve, reject) => {
      appMqtt?.once('connect', () => resolve());
      appMqtt?.once('error', reject);
    });
    transport = mqttTransport(appMqtt);
  } else {
    transport = awsTransport(sdkClient({ maxAttempts: 1 }));
  }
  let requests = 0;
  let conflicts = 0;
  const app = createShadowClient({
    transport,
    ...(task === OLD_DEFAULT ? { useKnownDocuments: true } : {}),
    onEvent: (event) => {
      if (event.type === 'attempt') requests++;
      if (event.type === 'conflict') conflicts++;
    },
  }).shadow(thingName);
  let tick = 0;
  const telemetry = setInterval(() => {
    tick++;
    agent.report({ temperature: 22 + (tick % 50) / 10, humidity: 40 + (tick % 17) });
  }, 100);
  try {
    for (let change = 1; change <= changes; change++) {
      const reached = new Promise<void>((resolve, reject) => {
        arrived.set(change, resolve);
        setTimeout(
          () => reject(new Error(`${thingName}: change ${change} never reached the device`)),
          10_000,
        ).unref();
      });
      await app.update(() => ({ desired: { targetTemp: change } }));
      await reached;
      arrived.delete(change);
      await sleep(NEXT_CHANGE_MS);
    }
  } finally {
    clearInterval(telemetry);
    await agent.close();
    await transport.close?.();
    await appMqtt?.endAsync();
  }
  return { requests: requests / changes, conflicts: conflicts / changes, changes };
}

export const suite: BenchSuite = {
  name: 'quota',
  order: 6,
  title: "Independent writers under AWS's default quotas",
  description:
    "N writers increment one counter in one shadow of the local service running AWS's default per-thing quotas (20 requests/s, 10 in flight; not raised), " +
    'each writer with its own AWS SDK client (like N Lambda invocations), for a fixed window, then each finishes the update it started. ' +
    `Peers: (a) a naive p-retry loop around GET + versioned UPDATE (p-retry defaults, maxRetryTime ${BUDGET_MS / 1000} s); ` +
    "(b) the AWS SDK's own retryMode: 'adaptive' (client-side rate limiter, default 3 attempts) around the same calls, re-run on a 409; " +
    '(c) shadow-sync with default options and its own client per writer. ' +
    'Share of the quota ceiling = committed updates/s ÷ 10 (20 requests/s, a read and a versioned write per update). ' +
    "Requests, 429s and 409s are counted by the service (the SDK's hidden retries included). " +
    "Seed scenario: a device agent (split policy on) acknowledges each desired change by reporting it; the app's next change follows 100 ms after the device got the last one; requests and 409s per change of the app, over HTTP and MQTT, against the engine's previous default.",
  quickNote:
    '4 and 16 writers only, 5 s windows (full: 4, 16 and 64 writers, 15 s windows), 15 seed changes (full: 40).',
  settings: {
    full: { forks: 1, rounds: 1 },
    quick: { forks: 1, rounds: 1 },
  },
  headline: (groups: GroupResult[]) =>
    groups.map((group) => {
      const pick = (name: string) => group.tasks.find((task) => task.name === name)?.metrics;
      const v = (of: ReturnType<typeof pick>, key: string, digits = 2) =>
        (of?.[key]?.value.median ?? Number.NaN).toFixed(digits);
      if (group.name.startsWith('seed')) {
        const old = pick(OLD_DEFAULT);
        const http = pick(HTTP_DEFAULT);
        const mqtt = pick(MQTT_DEFAULT);
        return `${group.name}: requests per change ${v(old, 'requests')} (previous default) → ${v(http, 'requests')} over HTTP (409s ${v(old, 'conflicts')} → ${v(http, 'conflicts')}), ${v(mqtt, 'requests')} over MQTT`;
      }
      const a = pick(NAIVE);
      const b = pick(SDK_ADAPTIVE);
      const c = pick(SHADOW_SYNC);
      return `${group.name}: shadow-sync ${v(c, 'rate')} updates/s = ${v(c, 'ofCeiling')}x the quota ceiling, ${v(c, 'failed', 0)} given up (naive p-retry ${v(a, 'rate')}/s, ${v(a, 'failed', 0)} given up; SDK adaptive ${v(b, 'rate')}/s, ${v(b, 'failed', 0)} given up; ${formatRatio(c?.rate?.ratio?.median ?? Number.NaN)} the naive rate)`;
    }),
  async groups({ quick }) {
    service = await startShadowService({ host: '127.0.0.1' });
    const windowMs = quick ? 5_000 : 15_000;
    const groups: ScenarioGroup[] = (quick ? QUICK_WRITER_COUNTS : WRITER_COUNTS).map((writers) => ({
      kind: 'scenario',
      name: `${writers} independent writers`,
      baseline: NAIVE,
      tasks: [NAIVE, SDK_ADAPTIVE, SHADOW_SYNC],
      metrics: WRITER_METRICS,
      run: (task) => independentRun(task, writers, windowMs),
      goals: [
        { task: SHADOW_SYNC, metric: 'failed', on: 'value', atMost: 0 },
        { task: SHADOW_SYNC, metric: 'ofCeiling', on: 'value', atLeast: 0.8 },
      ],
      input: `${writers} writers, each its own SDK client; ${windowMs / 1000} s window; default quotas.`,
    }));
    const changes = quick ? 15 : 40;
    groups.push({
      kind: 'scenario',
      name: 'seed scenario (device acknowledges each change)',
      baseline: OLD_DEFAULT,
      tasks: [OLD_DEFAULT, HTTP_DEFAULT, MQTT_DEFAULT],
      metrics: SEED_METRICS,
      run: (task) => seedRun(task, changes),
      goals: [
        { task: HTTP_DEFAULT, metric: 'requests', on: 'value', atMost: 2.05 },
        { task: HTTP_DEFAULT, metric: 'conflicts', on: 'value', atMost: 0.05 },
        { task: MQTT_DEFAULT, metric: 'requests', on: 'value', atMost: 1.1 },
      ],
      input: `${changes} changes; the next change ${NEXT_CHANGE_MS} ms after the device got the last one; telemetry at 10 Hz to my/things/<thing>/state.`,
    });
    return groups;
  },
  async teardown() {
    for (const client of clients.splice(0)) client.destroy();
    await service?.close();
  },
};
